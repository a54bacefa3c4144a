"""Helpers of the Faster R-CNN and Deformable DETR integration tests (tests/test_mmdet_*.py).

Direct (independent of mmdet) box computations for the hand-built batches, and small runners
that build a detector from a config, train it a few iterations on the bundled proxy data and
evaluate it with mmdet's CocoMetric (pycocotools).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import uuid
from pathlib import Path
from typing import Any

import torch
import torchvision
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from torch import nn

import paploss.mmdet  # noqa: F401  (registers the heads)
from paploss.mmdet._common import set_data_root
from paploss.proxy import generate_proxy_dataset

CONFIG_DIR = Path(__file__).resolve().parents[1] / "studies" / "configs"

TINY_PROXY = dict(num_train=8, num_eval=4, num_val=4)
"""A tiny proxy dataset: 8 training images, 4 evaluation images (seconds to generate)."""


def tiny_proxy_root() -> Path:
    """Root of the tiny proxy dataset (train / eval / val split folders, COCO format).

    Generated once into the proxy cache (``$PAPLOSS_DATA``, default ``~/.cache/paploss/proxy``)
    and reused; ``generate_proxy_dataset`` is idempotent and safe for concurrent processes.
    """
    return generate_proxy_dataset(**TINY_PROXY)["train"].parent


# ----------------------------------------------------------------------------- direct math
def decode_deltas(
    boxes: torch.Tensor, deltas: torch.Tensor, stds: tuple[float, ...]
) -> torch.Tensor:
    """R-CNN delta decoding written out: [K, 4] xyxy boxes + [K, 4] (dx, dy, dw, dh) -> [K, 4]."""
    d = deltas * torch.tensor(stds, dtype=deltas.dtype)
    wh = boxes[:, 2:] - boxes[:, :2]
    center = (boxes[:, :2] + boxes[:, 2:]) / 2 + d[:, :2] * wh
    new_wh = wh * d[:, 2:].exp()
    return torch.cat([center - new_wh / 2, center + new_wh / 2], dim=1)


def giou_scores(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Element-wise (GIoU + 1) / 2 ("giou") or IoU ("iou") of [K, 4] xyxy boxes (torchvision)."""
    if kind == "giou":
        return (torchvision.ops.generalized_box_iou(pred, target).diagonal() + 1) / 2
    if kind == "iou":
        return torchvision.ops.box_iou(pred, target).diagonal()
    raise ValueError(f"unknown kind {kind!r}")


# ----------------------------------------------------------------------------- model runs
def build_model(cfg: Config) -> nn.Module:
    """Build and initialize ``cfg.model`` in mmdet's scope."""
    from mmdet.registry import MODELS

    init_default_scope("mmdet")
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.init_weights()
    return model


def _loss_terms(losses: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The loss entries of a model's loss dict, per-level lists summed."""
    terms = {}
    for key, value in losses.items():
        if "loss" not in key:
            continue
        terms[key] = sum(value) if isinstance(value, list) else value
    return terms


def one_loss_step(model: nn.Module, cfg: Config, data_root: Path) -> dict[str, torch.Tensor]:
    """Loss terms of ``model`` on one training batch (2 images) of the proxy data."""
    cfg = copy.deepcopy(cfg)
    set_data_root(cfg, data_root)
    cfg.train_dataloader.batch_size = 2
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    data = model.data_preprocessor(next(iter(loader)), True)
    model.train()
    return _loss_terms(model(**data, mode="loss"))


class _Record(Hook):
    """Records the total training loss of every iteration and the validation metrics."""

    priority = "LOWEST"

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.metrics: dict[str, float] = {}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:  # noqa: ANN001
        self.losses.append(float(outputs["loss"].detach()))

    def after_val_epoch(self, runner, metrics=None) -> None:  # noqa: ANN001
        self.metrics.update(metrics or {})


@dataclasses.dataclass
class TrainResult:
    losses: list[float]
    metrics: dict[str, float]
    model: nn.Module


def _unique_names(cfg: Config, work_dir: Path) -> None:
    """Own work dir, experiment and visualizer names: several runners live in one process."""
    name = f"test_{uuid.uuid4().hex[:8]}"
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = name
    if cfg.get("visualizer") is not None:
        cfg.visualizer.name = name


def train_and_evaluate(
    cfg: Config, data_root: Path, work_dir: Path, iters: int, *, evaluate_on: str = "eval"
) -> TrainResult:
    """Train ``iters`` iterations (batch 2) on the tiny proxy train split with mmengine's Runner,
    evaluate on its ``evaluate_on`` split (CocoMetric; "train": the images trained on, where a
    working head's AP rises within a few iterations), then run one more forward/backward pass so
    that the returned model holds the gradients of one batch."""
    cfg = copy.deepcopy(cfg)
    set_data_root(cfg, data_root)
    if evaluate_on != "eval":
        cfg.val_dataloader.dataset.ann_file = f"{evaluate_on}/annotations.json"
        cfg.val_dataloader.dataset.data_prefix = dict(img=f"{evaluate_on}/images/")
        cfg.val_evaluator.ann_file = str(data_root / evaluate_on / "annotations.json")
    _unique_names(cfg, work_dir)
    cfg.train_dataloader.batch_size = 2
    cfg.val_dataloader.batch_size = 4
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=iters, val_interval=iters)
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger.interval = 1
    cfg.log_processor.by_epoch = False
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    runner = Runner.from_cfg(cfg)
    record = _Record()
    runner.register_hook(record)
    model = runner.train()
    data = model.data_preprocessor(next(iter(runner.train_dataloader)), True)
    model.train()
    model.zero_grad()
    loss = sum(_loss_terms(model(**data, mode="loss")).values())
    loss.backward()
    return TrainResult(record.losses, record.metrics, model)


