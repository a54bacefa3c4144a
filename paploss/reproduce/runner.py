"""The runner of a reproduction: every job of the plan as a child command against one storage.

Each experiment is a list of jobs (:mod:`paploss.reproduce.plan`): searches, run as
``paploss-search`` commands (study ``search/<key>``), and row trainings, run as
``paploss-train`` commands once per seed (seed k is a trial of the study ``row/<key>`` with the
metrics in its user attrs). All studies live in one Optuna storage, by default a SQLite file under
the cache folder, so a stopped reproduction continues where it was: a finished search or seed is
never trained again (the search resumes its own study; a seed whose training finished but was not
recorded is read back from its metrics.json).

Every job runs as a child command (``python -m paploss.study.search`` / ``paploss.study.train`` of
this interpreter, in the current folder) whose output goes to a log file beside its work dir; this
process prints one line per job and the command as a user types it
(:func:`paploss.reproduce.children.display_command`), which the report repeats. The commands
themselves are built by :class:`paploss.reproduce.children.ChildCommands`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paploss.reproduce.children import (
    ROW_PREFIX,
    SEARCH_PREFIX,
    ChildCommands,
    cache_root,
    default_storage_url,
    display_command,
    mark_recorded,
    recorded_summary,
)
from paploss.reproduce.experiments import BUDGETS, Budget, Search, Training, dataset_settings
from paploss.reproduce.options import ReproduceOptions
from paploss.reproduce.plan import plan, row_seeds
from paploss.reproduce.pool import ChildPool
from paploss.study import keys
from paploss.study.cli import CONFIG_DIR, UsageError
from paploss.study.runner.devices import cpu_threads
from paploss.study.storage import normalize_storage_url, redact

REJOIN_SECONDS = 10.0
"""How often a free slot of a run looks for a search it can join (seconds)."""
_TODO, _ACTIVE, _DONE = "todo", "active", "done"
"""A job's state in a run: not started; some of its child commands started; finished (or failed)."""


@dataclass(eq=False)
class _JobProgress:
    """Where one job of the plan stands in this run.

    Attributes:
        job: the search or row.
        index: its number in the plan (1-based), for the progress lines.
        state: ``_TODO``, ``_ACTIVE`` or ``_DONE``.
        started: child commands started (a search's workers: worker k gets suffix ``.worker<k>``).
        running: child commands running now.
        codes: exit codes of its finished child commands.
        pending: a row's seeds still to start.
        study: a row's study (``row/<key>``), once the row has started.
    """

    job: Search | Training
    index: int
    state: str = _TODO
    started: int = 0
    running: int = 0
    codes: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    study: Any = None


@dataclass(eq=False)
class _Unit:
    """One child command: a search's worker (``seed`` None) or one seed of a row."""

    progress: _JobProgress
    cmd: list[str]
    log: Path
    seed: int | None = None
    run_dir: Path = Path()
    trial: Any = None
    started: float = field(default_factory=time.monotonic)


