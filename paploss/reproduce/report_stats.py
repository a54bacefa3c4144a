"""The report's statistics: a paired one-sided test of a stated ordering between two rows.

Rows compared in an ordering train with the same seeds (seed k of both rows starts from the same
initial weights and data order), so the test pairs them by seed: the differences
``d_k = a_k - b_k`` (AP in %) of the seeds both rows have. :func:`paired_test` decides a stated
ordering ``a OP b`` with two one-sided paired t-tests (:func:`scipy.stats.ttest_rel`) at level
:data:`ALPHA`:

- "agrees": the test of ``mean(d) > margin`` rejects its null (p < ALPHA);
- "disagrees": the test of ``mean(d) < margin`` rejects its null (p < ALPHA);
- "unresolved": neither does (too few seeds, or a difference within the seeds' noise).

The margin is 0 for ``>`` and ``>=`` (``>=`` is tested as ``>``: the paper's rows behind it
differ by 4-38 AP) and ``-FAR_BELOW_AP`` for ``<<`` ("far below": ``b - a > FAR_BELOW_AP``).
With n >= :data:`WILCOXON_MIN_N` pairs the Wilcoxon signed-rank test of the same direction is
reported beside it (the verdict is the t-test's). The level holds per ordering; the report's
summary adds the verdicts under Holm's step-down correction for all the orderings it tests
(:func:`holm_verdicts`: a family-wise level ALPHA on each ordering's two-sided p, twice the
smaller one-sided one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

ALPHA = 0.05
"""Level of every one-sided test."""
FAR_BELOW_AP = 5.0
"""'<<' in a claim: ``b`` exceeds ``a`` by more than this many AP points."""
WILCOXON_MIN_N = 6
"""Fewest pairs for the Wilcoxon signed-rank test (with 5 its exact one-sided p is >= 1/32)."""
OPERATORS = (">", ">=", "<<")

Verdict = Literal["agrees", "disagrees", "unresolved"]


@dataclass(frozen=True)
class PairedTest:
    """The outcome of :func:`paired_test` for a stated ordering ``a OP b``.

    Attributes:
        op: the ordering's operator (one of :data:`OPERATORS`).
        n: number of seeds both rows have (the pairs).
        mean_diff: mean of ``a_k - b_k`` over the pairs (AP points; nan for n = 0).
        p_agree: one-sided p-value of the test in the ordering's direction (nan for n < 2).
        p_disagree: one-sided p-value of the opposite direction (nan for n < 2).
        test: the test that gave the p-values ("paired t-test", or "sign test" where every pair
            differs by the same amount and the t statistic is undefined).
        wilcoxon_p: Wilcoxon signed-rank p of the ordering's direction, n >= WILCOXON_MIN_N.
        verdict: "agrees", "disagrees" or "unresolved" at level :data:`ALPHA`.
    """

    op: str
    n: int
    mean_diff: float
    p_agree: float
    p_disagree: float
    test: str
    wilcoxon_p: float | None
    verdict: Verdict

    def describe(self) -> str:
        """``paired t-test (n=5, mean difference +1.2): p = 0.003`` for the report."""
        if self.n < 2:
            return f"paired test needs 2 seeds of both rows, has {self.n}"
        p = self.p_agree if self.verdict != "disagrees" else self.p_disagree
        side = "" if self.verdict != "disagrees" else " (opposite direction)"
        text = f"{self.test} (n={self.n}, mean difference {self.mean_diff:+.1f}): p{side} = "
        text += _fmt_p(p)
        if self.wilcoxon_p is not None:
            text += f", Wilcoxon p = {_fmt_p(self.wilcoxon_p)}"
        return text


def _fmt_p(p: float) -> str:
    return "n/a" if math.isnan(p) else (f"{p:.3f}" if p >= 0.001 else f"{p:.1e}")


def _margin(op: str) -> float:
    if op in (">", ">="):
        return 0.0
    if op == "<<":
        return -FAR_BELOW_AP
    raise ValueError(f"unknown ordering operator {op!r}; choose one of {OPERATORS}")


def paired_test(
    a: Sequence[float], b: Sequence[float], op: str, *, alpha: float = ALPHA
) -> PairedTest:
    """Test the ordering ``a OP b`` on paired values (``a[k]`` and ``b[k]`` share seed k).

    Args:
        a, b: the two rows' values (AP in %), same length, paired by position.
        op: ">" / ">=" (a above b) or "<<" (a more than FAR_BELOW_AP below b).
        alpha: level of each one-sided test.

    Raises:
        ValueError: unknown ``op`` or ``a`` and ``b`` of different lengths.
    """
    from scipy import stats

    margin = _margin(op)
    if len(a) != len(b):
        raise ValueError(f"paired values of different lengths: {len(a)} and {len(b)}")
    n = len(a)
    # In the direction of the ordering: d > 0 where the ordering holds for that seed.
    d = [(x - y if op != "<<" else y - x) + margin for x, y in zip(a, b)]
    mean_diff = sum(x - y for x, y in zip(a, b)) / n if n else math.nan
    if n < 2:
        return PairedTest(op, n, mean_diff, math.nan, math.nan, "paired t-test", None, "unresolved")
    if max(d) - min(d) == 0.0:
        # No spread: the t statistic is undefined; the exact sign test of the common sign.
        test = "sign test"
        p_agree = 0.5**n if d[0] > 0 else 1.0
        p_disagree = 0.5**n if d[0] < 0 else 1.0
    else:
        test = "paired t-test"
        zeros = [0.0] * n
        p_agree = float(stats.ttest_rel(d, zeros, alternative="greater").pvalue)
        p_disagree = float(stats.ttest_rel(d, zeros, alternative="less").pvalue)
    wilcoxon_p = None
    if n >= WILCOXON_MIN_N and any(x != 0.0 for x in d):
        wilcoxon_p = float(stats.wilcoxon(d, alternative="greater").pvalue)
    verdict: Verdict = "unresolved"
    if p_agree < alpha:
        verdict = "agrees"
    elif p_disagree < alpha:
        verdict = "disagrees"
    return PairedTest(op, n, mean_diff, p_agree, p_disagree, test, wilcoxon_p, verdict)


def holm_rejects(pvalues: Sequence[float], *, alpha: float = ALPHA) -> list[bool]:
    """Holm's step-down procedure: which of the hypotheses with ``pvalues`` it rejects at
    family-wise level ``alpha``. The k-th smallest p (k = 1 .. m) is compared with
    ``alpha / (m - k + 1)``; the first one above its bound stops the rejections. A nan p (a test
    that could not run) is never rejected and counts in m."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: math.inf if math.isnan(pvalues[i]) else pvalues[i])
    rejects = [False] * m
    for k, i in enumerate(order):
        if math.isnan(pvalues[i]) or pvalues[i] > alpha / (m - k):
            break
        rejects[i] = True
    return rejects


def holm_verdicts(tests: Sequence[PairedTest], *, alpha: float = ALPHA) -> list[Verdict]:
    """The verdicts of ``tests`` under Holm's correction for testing them all: each ordering's
    two-sided p (twice its smaller one-sided p, at most 1) enters :func:`holm_rejects`; a rejected
    one agrees or disagrees by the direction of its smaller one-sided p."""
    two_sided = [
        min(1.0, 2.0 * min(t.p_agree, t.p_disagree)) if t.n >= 2 else math.nan for t in tests
    ]
    verdicts: list[Verdict] = []
    for t, rejected in zip(tests, holm_rejects(two_sided, alpha=alpha)):
        if not rejected:
            verdicts.append("unresolved")
        else:
            verdicts.append("agrees" if t.p_agree < t.p_disagree else "disagrees")
    return verdicts
