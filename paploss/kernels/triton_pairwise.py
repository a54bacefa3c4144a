"""Fused Triton kernels for the pairwise sums (imported lazily: Triton is optional).

Forward kernel, grid (cdiv(P, BLOCK_P), SPLIT): a program holds BLOCK_P positives and streams over
its share of the N entries in tiles of BLOCK_N (the entries are split SPLIT ways when P is small so
that the GPU is full; partial sums go to a [SPLIT, P] buffer that the host reduces). For every pair
it evaluates both piecewise-linear functions in registers (segment select, the same arithmetic as
``PiecewiseLinear.__call__``) and accumulates in fp32 (fp64 for float64 scores):

    num_i = sum_{j != i} f2(x_ij) w_j,   den_i = sum_{j != i} f4(x_ij),

and, when the scores need a gradient, the row sums R2_i = sum_{j != i, |d| < 1} f2'(x_ij) w_j and
R4_i = sum f4'(x_ij) (d = s_j - s_i; torch.clamp with scalar bounds passes the gradient only on the
open interval, and the reference's convention is kept). The
backward's per-positive gradient is then d/ds_i = -0.5 (g_num_i R2_i + g_den_i R4_i) on the host.

Backward kernel, grid (cdiv(N, BLOCK_N), SPLIT): a program holds BLOCK_N entries and streams over
its share of the positives, accumulating the column sums

    d/dw_j = sum_{i != j} g_num_i f2(x_ij),
    d/ds_j = 0.5 sum_{i != j, |d| < 1} (g_num_i w_j f2'(x_ij) + g_den_i f4'(x_ij)).

No P x N buffer exists anywhere; buffers are [SPLIT, P] and [SPLIT, N]. Entries outside the band
[min_i s_i - 1, max_i s_i + 1] are handled exactly on the host (``common.band_split``) and never
reach the kernels. Offsets into N are int64; every load is masked.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from paploss.functions import PiecewiseLinear
from paploss.kernels.common import Band, band_split, function_table


@triton.jit
def _pl_select(x, tab_ptr, M: tl.constexpr):
    """(f(x), f'(x)) of a piecewise-linear function for x in [0, 1], elementwise.

    The table holds lower [M + 1], residual [M + 1], ys [M + 1], slopes [M] (see
    ``common.function_table``). Segment k covers x_k <= x < x_{k+1}, tested as x >= lower[k]
    (x_k rounded up: exact for every x of the compute dtype); x = 1 stays in the last segment (as
    in ``PiecewiseLinear``). The value is y_k + slope_k ((x - lower[k]) - residual[k]), the offset
    accurate to a few ulps also on segments narrower than the dtype's resolution, capped at
    y_{k+1} against rounding; the offset is >= 0, so the value stays in [y_k, y_{k+1}].
    """
    lk = tl.zeros_like(x) + tl.load(tab_ptr)
    rk = tl.zeros_like(x) + tl.load(tab_ptr + M + 1)
    yk = tl.zeros_like(x) + tl.load(tab_ptr + 2 * (M + 1))
    yk1 = tl.zeros_like(x) + tl.load(tab_ptr + 2 * (M + 1) + 1)
    sk = tl.zeros_like(x) + tl.load(tab_ptr + 3 * (M + 1))
    for k in tl.static_range(1, M):
        bk = tl.load(tab_ptr + k)
        right = x >= bk
        lk = tl.where(right, bk, lk)
        rk = tl.where(right, tl.load(tab_ptr + M + 1 + k), rk)
        yk = tl.where(right, tl.load(tab_ptr + 2 * (M + 1) + k), yk)
        yk1 = tl.where(right, tl.load(tab_ptr + 2 * (M + 1) + k + 1), yk1)
        sk = tl.where(right, tl.load(tab_ptr + 3 * (M + 1) + k), sk)
    return tl.minimum(yk + sk * ((x - lk) - rk), yk1), sk


# Sizes change every training step: no recompilation per divisibility class of N and P.
@triton.jit(do_not_specialize=["N", "P", "tiles_per_split"])
def _pairwise_fwd_kernel(
    s_ptr,  # [N] scores (compute dtype)
    w_ptr,  # [N] weights
    pidx_ptr,  # [P] int64 index of each positive into s
    tab_num_ptr,  # f2 table
    tab_den_ptr,  # f4 table
    num_ptr,  # [SPLIT, P] partial num
    den_ptr,  # [SPLIT, P] partial den
    rnum_ptr,  # [SPLIT, P] partial R2 (written if ROW_NUM)
    rden_ptr,  # [SPLIT, P] partial R4 (written if ROW_DEN)
    N,
    P,
    tiles_per_split,
    M_NUM: tl.constexpr,
    M_DEN: tl.constexpr,
    ROW_NUM: tl.constexpr,
    ROW_DEN: tl.constexpr,
    CDT: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    pid_p = tl.program_id(0)
    pid_s = tl.program_id(1)
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    p_mask = offs_p < P
    i_idx = tl.load(pidx_ptr + offs_p, mask=p_mask, other=-1)
    s_i = tl.load(s_ptr + i_idx, mask=p_mask, other=0.0).to(CDT)

    n_tiles = tl.cdiv(N, BLOCK_N)
    first = pid_s * tiles_per_split
    iters = tl.minimum(tiles_per_split, n_tiles - first)
    base = first.to(tl.int64) * BLOCK_N
    acc_num = tl.zeros([BLOCK_P, BLOCK_N], dtype=CDT)
    acc_den = tl.zeros([BLOCK_P, BLOCK_N], dtype=CDT)
    acc_rnum = tl.zeros([BLOCK_P, BLOCK_N], dtype=CDT)
    acc_rden = tl.zeros([BLOCK_P, BLOCK_N], dtype=CDT)
    for it in range(0, iters):
        offs_n = base + it * BLOCK_N + tl.arange(0, BLOCK_N)
        n_mask = offs_n < N
        s_j = tl.load(s_ptr + offs_n, mask=n_mask, other=0.0).to(CDT)
        w_j = tl.load(w_ptr + offs_n, mask=n_mask, other=0.0).to(CDT)
        d = s_j[None, :] - s_i[:, None]
        pair = n_mask[None, :] & (offs_n[None, :] != i_idx[:, None])
        x = (tl.minimum(tl.maximum(d, -1.0), 1.0) + 1.0) * 0.5
        f2, g2 = _pl_select(x, tab_num_ptr, M_NUM)
        f4, g4 = _pl_select(x, tab_den_ptr, M_DEN)
        acc_num += tl.where(pair, f2 * w_j[None, :], 0.0)
        acc_den += tl.where(pair, f4, 0.0)
        if ROW_NUM or ROW_DEN:
            live = pair & (d > -1.0) & (d < 1.0)
            if ROW_NUM:
                acc_rnum += tl.where(live, g2 * w_j[None, :], 0.0)
            if ROW_DEN:
                acc_rden += tl.where(live, g4, 0.0)

    out = pid_s.to(tl.int64) * P + offs_p
    tl.store(num_ptr + out, tl.sum(acc_num, axis=1), mask=p_mask)
    tl.store(den_ptr + out, tl.sum(acc_den, axis=1), mask=p_mask)
    if ROW_NUM:
        tl.store(rnum_ptr + out, tl.sum(acc_rnum, axis=1), mask=p_mask)
    if ROW_DEN:
        tl.store(rden_ptr + out, tl.sum(acc_rden, axis=1), mask=p_mask)


@triton.jit(do_not_specialize=["N", "P", "pblocks_per_split"])
def _pairwise_bwd_col_kernel(
    s_ptr,  # [N] scores
    w_ptr,  # [N] weights
    pidx_ptr,  # [P] int64
    gnum_ptr,  # [P] upstream gradient of num
    gden_ptr,  # [P] upstream gradient of den (read if DEN_GRAD)
    tab_num_ptr,
    tab_den_ptr,
    ds_ptr,  # [SPLIT, N] partial column d/ds_j (written if NEED_DS)
    dw_ptr,  # [SPLIT, N] partial d/dw_j (written if NEED_DW)
    N,
    P,
    pblocks_per_split,
    M_NUM: tl.constexpr,
    M_DEN: tl.constexpr,
    NEED_DS: tl.constexpr,
    NEED_DW: tl.constexpr,
    DEN_GRAD: tl.constexpr,
    CDT: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_s = tl.program_id(1)
    offs_n = pid_n.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = offs_n < N
    s_j = tl.load(s_ptr + offs_n, mask=n_mask, other=0.0).to(CDT)
    w_j = tl.load(w_ptr + offs_n, mask=n_mask, other=0.0).to(CDT)

    n_pblocks = tl.cdiv(P, BLOCK_P)
    first = pid_s * pblocks_per_split
    iters = tl.minimum(pblocks_per_split, n_pblocks - first)
    acc_dw = tl.zeros([BLOCK_P, BLOCK_N], dtype=CDT)
    acc_sn = tl.zeros([BLOCK_P, BLOCK_N], dtype=CDT)
    acc_sd = tl.zeros([BLOCK_P, BLOCK_N], dtype=CDT)
    for it in range(0, iters):
        offs_p = (first + it) * BLOCK_P + tl.arange(0, BLOCK_P)
        p_mask = offs_p < P
        i_idx = tl.load(pidx_ptr + offs_p, mask=p_mask, other=-1)
        s_i = tl.load(s_ptr + i_idx, mask=p_mask, other=0.0).to(CDT)
        g_n = tl.load(gnum_ptr + offs_p, mask=p_mask, other=0.0).to(CDT)
        d = s_j[None, :] - s_i[:, None]
        pair = p_mask[:, None] & n_mask[None, :] & (offs_n[None, :] != i_idx[:, None])
        x = (tl.minimum(tl.maximum(d, -1.0), 1.0) + 1.0) * 0.5
        f2, g2 = _pl_select(x, tab_num_ptr, M_NUM)
        if NEED_DW:
            acc_dw += tl.where(pair, g_n[:, None] * f2, 0.0)
        if NEED_DS:
            live = pair & (d > -1.0) & (d < 1.0)
            acc_sn += tl.where(live, g_n[:, None] * g2, 0.0)
            if DEN_GRAD:
                g_d = tl.load(gden_ptr + offs_p, mask=p_mask, other=0.0).to(CDT)
                _, g4 = _pl_select(x, tab_den_ptr, M_DEN)
                acc_sd += tl.where(live, g_d[:, None] * g4, 0.0)

    out = pid_s.to(tl.int64) * N + offs_n
    if NEED_DW:
        tl.store(dw_ptr + out, tl.sum(acc_dw, axis=0), mask=n_mask)
    if NEED_DS:
        ds = w_j * tl.sum(acc_sn, axis=0)
        if DEN_GRAD:
            ds += tl.sum(acc_sd, axis=0)
        tl.store(ds_ptr + out, 0.5 * ds, mask=n_mask)


# --------------------------------------------------------------------------------- launch config
@dataclass(frozen=True)
class LaunchConfig:
    """Tile sizes and the split of the streamed dimension.

    Attributes:
        block_p: positives per tile (power of 2).
        block_n: entries per tile (power of 2).
        split: how many programs share the streamed dimension (N for the forward kernel, P for the
            backward kernel); 0 picks it from the device's SM count.
        num_warps: warps per program (ignored by the interpreter).
    """

    block_p: int = 32
    block_n: int = 64
    split: int = 0
    num_warps: int = 4

    def __post_init__(self) -> None:
        for name in ("block_p", "block_n"):
            value = getattr(self, name)
            if value < 1 or value & (value - 1):
                raise ValueError(f"{name} must be a power of 2, got {value}")
        if self.split < 0:
            raise ValueError(f"split must be >= 0 (0 = automatic), got {self.split}")


DEFAULT_FORWARD = LaunchConfig(block_p=32, block_n=64, num_warps=4)
DEFAULT_BACKWARD = LaunchConfig(block_p=32, block_n=64, num_warps=4)
"""Defaults: no register spills on sm_90 with fp32 (ptxas: 141-194 registers per thread for the
forward, 156 for the backward); 128-wide entry tiles spill when the row sums are accumulated.
The choice rests on these register counts, not on timings; ``benchmarks/gpu_check.sh`` times
alternatives."""
FLOAT64_CONFIG = LaunchConfig(block_p=16, block_n=32, num_warps=4)
"""Default for float64 inputs (fp64 registers are twice as wide; 32 x 64 tiles spill)."""


def _target_programs(device: torch.device) -> int:
    if device.type == "cuda":
        return 4 * torch.cuda.get_device_properties(device).multi_processor_count
    return 4


def _split(
    streamed_blocks: int, other_programs: int, cfg: LaunchConfig, device: torch.device
) -> tuple[int, int]:
    """(split, blocks per split): split the streamed blocks so that other * split ~ target."""
    split = cfg.split or triton.cdiv(_target_programs(device), max(other_programs, 1))
    split = max(1, min(split, streamed_blocks))
    per_split = triton.cdiv(streamed_blocks, split)
    return triton.cdiv(streamed_blocks, per_split), per_split


def _tl_dtype(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def _band_inputs(
    scores: Tensor, weights: Tensor, positives: Tensor, cdt: torch.dtype
) -> tuple[Band, Tensor, Tensor, Tensor]:
    """(band, s_b, w_b, pidx): the band split, the band's scores and weights [N'] in the compute
    dtype cdt (contiguous) and the positives' indices into them [P]."""
    band: Band = band_split(scores, weights, positives)
    s_c = scores.detach().to(cdt)
    w_c = weights.detach().to(cdt)
    if band.index is None:
        return band, s_c.contiguous(), w_c.contiguous(), positives.contiguous()
    # band.index is increasing and holds every positive: its slot is found by bisection
    pidx = torch.searchsorted(band.index, positives)
    return band, s_c[band.index], w_c[band.index], pidx


