"""One training run (a search trial or a final training) and its result, as the parent sees it.

:class:`paploss.study.runner.warm.WarmRunner` forks the child that runs a spec file (:func:`write_spec`,
:func:`paploss.study.runner.child.run_spec`) with stdout/stderr going to ``<run dir>/child.log``;
:func:`read_result` turns what the child left into a :class:`TrialResult`, or raises
:class:`TrialCrashed` when the child failed, was killed (e.g. out of memory) or timed out. A crash
therefore fails only that trial. The child side is :mod:`paploss.study.runner.child`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
RESULT_FILE = "result.json"
SPEC_FILE = "spec.json"
LOG_FILE = "child.log"
CONFIG_FILE = "config.py"
ENV_PARENT = "PAPLOSS_PARENT_PID"
FINISHED = ("ok", "diverged", "collapsed")
"""The statuses of a training that finished (any other ends its trial as crashed)."""


@dataclass(frozen=True)
class TrialResult:
    """What a finished training reports (``result.json`` in its run folder): written by the child
    (:func:`paploss.study.runner.child.execute`), read by the parent (:func:`read_result`).

    Attributes:
        status: "ok", "diverged" (a non-finite loss or blow-up) or "collapsed" (stopped by the
            config's CollapseRule); metrics are 0 unless "ok".
        metrics: AP, AP50, AP75, APs, APm, APl of the evaluation (bbox mAP, 0..1).
        raw_metrics: everything the evaluator logged.
        has_detections: False when the evaluation saw no detection at all.
        loss_curve: ``[(iteration, loss), ...]`` of the training.
        iterations: training iterations run.
        diverged_at: the iteration of the divergence, or None.
        diverged_reason: what ended the training early (the divergence's report, or the
            collapse's measured drop), or None.
        train_seconds, eval_seconds, wall_seconds: durations of training, evaluation, the whole run.
        startup_seconds: launch to start of the run (process start and imports, or a fork), or
            None when the launch time is unknown.
        work_dir: mmengine's work dir of the run.
        collapsed_at: the iteration at which a collapsed training was stopped, or None.
    """

    status: str
    metrics: dict[str, float]
    raw_metrics: dict[str, Any]
    has_detections: bool
    loss_curve: list[tuple[int, float]]
    iterations: int
    diverged_at: int | None
    diverged_reason: str | None
    train_seconds: float
    eval_seconds: float
    wall_seconds: float
    startup_seconds: float | None
    work_dir: str
    collapsed_at: int | None = None

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    @property
    def collapsed(self) -> bool:
        return self.status == "collapsed"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrialResult:
        """Inverse of to_json; ValueError when fields are missing or unknown."""
        names = {f.name for f in dataclasses.fields(cls)}
        optional = {f.name for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
        missing, unknown = names - optional - set(data), set(data) - names
        if missing or unknown:
            raise ValueError(
                f"not a trial result: missing {sorted(missing)}, unknown {sorted(unknown)}"
            )
        values = dict(data)
        values["loss_curve"] = [(int(i), float(v)) for i, v in values["loss_curve"]]
        return cls(**values)


class TrialCrashed(RuntimeError):
    """The child process failed, was killed, or timed out (the trial is FAILED)."""


def package_root() -> str | None:
    """The folder that contains the imported ``paploss`` package (a checkout, or the folder an
    editable install maps), or None when it is a site-packages folder of this interpreter, which
    the child (same interpreter) searches anyway and which must not go before the standard
    library."""
    import site

    import paploss

    root = Path(paploss.__file__).resolve().parent.parent
    installed = site.getsitepackages()
    if site.ENABLE_USER_SITE:
        installed.append(site.getusersitepackages())
    if any(Path(p).resolve() == root for p in installed):
        return None
    return str(root)


def child_env(device: str) -> dict[str, str]:
    """Environment of the child: the device selection and the parent's pid."""
    env = dict(os.environ)
    env[ENV_PARENT] = str(os.getpid())
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    elif device.startswith("cuda:"):
        env["CUDA_VISIBLE_DEVICES"] = device.split(":", 1)[1]
    env.setdefault("PYTHONUNBUFFERED", "1")
    # The child imports the same paploss as the parent (a checkout, an editable install, a
    # wheel's copy): the folder that holds the imported package goes first on its path unless
    # it is this interpreter's site-packages.
    root = package_root()
    if root is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def write_spec(run_dir: Path, *, config: Path, device: str) -> Path:
    """Write the child's spec (what to run, where to put the result)."""
    spec = {
        "config": str(config),
        "device": device,
        "result": str(run_dir / RESULT_FILE),
        "launched_at": time.time(),
    }
    path = run_dir / SPEC_FILE
    path.write_text(json.dumps(spec, indent=1) + "\n")
    return path


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file ('' if missing)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def read_result(run_dir: Path, rc: int, *, log_file: str = LOG_FILE) -> TrialResult:
    """The result a child with exit status ``rc`` (negative: killed by that signal) left in
    ``run_dir``; TrialCrashed unless it finished with status ok, diverged or collapsed. ``log_file``: the
    log quoted in the error (a failed rank's own log in a multi-process training)."""
    result_path = run_dir / RESULT_FILE
    log_path = run_dir / log_file
    result = None
    if result_path.is_file():
        try:
            result = json.loads(result_path.read_text())
        except json.JSONDecodeError:
            result = None
    if not isinstance(result, dict):
        result = None
    if rc != 0 or result is None or result.get("status") not in FINISHED:
        if rc < 0:
            name = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else rc
            reason = f"training process killed by {name}"
            if -rc == signal.SIGKILL:
                reason += " (out of memory?)"
        elif result is not None and result.get("error"):
            reason = f"training failed: {result['error']}"
        else:
            reason = f"training process exited with code {rc}"
        raise TrialCrashed(f"{reason}\n{log_tail(log_path)}\n(log: {log_path})")
    try:
        return TrialResult.from_json(result)
    except (TypeError, ValueError) as exc:
        raise TrialCrashed(f"{result_path}: {exc}\n(log: {log_path})") from exc


def loss_buckets(curve: Sequence[Sequence[float]], max_points: int = 50) -> list[tuple[int, float]]:
    """Mean loss per bucket of consecutive iterations, at most ``max_points`` buckets; each bucket
    is reported at its last iteration. Non-finite losses are left out."""
    points = [(int(i), float(v)) for i, v in curve if math.isfinite(float(v))]
    if not points:
        return []
    size = max(1, math.ceil(len(points) / max_points))
    out = []
    for start in range(0, len(points), size):
        chunk = points[start : start + size]
        out.append((chunk[-1][0], sum(v for _, v in chunk) / len(chunk)))
    return out
