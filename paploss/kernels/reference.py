"""Pure PyTorch reference for the pairwise sums of Eq. (6): the readable oracle.

For every positive i (index ``positives[p]``) and every entry j != i of the mini-batch:

    x_ij   = (clamp(s_j - s_i, -1, 1) + 1) / 2
    num[p] = sum_{j != i} num_fn(x_ij) * w_j
    den[p] = sum_{j != i} den_fn(x_ij)

Computed in chunks of positives so memory stays O(chunk * N); gradients come from autograd.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from paploss.functions import PiecewiseLinear

DEFAULT_CHUNK_ELEMENTS = 1 << 22
"""At most this many (positive, entry) pairs are materialized at once (~16 MB per fp32 buffer)."""


def score_differences_to_unit(diff: Tensor) -> Tensor:
    """Map s_j - s_i to x_ij = (clamp(s_j - s_i, -1, 1) + 1) / 2 in [0, 1] (paper Sec. 4.1)."""
    return (diff.clamp(-1.0, 1.0) + 1.0) * 0.5


def pairwise_sums_reference(
    scores: Tensor,
    weights: Tensor,
    positives: Tensor,
    num_fn: PiecewiseLinear,
    den_fn: PiecewiseLinear,
    *,
    den_grad: bool = True,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> tuple[Tensor, Tensor]:
    """Reference pairwise sums; shapes: scores [N], weights [N], positives [P] -> (num [P], den [P]).

    ``den_grad=False`` computes den without recording a graph (the loss blocks its gradient).
    Outputs have scores' dtype. Gradient convention (that of torch.clamp with scalar bounds): the
    score difference passes a gradient only where |s_j - s_i| < 1, open interval.
    """
    n = scores.numel()
    p = positives.numel()
    rows = max(1, chunk_elements // max(n, 1))
    nums: list[Tensor] = []
    dens: list[Tensor] = []
    columns = torch.arange(n, device=scores.device)
    for start in range(0, p, rows):
        idx = positives[start : start + rows]
        not_self = (columns.unsqueeze(0) != idx.unsqueeze(1)).to(scores.dtype)  # [rows, N]
        x = score_differences_to_unit(scores.unsqueeze(0) - scores[idx].unsqueeze(1))
        nums.append((num_fn(x) * weights.unsqueeze(0) * not_self).sum(dim=1))
        with torch.set_grad_enabled(den_grad and torch.is_grad_enabled()):
            dens.append((den_fn(x) * not_self).sum(dim=1))
    if not nums:
        empty = scores.new_zeros(0)
        return empty + 0 * scores.sum() + 0 * weights.sum(), empty
    return torch.cat(nums).to(scores.dtype), torch.cat(dens).to(scores.dtype)


RankFunction = Callable[[Tensor], tuple[Tensor, Tensor]]
"""d -> (f(d), f'(d)) elementwise: a ranking function of the raw score difference and its
derivative (see paploss.substitutions)."""


class _DifferenceSums(torch.autograd.Function):
    """num, den of :func:`pairwise_sums_of_differences` with a hand-written backward.

    Nothing of size P x N is saved: the backward recomputes f and f' chunk by chunk. With
    g_pj = gn_p w_j + gd_p (gd = 0 when den is blocked) and M_pj = f'(s_j - s_i) g_pj (0 on the
    self pair): dL/ds_j += sum_p M_pj, dL/ds_i -= sum_j M_pj, dL/dw_j = sum_p gn_p f(s_j - s_i).
    """

    @staticmethod
    def forward(ctx, scores, weights, positives, rank, den_grad, rows):  # noqa: ANN001, ANN205
        nums, dens = [], []
        for _, values, _ in _difference_chunks(scores, positives, rank, rows, derivative=False):
            nums.append(values @ weights)
            dens.append(values.sum(dim=1))
        ctx.save_for_backward(scores, weights, positives)
        ctx.rank, ctx.den_grad, ctx.rows = rank, den_grad, rows
        return torch.cat(nums), torch.cat(dens)

    @staticmethod
    def backward(ctx, grad_num, grad_den):  # noqa: ANN001, ANN205
        scores, weights, positives = ctx.saved_tensors
        grad_scores = torch.zeros_like(scores)
        grad_weights = torch.zeros_like(weights)
        start = 0
        for idx, values, slopes in _difference_chunks(
            scores, positives, ctx.rank, ctx.rows, derivative=True
        ):
            gn = grad_num[start : start + idx.numel()].to(scores.dtype)
            g = gn.unsqueeze(1) * weights.unsqueeze(0)
            if ctx.den_grad and grad_den is not None:
                g = g + grad_den[start : start + idx.numel()].to(scores.dtype).unsqueeze(1)
            m = slopes * g
            grad_scores += m.sum(dim=0)
            grad_scores.index_add_(0, idx, -m.sum(dim=1))
            grad_weights += gn @ values
            start += idx.numel()
        return grad_scores, grad_weights, None, None, None, None


def _difference_chunks(scores, positives, rank, rows, *, derivative):  # noqa: ANN001, ANN202
    """Yields (idx [C], f(d) [C, N], f'(d) [C, N] or None) with the self pairs set to 0."""
    for start in range(0, positives.numel(), rows):
        idx = positives[start : start + rows]
        diff = scores.unsqueeze(0) - scores[idx].unsqueeze(1)
        values, slopes = rank(diff)
        local = torch.arange(idx.numel(), device=scores.device)
        values[local, idx] = 0.0
        if derivative:
            slopes[local, idx] = 0.0
            yield idx, values, slopes
        else:
            yield idx, values, None


def pairwise_sums_of_differences(
    scores: Tensor,
    weights: Tensor,
    positives: Tensor,
    rank: RankFunction,
    *,
    den_grad: bool = True,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> tuple[Tensor, Tensor]:
    """num[p] = sum_{j != i} f(s_j - s_i) w_j and den[p] = sum_{j != i} f(s_j - s_i), i = positives[p].

    As :func:`pairwise_sums_reference` with num_fn = den_fn = f, but f takes the raw score
    difference d (no clamp, no mapping to [0, 1]): the closed-form substitutions of
    :mod:`paploss.substitutions`. ``rank`` returns f(d) and f'(d). Shapes: scores [N], weights
    [N], positives [P] -> (num [P], den [P]); O(chunk * N) memory forward and backward.
    ``den_grad=False``: den carries no gradient.
    """
    rows = max(1, chunk_elements // max(scores.numel(), 1))
    if positives.numel() == 0:
        empty = scores.new_zeros(0)
        return empty + 0 * scores.sum() + 0 * weights.sum(), empty
    weights = weights.to(scores.dtype)
    num, den = _DifferenceSums.apply(scores, weights, positives, rank, den_grad, rows)
    return num, (den if den_grad else den.detach())
