"""A warm trial runner: one pre-imported process forks a child per training.

Importing torch, mmengine, mmcv and mmdet takes ~5-12 s on a 2-core machine, longer than a third of
a proxy trial. :class:`WarmRunner` starts ``python -m paploss.study.runner.warm`` once (the *zygote*); it
imports those modules, says ``ready`` and then, for every spec file written to its stdin, forks a
child that runs the training (:func:`paploss.study.runner.child.run_spec`) with stdout/stderr going to
the run's ``child.log``. The zygote answers ``pid N`` when the child starts and ``exit RC`` when it
ends (RC < 0: killed by signal -RC); :meth:`WarmRunner.run` returns the child's
:class:`~paploss.study.runner.trial.TrialResult`, or raises :class:`TrialCrashed` for a child that
failed, was killed or ran past the timeout. A crash fails only that trial; a zygote that died is
started again for the next one.

Fork safety: the zygote runs no torch computation before it forks (no OpenMP thread pool exists
yet, so the children start clean), and each child sets its own torch thread count.

Lifetime: the zygote dies with the process that started it and every child dies with the zygote
(``PR_SET_PDEATHSIG`` plus a watchdog thread in both), so a killed search worker leaves no
training behind.

Multi-process trials (``nproc_per_trial`` N > 1, :mod:`paploss.study.runner.distributed`): the zygote
forks the N ranks of a training, answers ``pid P0 P1 ...`` and, once all have ended or the first
one failed (the others are then killed), ``exit RC RANK``; rank ``r > 0`` logs to
``child.rank<r>.log``. Every rank follows the zygote and the parent kills every rank on timeout.
"""

from __future__ import annotations

import functools
import gc
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from paploss.study.runner.child import die_with_parent, run_spec
from paploss.study.runner.distributed import fork_ranks, rank_log, rank_pid_file, wait_ranks
from paploss.study.runner.trial import (
    LOG_FILE,
    RESULT_FILE,
    TrialCrashed,
    TrialResult,
    child_env,
    log_tail,
    read_result,
    write_spec,
)

READY = "ready"
PID_FILE = "child.pid"
"""Written into the run folder by each forked child: the pid of the process training that run
(forked children carry the zygote's command line, so this is how to find them)."""
PRELOAD = (
    "torch",
    "torchvision",
    "mmengine.runner",
    "mmcv.ops",
    "mmdet.models",
    "mmdet.evaluation",
    "paploss.mmdet",
)
"""Modules the zygote imports before it forks (what every training imports; torchvision: mmengine's
Runner imports it for the environment it logs, ~0.7 s per child otherwise)."""
START_TIMEOUT = 300.0
"""Seconds the zygote may take to import PRELOAD (a cold disk cache on a loaded machine)."""


