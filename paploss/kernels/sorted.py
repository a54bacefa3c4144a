"""Exact pairwise sums in O((N + P M) log N): sort once, float64 prefix sums, range queries.

For a fixed positive i, f(x_ij) is piecewise linear in s_j. With a_k = 2 x_k - 1 the breakpoints in
score space are c_k(i) = s_i + a_k, k = 0..M, and

    f(x_ij) = 0                                      for s_j <= c_0 = s_i - 1,
              y_k + slope_k / 2 * (s_j - c_k)        for c_k <= s_j < c_{k+1}   (segment k),
              1                                      for s_j >= c_M = s_i + 1.

(At s_j = c_0 and s_j = c_M the segment formula gives the same 0 and 1; these two points belong
to the constant regions so that the gradient convention of the reference holds: torch.clamp with
scalar bounds passes the gradient only on the open interval |s_j - s_i| < 1.) With the
entries sorted by score, segment k of positive i is a contiguous range [t_k, t_{k+1}) of sorted
positions (two searchsorted), and with float64 prefix sums of w, w u and u (u = s - ref, a
centering offset against cancellation)

    num_i = sum_k [ y_k W_k + slope_k / 2 (WU_k - (c_k - ref) W_k) ] + W_above - f2(1/2) w_i,

den likewise with counts. The self pair (s_j = s_i, x = 1/2) lies in one of the ranges and is
subtracted analytically.

Backward, per-entry (column) sums: every (positive, segment) pair adds, over its range of sorted
entries, a function that is linear in u_j: d num_p / d w_j = g_p (y_k - slope_k / 2 (c_k - ref))
+ g_p slope_k / 2 u_j, and a constant 0.5 g_p slope_k to d/ds_j (times w_j for num). These range
updates are written as a difference array of length N' + 1 (one index_add of P (M + 1) values,
telescoped) and a cumulative sum turns them into per-entry values: O(P M + N') and no searchsorted
over N. The row sums d/ds_i = -0.5 sum_j slope(x_ij) (g_num w_j + g_den) come from forward range
sums (R2, R4). The self pair is in both the row and the column sums of the same range and cancels
exactly in d/ds; for d/dw it is subtracted analytically.

Memory: O(N + P M); no P x N buffer. Written in PyTorch ops, runs on CPU and CUDA.
"""

from __future__ import annotations

import torch
from torch import Tensor

from paploss.functions import PiecewiseLinear
from paploss.kernels.common import Band, band_split, value_at_half

_F64 = torch.float64


def _segment_bounds(sorted_u: Tensor, c_u: Tensor) -> Tensor:
    """Sorted positions where each segment starts; [P, M + 1] int64.

    Args:
        sorted_u: [N'] float64 ascending (centered scores).
        c_u: [P, M + 1] float64 breakpoints c_k(i) - ref.

    Column 0 is the number of entries with u <= c_0 (x = 0 stays out of segment 0), columns
    0 < k < M the number with u < c_k (segment k includes s_j = c_k), column M the number with
    u < c_M (x = 1 goes to the constant region above).
    """
    bounds = torch.searchsorted(sorted_u, c_u.contiguous(), right=False)
    first = torch.searchsorted(sorted_u, c_u[:, 0].contiguous(), right=True)
    bounds[:, 0] = torch.minimum(first, bounds[:, 1])  # c_1 may round onto c_0 (tiny x_1)
    return bounds


def _exclusive_cumsum(values: Tensor) -> Tensor:
    """[n] -> [n + 1] prefix sums starting at 0, in float64."""
    out = values.new_zeros(values.numel() + 1, dtype=_F64)
    torch.cumsum(values, dim=0, dtype=_F64, out=out[1:])
    return out


def _range_sums(prefix: Tensor, bounds: Tensor) -> Tensor:
    """Segment sums [P, M] from an exclusive prefix [N' + 1] and bounds [P, M + 1]."""
    at = prefix[bounds]
    return at[:, 1:] - at[:, :-1]


def _range_add(bounds: Tensor, values: Tensor, size: int) -> Tensor:
    """Per-entry totals [size] of range updates: entry t gets sum of values[p, k] over the (p, k)
    with bounds[p, k] <= t < bounds[p, k + 1] (bounds[p, M + 1] = size); values [P, M + 1]."""
    delta = values.clone()
    delta[:, 1:] -= values[:, :-1]  # telescoped: at bounds[p, k] the value changes by v_k - v_{k-1}
    diff = torch.zeros(size + 1, dtype=_F64, device=values.device)
    diff.index_add_(0, bounds.reshape(-1), delta.reshape(-1))
    return torch.cumsum(diff[:size], dim=0)


class _FunctionTerms:
    """A PiecewiseLinear's float64 arrays on a device, in the score-space form used here."""

    def __init__(self, fn: PiecewiseLinear, device: torch.device) -> None:
        self.m = fn.num_segments
        self.offsets = (2.0 * fn.xs - 1.0).to(device)  # a_k = 2 x_k - 1, [M + 1]
        self.ys = fn.ys[:-1].to(device)  # [M]
        self.half_slopes = (0.5 * fn.slopes()).to(device)  # slope_k / 2 per unit of score, [M]
        self.at_half = value_at_half(fn)


