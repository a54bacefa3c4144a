"""metrics.json (paploss.study.runner.summary): one writer, one reader, and the files the previous
layout wrote (a dict spelled out in train.py) still read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paploss.study.runner.summary import FILE, TrainingSummary

PREVIOUS = {
    "status": "ok",
    "metrics": {"AP": 0.3125, "AP50": 0.5, "AP75": 0.25, "APs": 0.0, "APm": 0.25, "APl": 0.5},
    "train_seconds": 21.5,
    "eval_seconds": 1.25,
    "config": "studies/configs/proxy_retinanet_paploss.py",
    "data": {"train": "proxy", "val": "proxy"},
    "loss_params": {"default": {"preset": "paper-retinanet"}},
    "loss_options": {},
}
"""A metrics.json as train.py wrote it before TrainingSummary (same keys, same order)."""


def test_the_previous_files_read_and_write_back_byte_identical(tmp_path: Path) -> None:
    text = json.dumps(PREVIOUS, indent=1) + "\n"
    (tmp_path / FILE).write_text(text)
    summary = TrainingSummary.read(tmp_path)
    assert summary.metrics["AP"] == 0.3125 and summary.status == "ok"
    assert summary.train_seconds == 21.5 and summary.loss_params == PREVIOUS["loss_params"]
    out = tmp_path / "again"
    out.mkdir()
    assert summary.write(out).read_text() == text


def test_an_older_summary_without_the_optional_keys_reads(tmp_path: Path) -> None:
    old = {k: PREVIOUS[k] for k in ("status", "metrics", "train_seconds")}
    (tmp_path / FILE).write_text(json.dumps(old))
    summary = TrainingSummary.read(tmp_path)
    assert summary.eval_seconds == 0.0 and summary.loss_options == {} and summary.config == ""


@pytest.mark.parametrize(
    "text",
    ["[1, 2]", '{"status": "ok"}', '{"status": "ok", "metrics": {"AP50": 1}, "train_seconds": 1}',
     '{"status": "ok", "metrics": {"AP": "x"}, "train_seconds": 1}', "{not json"],
)  # fmt: skip
def test_a_damaged_summary_is_a_value_error(tmp_path: Path, text: str) -> None:
    (tmp_path / FILE).write_text(text)
    with pytest.raises(ValueError):
        TrainingSummary.read(tmp_path)
