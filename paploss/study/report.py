"""The reproduction report: the paper's tables beside the proxy's, Fig. 3 and Fig. 4.

:func:`write_report` reads the studies of a :class:`paploss.study.reproduce.Reproduction` from its
storage and writes markdown (and two PNG figures beside it). Rows that have not run yet say so;
every row is shown whether or not it agrees with the paper. AP is in % for both (the proxy's
bbox mAP on its val split x 100).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paploss.study import keys
from paploss.study.experiments import (
    CLAIMS,
    MAIN,
    TABLES,
    Row,
    Search,
    Table,
    fig3_searches,
)

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


def _load_study(storage: Any, name: str) -> Any:
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def row_result(storage: Any, key: str) -> RowResult:
    from optuna.trial import TrialState

    from paploss.study.reproduce import ROW_PREFIX

    study = _load_study(storage, ROW_PREFIX + key)
    values: dict[str, list[float]] = {"AP": [], "AP50": [], "AP75": []}
    if study is None:
        return RowResult(values)
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        for metric in values:
            values[metric].append(100.0 * float(t.user_attrs.get(metric, t.value)))
    return RowResult(values)


def row_commands(storage: Any, key: str) -> list[str]:
    from optuna.trial import TrialState

    from paploss.study.reproduce import ROW_PREFIX

    study = _load_study(storage, ROW_PREFIX + key)
    if study is None:
        return []
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return [t.user_attrs[keys.COMMAND] for t in trials if keys.COMMAND in t.user_attrs]


# ------------------------------------------------------------------------------ tables
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


def _summary(results: Mapping[str, RowResult]) -> list[str]:
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


# ------------------------------------------------------------------------------ figures
def search_curves(storage: Any, searches: Sequence[Search], samples: int) -> list[list[float]]:
    """Best-so-far AP (%) per round of each complete-enough search (one list per search)."""
    from paploss.study.records import best_so_far
    from paploss.study.reproduce import SEARCH_PREFIX

    curves = []
    for search in searches:
        study = _load_study(storage, SEARCH_PREFIX + search.key)
        if study is None:
            continue
        rows = best_so_far(study.get_trials(deepcopy=False), samples)
        if rows:
            curves.append([100.0 * r["best"] for r in rows])
    return curves


def fig3(storage: Any, budget: Any, path: Path) -> tuple[list[str], bool]:
    """Fig. 3's plot and lines; (lines, whether a figure was written)."""
    runs = fig3_searches(budget)
    curves = {name: search_curves(storage, s, budget.samples) for name, s in runs.items()}
    lines = []
    rounds = budget.rounds
    stats: dict[str, list[tuple[float, float, float] | None]] = {}
    for name, cs in curves.items():
        full = [c for c in cs if len(c) >= rounds]
        per_round: list[tuple[float, float, float] | None] = []
        for r in range(rounds):
            vals = [c[r] for c in full]
            per_round.append((statistics.fmean(vals), min(vals), max(vals)) if vals else None)
        stats[name] = per_round
        lines.append(
            f"- {name}: {len(full)} of {len(runs[name])} searches complete ({len(cs)} started)"
        )
    if not all(stats[n] and stats[n][0] is not None for n in stats):
        lines.append("- the plot needs at least one complete search of each sampler: not yet")
        return lines, False
    head = "| round | " + " | ".join(f"{n} mean (min-max)" for n in stats) + " |"
    lines += ["", head, "|---|" + "---|" * len(stats)]
    for r in range(rounds):
        cells = []
        for n in stats:
            s = stats[n][r]
            cells.append("-" if s is None else f"{s[0]:.1f} ({s[1]:.1f}-{s[2]:.1f})")
        lines.append(f"| {r + 1} | " + " | ".join(cells) + " |")
    middle = rounds // 2
    ahead = [
        stats["ppo2"][r][0] >= stats["random"][r][0]
        for r in range(middle, rounds)
        if stats["ppo2"][r] is not None and stats["random"][r] is not None
    ]
    verdict = "at or above" if ahead and all(ahead) else "NOT at or above"
    lines += [
        "",
        f"PPO2's mean best-so-far is {verdict} random search's in every round from round "
        f"{middle + 1} on (the paper: above from the first rounds on).",
    ]
    _plot_fig3(stats, rounds, path)
    return lines, True


