"""Helpers shared by the sorted and Triton backends.

Band split: for the positive scores s_i with min m and max M, an entry j with s_j < m - 1 has
x_ij = 0 for every positive (f(0) = 0, no gradient): it contributes exactly nothing. An entry with
s_j > M + 1 has x_ij = 1 for every positive: it adds f(1) w_j = w_j to num and 1 to den, its score
gets no gradient and its weight gets d num_p / d w_j = 1, i.e. sum_p g_num[p]. Only the band
m - 1 <= s_j <= M + 1 needs pairwise work. The comparisons are done in float64, so the split is
exact for float16/bfloat16/float32/float64 scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from paploss.functions import PiecewiseLinear


@dataclass
class Band:
    """Entries of the mini-batch split into the band (pairwise work), above (constant) and below.

    Attributes:
        index: int64 [N'] original indices of the band entries in increasing order, or None when
            every entry is in the band (then no gather/scatter is needed).
        above: bool [N] mask of the entries with s_j > max_i s_i + 1, or None if there are none.
        num_above: number of such entries (den gets this much).
        weight_above: float64 0-d tensor, sum of their weights (num gets this much).
        low, high: float64 band limits min_i s_i - 1 and max_i s_i + 1 (Python floats).
    """

    index: Tensor | None
    above: Tensor | None
    num_above: int
    weight_above: Tensor
    low: float
    high: float

    def size(self, n: int) -> int:
        """N', the number of band entries out of n."""
        return n if self.index is None else self.index.numel()


def band_split(scores: Tensor, weights: Tensor, positives: Tensor) -> Band:
    """Split [N] entries by the positives' scores (see the module docstring); needs P >= 1.

    One host synchronization (the counts). Compaction happens only if some entry is outside the
    band: it costs O(N) and saves pairwise work (Triton) or sort work (sorted) on every dropped entry.
    """
    s64 = scores.detach().to(torch.float64)
    pos_scores = s64[positives]
    low_t, high_t = pos_scores.min() - 1.0, pos_scores.max() + 1.0
    below = s64 < low_t
    above = s64 > high_t
    w_above = torch.where(above, weights.detach().to(torch.float64), 0.0).sum()
    stats = torch.stack(
        [below.sum().to(torch.float64), above.sum().to(torch.float64), low_t, high_t]
    )
    nb, na, low, high = stats.tolist()  # the one synchronization
    num_below, num_above = int(nb), int(na)
    if num_below + num_above == 0:
        return Band(None, None, 0, w_above, low, high)
    index = torch.nonzero(~(below | above)).squeeze(1)
    return Band(index, above if num_above else None, num_above, w_above, low, high)


def function_table(fn: PiecewiseLinear, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Flat [4 (M + 1)] table in dtype: lower [M + 1], residual [M + 1], ys [M + 1], slopes [M]
    and a 0 pad.

    The arrays of ``PiecewiseLinear.evaluation_tables``: lower[k] is x_k rounded up to dtype (the
    segment search compares x >= lower[k]) and lower[k] + residual[k] is x_k to twice dtype's
    precision (the offset into the segment is (x - lower[k]) - residual[k]). A kernel evaluating
    in dtype therefore rounds like ``PiecewiseLinear.__call__`` does.
    """
    lower, residual, ys, slopes = fn.evaluation_tables(dtype)
    return torch.cat([lower, residual, ys, slopes, slopes.new_zeros(1)]).to(device)


def value_at_half(fn: PiecewiseLinear) -> float:
    """f(0.5): the value of the self pair (s_j = s_i gives x = 1/2), in float64."""
    return float(fn(torch.tensor([0.5], dtype=torch.float64))[0])


def check_function(name: str, fn: object) -> PiecewiseLinear:
    """Raise ValueError unless fn is a PiecewiseLinear."""
    if not isinstance(fn, PiecewiseLinear):
        raise ValueError(f"{name} must be a paploss.functions.PiecewiseLinear, got {type(fn)!r}")
    return fn
