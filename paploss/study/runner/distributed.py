"""Multi-process trials: one training run as N ranks of ``torch.distributed`` on one worker.

``paploss-search`` / ``paploss-train --nproc-per-trial N`` run every training as N processes with
torchrun's semantics (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT``) and mmengine's ``launcher='pytorch'``:

* **Launch.** The warm runner's zygote (:mod:`paploss.study.runner.warm`) forks the N ranks of a
  training (:func:`fork_ranks`), each with its :class:`RankEnv` in ``os.environ``, and waits for
  all of them (:func:`wait_ranks`): the first rank that fails or is killed makes the zygote kill
  the others at once, so a crashed rank fails that trial only and leaves no rank hanging in a
  collective. Once rank 0 has finished (its result written), the training's outcome is rank 0's
  and the other ranks get :data:`EXIT_GRACE` seconds to exit. Every rank follows the zygote
  (``PR_SET_PDEATHSIG`` plus a watchdog, as a single-process child does), and the parent kills
  every rank on ``--trial-timeout``. The process group also has a timeout (:data:`DIST_TIMEOUT`)
  for a rank that hangs without dying.
* **One loss.** :func:`loss_sync_hook` replaces each iteration's loss by its mean over the ranks
  before the trial monitor reads it, so a divergence (non-finite loss) or a collapse check stops
  all ranks at the same iteration.
* **One trial's params in all ranks.** Every rank builds the Runner from the same dumped
  ``config.py`` of the run (the trial's params are in it); only rank 0 writes ``result.json``,
  which the parent reads and reports to the study.
* **Devices.** On CPU the ranks use the ``gloo`` backend, each with ``cores / N`` torch threads
  (unless ``OMP_NUM_THREADS`` is set). With CUDA (``--device cuda`` or ``auto`` on a GPU machine)
  rank ``r`` uses GPU ``r`` of ``CUDA_VISIBLE_DEVICES`` with ``nccl``; the worker needs N GPUs.
* **Batch rule: the total batch is kept.** Each rank trains ``batch_size / N`` images per
  iteration (``train_dataloader.batch_size`` of the config must be divisible by N) and the
  learning rate is unchanged: the ranks' gradients are averaged by DDP, an epoch has the same
  number of iterations, and the ranks' batches of an iteration together are one batch of the
  total size (mmengine's ``DefaultSampler`` gives rank ``r`` every N-th index of one shuffled
  order; with the default batch sampler that is one process's batch). This is the
  linear scaling rule at a constant total batch (lr / total batch unchanged). Losses that
  normalize over the images of a rank's batch (the AP loss ranks the anchors of each rank's
  batch) see N smaller batches instead of one, so a run with N ranks is not bit-identical to
  one process.

The process group is initialized here (:func:`setup_rank`) before ``Runner.from_cfg``: mmengine
0.10.7's ``init_dist('pytorch')`` calls ``torch.cuda.set_device``, which fails on CPU, and its
Runner skips ``init_dist`` when a process group exists (``Runner.setup_env``). On CPU the model
wrapper gets ``device_ids=None`` (mmengine passes ``[LOCAL_RANK]``, which DDP accepts only for a
GPU module).
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from paploss.study.cli import UsageError
from paploss.study.runner.devices import cpu_threads

MASTER_ADDR = "127.0.0.1"
DIST_TIMEOUT = 1800
"""Seconds a collective may wait for the other ranks (torch's default) before it fails."""
EXIT_GRACE = 30.0
"""Seconds the other ranks may take to exit after rank 0 finished its run before they are killed."""


@dataclass(frozen=True)
class RankEnv:
    """One rank of a training on one host (torchrun's environment variables)."""

    rank: int
    world_size: int
    master_port: int
    master_addr: str = MASTER_ADDR

    @property
    def local_rank(self) -> int:
        return self.rank  # all ranks of a trial run on the worker's host

    def environ(self) -> dict[str, str]:
        """The environment variables torchrun would set for this rank."""
        return {
            "RANK": str(self.rank),
            "LOCAL_RANK": str(self.local_rank),
            "WORLD_SIZE": str(self.world_size),
            "LOCAL_WORLD_SIZE": str(self.world_size),
            "MASTER_ADDR": self.master_addr,
            "MASTER_PORT": str(self.master_port),
        }

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> RankEnv | None:
        """The rank this process is (None outside a multi-process training)."""
        env = os.environ if environ is None else environ
        if int(env.get("WORLD_SIZE", "1") or 1) <= 1:
            return None
        return cls(
            rank=int(env["RANK"]),
            world_size=int(env["WORLD_SIZE"]),
            master_port=int(env["MASTER_PORT"]),
            master_addr=env.get("MASTER_ADDR", MASTER_ADDR),
        )


def rank_log(rank: int) -> str:
    """The log file of a rank in the run folder: rank 0 writes ``child.log``."""
    return "child.log" if rank == 0 else f"child.rank{rank}.log"


def rank_pid_file(rank: int) -> str:
    """The pid file of a rank in the run folder: rank 0 writes ``child.pid``."""
    return "child.pid" if rank == 0 else f"child.rank{rank}.pid"


def free_port() -> int:
    """A TCP port of the loopback interface that is free now (for ``MASTER_PORT``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((MASTER_ADDR, 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------------ checks
def loss_sync_hook() -> Any:
    """A hook that makes every rank see the same training loss: it replaces ``outputs["loss"]``
    of each iteration by its mean over the ranks (one all-reduce of a scalar), before the trial
    monitor reads it (priority ``VERY_HIGH`` runs before the monitor's ``ABOVE_NORMAL``). The
    monitor's decisions on that loss (a non-finite loss, the collapse rule) are then taken at the
    same iteration by all ranks, so no rank stops while the others wait for it in a collective,
    and rank 0's loss curve is the mean over the ranks."""
    import torch
    import torch.distributed as dist
    from mmengine.hooks import Hook

    class RankLossSyncHook(Hook):
        priority = "VERY_HIGH"

        def after_train_iter(
            self,
            runner: Any,
            batch_idx: int,
            data_batch: Any = None,
            outputs: dict[str, Any] | None = None,
        ) -> None:
            if not outputs or "loss" not in outputs:
                return
            loss = torch.as_tensor(outputs["loss"]).detach().to(torch.float64).reshape(1).clone()
            dist.all_reduce(loss)
            outputs["loss"] = loss[0] / dist.get_world_size()

    return RankLossSyncHook()


def check_nproc(cfg: Any, nproc: int, device: str) -> None:
    """Exit-2 checks of ``--nproc-per-trial`` before anything is written.

    Raises:
        UsageError: N ranks on one given GPU (``cuda:K``), or a training batch not divisible by N.
    """
    if nproc <= 1:
        return
    if device.startswith("cuda:"):
        raise UsageError(
            f"--nproc-per-trial {nproc} with --device {device}: the ranks of a trial need one GPU "
            f"each; give --device cuda and CUDA_VISIBLE_DEVICES listing {nproc} GPUs"
        )
    batch = (cfg.get("train_dataloader") or {}).get("batch_size")
    if not isinstance(batch, int) or batch % nproc != 0:
        raise UsageError(
            f"--nproc-per-trial {nproc}: train_dataloader.batch_size={batch!r} is not divisible "
            f"by {nproc} (the total batch is kept: each rank trains batch_size / {nproc} images "
            "per iteration); set --cfg-options train_dataloader.batch_size=... to a multiple"
        )


# ------------------------------------------------------------------------------ rank side
def setup_rank(cfg: Any, rank: RankEnv) -> str:
    """In a rank's process, before ``Runner.from_cfg(cfg)``: join the process group and set the
    config up for ``launcher='pytorch'`` with the per-rank batch. Returns the backend."""
    import torch
    import torch.distributed as dist

    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(rank.local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
        if "OMP_NUM_THREADS" not in os.environ:
            torch.set_num_threads(cpu_threads(rank.world_size))
    if not dist.is_initialized():
        dist.init_process_group(
            backend,
            init_method=f"tcp://{rank.master_addr}:{rank.master_port}",
            rank=rank.rank,
            world_size=rank.world_size,
            timeout=datetime.timedelta(seconds=DIST_TIMEOUT),
        )
    cfg.launcher = "pytorch"
    env_cfg = dict(cfg.get("env_cfg") or {})
    env_cfg["dist_cfg"] = dict(backend=backend, timeout=DIST_TIMEOUT)
    cfg.env_cfg = env_cfg
    cfg.train_dataloader.batch_size = int(cfg.train_dataloader.batch_size) // rank.world_size
    if not use_cuda:
        wrapper = dict(cfg.get("model_wrapper_cfg") or {})
        wrapper.setdefault("type", "MMDistributedDataParallel")
        wrapper.setdefault("broadcast_buffers", False)
        wrapper.setdefault("find_unused_parameters", bool(cfg.get("find_unused_parameters", False)))
        wrapper["device_ids"] = None  # a CPU module: DDP takes no device ids
        cfg.model_wrapper_cfg = wrapper
    return backend


# ------------------------------------------------------------------------------ zygote side
def fork_ranks(nproc: int, run_rank: Callable[[int], int]) -> list[int]:
    """Fork ``nproc`` processes; process ``r`` gets its :class:`RankEnv` in ``os.environ`` (for
    ``nproc > 1``) and exits with ``run_rank(r)``. Returns the pids by rank."""
    import sys

    port = free_port() if nproc > 1 else 0
    pids: list[int] = []
    for rank in range(nproc):
        pid = os.fork()
        if pid == 0:  # the rank's process
            code = 1
            try:
                if nproc > 1:
                    os.environ.update(
                        RankEnv(rank=rank, world_size=nproc, master_port=port).environ()
                    )
                code = run_rank(rank)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        pids.append(pid)
    return pids


def exit_code(status: int) -> int:
    """A ``waitpid`` status as an exit code (negative: killed by that signal)."""
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def wait_ranks(pids: list[int], *, grace: float = EXIT_GRACE) -> tuple[int, int]:
    """Wait for every rank; at the first one that fails or is killed, kill the others.

    Rank 0's result decides: once rank 0 has exited with 0 (its result is written), a rank that
    fails later does not fail the training, and a rank still running ``grace`` seconds later is
    killed.

    Returns:
        ``(exit code, rank)`` of the first failure (a rank killed by a signal before the poll that
        saw its peer fail), or ``(0, 0)`` when rank 0 succeeded first.
    """
    remaining = dict(zip(pids, range(len(pids))))
    failure: tuple[int, int] | None = None
    rank0_done: float | None = None
    while remaining:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:  # nobody exited yet
            if rank0_done is not None and time.monotonic() - rank0_done > grace:
                _kill(remaining)
            time.sleep(0.05)
            continue
        rank = remaining.pop(pid, None)
        if rank is None:
            continue  # not a rank of this training
        rc = exit_code(status)
        if failure is not None or rank0_done is not None:
            continue
        if rank == 0 and rc == 0:
            rank0_done = time.monotonic()
        elif rc != 0:
            failure = _root_cause((rc, rank), remaining)
            _kill(remaining)
    return failure or (0, 0)


def _root_cause(first: tuple[int, int], remaining: dict[int, int]) -> tuple[int, int]:
    """The failure to report when ``first`` (exit code, rank) is the first one reaped.

    A rank killed by a signal (out of memory, ``kill -9``) makes its peers fail in their next
    collective a moment later ("Read error" from gloo). When both have exited before the poll,
    ``waitpid`` reaps the lower rank first, so the peer's error would hide the killed rank. Every
    rank that has already exited is reaped here (removed from ``remaining``), and the first one
    killed by a signal is reported in place of ``first``.
    """
    if first[0] < 0:
        return first
    while remaining:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            break
        rank = remaining.pop(pid, None)
        rc = exit_code(status)
        if rank is not None and rc < 0:
            return rc, rank
    return first


def _kill(pids: Mapping[int, int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