class SortedPairwiseSums(torch.autograd.Function):
    """autograd.Function of the sorted backend; see the module docstring."""

    @staticmethod
    def forward(
        ctx,
        scores: Tensor,
        weights: Tensor,
        positives: Tensor,
        num_fn: PiecewiseLinear,
        den_fn: PiecewiseLinear,
        den_grad: bool,
    ) -> tuple[Tensor, Tensor]:
        n, device = scores.numel(), scores.device
        need_ds, need_dw = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        ctx.den_grad = den_grad
        band: Band = band_split(scores, weights, positives)
        n_band = band.size(n)
        s_band = scores.detach() if band.index is None else scores.detach()[band.index]
        sorted_s, order = torch.sort(s_band)
        orig = order if band.index is None else band.index[order]  # sorted position -> entry
        ref = 0.5 * (band.low + band.high)  # centre of the band: |u| <= half its width
        u = sorted_s.to(_F64) - ref
        w = weights.detach()[orig].to(_F64)
        pos_u = scores.detach()[positives].to(_F64) - ref  # [P]

        f2 = _FunctionTerms(num_fn, device)
        f4 = _FunctionTerms(den_fn, device)
        c2 = pos_u[:, None] + f2.offsets[None, :]  # [P, M2 + 1] breakpoints (centered)
        c4 = pos_u[:, None] + f4.offsets[None, :]
        b2 = _segment_bounds(u, c2)
        b4 = _segment_bounds(u, c4)

        pw = _exclusive_cumsum(w)
        seg_w = _range_sums(pw, b2)  # [P, M2]
        seg_wu = _range_sums(_exclusive_cumsum(w * u), b2)
        num = (
            seg_w @ f2.ys
            + ((seg_wu - c2[:, :-1] * seg_w) * f2.half_slopes).sum(1)
            + (pw[n_band] - pw[b2[:, -1]])
            + band.weight_above
        )
        seg_n = (b4[:, 1:] - b4[:, :-1]).to(_F64)  # [P, M4] counts
        seg_u = _range_sums(_exclusive_cumsum(u), b4)
        den = (
            seg_n @ f4.ys
            + ((seg_u - c4[:, :-1] * seg_n) * f4.half_slopes).sum(1)
            + (n_band - b4[:, -1]).to(_F64)
            + band.num_above
        )
        num = num - f2.at_half * weights.detach()[positives].to(_F64)
        den = den - f4.at_half

        if need_ds or need_dw:
            ctx.fns = (num_fn, den_fn)
            # Every tensor goes through save_for_backward, the inputs included although the
            # backward reads only their sorted copies: autograd then raises if scores or weights
            # are modified in place between the forward and the backward. Row sums of the slopes
            # for d/ds_i (self pair included, it cancels the column's) come last.
            ctx.save_for_backward(
                scores,
                weights,
                positives,
                u,
                w,
                orig,
                b2,
                b4,
                c2,
                band.above,
                (seg_w * f2.half_slopes).sum(1) if need_ds else None,
                (seg_n * f4.half_slopes).sum(1) if need_ds and den_grad else None,
            )
        num = num.to(scores.dtype)
        den = den.to(scores.dtype)
        if not den_grad:
            ctx.mark_non_differentiable(den)
        ctx.set_materialize_grads(False)
        return num, den

    @staticmethod
    def backward(ctx, g_num: Tensor | None, g_den: Tensor | None):
        need_ds, need_dw = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if not (need_ds or need_dw):
            return None, None, None, None, None, None
        scores, weights, positives, u, w, orig, b2, b4, c2, above, row_num, row_den = (
            ctx.saved_tensors
        )
        n, n_band = scores.numel(), u.numel()
        device = u.device
        f2, f4 = (_FunctionTerms(fn, device) for fn in ctx.fns)
        p = positives.numel()
        gn = torch.zeros(p, dtype=_F64, device=device) if g_num is None else g_num.to(_F64)
        use_den = ctx.den_grad and g_den is not None
        gd = g_den.to(_F64) if use_den else None
        grad_s = grad_w = None

        if need_dw:
            # Linear-in-u range updates: A + B u on each (positive, segment) range, g on "above".
            coef_a = torch.empty_like(c2)
            coef_a[:, :-1] = gn[:, None] * (f2.ys - f2.half_slopes * c2[:, :-1])
            coef_a[:, -1] = gn
            coef_b = torch.zeros_like(c2)
            coef_b[:, :-1] = gn[:, None] * f2.half_slopes
            col = _range_add(b2, coef_a, n_band) + _range_add(b2, coef_b, n_band) * u
            grad_w = torch.zeros(n, dtype=_F64, device=device)
            grad_w[orig] = col
            if above is not None:
                grad_w.masked_fill_(above, gn.sum())
            grad_w.index_add_(0, positives, -f2.at_half * gn)
            grad_w = grad_w.to(weights.dtype)

        if need_ds:
            slope_n = torch.zeros_like(c2)
            slope_n[:, :-1] = gn[:, None] * f2.half_slopes
            col = _range_add(b2, slope_n, n_band) * w
            row = gn * row_num
            if use_den:
                slope_d = torch.zeros(b4.shape, dtype=_F64, device=device)
                slope_d[:, :-1] = gd[:, None] * f4.half_slopes
                col = col + _range_add(b4, slope_d, n_band)
                row = row + gd * row_den
            grad_s = torch.zeros(n, dtype=_F64, device=device)
            grad_s[orig] = col
            grad_s.index_add_(0, positives, -row)
            grad_s = grad_s.to(scores.dtype)
        return grad_s, grad_w, None, None, None, None


def pairwise_sums_sorted(
    scores: Tensor,
    weights: Tensor,
    positives: Tensor,
    num_fn: PiecewiseLinear,
    den_fn: PiecewiseLinear,
    *,
    den_grad: bool = True,
) -> tuple[Tensor, Tensor]:
    """Sorted backend; shapes: scores [N], weights [N], positives [P] (P >= 1) -> (num, den) [P].

    Inputs are validated by ``paploss.kernels.pairwise_sums``. Outputs have scores' dtype; internal
    arithmetic is float64. ``den_grad=False`` makes den non-differentiable.
    """
    return SortedPairwiseSums.apply(scores, weights, positives, num_fn, den_fn, den_grad)