def _forward_sums(
    s_b: Tensor,
    w_b: Tensor,
    pidx: Tensor,
    tab_num: Tensor,
    tab_den: Tensor,
    segments: tuple[int, int],
    row_num: bool,
    row_den: bool,
    cfg: LaunchConfig,
) -> Tensor:
    """Run the forward kernel on the band; returns its sums, float64 [4, P] (num, den, R2, R4 over
    the band; R4 is never written, so meaningless, unless row_den) if row_num, else [2, P]."""
    p, n_band, device, cdt = pidx.numel(), s_b.numel(), s_b.device, s_b.dtype
    n_tiles = triton.cdiv(n_band, cfg.block_n)
    p_programs = triton.cdiv(p, cfg.block_p)
    split, tiles_per_split = _split(n_tiles, p_programs, cfg, device)
    parts = torch.empty((4 if row_num else 2, split, p), dtype=cdt, device=device)
    _pairwise_fwd_kernel[(p_programs, split)](
        s_b,
        w_b,
        pidx,
        tab_num,
        tab_den,
        parts[0],
        parts[1],
        parts[2] if row_num else parts[0],
        parts[3] if row_den else parts[0],
        n_band,
        p,
        tiles_per_split,
        M_NUM=segments[0],
        M_DEN=segments[1],
        ROW_NUM=row_num,
        ROW_DEN=row_den,
        CDT=_tl_dtype(cdt),
        BLOCK_P=cfg.block_p,
        BLOCK_N=cfg.block_n,
        num_warps=cfg.num_warps,
    )
    return parts.sum(1, dtype=torch.float64)


