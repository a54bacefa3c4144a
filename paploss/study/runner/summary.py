"""``metrics.json``: the summary a final training (``paploss-train``) writes into its work dir, and
that the reproduction reads back for each row seed. :class:`TrainingSummary` is its one writer
(:meth:`TrainingSummary.write`) and its one reader (:meth:`TrainingSummary.read`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FILE = "metrics.json"
"""The summary's file name in a training's work dir."""


@dataclass(frozen=True, kw_only=True)
class TrainingSummary:
    """What a final training reports.

    Attributes:
        status: the run's status (``TrialResult.status``, e.g. ``"ok"``).
        metrics: COCO bbox metrics in [0, 1] by name (``AP``, ``AP50``, ``AP75``, ``APs``, ...).
        train_seconds, eval_seconds: the training's and the evaluation's wall time.
        config: the config file trained, as given.
        data: the data trained and evaluated on (``--data`` / ``--val-data`` record).
        loss_params: each loss slot's parameters (``"default"`` for the config's one slot).
        loss_options: the loss options set on every head (empty: the defaults).
    """

    status: str
    metrics: Mapping[str, float]
    train_seconds: float
    eval_seconds: float = 0.0
    config: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    loss_params: Mapping[str, Any] = field(default_factory=dict)
    loss_options: Mapping[str, Any] = field(default_factory=dict)

    def write(self, work_dir: Path) -> Path:
        """Write ``work_dir/metrics.json`` (indented JSON, keys in field order); returns its
        path."""
        path = Path(work_dir) / FILE
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")
        return path

    @classmethod
    def read(cls, work_dir: Path) -> TrainingSummary:
        """The summary in ``work_dir/metrics.json``.

        Raises:
            OSError: the file cannot be read.
            ValueError: it is no JSON object with a status, metrics with an ``AP`` and the
                training time (``json.JSONDecodeError`` is a ValueError).
        """
        data = json.loads((Path(work_dir) / FILE).read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{FILE}: not a JSON object")
        try:
            metrics = {str(k): float(v) for k, v in data["metrics"].items()}
            if "AP" not in metrics:
                raise KeyError("AP")
            return cls(
                status=str(data["status"]),
                metrics=metrics,
                train_seconds=float(data["train_seconds"]),
                eval_seconds=float(data.get("eval_seconds", 0.0)),
                config=str(data.get("config", "")),
                data=dict(data.get("data") or {}),
                loss_params=dict(data.get("loss_params") or {}),
                loss_options=dict(data.get("loss_options") or {}),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"{FILE}: not a training summary ({exc!r})") from exc
