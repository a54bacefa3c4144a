"""The report's tables: the proxy's results of every row beside the paper's numbers, the orderings
and claims of each table checked on the proxy, and the summary over all tables.

:func:`row_result` and :func:`row_commands` read a row's study (``row/<key>``) from the storage;
the ``*_markdown`` functions turn the results into markdown lines. AP is in % for both (the
proxy's bbox mAP on its val split x 100).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from paploss.study import keys
from paploss.study.experiments import Row, Table
from paploss.study.paper_tables import CLAIMS, TABLES
from paploss.study.reproduce_runner import ROW_PREFIX

FAR_BELOW_AP = 5.0
"""'<<' in a claim: the means differ by more than this many AP points (and more than both stds)."""


@dataclass(frozen=True)
class RowResult:
    """The proxy's numbers of one row: per-seed values in %, keyed by metric."""

    values: Mapping[str, list[float]]

    @property
    def n(self) -> int:
        return len(self.values.get("AP", []))

    def mean(self, metric: str = "AP") -> float:
        return statistics.fmean(self.values[metric])

    def std(self, metric: str = "AP") -> float:
        v = self.values[metric]
        return statistics.stdev(v) if len(v) > 1 else 0.0

    def cell(self, metric: str) -> str:
        if self.n == 0:
            return "not run"
        return f"{self.mean(metric):.1f} ± {self.std(metric):.1f}"


def load_study(storage: Any, name: str) -> Any:
    """The study ``name`` of ``storage``, or None where it does not exist."""
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def row_result(storage: Any, key: str) -> RowResult:
    from optuna.trial import TrialState

    study = load_study(storage, ROW_PREFIX + key)
    values: dict[str, list[float]] = {"AP": [], "AP50": [], "AP75": []}
    if study is None:
        return RowResult(values)
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        for metric in values:
            values[metric].append(100.0 * float(t.user_attrs.get(metric, t.value)))
    return RowResult(values)


def row_commands(storage: Any, key: str) -> list[str]:
    from optuna.trial import TrialState

    study = load_study(storage, ROW_PREFIX + key)
    if study is None:
        return []
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return [t.user_attrs[keys.COMMAND] for t in trials if keys.COMMAND in t.user_attrs]


def _fmt_paper(row: Row) -> list[str]:
    return [f"{v:.1f}" for v in row.paper]


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


def _holds(op: str, a: float, b: float, sa: float = 0.0, sb: float = 0.0) -> bool:
    if op == ">":
        return a > b
    if op == ">=":
        return a >= b
    if op == "<<":
        return b - a > max(FAR_BELOW_AP, sa, sb)
    raise ValueError(op)


def claims_markdown(table: Table, results: Mapping[str, RowResult]) -> list[str]:
    """One line per claim of the paper about this table, checked on the proxy."""
    lines = []
    groups = sorted({r.group for r in table.rows}) if table.key == "tab1" else [None]
    for group in groups:
        rows = {r.label: r for r in table.rows if group is None or r.group == group}
        for left, op, right in CLAIMS.get(table.key, ()):
            if left not in rows or right not in rows:
                continue
            a, b = rows[left], rows[right]
            ra, rb = results[a.training.key], results[b.training.key]
            where = f"{group}: " if group else ""
            paper = _holds(op, a.paper[0], b.paper[0])
            text = f"- {where}{left} {op} {right}: paper {'yes' if paper else 'no'} "
            text += f"({a.paper[0]:.1f} vs {b.paper[0]:.1f})"
            if ra.n == 0 or rb.n == 0:
                lines.append(text + "; proxy: not run yet")
                continue
            proxy = _holds(op, ra.mean(), rb.mean(), ra.std(), rb.std())
            verdict = "agrees" if proxy == paper else "DISAGREES"
            if op != "<<" and abs(ra.mean() - rb.mean()) <= max(ra.std(), rb.std()):
                verdict = "UNRESOLVED (the difference is within one std of the seeds)"
            lines.append(
                f"{text}; proxy {'yes' if proxy else 'no'} ({ra.mean():.1f} ± {ra.std():.1f} vs "
                f"{rb.mean():.1f} ± {rb.std():.1f}): {verdict}"
            )
    return lines


def summary_markdown(results: Mapping[str, RowResult]) -> list[str]:
    """Counts of the checked claims over all tables, the disagreements and what has not run."""
    agree, disagree, unresolved, pending = [], [], [], []
    for key in ("tab1", "tab2", "tab3", "tab4", "tab5", "tab6", "tab7"):
        for line in claims_markdown(TABLES[key], results):
            text = f"{key}: {line[2:].split(': paper', 1)[0]}"
            if line.endswith("not run yet"):
                pending.append(text)
            elif line.endswith("DISAGREES"):
                disagree.append(text)
            elif "UNRESOLVED" in line:
                unresolved.append(text)
            else:
                agree.append(text)
    orders = [
        (key, line)
        for key in ("tab1", "tab2", "tab3", "tab4", "tab5", "tab6", "tab7")
        for line in ordering_markdown(TABLES[key], results)
    ]
    differ = sorted({key for key, line in orders if line.endswith("DIFFERENT order")})
    missing = sorted(k for k, r in results.items() if r.n == 0)
    lines = [
        "## Summary",
        "",
        f"Of the paper's stated orderings checked below, {len(agree)} agree on the proxy, "
        f"{len(disagree)} disagree, {len(unresolved)} are unresolved (the means differ by less "
        f"than one std of the seeds) and {len(pending)} wait for rows that have not run. The full "
        f"order of the trained rows is the paper's in {len(orders) - len(differ)} of "
        f"{len(orders)} comparisons (a table, or one detector of Tab. 1)"
        + (f"; it differs in {', '.join(differ)}." if differ else "."),
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
    """The rows ordered by the paper's AP and by the proxy's mean AP, per detector group."""
    lines = []
    groups = sorted({r.group for r in table.rows}, key=[r.group for r in table.rows].index)
    for group in groups:
        rows = [r for r in table.rows if r.group == group]
        ran = [r for r in rows if results[r.training.key].n > 0]
        if len(ran) < 2:
            continue
        paper = " > ".join(r.label for r in sorted(ran, key=lambda r: -r.paper[0]))
        proxy = " > ".join(
            r.label for r in sorted(ran, key=lambda r: -results[r.training.key].mean())
        )
        same = paper == proxy
        where = f"{group}: " if group else ""
        lines.append(
            f"- {where}paper order {paper}; proxy order {proxy}: "
            f"{'same order' if same else 'DIFFERENT order'}"
        )
    return lines
