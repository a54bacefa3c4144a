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
process prints one line per job and the command as a user types it (:func:`display_command`:
``paploss-search ...`` / ``paploss-train ...``), which the report repeats.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paploss.reproduce.experiments import BUDGETS, Budget, Search, Training, dataset_settings
from paploss.reproduce.options import ReproduceOptions
from paploss.reproduce.plan import plan, row_seeds
from paploss.study import keys
from paploss.study.cli import CONFIG_DIR, UsageError
from paploss.study.runner.devices import cpu_threads
from paploss.study.runner.summary import FILE as SUMMARY_FILE
from paploss.study.runner.summary import TrainingSummary
from paploss.study.storage import normalize_storage_url, redact, redact_argv

SEARCH_PREFIX = "search/"
ROW_PREFIX = "row/"
COMMAND_FILE = "command.json"
"""Written beside a row seed's metrics.json when its training command succeeded."""
SCRIPTS = {"paploss.study.search": "paploss-search", "paploss.study.train": "paploss-train"}
"""The console script of each module that runs as a child command."""


def cache_root() -> Path:
    """``$PAPLOSS_CACHE`` or ``~/.cache/paploss``: outside the work tree, kept between runs."""
    return Path(os.environ.get("PAPLOSS_CACHE", Path.home() / ".cache" / "paploss")).expanduser()


class Reproduction:
    """Runs the jobs of the chosen experiments against one storage."""

    def __init__(self, options: ReproduceOptions) -> None:
        self.options = options
        self.budget: Budget = BUDGETS[options.budget]
        base = cache_root() / "reproduce"
        self.work_dir = (options.work_dir or base / self.budget.storage_name).expanduser().resolve()
        if options.storage is None:
            db = base / f"{self.budget.storage_name}.db"
            self.storage_url = f"sqlite:///{db}"
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
        total = len(self.jobs)
        print(
            f"[reproduce] {' '.join(self.options.experiments)}, budget {self.budget.name}: {total} "
            f"jobs; storage {redact(self.storage_url)}; runs in {self.work_dir}",
            flush=True,
        )
        for name in sorted({job.dataset for job in self.jobs if job.dataset}):
            self.generate_dataset(name)
        for index, job in enumerate(self.jobs, start=1):
            label = f"[reproduce] job {index}/{total}"
            if isinstance(job, Search):
                self.run_search(job, label)
            else:
                self.run_training(job, label)
        return 1 if self.failures else 0

    def data_flags(self, job: Search | Training) -> list[str]:
        """``--data``: the run's, or the folder of the generated dataset the job names."""
        if job.dataset:
            from paploss.proxy import default_root

            return ["--data", str(default_root(dataset_settings(job.dataset)))]
        return ["--data", *self.options.data]

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

    def search_command(self, search: Search) -> list[str]:
        b = self.budget
        rounds, samples = search.shape(b)
        return [
            sys.executable, "-m", "paploss.study.search",
            "--config", str(CONFIG_DIR / search.config),
            "--storage", self.storage_url,
            "--study-name", SEARCH_PREFIX + search.key,
            "--work-dir", str(self.work_dir / "search"),
            "--rounds", str(rounds),
            "--samples-per-round", str(samples),
            "--epochs", str(b.epochs),
            "--device", self.options.device,
            *self.data_flags(search),
            *search.flags(),
        ]  # fmt: skip

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

    def run_search(self, search: Search, label: str) -> bool:
        if self.search_is_complete(search):
            print(f"{label}: search {search.key} complete", flush=True)
            return True
        calls = []
        for worker in range(self.options.workers):
            cmd = self.search_command(search)
            if worker and search.sampler != "ppo2":
                # PPO2 workers with one seed draw different samples; other samplers need seeds.
                cmd[cmd.index("--seed") + 1] = str(search.seed + 1000 * worker)
            suffix = f".worker{worker}" if worker else ""
            calls.append((cmd, self.work_dir / "logs" / f"search-{search.key}{suffix}.log"))
        print(
            f"{label}: search {search.key} ({search.sampler}, {len(calls)} worker(s)) -> "
            f"{calls[0][1]}",
            flush=True,
        )
        codes = self._call_all(calls)
        if any(codes) and not self.search_is_complete(search):
            rc = max(codes)
            self.failures.append(f"search {search.key} (exit {rc}, see {calls[0][1]})")
            print(f"{label}: search {search.key} FAILED (exit {rc}); see {calls[0][1]}", flush=True)
            return False
        return True

    def training_command(self, training: Training, seed: int, run_dir: Path) -> list[str]:
        cmd = [
            sys.executable, "-m", "paploss.study.train",
            "--config", str(CONFIG_DIR / training.config),
            "--work-dir", str(run_dir),
            "--epochs", str(self.budget.epochs),
            "--seed", str(seed),
            "--device", self.options.device,
            *self.data_flags(training),
        ]  # fmt: skip
        for preset in training.presets:
            cmd += ["--preset", preset]
        if training.search is not None:
            cmd += [
                "--storage",
                self.storage_url,
                "--study-name",
                SEARCH_PREFIX + training.search.key,
            ]
        if training.substitution is not None:
            cmd += ["--substitution", training.substitution]
        if not training.block_grad:
            cmd.append("--no-block-grad")
        return cmd

    def run_training(self, training: Training, label: str) -> None:
        import optuna
        from optuna.trial import TrialState

        if training.search is not None and not self.search_is_complete(training.search):
            self.failures.append(
                f"row {training.key}: its search {training.search.key} is not complete"
            )
            print(f"{label}: row {training.key} waits for search {training.search.key}", flush=True)
            return
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
        pending = [s for s in range(row_seeds(training, self.budget)) if s not in done]
        if not pending:
            print(f"{label}: row {training.key} complete", flush=True)
        for start in range(0, len(pending), self.options.workers):
            self._train_seeds(training, study, pending[start : start + self.options.workers], label)

    def _train_seeds(self, training: Training, study: Any, seeds: list[int], label: str) -> None:
        """Train ``seeds`` of a row side by side; each seed is one trial of the row's study."""
        from optuna.trial import TrialState

        runs = []
        for seed in seeds:
            run_dir = self.work_dir / "rows" / training.key / f"seed{seed}"
            cmd = self.training_command(training, seed, run_dir)
            trial = study.ask()
            trial.set_user_attr(keys.SEED, seed)
            trial.set_user_attr(keys.COMMAND, display_command(cmd))
            trial.set_user_attr(keys.DEFINITION, training.definition)
            runs.append((seed, run_dir, cmd, trial, run_dir.parent / f"seed{seed}.log"))
        started = time.monotonic()
        todo = [r for r in runs if self._recorded_summary(r[1], r[2]) is None]
        for seed, _, _, _, log in todo:
            print(f"{label}: row {training.key} seed {seed} -> {log}", flush=True)
        codes = dict(zip((r[0] for r in todo), self._call_all([(r[2], r[4]) for r in todo])))
        for seed, run_dir, cmd, _, _ in todo:
            if codes[seed] == 0:  # marks metrics.json as the result of exactly this command
                (run_dir / COMMAND_FILE).write_text(json.dumps(redact_argv(cmd[1:])))
        for seed, run_dir, cmd, trial, log in runs:
            summary = self._recorded_summary(run_dir, cmd)
            if summary is None:
                study.tell(trial, state=TrialState.FAIL)
                rc = codes.get(seed)
                self.failures.append(f"row {training.key} seed {seed} (exit {rc}, see {log})")
                print(f"{label}: row {training.key} seed {seed} FAILED; see {log}", flush=True)
                continue
            metrics = summary.metrics
            for name, value in metrics.items():
                trial.set_user_attr(name, float(value))
            trial.set_user_attr(keys.STATUS, summary.status)
            trial.set_user_attr(keys.TRAIN_SECONDS, summary.train_seconds)
            study.tell(trial, float(metrics["AP"]))
            print(
                f"{label}: row {training.key} seed {seed}: AP {metrics['AP']:.4f} "
                f"({time.monotonic() - started:.0f} s)",
                flush=True,
            )

    @staticmethod
    def _recorded_summary(run_dir: Path, cmd: list[str]) -> TrainingSummary | None:
        """The metrics.json of a finished training of exactly ``cmd``, else None."""
        marker = run_dir / COMMAND_FILE
        if not ((run_dir / SUMMARY_FILE).is_file() and marker.is_file()):
            return None
        try:
            if _run_key(json.loads(marker.read_text())) != _run_key(redact_argv(cmd[1:])):
                return None
            return TrainingSummary.read(run_dir)
        except (OSError, ValueError):  # json.JSONDecodeError is a ValueError
            return None

    def _call_all(self, calls: Sequence[tuple[list[str], Path]]) -> list[int]:
        """Run child commands side by side, each with its output in its log; their exit codes.

        The children die with this process: an interrupt stops every child's process group."""
        env = dict(os.environ)
        if len(calls) > 1 and "OMP_NUM_THREADS" not in env:  # the cores shared among them
            env["OMP_NUM_THREADS"] = str(cpu_threads(len(calls)))
        children: list[tuple[subprocess.Popen[bytes], Any]] = []
        try:
            for cmd, log in calls:
                log.parent.mkdir(parents=True, exist_ok=True)
                out = open(log, "ab")  # noqa: SIM115  (closed below)
                out.write(f"\n$ {display_command(cmd)}\n".encode())
                out.flush()
                proc = subprocess.Popen(
                    cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                )  # fmt: skip
                children.append((proc, out))
            codes = [proc.wait() for proc, _ in children]
        finally:
            for proc, _ in children:
                if proc.poll() is None:  # interrupted: stop the whole child group
                    os.killpg(proc.pid, signal.SIGINT)
            for proc, out in children:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                out.close()
        return codes


