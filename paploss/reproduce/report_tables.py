"""The report's tables: the proxy's results of every row beside the paper's numbers, the orderings
and claims of each table checked on the proxy, and the summary over all tables.

The ``*_markdown`` functions turn the rows' results (:class:`~paploss.reproduce.snapshot.RowResult`
of the report's snapshot) into markdown lines. AP is in % for both (the proxy's bbox mAP on its
val split x 100).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from paploss.reproduce.experiments import Row, Table
from paploss.reproduce.paper_claims import CLAIMS
from paploss.reproduce.paper_tables import TABLE_KEYS, TABLES
from paploss.reproduce.report_stats import (
    ALPHA,
    FAR_BELOW_AP,
    PairedTest,
    holm_verdicts,
    paired_test,
)
from paploss.reproduce.snapshot import METRICS, RowResult


def _fmt_paper(row: Row) -> list[str]:
    return ["-" if math.isnan(v) else f"{v:.1f}" for v in row.paper]


def table_markdown(table: Table, results: Mapping[str, RowResult]) -> list[str]:
    grouped = any(r.group for r in table.rows)
    head = (["Detector"] if grouped else []) + [
        "Row", "paper AP", "paper AP50", "paper AP75",
        "proxy AP", "proxy AP50", "proxy AP75", "n", "proxy loss definition",
    ]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table.rows:
        res = results[row.training.key]
        cells = ([row.group] if grouped else []) + [row.label, *_fmt_paper(row)]
        cells += [res.cell("AP"), res.cell("AP50"), res.cell("AP75"), str(res.n)]
        cells.append(row.training.definition)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _holds(op: str, a: float, b: float) -> bool:
    """Whether ``a OP b`` holds for the paper's numbers."""
    if op in (">", ">="):
        return a > b if op == ">" else a >= b
    if op == "<<":
        return b - a > FAR_BELOW_AP
    raise ValueError(op)


@dataclass(frozen=True)
class ClaimCheck:
    """A stated ordering ``left OP right`` of a table (per detector group in Tab. 1, 7) on the proxy.

    Attributes:
        table, group, left, op, right: where the claim is and what it states.
        paper: the paper's value of both rows (of ``metric``).
        left_result, right_result: the proxy's rows.
        test: the paired test (None while a row has not run).
        metric: the metric compared (the table's: "AP", or "AP50" in Tab. 8).
    """

    table: str
    group: str
    left: str
    op: str
    right: str
    paper: tuple[float, float]
    left_result: RowResult
    right_result: RowResult
    test: PairedTest | None
    metric: str = "AP"

    @property
    def name(self) -> str:
        where = f"{self.group}: " if self.group else ""
        return f"{where}{self.left} {self.op} {self.right}"

    @property
    def verdict(self) -> str:
        """ "agrees", "disagrees", "unresolved" or "not run"."""
        return self.test.verdict if self.test is not None else "not run"


def claim_tests(table: Table, results: Mapping[str, RowResult]) -> list[ClaimCheck]:
    """Every stated ordering of ``table`` (:data:`CLAIMS`) with its paired test on the proxy."""
    checks = []
    m = METRICS.index(table.metric)
    groups = sorted({r.group for r in table.rows})  # [""] for a table without groups
    for group in groups:
        rows = {r.label: r for r in table.rows if not group or r.group == group}
        for left, op, right in CLAIMS.get(table.key, ()):
            if left not in rows or right not in rows:
                continue
            a, b = rows[left], rows[right]
            ra, rb = results[a.training.key], results[b.training.key]
            test = None
            if ra.n and rb.n:
                test = paired_test(*ra.paired(rb, table.metric), op)
            checks.append(
                ClaimCheck(
                    table.key,
                    group,
                    left,
                    op,
                    right,
                    (a.paper[m], b.paper[m]),
                    ra,
                    rb,
                    test,
                    table.metric,
                )
            )
    return checks


def claims_markdown(table: Table, results: Mapping[str, RowResult]) -> list[str]:
    """One line per claim of the paper about this table, decided on the proxy by a paired test."""
    lines = []
    for c in claim_tests(table, results):
        paper = _holds(c.op, *c.paper)
        unit = "" if c.metric == "AP" else f"{c.metric} "
        text = f"- {c.name}: paper {'yes' if paper else 'no'} "
        text += f"({unit}{c.paper[0]:.1f} vs {c.paper[1]:.1f})"
        if c.test is None:
            lines.append(text + "; proxy: not run yet")
            continue
        ra, rb = c.left_result, c.right_result
        verdict = {"agrees": "agrees", "disagrees": "DISAGREES", "unresolved": "UNRESOLVED"}
        m = c.metric
        proxy = f"{ra.mean(m):.1f} ± {ra.std(m):.1f} vs {rb.mean(m):.1f} ± {rb.std(m):.1f}"
        lines.append(f"{text}; proxy {proxy}, {c.test.describe()}: {verdict[c.test.verdict]}")
    return lines