class Reproduction(ChildCommands):
    """Runs the jobs of the chosen experiments against one storage."""

    def __init__(self, options: ReproduceOptions) -> None:
        self.options = options
        self.budget: Budget = BUDGETS[options.budget]
        base = cache_root() / "reproduce"
        self.work_dir = (options.work_dir or base / self.budget.storage_name).expanduser().resolve()
        if options.storage is None:
            self.storage_url = default_storage_url(self.budget)
        else:
            self.storage_url = normalize_storage_url(options.storage)
        self.jobs = plan(list(options.experiments), self.budget)
        self.failures: list[str] = []

    # ---- set-up ------------------------------------------------------------------------
    def check(self) -> None:
        """Input checks that write nothing."""
        from paploss.study.data.sources import check_data_arg
        from paploss.study.runner.devices import check_device

        check_data_arg(self.options.data)
        if not self.options.report_only:
            check_device(self.options.device)
        for job in self.jobs:
            config = CONFIG_DIR / job.config
            if not config.is_file():
                raise UsageError(f"config {config} of job {job.key!r} does not exist")

    def open(self) -> None:
        from paploss.study.storage import open_storage

        if self.storage_url.startswith("sqlite:///"):
            Path(self.storage_url[len("sqlite:///") :]).expanduser().parent.mkdir(
                parents=True, exist_ok=True
            )
        try:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"--work-dir {self.work_dir}: cannot create it ({exc.strerror}); choose a "
                "writable folder"
            ) from exc
        self.storage = open_storage(self.storage_url)

    # ---- jobs --------------------------------------------------------------------------
    def run(self) -> int:
        """Every job of the plan, ``options.workers`` child commands at once.

        A free slot takes the first unit of the plan that can start: a search's first worker, or
        the next seed of a row whose search is complete. When every remaining unit waits for a
        running search, the free slot joins that search as one more worker (up to ``workers``
        per search). Every child gets cores // workers torch threads, however many run."""
        total = len(self.jobs)
        print(
            f"[reproduce] {' '.join(self.options.experiments)}, budget {self.budget.name}: {total} "
            f"jobs; storage {redact(self.storage_url)}; runs in {self.work_dir}",
            flush=True,
        )
        for name in sorted({job.dataset for job in self.jobs if job.dataset}):
            self.generate_dataset(name)
        self._progress = {id(job): _JobProgress(job, i) for i, job in enumerate(self.jobs, 1)}
        env = dict(os.environ)
        if self.options.workers > 1 and "OMP_NUM_THREADS" not in env:
            env["OMP_NUM_THREADS"] = str(cpu_threads(self.options.workers))
        with ChildPool(slots=self.options.workers, env=env) as pool:
            while True:
                while pool.free and (unit := self._next_unit()) is not None:
                    pool.start(unit.cmd, unit.log, unit, shown=display_command(unit.cmd))
                if not pool.running:
                    break
                # A free slot looks again every few seconds: a search it may join has started.
                timeout = REJOIN_SECONDS if pool.free else None
                for unit, code in pool.wait_any(timeout):
                    self._finish(unit, code)
        return 1 if self.failures else 0

    def _label(self, progress: _JobProgress) -> str:
        return f"[reproduce] job {progress.index}/{len(self.jobs)}"

    def _next_unit(self) -> _Unit | None:
        """The next child command to start, None when every remaining one waits."""
        joinable: list[_JobProgress] = []
        for job in self.jobs:
            progress = self._progress[id(job)]
            if progress.state == _DONE:
                continue
            if isinstance(job, Search):
                if progress.state == _ACTIVE:
                    joinable.append(progress)
                    continue
                if self.search_is_complete(job):
                    print(f"{self._label(progress)}: search {job.key} complete", flush=True)
                    progress.state = _DONE
                    continue
                return self._search_unit(progress)
            unit = self._row_unit(progress)
            if unit is not None:
                return unit
        for progress in joinable:
            if progress.running < self.options.workers and self._unclaimed(progress.job) > 0:
                return self._search_unit(progress)
        return None

    def _unclaimed(self, search: Search) -> int:
        """Trials of ``search`` that no worker has started yet."""
        import optuna
        from optuna.trial import TrialState

        try:
            study = optuna.load_study(study_name=SEARCH_PREFIX + search.key, storage=self.storage)
        except KeyError:  # its first worker has not created the study yet
            return 0
        taken = study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
        )
        rounds, samples = search.shape(self.budget)
        return rounds * samples - len(taken)

    def _search_unit(self, progress: _JobProgress) -> _Unit:
        search = progress.job
        assert isinstance(search, Search)
        worker = progress.started
        cmd = self.search_command(search)
        if worker and search.sampler != "ppo2":
            # PPO2 workers with one seed draw different samples; other samplers need seeds.
            cmd[cmd.index("--seed") + 1] = str(search.seed + 1000 * worker)
        log = self._search_log(search, worker)
        progress.state = _ACTIVE
        progress.started += 1
        progress.running += 1
        if worker == 0:
            print(
                f"{self._label(progress)}: search {search.key} ({search.sampler}) -> {log}",
                flush=True,
            )
        else:
            print(
                f"{self._label(progress)}: search {search.key}: worker {worker} joins -> {log}",
                flush=True,
            )
        return _Unit(progress, cmd, log)

    def _search_log(self, search: Search, worker: int) -> Path:
        suffix = f".worker{worker}" if worker else ""
        return self.work_dir / "logs" / f"search-{search.key}{suffix}.log"

    def _seed_run(self, training: Training, seed: int) -> tuple[Path, list[str]]:
        """The run dir and the training command of seed ``seed`` of the row ``training``."""
        run_dir = self.work_dir / "rows" / training.key / f"seed{seed}"
        return run_dir, self.training_command(training, seed, run_dir)

    def _row_unit(self, progress: _JobProgress) -> _Unit | None:
        """The next seed of the row ``progress`` to train, None when it has none to start now."""
        training = progress.job
        assert isinstance(training, Training)
        if progress.state == _TODO and not self._open_row(progress):
            return None
        if not progress.pending:
            return None
        unit = self._seed_unit(progress, progress.pending.pop(0))
        print(
            f"{self._label(progress)}: row {training.key} seed {unit.seed} -> {unit.log}",
            flush=True,
        )
        progress.running += 1
        return unit

    def _seed_unit(self, progress: _JobProgress, seed: int) -> _Unit:
        """Seed ``seed`` of the row ``progress``: its command and a new trial of the row's study."""
        training = progress.job
        assert isinstance(training, Training)
        run_dir, cmd = self._seed_run(training, seed)
        trial = progress.study.ask()
        trial.set_user_attr(keys.SEED, seed)
        trial.set_user_attr(keys.COMMAND, display_command(cmd))
        trial.set_user_attr(keys.DEFINITION, training.definition)
        log = run_dir.parent / f"seed{seed}.log"
        return _Unit(progress, cmd, log, seed=seed, run_dir=run_dir, trial=trial)

    def _open_row(self, progress: _JobProgress) -> bool:
        """Start the row ``progress`` once its search is complete: its study, the seeds left to
        train (a seed whose training finished but was not recorded is recorded now). False while
        the row cannot start (its search runs or waits to run; a failed search fails the row)."""
        import optuna
        from optuna.trial import TrialState

        training = progress.job
        assert isinstance(training, Training)
        search = training.search
        if search is not None and not self.search_is_complete(search):
            planned = next((p for p in self._progress.values() if p.job == search), None)
            if planned is not None and planned.state != _DONE:
                return False
            self.failures.append(f"row {training.key}: its search {search.key} is not complete")
            print(
                f"{self._label(progress)}: row {training.key} waits for search {search.key}",
                flush=True,
            )
            progress.state = _DONE
            return False
        study = optuna.create_study(
            study_name=ROW_PREFIX + training.key,
            storage=self.storage,
            direction="maximize",
            load_if_exists=True,
        )
        trials = study.get_trials(deepcopy=False)
        done = {t.user_attrs.get(keys.SEED) for t in trials if t.state == TrialState.COMPLETE}
        # Left RUNNING by a stopped run (this process holds the storage's ReproductionLock, so no
        # other reproduction is training it): its seed is trained again.
        for t in trials:
            if t.state == TrialState.RUNNING:
                study.tell(t.number, state=TrialState.FAIL)
        progress.study = study
        progress.state = _ACTIVE
        for seed in range(row_seeds(training, self.budget)):
            if seed in done:
                continue
            if recorded_summary(*self._seed_run(training, seed)):
                self._record_seed(self._seed_unit(progress, seed), None)
            else:
                progress.pending.append(seed)
        if not progress.pending and not progress.running:
            if len(done) >= row_seeds(training, self.budget):
                print(f"{self._label(progress)}: row {training.key} complete", flush=True)
            progress.state = _DONE
        return True

    def _finish(self, unit: _Unit, code: int) -> None:
        """Record a child that exited with ``code``."""
        progress = unit.progress
        progress.running -= 1
        progress.codes.append(code)
        if unit.seed is None:  # a search worker
            search = progress.job
            assert isinstance(search, Search)
            if progress.running:
                return
            progress.state = _DONE
            if any(progress.codes) and not self.search_is_complete(search):
                rc = max(progress.codes)
                log = self._search_log(search, 0)
                self.failures.append(f"search {search.key} (exit {rc}, see {log})")
                print(
                    f"{self._label(progress)}: search {search.key} FAILED (exit {rc}); see {log}",
                    flush=True,
                )
            return
        if code == 0:  # marks metrics.json as the result of exactly this command
            mark_recorded(unit.run_dir, unit.cmd)
        self._record_seed(unit, code)
        if not progress.pending and not progress.running:
            progress.state = _DONE

    def _record_seed(self, unit: _Unit, code: int | None) -> None:
        """Tell the row's study the result of a seed's training (``code``: its exit code, None
        for one recorded by an earlier run)."""
        from optuna.trial import TrialState

        progress, seed = unit.progress, unit.seed
        training = progress.job
        label = self._label(progress)
        summary = recorded_summary(unit.run_dir, unit.cmd)
        if summary is None:
            progress.study.tell(unit.trial, state=TrialState.FAIL)
            self.failures.append(f"row {training.key} seed {seed} (exit {code}, see {unit.log})")
            print(f"{label}: row {training.key} seed {seed} FAILED; see {unit.log}", flush=True)
            return
        metrics = summary.metrics
        for name, value in metrics.items():
            unit.trial.set_user_attr(name, float(value))
        unit.trial.set_user_attr(keys.STATUS, summary.status)
        unit.trial.set_user_attr(keys.TRAIN_SECONDS, summary.train_seconds)
        progress.study.tell(unit.trial, float(metrics["AP"]))
        print(
            f"{label}: row {training.key} seed {seed}: AP {metrics['AP']:.4f} "
            f"({time.monotonic() - unit.started:.0f} s)",
            flush=True,
        )

    def generate_dataset(self, name: str) -> None:
        """Generate the dataset ``name`` of :data:`DATASETS` in the proxy cache (kept there)."""
        from dataclasses import asdict

        from paploss.proxy import generate_proxy_dataset

        print(
            f"[reproduce] dataset {name}: {self.data_flags(Search('', dataset=name))[1]}",
            flush=True,
        )
        try:
            generate_proxy_dataset(**asdict(dataset_settings(name)))
        except (ValueError, OSError) as exc:
            raise UsageError(f"cannot generate the {name} proxy dataset: {exc}") from exc

    def search_is_complete(self, search: Search) -> bool:
        import optuna
        from optuna.trial import TrialState

        try:
            study = optuna.load_study(study_name=SEARCH_PREFIX + search.key, storage=self.storage)
        except KeyError:
            return False
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        rounds, samples = search.shape(self.budget)
        return len(done) >= rounds * samples