def _plot_fig3(stats: Mapping[str, Sequence[Any]], rounds: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for color, (name, per_round) in zip(("C0", "C1"), stats.items()):
        xs = [r + 1 for r in range(rounds) if per_round[r] is not None]
        mean = [per_round[r][0] for r in range(rounds) if per_round[r] is not None]
        lo = [per_round[r][1] for r in range(rounds) if per_round[r] is not None]
        hi = [per_round[r][2] for r in range(rounds) if per_round[r] is not None]
        ax.plot(xs, mean, "-o", color=color, label=f"{name} (mean)")
        ax.fill_between(xs, lo, hi, color=color, alpha=0.2, label=f"{name} (min-max)")
    ax.set_xlabel("search round")
    ax.set_ylabel("best AP so far on D_eval (%)")
    ax.set_title("Fig. 3 on the proxy: PPO2 vs random search")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def fig4(storage: Any, path: Path) -> list[str]:
    """The main search's best functions beside the authors' published RetinaNet functions."""
    from paploss.params import LossParams
    from paploss.study.reproduce import SEARCH_PREFIX
    from paploss.study.space import SearchSpace, SpaceOptions, make_slots

    study = _load_study(storage, SEARCH_PREFIX + MAIN.key)
    try:
        best = study.best_trial if study is not None else None
    except ValueError:
        best = None
    if best is None:
        return ["The main search has no complete trial yet."]
    space = SearchSpace(make_slots(["model.bbox_head"]), SpaceOptions())
    searched = space.from_params(best.params)[""]
    published = LossParams.preset("paper-retinanet")
    _plot_fig4(searched, published, path)
    lines = [
        f"Best trial {best.number} of the main search (AP {100 * best.value:.1f} on D_eval), "
        f"lambda = {searched.gradient_scale:.3g} (published RetinaNet: "
        f"{published.gradient_scale:.3g}). Control points (x, y):",
        "",
    ]
    for k, f in enumerate(searched.functions, start=1):
        points = ", ".join(f"({x:.3f}, {y:.3f})" for x, y in zip(f.xs.tolist(), f.ys.tolist()))
        lines.append(f"- f{k}: {points}")
    return lines


def _plot_fig4(searched: Any, published: Any, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9.0, 4.0), sharey=True)
    for ax, params, title in (
        (axes[0], searched, "searched on the proxy"),
        (axes[1], published, "published (RetinaNet, COCO)"),
    ):
        for k, f in enumerate(params.functions, start=1):
            ax.plot(f.xs.tolist(), f.ys.tolist(), "-o", ms=3, label=f"f{k}")
        ax.plot([0, 1], [0, 1], ":", color="0.6", lw=1)
        ax.set_title(f"{title}, lambda={params.gradient_scale:.2g}", fontsize=10)
        ax.set_xlabel("x")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("f(x)")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.suptitle("Fig. 4: the searched functions f1..f5 (Eq. (6) order)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ------------------------------------------------------------------------------ report
def _machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    return (
        f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"{'CUDA' if torch.cuda.is_available() else 'no GPU'}"
    )


def _command(repro: Any) -> str:
    """The reproduce.py command of ``repro`` (storage, work dir and report left at defaults)."""
    import shlex

    args = repro.args
    parts = ["python", "studies/reproduce.py", *args.experiments, "--budget", repro.budget.name]
    if list(args.data) != ["proxy"]:
        parts += ["--data", *args.data]
    return shlex.join(parts)


def _summaries(storage: Any) -> list[Any]:
    import optuna

    return optuna.get_all_study_summaries(storage)


def _durations(storage: Any) -> tuple[float, float]:
    """(sum of the trainings' durations, seconds from the first start to the last end)."""
    import optuna

    total = 0.0
    starts, ends = [], []
    for summary in _summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        for t in study.get_trials(deepcopy=False):
            if t.datetime_start and t.datetime_complete:
                total += (t.datetime_complete - t.datetime_start).total_seconds()
                starts.append(t.datetime_start)
                ends.append(t.datetime_complete)
    span = (max(ends) - min(starts)).total_seconds() if starts else 0.0
    return total, span


def write_report(repro: Any, path: Path) -> Path:
    """Write the report of ``repro``'s storage to ``path`` (figures in ``<stem>_figures/``)."""
    path = Path(path).expanduser().resolve()
    figures = path.parent / f"{path.stem}_figures"
    storage, budget = repro.storage, repro.budget
    row_keys = {row.training.key for t in TABLES.values() for row in t.rows}
    results = {k: row_result(storage, k) for k in row_keys}
    busy, span = (v / 3600.0 for v in _durations(storage))
    b = budget
    lines = [
        "# Reproducing the paper's ablations on the proxy",
        "",
        "Generated by `studies/reproduce.py` from the studies in its storage; the paper's numbers "
        "(COCO val2017, ResNet-50, full schedules) stand beside the proxy's (the bundled digits "
        "proxy, frozen pretrained ResNet-18/16, 1 epoch). AP is in %; the proxy's is the mean ± "
        "std over n training seeds on its val split. A row that has not run says so.",
        "",
        "## How it was run",
        "",
        "```",
        _command(repro),
        "```",
        "",
        f"- budget `{b.name}`: every search {b.rounds} rounds x {b.samples} samples (PPO2, sigma "
        f"0.2 decaying to 0) on D_train / D_eval, {b.epochs} epoch per trial; every row "
        f"{b.seeds} seeds trained on D_train + D_eval and evaluated on val; Fig. 3 {b.repeats} "
        "searches per sampler",
        f"- storage: `{repro.storage_url}` (studies `search/*` and `row/*`; run the command "
        "again to continue a stopped run)",
        f"- machine: {_machine()}",
        f"- time: {span:.2f} h from the first training's start to the last one's end "
        f"(including pauses between runs), {busy:.2f} h of trainings summed over workers",
        f"- report written {_dt.date.today().isoformat()}",
        "",
    ]
    lines += _summary(results)
    for key in ("tab1", "tab2", "tab3", "tab4", "tab5", "tab6", "tab7"):
        table = TABLES[key]
        lines += [f"## {table.title}", ""]
        lines += table_markdown(table, results)
        lines.append("")
        if table.note:
            lines += [table.note, ""]
        order = ordering_markdown(table, results)
        claims = claims_markdown(table, results)
        if order or claims:
            lines += ["Orderings:", "", *order, *claims, ""]
    fig3_path = figures / "fig3_ppo2_vs_random.png"
    fig3_lines, drawn = fig3(storage, budget, fig3_path)
    lines += ["## Fig. 3: PPO2 vs random search (best AP so far per round)", ""]
    if drawn:
        lines += [f"![Fig. 3]({figures.name}/{fig3_path.name})", ""]
    lines += [*fig3_lines, ""]
    fig4_path = figures / "fig4_searched_functions.png"
    fig4_lines = fig4(storage, fig4_path)
    lines += ["## Fig. 4: the searched functions", ""]
    if fig4_path.is_file():
        lines += [f"![Fig. 4]({figures.name}/{fig4_path.name})", ""]
    lines += [*fig4_lines, ""]
    lines += ["## Commands of the searches", ""]
    from paploss.study.reproduce import SEARCH_PREFIX

    for name in sorted(s.study_name for s in _summaries(storage)):
        if name.startswith(SEARCH_PREFIX):
            command = _load_study(storage, name).user_attrs.get(keys.COMMAND)
            if command:
                lines.append(f"- `{name}`: `python studies/{command}`")
    lines.append("")
    lines += ["## Commands of the rows (seed 0; the other seeds differ in --seed)", ""]
    for key in sorted(row_keys):
        commands = row_commands(storage, key)
        if commands:
            lines += [f"- `{key}`: `{commands[0]}`"]
    lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path