def display_command(cmd: Sequence[str]) -> str:
    """A child command as a user types it: ``paploss-search ...`` / ``paploss-train ...`` for
    ``python -m paploss.study.search`` / ``train`` (a recorded ``paploss-search ...`` stays), and
    the bundled configs as ``paploss/configs/NAME``, the path in a checkout's root (where
    ``studies/configs`` links to it), a storage password hidden (``***``)."""
    parts = redact_argv(cmd)
    if len(parts) > 2 and parts[1] == "-m" and parts[2] in SCRIPTS:
        parts = [SCRIPTS[parts[2]], *parts[3:]]
    shown = []
    for part in parts:
        path = Path(part)
        if path.is_absolute() and path.is_relative_to(CONFIG_DIR):
            part = (
                Path(CONFIG_DIR.parent.name) / CONFIG_DIR.name / path.relative_to(CONFIG_DIR)
            ).as_posix()
        shown.append(part)
    return shlex.join(shown)


def _run_key(args: Sequence[str]) -> list[str]:
    """What identifies a training command's run (its arguments, ``cmd[1:]``) across the ways it
    was started: the options from the first one on, with ``--config`` reduced to the file name
    (a bundled config: the ``studies/train.py`` commands of earlier versions name it by another
    path)."""
    args = list(args)
    start = next((i for i, a in enumerate(args) if a.startswith("--")), len(args))
    key = args[start:]
    for i, arg in enumerate(key[:-1]):
        if arg == "--config":
            key[i + 1] = Path(key[i + 1]).name
    return key
