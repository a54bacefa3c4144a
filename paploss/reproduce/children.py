"""The child commands of a reproduction: the studies they write, the commands themselves, the
commands as a user types them, and the recorded result of a row seed's training.

A search runs as ``python -m paploss.study.search`` (study ``search/<key>``), a row seed as
``python -m paploss.study.train`` (a trial of the study ``row/<key>``), both with this interpreter
in the current folder. :func:`display_command` shows them as ``paploss-search ...`` /
``paploss-train ...``; :func:`recorded_summary` reads a finished seed's metrics.json back when
the command that wrote it is the one asked for (:func:`run_key`).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from paploss.reproduce.experiments import Budget, Search, Training, dataset_settings
from paploss.reproduce.options import ReproduceOptions
from paploss.study.cli import CONFIG_DIR
from paploss.study.runner.summary import FILE as SUMMARY_FILE
from paploss.study.runner.summary import TrainingSummary
from paploss.study.storage import redact_argv

SEARCH_PREFIX = "search/"
ROW_PREFIX = "row/"
COMMAND_FILE = "command.json"
"""Written beside a row seed's metrics.json when its training command succeeded."""
SCRIPTS = {"paploss.study.search": "paploss-search", "paploss.study.train": "paploss-train"}
"""The console script of each module that runs as a child command."""


def cache_root() -> Path:
    """``$PAPLOSS_CACHE`` or ``~/.cache/paploss``: outside the work tree, kept between runs."""
    return Path(os.environ.get("PAPLOSS_CACHE", Path.home() / ".cache" / "paploss")).expanduser()


def default_storage_url(budget: Budget) -> str:
    """The storage a reproduction of ``budget`` uses without ``--storage``: a SQLite file
    ``<cache_root>/reproduce/<budget.storage_name>.db``."""
    return f"sqlite:///{cache_root() / 'reproduce' / f'{budget.storage_name}.db'}"


class ChildCommands:
    """The search and training commands of a reproduction's jobs, against one storage and work
    dir (set by the subclass that runs them: ``options``, ``budget``, ``storage_url``,
    ``work_dir``)."""

    options: ReproduceOptions
    budget: Budget
    storage_url: str
    work_dir: Path

    def data_flags(self, job: Search | Training) -> list[str]:
        """``--data``: the run's, or the folder of the generated dataset the job names."""
        if job.dataset:
            from paploss.proxy import default_root

            return ["--data", str(default_root(dataset_settings(job.dataset)))]
        return ["--data", *self.options.data]

    def search_command(self, search: Search) -> list[str]:
        """The ``paploss-search`` command of ``search``'s first worker (study ``search/<key>``)."""
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

    def training_command(self, training: Training, seed: int, run_dir: Path) -> list[str]:
        """The ``paploss-train`` command of seed ``seed`` of the row ``training`` into
        ``run_dir`` (a searched row reads its params from its search's study)."""
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


def recorded_summary(run_dir: Path, cmd: list[str]) -> TrainingSummary | None:
    """The metrics.json of a finished training of exactly ``cmd``, else None."""
    marker = run_dir / COMMAND_FILE
    if not ((run_dir / SUMMARY_FILE).is_file() and marker.is_file()):
        return None
    try:
        if run_key(json.loads(marker.read_text())) != run_key(redact_argv(cmd[1:])):
            return None
        return TrainingSummary.read(run_dir)
    except (OSError, ValueError):  # json.JSONDecodeError is a ValueError
        return None


def mark_recorded(run_dir: Path, cmd: list[str]) -> None:
    """Mark the metrics.json in ``run_dir`` as the result of exactly ``cmd`` (after it exited 0)."""
    (run_dir / COMMAND_FILE).write_text(json.dumps(redact_argv(cmd[1:])))


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


def run_key(args: Sequence[str]) -> list[str]:
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
