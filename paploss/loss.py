"""The Parameterized AP Loss, Eq. (6) of Tao et al., "Searching Parameterized AP Loss for Object
Detection" (NeurIPS 2021):

    L = -1/|P| sum_{i in P} [ f1(l_i) - f5(l_i) * sum_{j != i} f2(x_ij) (1 - f3(l_j))
                                                 / (1 + sum_{j != i} f4(x_ij)) ]

with x_ij = (clamp(s_j - s_i, -1, 1) + 1) / 2, l the localization score (0 for negatives) and the
gradient of the denominator blocked. Terms with i in the negatives vanish (f(0) = 0), so the outer
sum runs over the positives P only. B, the set j runs over, is every non-ignored entry (or the
top-k selection, see ``topk``).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from paploss.errors import NonFiniteError
from paploss.kernels import pairwise_sums
from paploss.kernels.reference import pairwise_sums_of_differences
from paploss.localization import scale_gradient
from paploss.params import LossParams
from paploss.substitutions import Substitution
from paploss.substitutions import substitution as substitution_named

RELEASE_DEN_EPS = 1e-12
"""release_compatible divides by sum_j f4(x_ij) (no "1 +"); the sum includes f4(0.5) of the self
pair, which is 0 only for degenerate f4. It is clamped to at least this value."""


def _describe_nonfinite(name: str, values: Tensor) -> str:
    bad = (~torch.isfinite(values)).nonzero().flatten()
    first = bad[:5].tolist()
    return (
        f"{name} has {bad.numel()} non-finite value(s) (NaN/inf) at flat indices {first}"
        f"{' ...' if bad.numel() > 5 else ''}, e.g. {values.flatten()[bad[:5]].tolist()}; "
        "fix the upstream computation or pass check_finite=False"
    )


def _validate(
    logits: Tensor, labels: Tensor, loc_scores: Tensor, topk: int | None, check_finite: bool
) -> None:
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        raise ValueError(
            f"logits must be a floating-point tensor, got {getattr(logits, 'dtype', logits)!r}"
        )
    if not isinstance(loc_scores, Tensor) or not loc_scores.is_floating_point():
        raise ValueError(
            f"loc_scores must be a floating-point tensor, got {getattr(loc_scores, 'dtype', loc_scores)!r}"
        )
    if not isinstance(labels, Tensor) or labels.is_floating_point() or labels.is_complex():
        raise ValueError(
            f"labels must be an integer tensor with values in {{-1, 0, 1}}, got "
            f"{getattr(labels, 'dtype', labels)!r}"
        )
    if logits.shape != labels.shape or logits.shape != loc_scores.shape:
        raise ValueError(
            "logits, labels and loc_scores must have the same shape, got "
            f"{tuple(logits.shape)}, {tuple(labels.shape)} and {tuple(loc_scores.shape)}"
        )
    bad_labels = (labels != 1) & (labels != 0) & (labels != -1)
    if bad_labels.any():
        where = bad_labels.nonzero().flatten()[:5]
        raise ValueError(
            f"labels must be 1 (positive), 0 (negative) or -1 (ignored); got "
            f"{labels.flatten()[where].tolist()} at flat indices {where.tolist()}"
        )
    # Ignored entries take no part anywhere: a NaN logit or an out-of-range loc score there is
    # no error (they are dropped before any arithmetic, their gradient is 0).
    ignored = labels == -1
    if check_finite:
        for name, values in (("logits", logits), ("loc_scores", loc_scores)):
            values = values.detach().masked_fill(ignored, 0.0)
            if not torch.isfinite(values).all():
                raise NonFiniteError(_describe_nonfinite(name, values))
    out_of_range = ((loc_scores < 0) | (loc_scores > 1)) & ~ignored
    if out_of_range.any():
        where = out_of_range.nonzero().flatten()[:5]
        raise ValueError(
            f"loc_scores must lie in [0, 1] (map GIoU with (g + 1) / 2, see "
            f"paploss.localization); got {loc_scores.detach().flatten()[where].tolist()} at flat "
            f"indices {where.tolist()}"
        )
    _check_topk(topk)


def _check_topk(topk: Any) -> None:
    """ValueError unless ``topk`` is None or an int >= 1."""
    if topk is not None and (isinstance(topk, bool) or not isinstance(topk, int) or topk < 1):
        raise ValueError(f"topk must be None or a positive int, got {topk!r}")


def _topk_mask(scores: Tensor, topk: int) -> Tensor:
    """bool [N]: the ``topk`` highest scores (ties broken by torch.topk)."""
    keep = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    keep[scores.detach().topk(topk).indices] = True
    return keep


def _closed_form_sums(
    scores: Tensor,
    weights: Tensor,
    positives: Tensor,
    num_fn: Any,
    den_fn: Any,
    *,
    rank: Any,
    den_grad: bool,
    backend: str,
    check_finite: bool,
) -> tuple[Tensor, Tensor]:
    """The pairwise sums of a closed-form substitution (num_fn = den_fn = its ranking function)."""
    if check_finite and not bool(torch.isfinite(weights.detach()).all()):
        raise NonFiniteError("weights must be finite, got NaN or inf")
    return pairwise_sums_of_differences(scores, weights, positives, rank, den_grad=den_grad)


def _closed_form(name: str, backend: str) -> Substitution:
    """The substitution ``name``; ValueError for a backend that cannot evaluate it."""
    sub = substitution_named(name)
    if backend not in ("auto", "reference"):
        raise ValueError(
            f"substitution {name!r} is a closed form evaluated pairwise in PyTorch; backend "
            f"{backend!r} evaluates piecewise-linear functions only. Use backend='reference' (or "
            f"'auto'), or the 64-segment preset LossParams.preset({name!r}) with any backend"
        )
    return sub


class _Functions(NamedTuple):
    """What Eq. (6) is evaluated with.

    Attributes:
        f1, f2, f3, f4, f5: the five functions (f2 and f4 of x_ij, the others of l).
        sums: the pairwise-sum routine, called as ``pairwise_sums`` is (num_fn = f2,
            den_fn = f4).
        self_pair: the argument f2 and f4 take on the self pair (release_compatible): x_ii = 1/2,
            or d_ii = 0 for the closed forms, which take the raw score difference.
    """

    f1: Any
    f2: Any
    f3: Any
    f4: Any
    f5: Any
    sums: Any
    self_pair: float


def _functions(params: LossParams, substitution: str | None, backend: str) -> _Functions:
    """The functions of ``params``, or the closed-form ``substitution`` in all five roles."""
    if substitution is None:
        return _Functions(*params.functions, sums=pairwise_sums, self_pair=0.5)
    sub = _closed_form(substitution, backend)
    sums = functools.partial(_closed_form_sums, rank=sub.rank)
    return _Functions(sub.loc, sub.rank_value, sub.loc, sub.rank_value, sub.loc, sums, 0.0)


def _rows(
    logits: Tensor, labels: Tensor, loc_scores: Tensor, topk: int | None, release_compatible: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """The rows of the pairwise sums: (scores, locs, is_positive, in_b), each [N'].

    The rows are the non-ignored entries, flattened and cast to at least float32; with ``topk``
    (below their count) only the top-k logits and the positives. Without release_compatible the
    rows are B (in_b is None). With it, B is the top-k only and in_b its bool mask among the rows
    (None when it holds every row): a positive outside B keeps its own term but is no j.
    """
    compute_dtype = torch.promote_types(logits.dtype, torch.float32)
    scores = logits.flatten().to(compute_dtype)
    locs = loc_scores.flatten().to(compute_dtype)
    labels = labels.flatten()
    keep = labels >= 0
    if not bool(keep.all()):
        scores, locs, labels = scores[keep], locs[keep], labels[keep]
    is_positive = labels == 1
    in_b = None
    if topk is not None and topk < scores.numel():
        in_b = _topk_mask(scores, topk)
        rows = in_b | is_positive
        scores, locs, is_positive, in_b = scores[rows], locs[rows], is_positive[rows], in_b[rows]
        if not release_compatible or bool(in_b.all()):
            in_b = None
    return scores, locs, is_positive, in_b


def _sums_over_b(
    fns: _Functions,
    scores: Tensor,
    weights: Tensor,
    positives: Tensor,
    in_b: Tensor | None,
    block_denominator_grad: bool,
    options: dict[str, Any],
) -> tuple[Tensor, Tensor]:
    """num [P] = sum_{j in B, j != i} f2(x_ij) w_j and den [P] = sum_{j in B, j != i} f4(x_ij)
    for the positives i; den is detached if ``block_denominator_grad``. ``options``: backend
    and check_finite of the sums."""
    sums, f2, f4 = fns.sums, fns.f2, fns.f4
    if in_b is None:
        num, den = sums(
            scores, weights, positives, f2, f4, den_grad=not block_denominator_grad, **options
        )
    else:
        # Positives outside B are rows of the sums but no j: their weight is 0 in num, and den is
        # computed as a weighted sum of f4 with weight 1 on B and 0 elsewhere (same O(P N) work).
        b_weight = in_b.to(scores.dtype)
        num, _ = sums(scores, weights * b_weight, positives, f2, f4, den_grad=False, **options)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not block_denominator_grad):
            den, _ = sums(scores, b_weight, positives, f4, f4, den_grad=False, **options)
    if block_denominator_grad:
        den = den.detach()
    return num, den


def _add_self_pairs(
    fns: _Functions,
    num: Tensor,
    den: Tensor,
    scores: Tensor,
    weights: Tensor,
    positives: Tensor,
    in_b: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """release_compatible: the release's j-sums include i itself whenever i is in B (f2 and f4 at
    ``fns.self_pair``, x_ii = 1/2); den, which has no "1 +", is clamped to RELEASE_DEN_EPS."""
    half = scores.new_full((1,), fns.self_pair)
    self_in_b = 1.0 if in_b is None else in_b[positives].to(scores.dtype)
    num = num + fns.f2(half) * weights[positives] * self_in_b
    den = (den + fns.f4(half) * self_in_b).clamp(min=RELEASE_DEN_EPS)
    return num, den


def _mean_over_positives(
    fns: _Functions, num: Tensor, den: Tensor, l_pos: Tensor, release_compatible: bool
) -> Tensor:
    """The loss from the j-sums num, den [P] and the positives' loc scores l_pos [P]: Eq. (6),
    or the release's per-positive (1 - f1(l_i)) + f5(l_i) num_i / den_i averaged."""
    num_pos = l_pos.numel()
    if release_compatible:
        per_positive = (1.0 - fns.f1(l_pos)) + num * fns.f5(l_pos) / den
        return per_positive.sum() / num_pos
    per_positive = fns.f1(l_pos) - num / (1.0 + den) * fns.f5(l_pos)
    return -per_positive.sum() / num_pos


