"""``--device``: the check that a CUDA device given on the command line is there, before a study
or run folder is created (no silent fallback to the CPU, ~100x slower); and the share of the CPU
cores that each of several processes training side by side gets (:func:`cpu_threads`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from paploss.study.cli import UsageError
from paploss.study.runner.trial import child_env


def cpu_threads(parts: int) -> int:
    """Torch threads of each of ``parts`` processes that share this machine's cores (at least 1):
    the ranks of one training, the local workers of a search, a reproduction's trainings."""
    return max(1, (os.cpu_count() or 1) // parts)


def check_device(device: str) -> None:
    """Exit-2 check of ``--device`` before anything is created: ``cuda`` needs a CUDA device,
    ``cuda:N`` the GPU N (as the trainings see it, ``CUDA_VISIBLE_DEVICES=N``); ``auto`` and
    ``cpu`` always pass. The count runs in a child process with the trainings' environment, so
    this process does not initialise CUDA (the warm runner forks the trainings later).

    Raises:
        UsageError: the device is not there, with the fix.
    """
    if not device.startswith("cuda"):
        return
    probe = "import json, torch; print(json.dumps([torch.version.cuda, torch.cuda.device_count()]))"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", probe],
            env=child_env(device),
            capture_output=True,
            text=True,
            timeout=300,
        )
        cuda_build, count = json.loads(proc.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, OSError, ValueError, IndexError) as exc:
        raise UsageError(
            f"--device {device}: cannot ask torch for CUDA devices ({type(exc).__name__}); use "
            "--device cpu or auto"
        ) from exc
    if count >= 1:
        return
    if cuda_build is None:
        why = "this torch is built without CUDA"
    elif device == "cuda":
        why = "torch finds no CUDA device on this machine"
    else:
        index = device.split(":", 1)[1]
        why = f"torch finds no GPU {index} (no device with CUDA_VISIBLE_DEVICES={index})"
    raise UsageError(
        f"--device {device}: {why}; use --device cpu, auto (CUDA if available, else CPU) or "
        "cuda:N of a GPU that nvidia-smi lists"
    )
