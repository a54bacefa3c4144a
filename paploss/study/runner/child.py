"""The child side of one training run (a search trial or a final training).

:func:`execute` builds the mmengine Runner from the dumped config, trains, evaluates with the
config's CocoMetric, and writes ``result.json`` (``TrialResult.to_json``; a failed run writes
``{"status": "error", "error", "traceback"}`` instead). :func:`run_spec` runs what a spec file
written by the parent (:func:`paploss.study.runner.trial.write_spec`) describes; the warm runner calls it
in a forked child, ``studies/train.py`` calls :func:`execute` in its own process.

Divergence: a non-finite total loss stops training at once (the monitor hook raises
:class:`TrainingDiverged`), and a :class:`paploss.errors.NonFiniteError` from the loss or
non-finite weights end it too; the run then counts as a measured AP of 0 (the paper's protocol),
``status = "diverged"``. Collapse: a config's ``collapse_rule`` (search trials only,
:mod:`paploss.study.config.early_stop`) ends a training whose loss has not dropped enough at its check,
with AP 0 and ``status = "collapsed"``. AP values are fractions in [0, 1] as in mmdet (-1 where COCOeval has no
ground truth of that size), taken at full precision from COCOeval's stats (mmdet's metric dict
rounds to 3 decimals).

The child dies with its parent (``PR_SET_PDEATHSIG`` on Linux plus a watchdog thread), so a killed
search worker leaves no training behind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from paploss.study.config.early_stop import CONFIG_KEY as COLLAPSE_KEY
from paploss.study.config.early_stop import CollapseRule
from paploss.study.runner.trial import ENV_PARENT, METRICS, TrialResult

_MMDET_SUFFIX = {
    "AP": "bbox_mAP",
    "AP50": "bbox_mAP_50",
    "AP75": "bbox_mAP_75",
    "APs": "bbox_mAP_s",
    "APm": "bbox_mAP_m",
    "APl": "bbox_mAP_l",
}


class TrainingDiverged(RuntimeError):
    """Raised by the monitor hook at the first non-finite loss."""

    def __init__(self, iteration: int, loss: float) -> None:
        super().__init__(f"non-finite loss {loss} at iteration {iteration}")
        self.iteration = iteration
        self.loss = loss


def die_with_parent(expected_pid: int | None = None) -> None:
    """Exit when the parent dies: PR_SET_PDEATHSIG (Linux) and a polling watchdog thread.

    ``expected_pid``: the parent to follow; None reads it from ``$PAPLOSS_PARENT_PID`` (nothing
    happens when that is unset)."""
    if expected_pid is None:
        expected = os.environ.get(ENV_PARENT)
        if not expected:
            return
        expected_pid = int(expected)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != expected_pid:
        os._exit(137)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != expected_pid:
                os._exit(137)

    threading.Thread(target=watch, name="paploss-parent-watchdog", daemon=True).start()


@contextlib.contextmanager
def capture_coco_stats() -> Iterator[list[tuple[str, list[float]]]]:
    """Record ``(iouType, stats)`` of every COCOeval.summarize() (full precision)."""
    from pycocotools.cocoeval import COCOeval

    classes: list[type] = [COCOeval]
    try:
        from mmdet.datasets.api_wrappers import COCOevalMP

        classes.append(COCOevalMP)
    except ImportError:  # pragma: no cover - mmdet < 3.3
        pass
    records: list[tuple[str, list[float]]] = []
    originals = {c: c.__dict__["summarize"] for c in classes if "summarize" in c.__dict__}

    def wrap(original: Any) -> Any:
        def summarize(self: Any, *args: Any, **kwargs: Any) -> Any:
            out = original(self, *args, **kwargs)
            records.append((str(self.params.iouType), [float(x) for x in self.stats]))
            return out

        return summarize

    for cls, original in originals.items():
        cls.summarize = wrap(original)
    try:
        yield records
    finally:
        for cls, original in originals.items():
            cls.summarize = original


def _monitor_hook_class() -> type:
    from mmengine.hooks import Hook

    class TrialMonitorHook(Hook):
        """Records the loss of every iteration, training/evaluation times and the last
        validation metrics; raises TrainingDiverged at the first non-finite loss and
        TrainingCollapsed when ``rule`` (a CollapseRule, or None) decides the training
        collapsed."""

        priority = "ABOVE_NORMAL"

        def __init__(self, rule: Any = None) -> None:
            self.rule = rule
            self.curve: list[list[float]] = []
            self.train_seconds = 0.0
            self.eval_seconds = 0.0
            self.metrics: dict[str, float] | None = None
            self._t0 = 0.0
            self._v0 = 0.0

        def before_train_epoch(self, runner: Any) -> None:
            self._t0 = time.perf_counter()

        def after_train_iter(
            self,
            runner: Any,
            batch_idx: int,
            data_batch: Any = None,
            outputs: Mapping[str, Any] | None = None,
        ) -> None:
            if not outputs or "loss" not in outputs:
                return
            value = outputs["loss"]
            loss = float(value.detach() if hasattr(value, "detach") else value)
            iteration = runner.iter + 1
            self.curve.append([iteration, loss])
            if not math.isfinite(loss):
                self.stop_clock()
                raise TrainingDiverged(iteration, loss)
            if self.rule is not None and iteration == self.rule.check_at:
                losses = [v for _, v in self.curve]
                if self.rule.collapsed(losses):
                    from paploss.study.config.early_stop import TrainingCollapsed

                    self.stop_clock()
                    raise TrainingCollapsed(iteration, self.rule.motion(losses), self.rule)

        def after_train_epoch(self, runner: Any) -> None:
            self.stop_clock()

        def stop_clock(self) -> None:
            """Add the time since the epoch started (training ended early or normally)."""
            if self._t0:
                self.train_seconds += time.perf_counter() - self._t0
                self._t0 = 0.0

        def before_val_epoch(self, runner: Any) -> None:
            self._v0 = time.perf_counter()

        def after_val_epoch(self, runner: Any, metrics: Mapping[str, float] | None = None) -> None:
            self.eval_seconds += time.perf_counter() - self._v0
            self.metrics = {k: float(v) for k, v in (metrics or {}).items() if _is_number(v)}

    return TrialMonitorHook


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _select_metrics(
    raw: Mapping[str, float], coco_stats: Sequence[tuple[str, list[float]]]
) -> tuple[dict[str, float], bool]:
    """(AP, AP50, ... at full precision, whether bbox results were there at all)."""
    bbox_stats = [s for kind, s in coco_stats if kind == "bbox"]
    rounded: dict[str, float] = {}
    for name, suffix in _MMDET_SUFFIX.items():
        keys = [k for k in raw if k == suffix or k.endswith("/" + suffix)]
        if keys:
            rounded[name] = float(raw[keys[0]])
    if len(rounded) < len(METRICS):
        # CocoMetric returns no bbox metrics when there is not a single detection: AP 0.
        return {name: 0.0 for name in METRICS}, False
    if bbox_stats:
        precise = dict(zip(METRICS, bbox_stats[-1][:6]))
        if all(abs(precise[n] - rounded[n]) <= 6e-4 for n in METRICS):
            return precise, True
    return rounded, True


def is_numerical_blowup(exc: BaseException) -> bool:
    """Whether an exception (or one in its chain) reports non-finite numbers by its type: the
    Parameterized AP Loss refusing NaN/inf inputs after the weights blew up
    (:class:`paploss.errors.NonFiniteError`) or a ``FloatingPointError``. Such a training has
    diverged, it did not crash."""
    from paploss.errors import NonFiniteError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (FloatingPointError, NonFiniteError)):
            return True
        current = current.__cause__ or current.__context__
    return False


def _parameters_finite(model: Any) -> bool:
    import torch

    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def execute(
    config: Path | str,
    result_path: Path | str | None = None,
    *,
    launched_at: float | None = None,
) -> TrialResult:
    """Train and evaluate the mmengine config; return (and write) the TrialResult.

    ``launched_at``: ``time.time()`` when the parent launched this run; the result then records
    ``startup_seconds``, the time from the launch to the start of this function (process start
    and imports for a cold child, the fork for a warm one).

    A non-finite loss ends training with ``status = "diverged"`` and all metrics 0, the config's
    CollapseRule with ``status = "collapsed"`` and all metrics 0; other
    exceptions propagate (after writing ``status = "error"`` with the message).
    """
    from mmengine.runner import Runner

    from paploss.study.config.mmcfg import read_config
    from paploss.study.runner.distributed import RankEnv, loss_sync_hook, setup_rank

    rank = RankEnv.from_environ()  # None: one process
    if rank is not None and rank.rank != 0:
        result_path = None  # only rank 0 writes the result that the parent reports
    startup = None if launched_at is None else max(0.0, time.time() - float(launched_at))
    started = time.perf_counter()
    try:
        cfg = read_config(config)
        if rank is not None:  # one of N ranks (paploss.study.runner.distributed)
            setup_rank(cfg, rank)
        rule = CollapseRule.from_config(cfg.get(COLLAPSE_KEY))
        runner = Runner.from_cfg(cfg)
        if rank is not None:  # every rank decides on the same (mean) loss
            runner.register_hook(loss_sync_hook())
        monitor = _monitor_hook_class()(rule)
        runner.register_hook(monitor)
        with capture_coco_stats() as coco_stats:
            diverged_at, diverged_reason, collapsed_at = _train(runner, monitor)
        if collapsed_at is not None:
            metrics = {name: 0.0 for name in METRICS}
            status, has_detections = "collapsed", False
        elif diverged_at is not None:
            metrics = {name: 0.0 for name in METRICS}
            status, has_detections = "diverged", False
        else:
            if monitor.metrics is None:
                raise RuntimeError(
                    "training ended without a validation run (is val_dataloader/val_cfg set?)"
                )
            metrics, has_detections = _select_metrics(monitor.metrics, coco_stats)
            status = "ok"
        result = TrialResult(
            status=status,
            metrics=metrics,
            raw_metrics=monitor.metrics or {},
            has_detections=has_detections,
            loss_curve=[(int(i), float(v)) for i, v in monitor.curve],
            iterations=len(monitor.curve),
            diverged_at=diverged_at,
            diverged_reason=diverged_reason,
            collapsed_at=collapsed_at,
            train_seconds=monitor.train_seconds,
            eval_seconds=monitor.eval_seconds,
            wall_seconds=time.perf_counter() - started,
            startup_seconds=startup,
            work_dir=str(cfg.work_dir),
        )
    except Exception as exc:
        if result_path is not None:
            _write(Path(result_path), _error_record(exc))
        raise
    if result_path is not None:
        _write(Path(result_path), result.to_json())
    return result


def _train(runner: Any, monitor: Any) -> tuple[int | None, str | None, int | None]:
    """``runner.train()``; (the iteration and reason of a divergence, or None, None; the
    iteration at which the CollapseRule stopped a collapsed training, or None).

    A divergence is the monitor's non-finite loss, or an exception after the loss or the weights
    went non-finite, or one that reports non-finite numbers by its type
    (:func:`is_numerical_blowup`); any other exception propagates."""
    from paploss.study.config.early_stop import TrainingCollapsed

    try:
        runner.train()
    except TrainingCollapsed as exc:
        return None, str(exc), exc.iteration
    except TrainingDiverged as exc:
        return exc.iteration, str(exc), None
    except Exception as exc:
        last = monitor.curve[-1][1] if monitor.curve else 0.0
        if (
            math.isfinite(last)
            and _parameters_finite(runner.model)
            and not is_numerical_blowup(exc)
        ):
            raise
        monitor.stop_clock()
        return len(monitor.curve) + 1, f"{type(exc).__name__}: {exc}", None
    return None, None, None


def _error_record(exc: BaseException) -> dict[str, str]:
    """What ``result.json`` holds for a run that failed (the parent reports ``error``)."""
    return {
        "status": "error",
        "error": f"{type(exc).__name__}: {exc}",
        "traceback": traceback.format_exc(),
    }


def _write(path: Path, data: Mapping[str, Any]) -> None:
    from paploss.study.data.sources import write_json_atomic

    write_json_atomic(path, data, indent=1)


def run_spec(spec_path: Path) -> int:
    """Run the training a spec file describes, in this process; the exit status for the parent."""
    spec = json.loads(Path(spec_path).read_text())
    try:
        result = execute(spec["config"], spec["result"], launched_at=spec.get("launched_at"))
    except Exception:
        traceback.print_exc()
        return 1
    print(
        f"[trial] status={result.status} AP={result.metrics['AP']:.4f} "
        f"train={result.train_seconds:.1f}s eval={result.eval_seconds:.1f}s",
        flush=True,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Child entry point: ``python -m paploss.study.runner.child SPEC.json``."""
    parser = argparse.ArgumentParser(
        prog="python -m paploss.study.runner.child",
        description="Run one training of a study in this process (started by studies/search.py).",
    )
    parser.add_argument("spec", type=Path, help="spec.json written by the parent")
    args = parser.parse_args(argv)
    die_with_parent()
    return run_spec(args.spec)


if __name__ == "__main__":
    sys.exit(main())
