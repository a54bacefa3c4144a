"""A fixed number of child commands side by side: the slots a reproduction's trainings share.

Each child runs in its own process group with its output appended to a log file; the reproduction
starts a child whenever a slot is free (:class:`paploss.reproduce.runner.Reproduction`), so the
cores never wait for the slowest training of a group. Leaving the pool (an interrupt, an error)
stops every child's process group: SIGINT, then SIGKILL after ``grace`` seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any


@dataclass
class _Child:
    proc: subprocess.Popen[bytes]
    out: IO[bytes]
    tag: Any


class ChildPool:
    """Up to ``slots`` child commands at once, each tagged by its caller."""

    def __init__(
        self, *, slots: int, env: Mapping[str, str], poll: float = 0.5, grace: float = 30.0
    ) -> None:
        if slots < 1:
            raise ValueError(f"a pool needs at least one slot, got {slots}")
        self.slots = slots
        self.env = dict(env)
        self.poll = poll
        self.grace = grace
        self._children: list[_Child] = []

    @property
    def running(self) -> int:
        """Children started and not yet collected by :meth:`wait_any`."""
        return len(self._children)

    @property
    def free(self) -> int:
        """Slots without a child."""
        return self.slots - len(self._children)

    def start(self, cmd: Sequence[str], log: Path, tag: Any, *, shown: str) -> None:
        """Start ``cmd`` in a free slot, its output appended to ``log`` after a ``$ shown`` line
        (``shown``: the command as a user types it); ``tag`` comes back from :meth:`wait_any`
        when it exits."""
        if not self.free:
            raise RuntimeError("no free slot: collect a finished child with wait_any() first")
        log.parent.mkdir(parents=True, exist_ok=True)
        out = open(log, "ab")  # noqa: SIM115  (closed when the child is collected)
        out.write(f"\n$ {shown}\n".encode())
        out.flush()
        try:
            proc = subprocess.Popen(
                list(cmd), stdout=out, stderr=subprocess.STDOUT, env=self.env,
                start_new_session=True,
            )  # fmt: skip
        except BaseException:
            out.close()
            raise
        self._children.append(_Child(proc, out, tag))

    def wait_any(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        """Block until at least one child has exited, or ``timeout`` seconds passed;
        ``[(tag, exit code), ...]`` of those that have, in the order they were started ([] when
        none has, or none runs)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._children:
            done = [c for c in self._children if c.proc.poll() is not None]
            if done:
                for child in done:
                    child.out.close()
                    self._children.remove(child)
                return [(c.tag, c.proc.returncode) for c in done]
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(self.poll)
        return []

    def stop_all(self) -> None:
        """Stop every running child's process group (SIGINT, SIGKILL after ``grace`` s)."""
        for child in self._children:
            if child.proc.poll() is None:
                _signal_group(child.proc, signal.SIGINT)
        for child in self._children:
            try:
                child.proc.wait(timeout=self.grace)
            except subprocess.TimeoutExpired:
                _signal_group(child.proc, signal.SIGKILL)
                child.proc.wait()
            child.out.close()
        self._children.clear()

    def __enter__(self) -> ChildPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:  # exited between poll() and the signal
        pass
