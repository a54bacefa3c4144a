"""Local workers of one search (``paploss-search --workers N``): this process and N - 1 copies of
its command on the same machine, all on the same study.

The copies are the command line with ``--workers`` ignored (:data:`HELPER_ENV` set), so each one
is an ordinary worker that joins the study through ``--storage`` (PPO2 synchronizes the rounds of
all workers through the storage, as for workers on many machines). The CPU cores are shared: every
worker's trainings get ``cores // N`` torch threads unless ``OMP_NUM_THREADS`` is set. The copies
write their progress to ``<study work dir>/worker<k>.log``; this process prints the lines of every
worker's trials and rounds (:meth:`~paploss.study.search.progress.Progress.print_new`) and the
summary once every worker has ended. Ctrl-C or SIGTERM stops the copies too (each fails its
running trial and queues its sample again, as a stopped single worker does).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from paploss.study.runner.devices import cpu_threads

HELPER_ENV = "PAPLOSS_SEARCH_HELPER"
"""Set in the copies' environment: a copy ignores ``--workers`` (it starts no copies itself)."""


def is_helper() -> bool:
    """True in a copy started by :class:`LocalWorkers`."""
    return os.environ.get(HELPER_ENV) == "1"


def share_cores(workers: int) -> None:
    """Give every one of ``workers`` local workers ``cores // workers`` torch threads (at least
    one) through ``OMP_NUM_THREADS``, unless it is set; the trainings' processes inherit it."""
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(cpu_threads(workers))


class LocalWorkers:
    """Starts ``count - 1`` copies of the search command on entry and, on exit, waits for them
    (the study ran to its end) or stops them (an exception, e.g. Ctrl-C, ended this worker).

    Args:
        argv: this process's command-line arguments (without the program).
        count: the number of workers, this process included.
        log_dir: where the copies' logs go (``worker1.log`` ...).
    """

    def __init__(self, argv: Sequence[str], *, count: int, log_dir: Path) -> None:
        self.argv = list(argv)
        self.count = count
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> LocalWorkers:
        share_cores(self.count)
        env = {**os.environ, HELPER_ENV: "1"}
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for k in range(1, self.count):
            log = self.log_dir / f"worker{k}.log"
            with open(log, "ab") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "paploss.study.search", *self.argv],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                )
            self.procs.append(proc)
            print(f"[search] worker {k}: pid {proc.pid}, log {log}", flush=True)
        return self

    def wait(self) -> int:
        """Wait for every copy; the largest exit code (0 when all succeeded)."""
        codes = [proc.wait() for proc in self.procs]
        for k, code in enumerate(codes, start=1):
            if code:
                print(
                    f"[search] worker {k} exited with code {code}; see "
                    f"{self.log_dir / f'worker{k}.log'}",
                    file=sys.stderr,
                    flush=True,
                )
        return max(codes, default=0)

    def stop(self) -> None:
        """SIGTERM every running copy (it queues its trial's sample again) and wait for it."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.stop()
