"""The report's figures: Fig. 3 (PPO2 vs random search, best AP so far per round) and Fig. 4 (the
main search's best functions beside the authors' published RetinaNet functions).

:func:`fig3` and :func:`fig4` read the searches (``search/<key>``) from the storage, draw the PNG
and return the report's lines about it.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from paploss.study.experiments import Search
from paploss.study.paper_tables import MAIN
from paploss.study.report_tables import load_study
from paploss.study.reproduce_plan import fig3_searches
from paploss.study.reproduce_runner import SEARCH_PREFIX


def search_curves(storage: Any, searches: Sequence[Search], samples: int) -> list[list[float]]:
    """Best-so-far AP (%) per round of each complete-enough search (one list per search)."""
    from paploss.study.records import best_so_far

    curves = []
    for search in searches:
        study = load_study(storage, SEARCH_PREFIX + search.key)
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
    from paploss.study.space import SearchSpace, SpaceOptions, make_slots

    study = load_study(storage, SEARCH_PREFIX + MAIN.key)
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
