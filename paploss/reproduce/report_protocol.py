"""The report's section on the paper's search protocol (T = 40 rounds x S = 8 samples).

:func:`read_protocol` reads the protocol's search (``search/protocol``) of the report's snapshot
(:mod:`paploss.reproduce.snapshot`) into a :class:`ProtocolRun`: per round the best AP so far, the round's mean reward, its collapsed trials,
how far PPO2's mean mu_t has moved from its initialization and sigma_t; the search's wall time and
what early stopping of collapsed trials saved. :func:`protocol_section` renders it with the val
table of the protocol's rows (the 40 x 8 search's best beside the published params, the budget's
main search and the initialization) and a figure.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paploss.reproduce.paper_tables import PROTOCOL, PROTOCOL_KEY, TABLES
from paploss.reproduce.report_tables import claim_tests, table_markdown
from paploss.reproduce.snapshot import ReportSnapshot, RowResult, active_seconds, snapshot_of
from paploss.study import keys

HEADING = "## The paper's search protocol"


@dataclass(frozen=True)
class ProtocolRound:
    """One round of the protocol's search. AP in % on D_eval.

    Attributes:
        round: 1-based round index.
        best: best reward of all rounds up to this one.
        mean: the round's mean reward (a collapsed trial counts as 0, as PPO2 sees it).
        samples: complete trials of the round.
        collapsed: of those, the ones early stopping ended.
        mu_shift: RMS distance (normalized units, per parameter) of the round's mean mu_t from
            the first round's (the search's initialization); nan where it was not recorded.
        sigma: sigma_t of the round (nan where not recorded).
    """

    round: int
    best: float
    mean: float
    samples: int
    collapsed: int
    mu_shift: float
    sigma: float


@dataclass(frozen=True)
class ProtocolRun:
    """What the protocol's search recorded, read once from its study."""

    rounds: tuple[ProtocolRound, ...]
    target_rounds: int
    wall_hours: float  # from the first trial's start to the last one's end
    trial_hours: float  # summed over the trials (workers in parallel count each)
    full_trial_seconds: float  # median duration of a trial that ran to the end
    collapsed_seconds: float  # summed duration of the collapsed trials
    collapsed: int
    active_hours: float = (
        0.0  # wall_hours without the pauses between runs (snapshot.active_seconds)
    )
    collapse_rule: Mapping[str, Any] | None = None  # the rule the study's settings record

    @property
    def saved_hours(self) -> float:
        """Training time early stopping saved: each collapsed trial at a full trial's median."""
        return max(0.0, self.collapsed * self.full_trial_seconds - self.collapsed_seconds) / 3600