def grad_of(model: nn.Module, name: str) -> torch.Tensor:
    """The gradient of the named parameter (raises if it has none)."""
    param = dict(model.named_parameters())[name]
    if param.grad is None:
        raise AssertionError(f"{name} received no gradient")
    return param.grad


# COCO's 80 class names in category-id order (mmdet's CocoDataset.METAINFO), used to relabel the
# proxy digits '0'..'9' as the first ten COCO classes for a tiny COCO-format sample.
def write_tiny_coco_sample(data_root: Path, out: Path) -> Path:
    """A COCO-format sample (COCO category names and ids) made of the tiny proxy train images.

    Layout like COCO: ``annotations/instances_{train,val}2017.json`` and ``{train,val}2017/``.
    """
    from mmdet.datasets import CocoDataset

    classes = CocoDataset.METAINFO["classes"]
    ann = json.loads((data_root / "train" / "annotations.json").read_text())
    ann["categories"] = [dict(id=c["id"], name=classes[c["id"] - 1]) for c in ann["categories"]]
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    for split in ("train2017", "val2017"):
        (out / "annotations" / f"instances_{split}.json").write_text(json.dumps(ann))
        (out / split).symlink_to(data_root / "train" / "images", target_is_directory=True)
    return out


def train_one_iter_coco(
    cfg: Config, work_dir: Path, data_root: Path, image_scale: tuple[int, int] | None
) -> dict[str, float]:
    """One training iteration of a COCO config (backbone init_cfg=None: nothing is downloaded)
    on a tiny COCO-format sample (1 image per batch), with the config's model, training pipeline
    and optimizer.

    Args:
        image_scale: None runs mmengine's Runner with the config's pipeline unchanged (slow on
            CPUs: full-size inputs); a scale replaces the scales of the pipeline's resizes and runs
            the iteration as ``model.train_step(data, optim_wrapper)`` without the Runner.

    Returns:
        The logged loss terms of the iteration (floats).
    """
    from mmengine.optim import build_optim_wrapper

    cfg = copy.deepcopy(cfg)
    coco_root = write_tiny_coco_sample(data_root, work_dir / "coco")
    set_data_root(cfg, coco_root)
    cfg.model.backbone.init_cfg = None
    cfg.train_dataloader.batch_size = 1
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    if image_scale is not None:
        _set_scales(cfg.train_dataloader.dataset.pipeline, image_scale)
        model = build_model(cfg)
        loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        log_vars = model.train_step(next(iter(loader)), optim_wrapper)
        return {k: float(v.detach()) for k, v in log_vars.items()}

    _unique_names(cfg, work_dir / "run")
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=1, val_interval=1000)
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.default_hooks.checkpoint = None
    cfg.log_processor = dict(by_epoch=False)
    runner = Runner.from_cfg(cfg)
    seen: dict[str, float] = {}

    class _Losses(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:  # noqa: ANN001
            seen.update({k: float(v.detach()) for k, v in outputs.items()})

    runner.register_hook(_Losses())
    runner.train()
    if not seen:
        raise AssertionError("no training iteration ran")
    return seen


def _set_scales(pipeline: list, scale: tuple[int, int]) -> None:
    for step in pipeline:
        if step.get("type") == "Resize":
            step["scale"] = scale
        elif step.get("type") == "RandomChoiceResize":
            step["scales"] = [scale]
        for key in ("transforms",):
            for branch in step.get(key, []):
                _set_scales(branch if isinstance(branch, list) else [branch], scale)