def parameterized_ap_loss(
    logits: Tensor,
    labels: Tensor,
    loc_scores: Tensor,
    params: LossParams,
    *,
    backend: str = "auto",
    release_compatible: bool = False,
    topk: int | None = None,
    block_denominator_grad: bool = True,
    check_finite: bool = True,
    substitution: str | None = None,
) -> Tensor:
    """Eq. (6) over the mini-batch's prediction set B.

    Args:
        logits: [N] classification logits s of every (anchor or query, class) entry (any shape is
            accepted and flattened; labels and loc_scores must match it).
        labels: [N] integer, 1 positive, 0 negative, -1 ignored (takes no part anywhere).
        loc_scores: [N] localization scores l in [0, 1] (see paploss.localization); only the
            positives' values are used, negatives have l = 0. Their gradient is multiplied by
            ``params.gradient_scale`` (lambda) on the way back.
        params: Theta, the five functions and lambda.
        backend: pairwise-sum backend ("auto", "reference", "sorted", "triton").
        release_compatible: reproduce the authors' released formulation, under which the published
            parameters were searched: per positive ``(1 - f1(l_i)) + f5(l_i) *
            sum_j f2(x_ij)(1 - f3(l_j)) / sum_j f4(x_ij)`` with j over all entries INCLUDING i,
            summed and divided by |P| (so it equals 1 + Eq. (6) up to the self pair and the "1 +").
        topk: if set, B (the set j runs over) is reduced to the ``topk`` highest logits among the
            non-ignored entries plus every positive. With ``release_compatible=True`` it is the
            release's selection instead: the ``topk`` highest logits only, so a positive outside
            them takes no part in the j-sums (its own term is still averaged in, with its j-sums
            over the top-k; the release used topk=100000).
        block_denominator_grad: stop the gradient through f4 in the denominator (paper default;
            False for the ablation of Tab. 7).
        check_finite: raise ValueError on NaN/inf logits or loc scores of non-ignored entries.
        substitution: None (the five functions of ``params``), or the name of a closed-form
            hand-crafted substitution of Tab. 2 ("sigmoid", "sqrt", "linear", "square", as defined
            in :mod:`paploss.substitutions`) used for all five roles instead of ``params``'
            functions (lambda still comes from ``params``). Evaluated pairwise in PyTorch: only
            backend "auto" or "reference" serves it.

    Returns:
        A scalar tensor. With no positives: 0, still connected to logits and loc_scores.
    """
    _validate(logits, labels, loc_scores, topk, check_finite)
    fns = _functions(params, substitution, backend)
    scores, locs, is_positive, in_b = _rows(logits, labels, loc_scores, topk, release_compatible)
    positives = is_positive.nonzero().flatten()
    if positives.numel() == 0:
        # Built from the kept entries only: a NaN on an ignored entry (check_finite=True lets it
        # through) must not turn the zero into NaN; the indexing passes 0 to every entry.
        return ((scores.sum() + locs.sum()) * 0.0).to(logits.dtype)
    locs = scale_gradient(locs, params.gradient_scale)
    locs = torch.where(is_positive, locs, torch.zeros_like(locs))
    weights = 1.0 - fns.f3(locs)  # [N'] = 1 - f(l_j; theta_3)
    options = dict(backend=backend, check_finite=check_finite)
    num, den = _sums_over_b(fns, scores, weights, positives, in_b, block_denominator_grad, options)
    if release_compatible:
        num, den = _add_self_pairs(fns, num, den, scores, weights, positives, in_b)
    loss = _mean_over_positives(fns, num, den, locs[positives], release_compatible)
    return loss.to(logits.dtype)


