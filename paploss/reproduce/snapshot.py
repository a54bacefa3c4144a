"""The report's one read of the storage: every search's and row's study, read once into a typed
snapshot that the report's tables, figures and sections render from.

:func:`read_snapshot` loads each ``search/<key>`` and ``row/<key>`` study of a storage once: a
search keeps its trials (every state, by number), its user attrs and its best trial; a row keeps
its per-seed metrics (:class:`RowResult`) and its commands; the snapshot keeps every study's
training intervals, from which :meth:`ReportSnapshot.times` gives the time of any set of studies. AP is in % (the proxy's bbox mAP on its val split x 100).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from paploss.reproduce.children import ROW_PREFIX, SEARCH_PREFIX
from paploss.study import keys
from paploss.study.storage import redact

METRICS = ("AP", "AP50", "AP75")
"""The metrics of a row, in the order of :attr:`paploss.reproduce.experiments.Row.paper`."""


@dataclass(frozen=True)
class RowResult:
    """The proxy's numbers of one row: per-seed values in %, keyed by metric.

    Attributes:
        values: ``{"AP": [...], "AP50": [...], "AP75": [...]}``, one value per trained seed.
        seeds: the training seed of each value (same order); empty: seeds 0, 1, ... in order.
    """

    values: Mapping[str, list[float]]
    seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.seeds and any(len(v) != len(self.seeds) for v in self.values.values()):
            raise ValueError("RowResult: one seed per value of every metric")

    @classmethod
    def empty(cls) -> RowResult:
        """The result of a row that has not run."""
        return cls({m: [] for m in METRICS})

    def by_seed(self, metric: str = "AP") -> dict[int, float]:
        """``{seed: value}`` of ``metric``."""
        seeds = self.seeds or tuple(range(len(self.values.get(metric, []))))
        return dict(zip(seeds, self.values.get(metric, [])))

    def paired(self, other: RowResult, metric: str = "AP") -> tuple[list[float], list[float]]:
        """This row's and ``other``'s values of the seeds both have, in seed order."""
        mine, theirs = self.by_seed(metric), other.by_seed(metric)
        common = sorted(set(mine) & set(theirs))
        return [mine[s] for s in common], [theirs[s] for s in common]

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


@dataclass(frozen=True)
class SearchRecord:
    """One search's study (``search/<key>``) as read.

    Attributes:
        key: the search's key (the study name without ``search/``).
        trials: every trial (``optuna.trial.FrozenTrial``), by number.
        user_attrs: the study's user attrs (its command, its settings).
        best: the study's best complete trial (None while it has none).
    """

    key: str
    trials: tuple[Any, ...]
    user_attrs: Mapping[str, Any]
    best: Any = None

    def complete(self) -> tuple[Any, ...]:
        """The complete trials, by number."""
        from optuna.trial import TrialState

        return tuple(t for t in self.trials if t.state == TrialState.COMPLETE)

    @property
    def command(self) -> str | None:
        """The command the search recorded (as recorded: it may hold a password)."""
        return self.user_attrs.get(keys.COMMAND)


@dataclass(frozen=True)
class RowRecord:
    """One row's study (``row/<key>``) as read: its result and the commands of its complete
    trials (passwords redacted), one per seed in trial order."""

    key: str
    result: RowResult
    commands: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReportSnapshot:
    """What the report shows of a storage, read once (:func:`read_snapshot`).

    Attributes:
        searches: the searches that exist, by key.
        rows: the rows that exist, by key.
        spans: per study name, the ``(start, end)`` timestamps (seconds) of its trials that
            ran to an end; :meth:`times` sums them over a set of studies.
    """

    searches: Mapping[str, SearchRecord] = field(default_factory=dict)
    rows: Mapping[str, RowRecord] = field(default_factory=dict)
    spans: Mapping[str, tuple[tuple[float, float], ...]] = field(default_factory=dict)

    def times(self, studies: Iterable[str] | None = None) -> RunTimes:
        """The times of the trainings of ``studies`` (study names; None: every study)."""
        names = self.spans.keys() if studies is None else [n for n in studies if n in self.spans]
        intervals = [iv for name in names for iv in self.spans[name]]
        if not intervals:
            return RunTimes(0.0, 0.0, 0.0)
        return RunTimes(
            busy_seconds=math.fsum(end - start for start, end in intervals),
            span_seconds=max(e for _, e in intervals) - min(s for s, _ in intervals),
            active_seconds=active_seconds(intervals),
        )

    def search(self, key: str) -> SearchRecord | None:
        """The search ``key``; None where it has not started."""
        return self.searches.get(key)

    def row(self, key: str) -> RowResult:
        """The result of the row ``key`` (empty where it has not run)."""
        record = self.rows.get(key)
        return record.result if record is not None else RowResult.empty()

    def results(self, row_keys: Iterable[str]) -> dict[str, RowResult]:
        """``{key: result}`` of the rows ``row_keys``."""
        return {k: self.row(k) for k in row_keys}


@dataclass(frozen=True)
class RunTimes:
    """How long a set of trainings took.

    Attributes:
        busy_seconds: the trainings' durations summed (workers in parallel count each).
        span_seconds: from the first training's start to the last one's end.
        active_seconds: the wall time of the runs: the span without its pauses, the gaps of
            more than ``PAUSE_SECONDS`` in which no training ran (:func:`active_seconds`).
    """

    busy_seconds: float
    span_seconds: float
    active_seconds: float


PAUSE_SECONDS = 300.0
"""A gap without any training longer than this is a pause between runs (a stopped and resumed
reproduction), not part of a run's wall time; shorter gaps (a job's start-up) are."""


def active_seconds(intervals: Iterable[tuple[float, float]], pause: float = PAUSE_SECONDS) -> float:
    """The wall time covered by the ``(start, end)`` intervals (seconds), trainings that overlap
    counted once and the gaps between them counted up to ``pause`` seconds: a gap longer than
    that is a pause and left out."""
    total, current = 0.0, None
    for start, end in sorted(intervals):
        if current is not None and start - current[1] <= pause:
            current = (current[0], max(current[1], end))
            continue
        if current is not None:
            total += current[1] - current[0]
        current = (start, end)
    if current is not None:
        total += current[1] - current[0]
    return total


def _row_record(key: str, complete: Iterable[Any]) -> RowRecord:
    values: dict[str, list[float]] = {m: [] for m in METRICS}
    seeds: list[int] = []
    commands = []
    for t in complete:
        if keys.COMMAND in t.user_attrs:
            commands.append(redact(t.user_attrs[keys.COMMAND]))
        seed = t.user_attrs.get(keys.SEED)
        if seed is None or int(seed) in seeds:  # not a seed of the row, or a repeated one
            continue
        seeds.append(int(seed))
        for metric in values:
            values[metric].append(100.0 * float(t.user_attrs.get(metric, t.value)))
    return RowRecord(key, RowResult(values, tuple(seeds)), tuple(commands))


def _best(study: Any) -> Any:
    try:
        return study.best_trial
    except ValueError:  # no complete trial
        return None


def read_snapshot(storage: Any) -> ReportSnapshot:
    """Read every search and row study of ``storage`` once (other studies, e.g. the
    reproduction's lock, are skipped)."""
    import optuna
    from optuna.trial import TrialState

    searches: dict[str, SearchRecord] = {}
    rows: dict[str, RowRecord] = {}
    spans: dict[str, tuple[tuple[float, float], ...]] = {}
    for summary in optuna.get_all_study_summaries(storage):
        name = summary.study_name
        if not name.startswith((SEARCH_PREFIX, ROW_PREFIX)):
            continue
        study = optuna.load_study(study_name=name, storage=storage)
        trials = tuple(study.get_trials(deepcopy=False))
        spans[name] = tuple(
            (t.datetime_start.timestamp(), t.datetime_complete.timestamp())
            for t in trials
            if t.datetime_start and t.datetime_complete
        )
        if name.startswith(SEARCH_PREFIX):
            key = name[len(SEARCH_PREFIX) :]
            searches[key] = SearchRecord(key, trials, dict(study.user_attrs), _best(study))
        else:
            key = name[len(ROW_PREFIX) :]
            complete = (t for t in trials if t.state == TrialState.COMPLETE)
            rows[key] = _row_record(key, complete)
    return ReportSnapshot(searches, rows, spans)


def snapshot_of(source: ReportSnapshot | Any) -> ReportSnapshot:
    """``source`` itself when it is a snapshot, else the snapshot of the storage ``source``."""
    return source if isinstance(source, ReportSnapshot) else read_snapshot(source)
