"""A backbone pretrained once on digit crops: the proxy's analogue of an ImageNet-pretrained ResNet.

The paper's detectors start from an ImageNet-pretrained ResNet-50 (Sec. 4.1); the search's inner
training (one epoch) only has to adapt the neck and head. This module gives the bundled proxy the
same structure without any download: it pretrains mmdet's ``ResNet`` (depth 18, narrow) to classify
single digits rendered like the proxy scenes (same background, noise and ink, digit sizes of the
proxy's objects), from the *train* group of scikit-learn's digits only, so that D_eval and val stay
unseen. The weights are cached under ``$PAPLOSS_CACHE/backbones/<settings hash>.pth`` (default
``~/.cache/paploss/backbones``) and built on first use; a change of any setting (or of
``FORMAT_VERSION``) gives another hash and therefore a rebuild.

Crop rendering: a ``crop`` x ``crop`` grey patch from ``paploss.proxy.scenes.background``, one digit whose
box has sqrt(area) drawn log-uniformly in ``[min_size, max_size]`` px, placed with its center
uniformly within the middle third of the patch; ink and noise as in ``paploss.proxy.scenes.compose_scene``.
The network sees the crop as 3 identical channels, normalized as the detection configs do.

Command line: ``python -m paploss.proxy.backbone [--settings JSON]`` builds (or finds) the cached
weights and prints their path and accuracy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from paploss.proxy.scenes import background, digit_side, load_digits, paint_digit, partition_sources
from paploss.proxy.settings import settings_digest

FORMAT_VERSION = 1
"""Bump whenever the pretraining changes for the same settings (it enters the hash)."""
ENV_CACHE = "PAPLOSS_CACHE"
DEFAULT_CACHE = "~/.cache/paploss"
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
"""The detection configs' ``data_preprocessor`` normalization (grey images: 3 equal channels)."""


@dataclasses.dataclass(frozen=True)
class PretrainSettings:
    """Everything the cached weights depend on.

    Attributes:
        base_channels: width of the first ResNet stage (mmdet ``ResNet(base_channels=...)``).
        depth: ResNet depth (18 or 34: basic blocks).
        crop: side of the square training crops in pixels.
        min_size, max_size: sqrt(box area) range of the digits in pixels.
        steps: SGD steps; batch: crops per step; lr: peak learning rate (cosine decay to 0).
        seed: seed of the source-digit partition (as ``ProxySettings.seed``), of the crops and of
            the initial weights.
        split_fractions: the partition of scikit-learn's digits; only the train group is used.
    """

    base_channels: int = 16
    depth: int = 18
    crop: int = 32
    min_size: float = 9.6
    max_size: float = 28.0
    steps: int = 1500
    batch: int = 64
    lr: float = 0.05
    seed: int = 0
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)

    def __post_init__(self) -> None:
        ints = dict(base_channels=(4, 128), crop=(16, 256), steps=(1, 10**6), batch=(1, 4096))
        for name, (lo, hi) in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"{name} must be an int in [{lo}, {hi}], got {value!r}")
        if self.depth not in (18, 34):
            raise ValueError(f"depth must be 18 or 34 (basic blocks), got {self.depth!r}")
        if not 3.0 <= self.min_size <= self.max_size <= self.crop:
            raise ValueError(
                f"need 3 <= min_size <= max_size <= crop, got {self.min_size}, {self.max_size}, "
                f"{self.crop}"
            )
        if not (0.0 < self.lr < 10.0):
            raise ValueError(f"lr must lie in (0, 10), got {self.lr!r}")
        object.__setattr__(self, "split_fractions", tuple(float(v) for v in self.split_fractions))

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["split_fractions"] = list(self.split_fractions)
        data["format_version"] = FORMAT_VERSION
        return data

    def digest(self) -> str:
        """12 hex digits identifying these settings (and the pretraining version)."""
        return settings_digest(self.to_dict())


def settings_for(
    pretrain: Mapping[str, Any], *, depth: Any, base_channels: Any
) -> PretrainSettings:
    """The settings a ``ProxyResNet(depth=..., base_channels=..., pretrain=...)`` names: its
    ``pretrain`` fields with the backbone's own depth and width; ValueError when ``pretrain``
    gives another depth or width."""
    fields = dict(pretrain)
    for key, own in (("depth", depth), ("base_channels", base_channels)):
        if key in fields and fields[key] != own:
            raise ValueError(
                f"ProxyResNet: pretrain.{key}={fields[key]!r} differs from the backbone's "
                f"{key}={own!r}; remove it from pretrain"
            )
        fields[key] = own
    return PretrainSettings(**fields)


def cache_dir() -> Path:
    """``$PAPLOSS_CACHE/backbones`` (default ``~/.cache/paploss/backbones``)."""
    return Path(os.environ.get(ENV_CACHE) or DEFAULT_CACHE).expanduser() / "backbones"


def weights_path(settings: PretrainSettings) -> Path:
    """Where the weights of ``settings`` are cached."""
    return cache_dir() / f"resnet{settings.depth}-{settings.digest()}.pth"