class WarmRunner:
    """Runs trainings in children forked from one pre-imported process.

    Args:
        device: "cpu" or "cuda:N" (fixed for the zygote's lifetime; see ``trial.child_env``).
        nproc_per_trial: ranks of every training (torch.distributed; 1: one process).
    """

    def __init__(self, *, device: str, nproc_per_trial: int = 1) -> None:
        self.device = device
        self.nproc_per_trial = nproc_per_trial
        self._proc: subprocess.Popen[str] | None = None
        self._ready = False  # the running zygote has said READY

    # ---- zygote --------------------------------------------------------------------------
    def start(self) -> None:
        """Start the zygote (if not running) without waiting for its imports."""
        if self._proc is not None and self._proc.poll() is None:
            return
        self._ready = False
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "paploss.study.runner.warm"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            text=True,
            bufsize=1,
            env=child_env(self.device),
        )

    def _readline(self, deadline: float | None) -> str | None:
        """The zygote's next line; None at end of file or when ``deadline`` passed."""
        assert self._proc is not None and self._proc.stdout is not None
        stream: IO[str] = self._proc.stdout
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([stream], [], [], wait)
            if not ready:
                return None
            line = stream.readline()
            return line.strip() if line else None

    def _ensure_ready(self) -> None:
        self.start()
        if self._ready:
            return
        line = self._readline(time.monotonic() + START_TIMEOUT)
        if line != READY:
            self.close()
            raise TrialCrashed(f"the warm runner did not start (said {line!r})")
        self._ready = True

    def close(self) -> None:
        """Stop the zygote (a running child dies with it)."""
        proc, self._proc = self._proc, None
        self._ready = False
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()

    def __enter__(self) -> WarmRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- one training --------------------------------------------------------------------
    def run(self, run_dir: Path, *, config: Path, timeout: float | None = None) -> TrialResult:
        """Train ``config`` in a forked child; return its result dict.

        Raises:
            TrialCrashed: the child failed, was killed (e.g. out of memory), exceeded
                ``timeout`` seconds, or the zygote died.
        """
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / RESULT_FILE).unlink(missing_ok=True)
        self._ensure_ready()
        assert self._proc is not None and self._proc.stdin is not None
        spec = write_spec(run_dir, config=Path(config), device=self.device)
        deadline = None if timeout is None else time.monotonic() + timeout
        pids: list[int] | None = None  # by rank
        try:
            request = {"spec": str(spec), "nproc": self.nproc_per_trial}
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            line = self._readline(deadline)
            if line is not None and line.startswith("pid "):
                pids = [int(p) for p in line.split()[1:]]
                line = self._readline(deadline)
        except BrokenPipeError:
            line = None
        except BaseException:  # KeyboardInterrupt or the worker being stopped: no orphan
            self._kill(pids)
            raise
        if line is None or not line.startswith("exit "):
            timed_out = deadline is not None and time.monotonic() >= deadline
            self._kill(pids)
            self.close()  # its protocol state is unknown now: start afresh next time
            log_path = run_dir / LOG_FILE
            if timed_out:
                raise TrialCrashed(
                    f"training exceeded the trial timeout of {timeout:g} s and was killed "
                    f"(log: {log_path})"
                )
            raise TrialCrashed(
                f"the warm runner died during the training\n{log_tail(log_path)}\n(log: {log_path})"
            )
        rc, *failed = (int(v) for v in line.split()[1:])
        rank = failed[0] if failed else 0
        if rank == 0:
            return read_result(run_dir, rc)
        try:
            return read_result(run_dir, rc, log_file=rank_log(rank))
        except TrialCrashed as exc:
            raise TrialCrashed(f"rank {rank} of {self.nproc_per_trial}: {exc}") from None

    def _kill(self, pids: list[int] | None) -> None:
        for pid in pids or ():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# ================================================================================ zygote side
def _child(spec: Path, zygote_pid: int, rank: int = 0) -> int:
    """In the forked child (rank ``rank`` of a multi-process training): follow the zygote, log to
    the run's child.log (``child.rank<r>.log``), run the training."""
    die_with_parent(zygote_pid)
    run_dir = spec.parent
    (run_dir / rank_pid_file(rank)).write_text(f"{os.getpid()}\n")
    fd = os.open(run_dir / rank_log(rank), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdin = open(os.devnull)  # noqa: SIM115 (the child ends with os._exit)
    os.chdir(run_dir)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    return run_spec(spec)


def serve(preload: Sequence[str] = PRELOAD) -> int:
    """The zygote's loop: import, say ready, then fork one child per request line."""
    import importlib

    die_with_parent()
    # The parent handles Ctrl-C (it kills the running child); the zygote ignores it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in preload:
        importlib.import_module(name)
    # Move everything imported so far out of the garbage collector's reach: a child's collections
    # (mmengine's datasets call gc.collect(), 0.3 s each over this heap on 2 cores, and the
    # periodic ones during training) then skip the preloaded modules' objects, and do not touch,
    # hence copy, the pages the child shares with the zygote.
    gc.freeze()
    out = sys.stdout
    print(READY, file=out, flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        spec = Path(request["spec"])
        out.flush()
        sys.stderr.flush()
        run_rank = functools.partial(_child, spec, os.getpid())  # called with the rank
        pids = fork_ranks(int(request.get("nproc", 1)), run_rank)
        print("pid " + " ".join(map(str, pids)), file=out, flush=True)
        rc, rank = wait_ranks(pids)
        print(f"exit {rc} {rank}", file=out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(serve())