def summary_markdown(results: Mapping[str, RowResult]) -> list[str]:
    """Counts of the checked claims over all tables, the disagreements and what has not run."""
    found: dict[str, list[str]] = {"agrees": [], "disagrees": [], "unresolved": [], "not run": []}
    checks = [c for key in TABLE_KEYS for c in claim_tests(TABLES[key], results)]
    for c in checks:
        found[c.verdict].append(f"{c.table}: {c.name}")
    agree, disagree = found["agrees"], found["disagrees"]
    unresolved, pending = found["unresolved"], found["not run"]
    orders = [(key, line) for key in TABLE_KEYS for line in ordering_markdown(TABLES[key], results)]
    differ = sorted({key for key, line in orders if line.endswith("DIFFERENT order")})
    missing = sorted(k for k, r in results.items() if r.n == 0)
    lines = [
        "## Summary",
        "",
        f"Of the paper's stated orderings checked below, {len(agree)} agree on the proxy, "
        f"{len(disagree)} disagree, {len(unresolved)} are unresolved and {len(pending)} wait for "
        "rows that have not run. Each ordering is decided by a one-sided paired t-test over the "
        f"seeds both rows trained (level alpha = {ALPHA}, per ordering): it agrees where the test "
        "in the paper's direction rejects, disagrees where the opposite one does, and is "
        "unresolved where neither does. The full "
        f"order of the trained rows is the paper's in {len(orders) - len(differ)} of "
        f"{len(orders)} comparisons (a table, or one detector of Tab. 1)"
        + (f"; it differs in {', '.join(differ)}." if differ else "."),
        "",
    ]
    tested = [c.test for c in checks if c.test is not None]
    if tested:
        holm = Counter(holm_verdicts(tested))
        lines += [
            f"With Holm's correction for testing all {len(tested)} orderings that ran (family-wise "
            f"level {ALPHA}, on each ordering's two-sided p: twice its smaller one-sided p): "
            f"{holm['agrees']} agree, {holm['disagrees']} disagree, {holm['unresolved']} are "
            "unresolved.",
            "",
        ]
    if disagree:
        lines += ["Disagreements: " + "; ".join(disagree) + ".", ""]
    if unresolved:
        lines += ["Unresolved: " + "; ".join(unresolved) + ".", ""]
    if missing:
        lines += [
            "Rows not trained yet (run the command again to continue): "
            + ", ".join(f"`{k}`" for k in missing)
            + ".",
            "",
        ]
    return lines


def ordering_markdown(table: Table, results: Mapping[str, RowResult]) -> list[str]:
    """The rows ordered by the paper's AP and by the proxy's mean AP, per detector group.

    Only rows that ran and have a paper number take part (a hand-set baseline or a reference row
    has none). Rows with the same paper number (e.g. a searched row and the published parameters
    of that loss) are tied: joined by ``=`` in the paper's order, and in either order on the proxy
    the same order."""
    lines = []
    groups = sorted({r.group for r in table.rows}, key=[r.group for r in table.rows].index)
    m = METRICS.index(table.metric)
    for group in groups:
        ran = [
            r
            for r in table.rows
            if r.group == group and results[r.training.key].n > 0 and not math.isnan(r.paper[m])
        ]
        if len(ran) < 2:
            continue
        by_paper = sorted(ran, key=lambda r: -r.paper[m])
        paper = by_paper[0].label
        for before, row in zip(by_paper, by_paper[1:]):
            paper += (" = " if row.paper[m] == before.paper[m] else " > ") + row.label
        proxy_ap = {r.label: results[r.training.key].mean(table.metric) for r in ran}
        proxy = " > ".join(sorted(proxy_ap, key=lambda label: -proxy_ap[label]))
        same = all(
            proxy_ap[a.label] > proxy_ap[b.label]
            for a in ran
            for b in ran
            if a.paper[m] > b.paper[m]
        )
        where = f"{group}: " if group else ""
        lines.append(
            f"- {where}paper order {paper}; proxy order {proxy}: "
            f"{'same order' if same else 'DIFFERENT order'}"
        )
    return lines
