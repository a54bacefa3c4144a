"""The report's figures: Fig. 3 (PPO2 vs random search, and TPE and CMA-ES in the extended budget:
best AP so far per round, the mean with a min-max band over the repeated searches, and a paired
test of the final best) and Fig. 4 (the main search's best functions beside the authors'
published RetinaNet functions).

:func:`fig3` and :func:`fig4` take the searches of the report's snapshot
(:mod:`paploss.reproduce.snapshot`), draw the PNG and return the report's lines about it.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paploss.reproduce.experiments import Search
from paploss.reproduce.paper_tables import MAIN
from paploss.reproduce.plan import fig3_searches
from paploss.reproduce.report_stats import ALPHA, PairedTest, paired_test
from paploss.reproduce.snapshot import ReportSnapshot, snapshot_of


def search_curves(
    snapshot: ReportSnapshot, searches: Sequence[Search], samples: int
) -> dict[int, list[float]]:
    """Best-so-far AP (%) per round of each started search, keyed by its sampler seed."""
    from paploss.study.search.records import best_so_far

    curves = {}
    for search in searches:
        record = snapshot.search(search.key)
        if record is None:
            continue
        rows = best_so_far(record.trials, samples)
        if rows:
            curves[search.seed] = [100.0 * r["best"] for r in rows]
    return curves


@dataclass(frozen=True)
class RoundStats:
    """Best-so-far AP (%) of one round over a sampler's complete searches."""

    mean: float
    std: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> RoundStats:
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return cls(statistics.fmean(values), std, min(values), max(values), len(values))


def final_best_tests(
    curves: Mapping[str, Mapping[int, Sequence[float]]], rounds: int
) -> dict[str, PairedTest]:
    """PPO2 against each other sampler: the paired one-sided test of "PPO2's best-so-far after
    the last round is higher", over the sampler seeds both complete searches have."""
    final = {
        name: {seed: c[rounds - 1] for seed, c in cs.items() if len(c) >= rounds}
        for name, cs in curves.items()
    }
    out = {}
    for name in list(final)[1:]:
        seeds = sorted(set(final["ppo2"]) & set(final[name]))
        ppo2 = [final["ppo2"][k] for k in seeds]
        other = [final[name][k] for k in seeds]
        out[name] = paired_test(ppo2, other, ">")
    return out


def fig3(source: ReportSnapshot | Any, budget: Any, path: Path) -> tuple[list[str], bool]:
    """Fig. 3's plot and lines; (lines, whether a figure was written). ``source``: the report's
    snapshot, or a storage to read one from."""
    snapshot = snapshot_of(source)
    runs = fig3_searches(budget)
    curves = {name: search_curves(snapshot, s, budget.samples) for name, s in runs.items()}
    lines = []
    rounds = budget.rounds
    stats: dict[str, list[RoundStats | None]] = {}
    for name, cs in curves.items():
        full = [c for c in cs.values() if len(c) >= rounds]
        stats[name] = [RoundStats.of([c[r] for c in full]) if full else None for r in range(rounds)]
        lines.append(
            f"- {name}: {len(full)} of {len(runs[name])} searches complete ({len(cs)} started)"
        )
    if not all(stats[n][0] is not None for n in stats):
        lines.append("- the plot needs at least one complete search of each sampler: not yet")
        return lines, False
    head = "| round | " + " | ".join(f"{n} mean ± std (min-max)" for n in stats) + " |"
    lines += ["", head, "|---|" + "---|" * len(stats)]
    for r in range(rounds):
        cells = []
        for n in stats:
            s = stats[n][r]
            cells.append(
                "-" if s is None else f"{s.mean:.1f} ± {s.std:.1f} ({s.low:.1f}-{s.high:.1f})"
            )
        lines.append(f"| {r + 1} | " + " | ".join(cells) + " |")
    middle = rounds // 2
    ahead = [stats["ppo2"][r].mean >= stats["random"][r].mean for r in range(middle, rounds)]
    verdict = "at or above" if ahead and all(ahead) else "NOT at or above"
    lines += [
        "",
        f"PPO2's mean best-so-far is {verdict} random search's in every round from round "
        f"{middle + 1} on (the paper: above from the first rounds on). The band of each curve is "
        "its min-max over the searches.",
        "",
        f"Final best-so-far (after round {rounds}), PPO2 against each other sampler, paired by "
        "sampler seed (search k of every sampler has sampler seed k; every trial of every search "
        f"trains with the same seed), one-sided at alpha = {ALPHA}:",
        "",
    ]
    words = {"agrees": "PPO2 higher", "disagrees": "PPO2 LOWER", "unresolved": "not decided"}
    for name, test in final_best_tests(curves, rounds).items():
        if name == "random":
            verdict = {"agrees": "agrees", "disagrees": "DISAGREES", "unresolved": "UNRESOLVED"}[
                test.verdict
            ]
            claim = "the paper: PPO2 above random"
        else:
            verdict, claim = words[test.verdict], "no claim of the paper"
        lines.append(f"- PPO2 > {name} ({claim}): {test.describe()}: {verdict}")
    _plot_fig3(stats, rounds, path)
    return lines, True


def _plot_fig3(stats: Mapping[str, Sequence[RoundStats | None]], rounds: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for k, (name, per_round) in enumerate(stats.items()):
        color = f"C{k}"
        done = [(r + 1, s) for r, s in enumerate(per_round) if s is not None]
        xs = [x for x, _ in done]
        n = done[0][1].n
        ax.plot(xs, [s.mean for _, s in done], "-o", color=color, label=f"{name} (mean of {n})")
        ax.fill_between(xs, [s.low for _, s in done], [s.high for _, s in done], color=color,
                        alpha=0.15, label=f"{name} (min-max)")  # fmt: skip
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("search round")
    ax.set_ylabel("best AP so far on D_eval (%)")
    ax.set_title("Fig. 3 on the proxy: " + " vs ".join(stats) + " search")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def fig4(snapshot: ReportSnapshot, path: Path) -> list[str]:
    """The main search's best functions beside the authors' published RetinaNet functions."""
    from paploss.params import LossParams
    from paploss.study.config.space import SearchSpace, SpaceOptions, make_slots

    record = snapshot.search(MAIN.key)
    best = record.best if record is not None else None
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
