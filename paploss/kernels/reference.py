"""Pure PyTorch reference for the pairwise sums of Eq. (6): the readable oracle.

For every positive i (index ``positives[p]``) and every entry j != i of the mini-batch:

    x_ij   = (clamp(s_j - s_i, -1, 1) + 1) / 2
    num[p] = sum_{j != i} num_fn(x_ij) * w_j
    den[p] = sum_{j != i} den_fn(x_ij)

Computed in chunks of positives so memory stays O(chunk * N); gradients come from autograd.
"""

from __future__ import annotations

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
