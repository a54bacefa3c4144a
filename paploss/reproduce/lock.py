"""One reproduction at a time on a storage.

A reproduction that starts fails the row trials a stopped run left RUNNING and trains those
seeds again, into the same run folders; a second reproduction on the same storage would so fail
the first one's live trial and train the same seed into the same folder. :class:`ReproductionLock`
makes the second one exit with code 2 instead:

- on an RDB storage (SQLite, PostgreSQL, MySQL; workers on any machine) the lock is a RUNNING
  trial of the study ``reproduce/lock`` whose heartbeat this process records every
  ``HEARTBEAT_INTERVAL`` seconds (Optuna's trial heartbeat). A lock trial without a heartbeat for
  ``GRACE_PERIOD`` seconds belongs to a run that was killed: it is failed
  (``optuna.storages.fail_stale_trials``) and the lock is free. Two runs that start at once each
  create a lock trial; the one with the lower number keeps the lock.
- on a journal file (``journal:PATH``, one host) it is an exclusive ``flock`` of
  ``PATH.reproduce.lock``, which the kernel releases when the process ends, however it ends.
"""

from __future__ import annotations

import datetime as _dt
import os
import socket
import threading
import warnings
from pathlib import Path
from typing import Any

from paploss.study.cli import UsageError
from paploss.study.storage import journal_file, open_storage, render_url

LOCK_STUDY = "reproduce/lock"
"""The study whose RUNNING trial is the lock of an RDB storage (no search or row study)."""
HEARTBEAT_INTERVAL = 10
"""Seconds between the lock's heartbeats."""
GRACE_PERIOD = 60
"""Seconds without a heartbeat after which a lock belongs to a killed run and is taken over."""


class ReproductionLock:
    """The lock of a reproduction on the storage ``url`` (see the module docstring).

    Use as a context manager, or :meth:`acquire` / :meth:`release`.

    Args:
        url: the reproduction's storage URL (or ``journal:PATH``).
        heartbeat_interval, grace_period: seconds (tests shorten them).
    """

    def __init__(
        self,
        url: str,
        *,
        heartbeat_interval: int = HEARTBEAT_INTERVAL,
        grace_period: int = GRACE_PERIOD,
    ) -> None:
        self.url = url
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self._study: Any = None
        self._trial: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._file: Any = None

    def __enter__(self) -> ReproductionLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # ---- acquire -------------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the lock.

        Raises:
            UsageError: another reproduction holds it (one line: who, and what to do).
        """
        journal = journal_file(self.url)
        if journal is not None:
            self._acquire_file(Path(f"{journal}.reproduce.lock"))
        else:
            self._acquire_trial()

    def _acquire_file(self, path: Path) -> None:
        import fcntl

        handle = open(path, "a+")  # noqa: SIM115  (held open while the lock is held)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise UsageError(
                f"storage {self.url} is in use by another reproduction ({owner}, lock "
                f"{path}); wait for it to finish, or stop it and run this command again"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(_owner_text())
        handle.flush()
        self._file = handle

    def _acquire_trial(self) -> None:
        import optuna
        from optuna.exceptions import ExperimentalWarning
        from optuna.storages import fail_stale_trials
        from optuna.trial import TrialState

        storage = open_storage(
            self.url,
            heartbeat_interval=self.heartbeat_interval,
            grace_period=self.grace_period,
            max_retry=0,  # a stale lock is failed, never retried
        )
        study = optuna.create_study(
            study_name=LOCK_STUDY,
            storage=storage,
            sampler=optuna.samplers.RandomSampler(),
            load_if_exists=True,
        )
        with warnings.catch_warnings():
            # fail_stale_trials is experimental; Optuna expects heartbeats from optimize() only.
            warnings.simplefilter("ignore", ExperimentalWarning)
            warnings.filterwarnings("ignore", message="Heartbeat of storage", category=UserWarning)
            fail_stale_trials(study)
            trial = study.ask()
        storage.record_heartbeat(trial._trial_id)
        self._study, self._trial = study, trial
        self._thread = threading.Thread(target=self._beat, name="reproduce-lock", daemon=True)
        self._thread.start()
        trial.set_user_attr("owner", _owner_text())
        holders = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.number < trial.number
        ]
        if holders:
            holder = holders[0]
            self.release()
            owner = holder.user_attrs.get("owner", "an unnamed process")
            raise UsageError(
                f"storage {render_url(self.url)} is in use by another reproduction ({owner}; "
                f"its lock is trial {holder.number} of the study {LOCK_STUDY!r}); wait for it to "
                "finish, or stop it and run this command again (a killed run's lock expires "
                f"{self.grace_period} s after its last heartbeat)"
            )

    def _beat(self) -> None:
        storage = self._study._storage
        while not self._stop.wait(self.heartbeat_interval):
            try:
                storage.record_heartbeat(self._trial._trial_id)
            except Exception:  # a database hiccup: the next beat tries again
                continue

    # ---- release -------------------------------------------------------------------------
    def release(self) -> None:
        """Give the lock back (idempotent)."""
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the flock
            self._file = None
        if self._trial is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        from optuna.trial import TrialState

        try:
            self._study.tell(self._trial, state=TrialState.PRUNED)  # released, not failed
        except Exception:  # already finished (failed as stale): nothing to give back
            pass
        self._study = self._trial = self._thread = None


def _owner_text() -> str:
    started = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    return f"pid {os.getpid()} on {socket.gethostname()}, started {started}"