class ParameterizedAPLoss(nn.Module):
    """nn.Module wrapper of :func:`parameterized_ap_loss` holding Theta and the options.

    Args:
        params: a LossParams or anything ``LossParams.from_config`` accepts (e.g.
            ``dict(preset="paper-retinanet")``, ``dict(file="best.json")``); None = "linear".
        backend, release_compatible, topk, block_denominator_grad, check_finite, substitution: see
            the function.
    """

    def __init__(
        self,
        params: LossParams | dict[str, Any] | str | None = None,
        *,
        backend: str = "auto",
        release_compatible: bool = False,
        topk: int | None = None,
        block_denominator_grad: bool = True,
        check_finite: bool = True,
        substitution: str | None = None,
    ) -> None:
        super().__init__()
        self.params = LossParams.from_config(params)
        _check_topk(topk)  # fail at construction, not at the first step
        if substitution is not None:
            _closed_form(substitution, backend)  # fail at construction, not at the first step
        self.substitution = substitution
        self.backend = backend
        self.release_compatible = release_compatible
        self.topk = topk
        self.block_denominator_grad = block_denominator_grad
        self.check_finite = check_finite

    def forward(self, logits: Tensor, labels: Tensor, loc_scores: Tensor) -> Tensor:
        """logits [N], labels [N] in {1, 0, -1}, loc_scores [N] in [0, 1] -> scalar loss."""
        return parameterized_ap_loss(
            logits,
            labels,
            loc_scores,
            self.params,
            backend=self.backend,
            release_compatible=self.release_compatible,
            topk=self.topk,
            block_denominator_grad=self.block_denominator_grad,
            check_finite=self.check_finite,
            substitution=self.substitution,
        )

    def extra_repr(self) -> str:
        return (
            f"lambda={self.params.gradient_scale:.4g}, backend={self.backend!r}, "
            f"release_compatible={self.release_compatible}, topk={self.topk}"
            + (f", substitution={self.substitution!r}" if self.substitution else "")
        )
