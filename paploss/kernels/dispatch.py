"""One entry point for the pairwise sums; picks the backend.

Backends (identical results up to floating-point rounding):

- ``"reference"``: plain PyTorch, chunked over positives, autograd (the oracle; O(P N) work and, for
  the backward, O(P N) saved memory).
- ``"sorted"``: exact O((N + P M) log N) algorithm on sorted scores with float64 prefix sums
  (``paploss.kernels.sorted``); CPU and CUDA.
- ``"triton"``: fused Triton kernels, O(P N) work, O(N + P) memory
  (``paploss.kernels.triton_pairwise``); CUDA, or CPU under TRITON_INTERPRET=1. Triton is optional:
  the module is imported only when this backend is used.

``backend="auto"`` (or the ``PAPLOSS_BACKEND`` environment variable, which overrides "auto"):
CPU tensors -> sorted; CUDA tensors -> triton while the pair count P * N is at most
``TRITON_MAX_PAIRS`` and Triton is installed, else sorted.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os

import torch
from torch import Tensor

from paploss.errors import NonFiniteError
from paploss.functions import PiecewiseLinear
from paploss.kernels.common import check_function
from paploss.kernels.reference import pairwise_sums_reference
from paploss.kernels.sorted import pairwise_sums_sorted

BACKENDS = ("reference", "sorted", "triton")

TRITON_MAX_PAIRS = 1 << 27
"""Crossover of "auto" on CUDA: triton for P * N <= this (about 1.3e8 pairs), sorted above.

An estimate from the cost models, not a measurement (triton: P N pair evaluations at roughly
1e11-1e12 pairs/s for forward + backward on an H100; sorted: a few ms of sort/scan/scatter at
N = 1e7, about 0.3 ms of launch overhead at small N). ``benchmarks/gpu_check.sh`` measures the
crossover; this constant is meant to be set from its output."""

ENV_VAR = "PAPLOSS_BACKEND"


def triton_available() -> bool:
    """True if the ``triton`` package can be imported."""
    return importlib.util.find_spec("triton") is not None


def _triton_usable(scores: Tensor) -> str | None:
    """None if the triton backend can run on these scores, else the reason why not."""
    if not triton_available():
        return "the triton package is not installed"
    if scores.device.type != "cuda" and os.environ.get("TRITON_INTERPRET", "0") != "1":
        return (
            f"scores are on {scores.device}; Triton needs CUDA tensors (or TRITON_INTERPRET=1 "
            "set before paploss.kernels.triton_pairwise is imported)"
        )
    return None


def resolve_backend(backend: str, scores: Tensor, num_positives: int) -> str:
    """The backend to use: ``PAPLOSS_BACKEND`` overrides ``"auto"``; "auto" picks by device/size.

    Raises ValueError for an unknown name (argument or environment) and for "triton" where Triton
    cannot run (not installed; CPU tensors without TRITON_INTERPRET=1).
    """
    choices = ("auto",) + BACKENDS
    if backend not in choices:
        raise ValueError(f"unknown backend {backend!r}; choose one of {choices}")
    if backend == "auto":
        backend = os.environ.get(ENV_VAR, "auto") or "auto"
        if backend not in choices:
            raise ValueError(f"unknown backend {backend!r} in ${ENV_VAR}; choose one of {choices}")
    if backend == "auto":
        if scores.device.type == "cuda" and triton_available():
            return "triton" if num_positives * scores.numel() <= TRITON_MAX_PAIRS else "sorted"
        return "sorted"
    if backend == "triton":
        reason = _triton_usable(scores)
        if reason is not None:
            raise ValueError(f"backend 'triton' cannot run: {reason}")
    return backend


def _validate(
    scores: Tensor,
    weights: Tensor,
    positives: Tensor,
    num_fn: PiecewiseLinear,
    den_fn: PiecewiseLinear,
    check_finite: bool,
) -> None:
    if scores.dim() != 1 or weights.shape != scores.shape:
        raise ValueError(
            f"scores and weights must be 1-D of equal length, got {tuple(scores.shape)} and "
            f"{tuple(weights.shape)}"
        )
    if not (scores.is_floating_point() and weights.is_floating_point()):
        raise ValueError(
            f"scores and weights must be floating point, got {scores.dtype} and {weights.dtype}"
        )
    if positives.dim() != 1 or positives.dtype != torch.long:
        raise ValueError(
            f"positives must be a 1-D int64 tensor, got shape {tuple(positives.shape)}, "
            f"dtype {positives.dtype}"
        )
    if weights.device != scores.device or positives.device != scores.device:
        raise ValueError(
            f"scores, weights and positives must be on one device, got {scores.device}, "
            f"{weights.device} and {positives.device}"
        )
    check_function("num_fn", num_fn)
    check_function("den_fn", den_fn)
    n = scores.numel()
    if positives.numel() == 0:
        return
    # One pass per tensor (aminmax propagates NaN) and one synchronization for all checks.
    extremes = [*torch.aminmax(positives), *torch.aminmax(scores.detach())]
    extremes += [*torch.aminmax(weights.detach())]
    checks = torch.stack([v.to(torch.float64) for v in extremes])  # exact for indices < 2**53
    lo, hi, s_min, s_max, w_min, w_max = checks.tolist()
    finite_s = math.isfinite(s_min) and math.isfinite(s_max)
    finite_w = math.isfinite(w_min) and math.isfinite(w_max)
    if lo < 0 or hi >= n:
        raise ValueError(
            f"positives must index into scores [0, {n}), got range [{int(lo)}, {int(hi)}]"
        )
    if check_finite and not finite_s:
        raise NonFiniteError("scores must be finite, got NaN or inf")
    if check_finite and not finite_w:
        raise NonFiniteError("weights must be finite, got NaN or inf")


def pairwise_sums(
    scores: Tensor,
    weights: Tensor,
    positives: Tensor,
    num_fn: PiecewiseLinear,
    den_fn: PiecewiseLinear,
    *,
    backend: str = "auto",
    den_grad: bool = True,
    check_finite: bool = True,
) -> tuple[Tensor, Tensor]:
    """num[p] = sum_{j != i} num_fn(x_ij) w_j and den[p] = sum_{j != i} den_fn(x_ij), i = positives[p].

    x_ij = (clamp(s_j - s_i, -1, 1) + 1) / 2; the self pair is excluded by index (other entries with
    s_j = s_i count, with x = 1/2).

    Args:
        scores: [N] float logits s of every entry of the mini-batch.
        weights: [N] float weights w_j (the loss passes 1 - f3(l_j)).
        positives: [P] int64 indices into scores.
        num_fn, den_fn: the piecewise-linear functions of the numerator and denominator.
        backend: "auto", "reference", "sorted" or "triton" (see the module docstring).
        den_grad: if False, den carries no gradient (Eq. (6) blocks it by default).
        check_finite: raise ValueError on NaN/inf scores or weights (False: they propagate).

    Returns:
        (num, den), each [P], in scores' dtype; differentiable w.r.t. scores and weights.
    """
    _validate(scores, weights, positives, num_fn, den_fn, check_finite)
    name = resolve_backend(backend, scores, positives.numel())
    if name == "reference" or positives.numel() == 0:
        return pairwise_sums_reference(
            scores, weights, positives, num_fn, den_fn, den_grad=den_grad
        )
    if name == "sorted":
        return pairwise_sums_sorted(scores, weights, positives, num_fn, den_fn, den_grad=den_grad)
    module = importlib.import_module("paploss.kernels.triton_pairwise")
    return module.pairwise_sums_triton(
        scores, weights, positives, num_fn, den_fn, den_grad=den_grad
    )
