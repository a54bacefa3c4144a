"""Localization scores l(b_i) of Eq. (4), mapped to [0, 1], and the gradient scale lambda.

Kinds (paper Tab. 5), for a predicted box b and its assigned ground truth b*, both xyxy:
- "giou" (default): (GIoU(b, b*) + 1) / 2, the min-max rescaling of GIoU in [-1, 1].
- "iou": IoU(b, b*), already in [0, 1].
- "l1": 1 / (1 + d) with d = mean(|b - b*|) over the 4 coordinates, x-coordinates divided by the
  ground-truth width and y-coordinates by its height (scale invariant, as the delta encoding of
  the box coders). 1 for a perfect box, -> 0 as the box drifts; smooth everywhere.
Negatives have l = 0 (the loss sets that itself).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

LOC_SCORE_KINDS = ("giou", "iou", "l1")
_EPS = 1e-7


def _check_boxes(pred_boxes: Tensor, target_boxes: Tensor) -> None:
    if pred_boxes.shape != target_boxes.shape or pred_boxes.dim() != 2 or pred_boxes.shape[1] != 4:
        raise ValueError(
            f"boxes must both be [K, 4] (xyxy), got {tuple(pred_boxes.shape)} and "
            f"{tuple(target_boxes.shape)}"
        )


def box_iou_and_giou(pred_boxes: Tensor, target_boxes: Tensor) -> tuple[Tensor, Tensor]:
    """Element-wise IoU and GIoU of [K, 4] xyxy boxes -> ([K], [K])."""
    _check_boxes(pred_boxes, target_boxes)
    px1, py1, px2, py2 = pred_boxes.unbind(-1)
    tx1, ty1, tx2, ty2 = target_boxes.unbind(-1)
    area_p = (px2 - px1).clamp(min=0) * (py2 - py1).clamp(min=0)
    area_t = (tx2 - tx1).clamp(min=0) * (ty2 - ty1).clamp(min=0)
    iw = (torch.minimum(px2, tx2) - torch.maximum(px1, tx1)).clamp(min=0)
    ih = (torch.minimum(py2, ty2) - torch.maximum(py1, ty1)).clamp(min=0)
    inter = iw * ih
    union = (area_p + area_t - inter).clamp(min=_EPS)
    iou = inter / union
    hull = (
        (torch.maximum(px2, tx2) - torch.minimum(px1, tx1)).clamp(min=0)
        * (torch.maximum(py2, ty2) - torch.minimum(py1, ty1)).clamp(min=0)
    ).clamp(min=_EPS)
    giou = iou - (hull - union) / hull
    return iou, giou


def localization_scores(pred_boxes: Tensor, target_boxes: Tensor, kind: str = "giou") -> Tensor:
    """l(b_i) in [0, 1] for [K, 4] xyxy predicted boxes against their assigned targets -> [K]."""
    if kind not in LOC_SCORE_KINDS:
        raise ValueError(f"unknown localization score {kind!r}; choose one of {LOC_SCORE_KINDS}")
    if kind == "l1":
        _check_boxes(pred_boxes, target_boxes)
        w = (target_boxes[:, 2] - target_boxes[:, 0]).clamp(min=_EPS)
        h = (target_boxes[:, 3] - target_boxes[:, 1]).clamp(min=_EPS)
        scale = torch.stack((w, h, w, h), dim=-1)
        d = ((pred_boxes - target_boxes).abs() / scale).mean(dim=-1)
        return 1.0 / (1.0 + d)
    iou, giou = box_iou_and_giou(pred_boxes, target_boxes)
    if kind == "iou":
        return iou.clamp(0.0, 1.0)
    return ((giou + 1.0) * 0.5).clamp(0.0, 1.0)


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:  # noqa: ANN001
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # noqa: ANN001
        return grad * ctx.scale, None


def scale_gradient(x: Tensor, scale: float) -> Tensor:
    """Identity in the forward pass; multiplies the gradient by ``scale`` (lambda) backward."""
    if not 0.0 < float(scale) < math.inf:  # False for NaN as well
        raise ValueError(f"gradient scale must be a finite positive number, got {scale!r}")
    return _ScaleGradient.apply(x, float(scale))
