"""One entry point for the pairwise sums; picks the backend."""

from __future__ import annotations

import os

import torch
from torch import Tensor

from paploss.functions import PiecewiseLinear
from paploss.kernels.reference import pairwise_sums_reference

BACKENDS = ("reference",)


def resolve_backend(backend: str, scores: Tensor, num_positives: int) -> str:
    """The backend to use: ``PAPLOSS_BACKEND`` overrides ``"auto"``; "auto" picks by device/size."""
    if backend == "auto":
        backend = os.environ.get("PAPLOSS_BACKEND", "auto")
    if backend == "auto":
        return "reference"
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {('auto',) + BACKENDS}")
    return backend


def pairwise_sums(
    scores: Tensor,
    weights: Tensor,
    positives: Tensor,
    num_fn: PiecewiseLinear,
    den_fn: PiecewiseLinear,
    *,
    backend: str = "auto",
    den_grad: bool = True,
) -> tuple[Tensor, Tensor]:
    """num[p] = sum_{j != i} num_fn(x_ij) w_j and den[p] = sum_{j != i} den_fn(x_ij), i = positives[p].

    Args:
        scores: [N] float logits s of every entry of the mini-batch.
        weights: [N] float weights w_j (the loss passes 1 - f3(l_j)).
        positives: [P] int64 indices into scores.
        num_fn, den_fn: the piecewise-linear functions of the numerator and denominator.
        backend: "auto", "reference", "sorted" or "triton".
        den_grad: if False, den carries no gradient (Eq. (6) blocks it by default).

    Returns:
        (num, den), each [P], in scores' dtype; differentiable w.r.t. scores and weights.
    """
    if scores.dim() != 1 or weights.shape != scores.shape:
        raise ValueError(
            f"scores and weights must be 1-D of equal length, got {tuple(scores.shape)} and "
            f"{tuple(weights.shape)}"
        )
    if positives.dim() != 1 or positives.dtype != torch.long:
        raise ValueError(
            f"positives must be a 1-D int64 tensor, got shape {tuple(positives.shape)}, "
            f"dtype {positives.dtype}"
        )
    resolve_backend(backend, scores, positives.numel())
    return pairwise_sums_reference(scores, weights, positives, num_fn, den_fn, den_grad=den_grad)