# --------------------------------------------------------------------------------- autograd
class TritonPairwiseSums(torch.autograd.Function):
    """autograd.Function of the Triton backend; see the module docstring."""

    @staticmethod
    def forward(
        ctx,
        scores: Tensor,
        weights: Tensor,
        positives: Tensor,
        num_fn: PiecewiseLinear,
        den_fn: PiecewiseLinear,
        den_grad: bool,
        forward_config: LaunchConfig,
        backward_config: LaunchConfig,
    ) -> tuple[Tensor, Tensor]:
        need_ds, need_dw = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        cdt = torch.float64 if torch.float64 in (scores.dtype, weights.dtype) else torch.float32
        band, s_b, w_b, pidx = _band_inputs(scores, weights, positives, cdt)
        tab_num = function_table(num_fn, cdt, scores.device)
        tab_den = function_table(den_fn, cdt, scores.device)
        row_num, row_den = need_ds, need_ds and den_grad
        segments = (num_fn.num_segments, den_fn.num_segments)
        sums = _forward_sums(
            s_b, w_b, pidx, tab_num, tab_den, segments, row_num, row_den, forward_config
        )
        num = (sums[0] + band.weight_above).to(scores.dtype)
        den = (sums[1] + band.num_above).to(scores.dtype)

        if need_ds or need_dw:
            ctx.den_grad = den_grad
            ctx.config = backward_config
            ctx.meta = (cdt, *segments)
            # Every tensor goes through save_for_backward, the inputs included although the
            # backward reads their band copies: autograd then raises if scores or weights are
            # modified in place between the forward and the backward.
            ctx.save_for_backward(
                scores,
                weights,
                positives,
                s_b,
                w_b,
                pidx,
                tab_num,
                tab_den,
                sums[2].to(cdt) if row_num else None,
                sums[3].to(cdt) if row_den else None,
                band.index,
                band.above,
            )
        if not den_grad:
            ctx.mark_non_differentiable(den)
        ctx.set_materialize_grads(False)
        return num, den

    @staticmethod
    def backward(ctx, g_num: Tensor | None, g_den: Tensor | None):
        need_ds, need_dw = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        nones = (None,) * 6
        if not (need_ds or need_dw):
            return None, None, *nones
        cdt, m_num, m_den = ctx.meta
        scores, weights, positives, s_b, w_b, pidx, tab_num, tab_den, *rows = ctx.saved_tensors
        row_num, row_den, band_index, band_above = rows
        n, s_dtype, w_dtype = scores.numel(), scores.dtype, weights.dtype
        device, p, n_band = s_b.device, pidx.numel(), s_b.numel()
        gn = torch.zeros(p, dtype=cdt, device=device) if g_num is None else g_num.to(cdt)
        gn = gn.contiguous()
        use_den = need_ds and ctx.den_grad and g_den is not None
        gd = g_den.to(cdt).contiguous() if use_den else gn

        cfg: LaunchConfig = ctx.config
        n_programs = triton.cdiv(n_band, cfg.block_n)
        split, pblocks_per_split = _split(triton.cdiv(p, cfg.block_p), n_programs, cfg, device)
        parts = torch.empty((2, split, n_band), dtype=cdt, device=device)
        _pairwise_bwd_col_kernel[(n_programs, split)](
            s_b,
            w_b,
            pidx,
            gn,
            gd,
            tab_num,
            tab_den,
            parts[0],
            parts[1],
            n_band,
            p,
            pblocks_per_split,
            M_NUM=m_num,
            M_DEN=m_den,
            NEED_DS=need_ds,
            NEED_DW=need_dw,
            DEN_GRAD=use_den,
            CDT=_tl_dtype(cdt),
            BLOCK_P=cfg.block_p,
            BLOCK_N=cfg.block_n,
            num_warps=cfg.num_warps,
        )
        grad_s = grad_w = None
        if need_ds:
            col = parts[0].sum(0) if split > 1 else parts[0, 0]
            grad_s = col if band_index is None else col.new_zeros(n).index_copy_(0, band_index, col)
            row = gn * row_num
            if use_den:
                row = row + gd * row_den
            grad_s = grad_s.index_add(0, positives, -0.5 * row).to(s_dtype)
        if need_dw:
            col = parts[1].sum(0) if split > 1 else parts[1, 0]
            grad_w = col if band_index is None else col.new_zeros(n).index_copy_(0, band_index, col)
            if band_above is not None:
                grad_w.masked_fill_(band_above, gn.sum())
            grad_w = grad_w.to(w_dtype)
        return grad_s, grad_w, *nones


def pairwise_sums_triton(
    scores: Tensor,
    weights: Tensor,
    positives: Tensor,
    num_fn: PiecewiseLinear,
    den_fn: PiecewiseLinear,
    *,
    den_grad: bool = True,
    forward_config: LaunchConfig | None = None,
    backward_config: LaunchConfig | None = None,
) -> tuple[Tensor, Tensor]:
    """Triton backend; shapes: scores [N], weights [N], positives [P] (P >= 1) -> (num, den) [P].

    Scores must be on a CUDA device, or on the CPU with TRITON_INTERPRET=1 set before this module
    was imported. Inputs are validated by ``paploss.kernels.pairwise_sums``. Arithmetic is fp32
    (fp64 if scores or weights are float64); outputs have scores' dtype.
    """
    f64 = torch.float64 in (scores.dtype, weights.dtype)
    return TritonPairwiseSums.apply(
        scores,
        weights,
        positives,
        num_fn,
        den_fn,
        den_grad,
        forward_config or (FLOAT64_CONFIG if f64 else DEFAULT_FORWARD),
        backward_config or (FLOAT64_CONFIG if f64 else DEFAULT_BACKWARD),
    )