# ------------------------------------------------------------------------------ data
def render_crops(
    rng: np.random.Generator,
    settings: PretrainSettings,
    images: np.ndarray,
    labels: np.ndarray,
    pool: np.ndarray,
    count: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` crops with one digit each.

    Returns:
        (uint8 crops [count, crop, crop], int64 classes [count]).
    """
    size = settings.crop
    out = np.empty((count, size, size), dtype=np.uint8)
    classes = np.empty(count, dtype=np.int64)
    for k in range(count):
        canvas = background(rng, size)
        src = int(pool[rng.integers(pool.size)])
        digit = images[src]
        target = math.exp(rng.uniform(math.log(settings.min_size), math.log(settings.max_size)))
        side, _ = digit_side(digit, target, size)
        cx, cy = rng.uniform(size / 3.0, 2.0 * size / 3.0, 2)
        x0 = int(np.clip(round(cx - side / 2.0), 0, size - side))
        y0 = int(np.clip(round(cy - side / 2.0), 0, size - side))
        paint_digit(rng, canvas, digit, side, x0, y0)
        canvas += rng.normal(0.0, rng.uniform(2.0, 10.0), canvas.shape)
        out[k] = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
        classes[k] = int(labels[src])
    return out, classes


def _to_input(crops: np.ndarray) -> Any:
    """uint8 [B, H, W] -> normalized float32 [B, 3, H, W] (the detectors' preprocessing)."""
    import torch

    x = torch.from_numpy(crops).float()[:, None].expand(-1, 3, -1, -1)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


# ------------------------------------------------------------------------------ training
def build_backbone(settings: PretrainSettings) -> Any:
    """The mmdet ResNet the weights belong to (all four stages, BN, pytorch style)."""
    from mmdet.models.backbones import ResNet

    return ResNet(
        depth=settings.depth,
        base_channels=settings.base_channels,
        num_stages=4,
        out_indices=(3,),
        style="pytorch",
        norm_cfg=dict(type="BN", requires_grad=True),
        norm_eval=False,  # mmdet's default True would freeze the BN statistics at 0 / 1
        init_cfg=None,
    )


def pretrain(settings: PretrainSettings, *, log: Any = None) -> tuple[dict[str, Any], float]:
    """Train the backbone on digit crops; return (backbone state dict, held-out accuracy).

    The held-out accuracy is measured on crops rendered from the *eval* group of source digits
    (never trained on); it is a record of the pretraining's quality, not used for selection.
    """
    import torch
    from torch import nn

    images, labels = load_digits()
    pools = partition_sources(labels, settings.seed, settings.split_fractions)
    torch.manual_seed(settings.seed)
    backbone = build_backbone(settings)
    backbone.init_weights()
    width = settings.base_channels * 8
    classifier = nn.Linear(width, 10)
    model = nn.ModuleDict(dict(backbone=backbone, fc=classifier))

    def logits(x: Any) -> Any:
        feat = backbone(x)[-1]
        return classifier(feat.mean(dim=(2, 3)))

    # Constant rate, then a cosine decay to 0 over the last 30 % of the steps. (A warm-up from a
    # small rate plus weight decay left the loss at ln(10) for 600 steps in a measurement.)
    opt = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=0.9)
    decay_from = int(0.7 * settings.steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            1.0
            if s < decay_from
            else 0.5
            * (1 + math.cos(math.pi * (s - decay_from) / max(1, settings.steps - decay_from)))
        ),
    )
    rng = np.random.default_rng([settings.seed, 104729])
    model.train()
    t0 = time.perf_counter()
    for step in range(settings.steps):
        crops, classes = render_crops(rng, settings, images, labels, pools["train"], settings.batch)
        loss = nn.functional.cross_entropy(logits(_to_input(crops)), torch.from_numpy(classes))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log is not None and (step + 1) % 100 == 0:
            log(
                f"step {step + 1}/{settings.steps} loss {loss.item():.3f} "
                f"({time.perf_counter() - t0:.0f} s)"
            )
    model.eval()
    eval_rng = np.random.default_rng([settings.seed, 1299709])
    crops, classes = render_crops(eval_rng, settings, images, labels, pools["eval"], 1000)
    with torch.no_grad():
        pred = logits(_to_input(crops)).argmax(dim=1).numpy()
    accuracy = float((pred == classes).mean())
    state = {k: v.detach().clone() for k, v in backbone.state_dict().items()}
    return state, accuracy


def ensure_pretrained(settings: PretrainSettings | None = None, *, log: Any = None) -> Path:
    """The cached weights of ``settings``, pretraining them first if missing.

    Safe with concurrent callers: the file is written to a temporary name and renamed into place
    (two processes that both miss the cache both train; the last rename wins with equal content).

    Returns:
        the ``.pth`` file: ``{"state_dict": backbone state, "settings": ..., "accuracy": ...}``.
    """
    import torch

    settings = settings or PretrainSettings()
    path = weights_path(settings)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if log is not None:
        log(f"pretraining the proxy backbone once ({settings.steps} steps) -> {path}")
    start = time.perf_counter()
    state, accuracy = pretrain(settings, log=log)
    record = dict(
        state_dict=state,
        settings=settings.to_dict(),
        accuracy=accuracy,
        seconds=time.perf_counter() - start,
    )
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(record, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if log is not None:
        log(f"held-out crop accuracy {accuracy:.3f} in {record['seconds']:.0f} s")
    return path


def load_record(path: Path) -> dict[str, Any]:
    """The saved record (tensors and plain data only: loads with ``weights_only=True``)."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m paploss.proxy.backbone",
        description="Pretrain (once) the proxy's digit backbone and print the cached file.",
    )
    parser.add_argument(
        "--settings",
        default="{}",
        help="PretrainSettings fields as a JSON object (default: the proxy configs' settings)",
    )
    args = parser.parse_args(argv)
    import sys

    try:
        fields = json.loads(args.settings)
        if not isinstance(fields, dict):
            raise ValueError("--settings must be a JSON object")
        settings = PretrainSettings(**fields)
    except (ValueError, TypeError) as exc:
        parser.error(f"--settings: {exc}")
    path = ensure_pretrained(settings, log=lambda msg: print(f"[backbone] {msg}", file=sys.stderr))
    record = load_record(path)
    print(path)
    print(f"  held-out crop accuracy {record['accuracy']:.3f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