def _rms(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    names = sorted(set(a) & set(b))
    if not names:
        return math.nan
    return math.sqrt(statistics.fmean((float(a[n]) - float(b[n])) ** 2 for n in names))


def read_protocol(source: ReportSnapshot | Any, rounds: int, samples: int) -> ProtocolRun | None:
    """The protocol's search of ``source`` (the report's snapshot, or a storage to read one from;
    None where the search has not started), planned as ``rounds`` x ``samples`` (the budget's
    protocol shape, :meth:`~paploss.reproduce.experiments.Search.shape`). mu_t and sigma_t are the user attrs PPO2 records on
    every trial of round t (``ppo2_mean``, ``ppo2_sigma``)."""
    from paploss.samplers._ppo2 import USER_ATTR_MEAN, USER_ATTR_SIGMA
    from paploss.study.search.records import best_so_far

    record = snapshot_of(source).search(PROTOCOL.key)
    if record is None:
        return None
    trials = record.complete()
    if not trials:
        return None
    numbers = {t.number: t for t in trials}
    by_round = best_so_far(trials, samples)
    first_mean = numbers[by_round[0]["trials"][0]].user_attrs.get(USER_ATTR_MEAN) or {}
    per_round = []
    for row in by_round:
        members = [numbers[n] for n in row["trials"]]
        attrs = members[0].user_attrs
        per_round.append(
            ProtocolRound(
                round=row["round"] + 1,
                best=100.0 * row["best"],
                mean=100.0 * row["mean"],
                samples=len(members),
                collapsed=sum(bool(t.user_attrs.get(keys.COLLAPSED)) for t in members),
                mu_shift=_rms(attrs.get(USER_ATTR_MEAN) or {}, first_mean),
                sigma=float(attrs.get(USER_ATTR_SIGMA, math.nan)),
            )
        )
    seconds = {
        t.number: (t.datetime_complete - t.datetime_start).total_seconds()
        for t in trials
        if t.datetime_start and t.datetime_complete
    }
    stopped = [n for n in seconds if numbers[n].user_attrs.get(keys.COLLAPSED)]
    full = [s for n, s in seconds.items() if n not in stopped]
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    spans = [
        (t.datetime_start.timestamp(), t.datetime_complete.timestamp())
        for t in trials
        if t.datetime_start and t.datetime_complete
    ]
    settings = record.user_attrs.get(keys.SETTINGS) or {}
    return ProtocolRun(
        rounds=tuple(per_round),
        target_rounds=rounds,
        wall_hours=(max(ends) - min(starts)).total_seconds() / 3600 if starts else 0.0,
        trial_hours=sum(seconds.values()) / 3600,
        full_trial_seconds=statistics.median(full) if full else 0.0,
        collapsed_seconds=sum(seconds[n] for n in stopped),
        collapsed=len(stopped),
        active_hours=active_seconds(spans) / 3600,
        collapse_rule=settings.get(keys.COLLAPSE_RULE),
    )


def _rule_text(rule: Mapping[str, Any] | None) -> str:
    if not rule:
        return "no collapse_rule"
    return (
        f"collapse_rule: loss motion < {rule['min_motion']} per iteration over iterations "
        f"{rule['check_at'] - rule['window'] + 1}-{rule['check_at']}"
    )


def _fmt(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def protocol_section(
    run: ProtocolRun | None,
    results: Mapping[str, RowResult],
    figure: Path,
    *,
    provenance: str = "",
) -> list[str]:
    """The section's lines; its figure is written to ``figure`` when the search has rounds.
    ``provenance`` (how, where and on what it ran) opens the section of a search that ran."""
    table = TABLES[PROTOCOL_KEY]
    lines = [HEADING, ""]
    if run is None:
        return lines + ["Not run: `paploss-reproduce protocol` runs it (~2 h on 2 cores).", ""]
    if provenance:
        lines += [provenance, ""]
    done = len(run.rounds)
    last = run.rounds[-1]
    first = run.rounds[0]
    lines += [
        f"![protocol]({figure.parent.name}/{figure.name})",
        "",
        f"- rounds complete: {done} of {run.target_rounds}; best AP on D_eval {last.best:.1f} "
        f"(round 1's best {first.best:.1f}, round 1's mean {first.mean:.1f}, the last round's "
        f"mean {last.mean:.1f})",
        f"- wall time **{run.active_hours:.2f} h** with trials running ({run.wall_hours:.2f} h "
        f"from the first trial's start to the last one's end, less the pauses between runs), "
        f"{run.trial_hours:.2f} h of trials summed over workers",
        f"- early stop ({_rule_text(run.collapse_rule)}): {run.collapsed} collapsed trials "
        f"stopped, {run.collapsed_seconds / 60:.1f} "
        f"min in all; at the median full trial ({run.full_trial_seconds:.0f} s) they would have "
        f"cost {run.collapsed * run.full_trial_seconds / 60:.1f} min: {run.saved_hours:.2f} h "
        "saved",
        "",
        "| round | best so far | round mean | collapsed | mu_t's shift from mu_1 (RMS) | sigma_t |",
        "|---|---|---|---|---|---|",
    ]
    shown = sorted({1, *range(5, done + 1, 5), done})
    for r in (run.rounds[i - 1] for i in shown):
        lines.append(
            f"| {r.round} | {r.best:.1f} | {r.mean:.1f} | {r.collapsed}/{r.samples} | "
            f"{_fmt(r.mu_shift, 3)} | {_fmt(r.sigma, 3)} |"
        )
    lines += ["", "On val (trained on D_train + D_eval, paired seeds):", ""]
    lines += table_markdown(table, results)
    lines += ["", table.note, ""]
    lines += [
        "The searched loss against each row, paired by seed (one-sided; the paper's numbers do "
        "not decide these: its 40 x 8 search and its published params are the same loss):",
        "",
        *_ordering_lines(table, results),
        "",
    ]
    _plot(run.rounds, figure)
    return lines


def _ordering_lines(table: Any, results: Mapping[str, RowResult]) -> list[str]:
    """One line per ordering of the protocol's table with its paired test on the proxy."""
    words = {"agrees": "higher", "disagrees": "LOWER", "unresolved": "not decided"}
    lines = []
    for c in claim_tests(table, results):
        if c.test is None:
            lines.append(f"- {c.name}: not run yet")
            continue
        a, b = c.left_result, c.right_result
        proxy = f"{a.mean():.1f} ± {a.std():.1f} vs {b.mean():.1f} ± {b.std():.1f}"
        lines.append(f"- {c.name}: {proxy}, {c.test.describe()}: {words[c.test.verdict]}")
    return lines


def _plot(rounds: Sequence[ProtocolRound], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r.round for r in rounds]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot(x, [r.best for r in rounds], label="best so far")
    left.plot(x, [r.mean for r in rounds], marker=".", label="round mean")
    left.set_xlabel("round")
    left.set_ylabel("AP on D_eval (%)")
    left.legend()
    right.plot(x, [r.mu_shift for r in rounds], label="mu_t's shift from mu_1 (RMS)")
    right.plot(x, [r.sigma for r in rounds], label="sigma_t")
    right.set_xlabel("round")
    right.set_ylabel("normalized units")
    right.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
