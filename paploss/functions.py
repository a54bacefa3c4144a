"""Monotone piecewise-linear functions on [0, 1] (paper Sec. 3.2, Eqs. (7)-(8)).

Every H(.) of the AP formula is replaced by such a function f(x; theta): M linear segments through
M + 1 control points (x_0, y_0) = (0, 0), ..., (x_M, y_M) = (1, 1), x strictly increasing, y
non-decreasing. The search parameterizes the interior points by the ratios of Eq. (8),

    r_k = (p_k - p_{k-1}) / (1 - p_{k-1}),   p_k = r_k * (1 - p_{k-1}) + p_{k-1},   k = 1..M-1,

separately for x and y, so that every ratio in (0, 1) gives a valid function.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

RATIO_EPS = 1e-3
"""Ratios of Eq. (8) are clamped into [RATIO_EPS, 1 - RATIO_EPS]. Then every segment keeps a
positive width: segment k is r_k * prod_{m<k} (1 - r_m) >= RATIO_EPS**k wide (1e-12 at worst for
M = 5), so every slope is finite (<= 1e12) and the ratio <-> control-point map is a bijection."""


def _points_from_ratios(ratios: Sequence[float], eps: float) -> list[float]:
    points = [0.0]
    for r in ratios:
        r = min(max(float(r), eps), 1.0 - eps)
        prev = points[-1]
        points.append(r * (1.0 - prev) + prev)
    points.append(1.0)
    return points


def _ratios_from_points(points: Sequence[float]) -> list[float]:
    ratios = []
    for k in range(1, len(points) - 1):
        remaining = 1.0 - points[k - 1]
        ratios.append((points[k] - points[k - 1]) / remaining if remaining > 0 else 0.0)
    return ratios


def _check_control_points(xs: Tensor, ys: Tensor) -> None:
    """Raise ValueError (one line, naming the problem) unless xs, ys are valid control points."""
    if xs.dim() != 1 or ys.dim() != 1:
        raise ValueError(
            f"xs and ys must be 1-D, got shapes {tuple(xs.shape)} and {tuple(ys.shape)}"
        )
    if xs.numel() != ys.numel():
        raise ValueError(f"xs and ys must have the same length, got {xs.numel()} and {ys.numel()}")
    if xs.numel() < 2:
        raise ValueError(f"need at least 2 control points (1 segment), got {xs.numel()}")
    xs_list, ys_list = xs.tolist(), ys.tolist()
    if not all(math.isfinite(v) for v in xs_list + ys_list):
        raise ValueError(f"control points must be finite, got xs={xs_list}, ys={ys_list}")
    if xs_list[0] != 0.0 or ys_list[0] != 0.0 or xs_list[-1] != 1.0 or ys_list[-1] != 1.0:
        raise ValueError(
            "end-point constraint: the first control point must be (0, 0) and the last (1, 1), "
            f"got ({xs_list[0]}, {ys_list[0]}) and ({xs_list[-1]}, {ys_list[-1]})"
        )
    for k in range(1, len(xs_list)):
        if not xs_list[k] > xs_list[k - 1]:
            raise ValueError(
                f"xs must be strictly increasing, got xs[{k - 1}]={xs_list[k - 1]} >= "
                f"xs[{k}]={xs_list[k]} in {xs_list}"
            )
        if ys_list[k] < ys_list[k - 1]:
            raise ValueError(
                f"ys must be non-decreasing (monotonicity constraint), got "
                f"ys[{k - 1}]={ys_list[k - 1]} > ys[{k}]={ys_list[k]} in {ys_list}"
            )


class PiecewiseLinear:
    """A monotone piecewise-linear function f: [0, 1] -> [0, 1] with f(0) = 0 and f(1) = 1.

    Attributes:
        xs: float64 tensor [M + 1], control-point abscissae, 0 = xs[0] < xs[1] < ... < xs[M] = 1.
        ys: float64 tensor [M + 1], control-point ordinates, 0 = ys[0] <= ... <= ys[M] = 1.

    Evaluation follows Eq. (7): segment k covers x_k <= x < x_{k+1}, and x = 1 the last segment;
    inputs are clamped to [0, 1]. At a breakpoint the derivative is the slope of the segment to its
    right (the half-open intervals of Eq. (7)). At x = 0 and x = 1 exactly it is 0: the clamp
    passes the gradient on the open interval (0, 1) only, as torch.clamp with scalar bounds does.

    Segments can be narrower than the resolution of the evaluation dtype (RATIO_EPS allows 1e-12
    wide segments next to x = 1, where float32 resolves 6e-8). Evaluation stays exact to a few
    ulps in any dtype all the same (see ``evaluation_tables``), and every value lies within its
    segment's y-range [y_k, y_{k+1}].
    """

    def __init__(self, xs: Tensor | Sequence[float], ys: Tensor | Sequence[float]) -> None:
        """xs, ys: [M + 1] control points; raises ValueError unless they satisfy the constraints
        listed under Attributes (equal length >= 2, finite, end points (0, 0) and (1, 1), xs
        strictly increasing, ys non-decreasing)."""
        xs_t = torch.as_tensor(xs.detach() if isinstance(xs, Tensor) else xs, dtype=torch.float64)
        ys_t = torch.as_tensor(ys.detach() if isinstance(ys, Tensor) else ys, dtype=torch.float64)
        _check_control_points(xs_t, ys_t)
        self.xs = xs_t.clone()
        self.ys = ys_t.clone()

    # ----------------------------------------------------------------------------- constructors
    @classmethod
    def from_control_points(cls, xs: Sequence[float], ys: Sequence[float]) -> PiecewiseLinear:
        """Build from M + 1 control points; validates end points and monotonicity (see __init__)."""
        return cls(xs, ys)

    @classmethod
    def from_ratios(
        cls, rx: Sequence[float], ry: Sequence[float], *, eps: float = RATIO_EPS
    ) -> PiecewiseLinear:
        """Build from the M - 1 ratio pairs of Eq. (8); ratios are clamped into [eps, 1 - eps]."""
        rx_list = [float(v) for v in rx]
        ry_list = [float(v) for v in ry]
        if len(rx_list) != len(ry_list):
            raise ValueError(
                f"rx and ry must have the same length (M - 1), got {len(rx_list)} and {len(ry_list)}"
            )
        for name, values in (("rx", rx_list), ("ry", ry_list)):
            bad = [v for v in values if not (math.isfinite(v) and 0.0 <= v <= 1.0)]
            if bad:
                raise ValueError(f"{name} ratios must lie in [0, 1], got {bad} in {values}")
        return cls(_points_from_ratios(rx_list, eps), _points_from_ratios(ry_list, eps))

    @classmethod
    def identity(cls, num_segments: int = 5) -> PiecewiseLinear:
        """f(x) = x with M equal segments: ratios r_k = 1 / (M - k + 1), the search's start."""
        if num_segments < 1:
            raise ValueError(f"num_segments must be >= 1, got {num_segments}")
        ratios = [1.0 / (num_segments - k + 1) for k in range(1, num_segments)]
        return cls.from_ratios(ratios, ratios, eps=0.0)

    @classmethod
    def from_callable(cls, fn, knots: Sequence[float]) -> PiecewiseLinear:
        """Interpolate a monotone fn with fn(0) = 0, fn(1) = 1 at the given knots (incl. 0 and 1)."""
        ys = [float(fn(x)) for x in knots]
        ys[0], ys[-1] = 0.0, 1.0
        return cls.from_control_points(list(knots), ys)

    # ----------------------------------------------------------------------------- properties
    @property
    def num_segments(self) -> int:
        return self.xs.numel() - 1

    def ratios(self) -> tuple[list[float], list[float]]:
        """The Eq. (8) ratios (rx, ry), each of length M - 1."""
        return _ratios_from_points(self.xs.tolist()), _ratios_from_points(self.ys.tolist())

    def slopes(self) -> Tensor:
        """float64 tensor [M]: the slope of each segment."""
        return (self.ys[1:] - self.ys[:-1]) / (self.xs[1:] - self.xs[:-1])

    # ----------------------------------------------------------------------------- evaluation
    def evaluation_tables(
        self, dtype: torch.dtype, device: torch.device | str | None = None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The control points in the form the evaluation uses, cast once to dtype (float32/64).

        Returns (lower [M + 1], residual [M + 1], ys [M + 1], slopes [M]):

        - lower[k]: the smallest value of dtype >= x_k (x_k rounded up). For any x representable
          in dtype, x >= lower[k] exactly when x >= x_k, so the segment search on ``lower`` picks
          the segment that exact arithmetic picks, even where several x_k round to one value
          (with RATIO_EPS, x_3 = 1 - 1e-9 and x_4 = 1 - 1e-12 both round to 1 in float32).
        - residual[k] = x_k - lower[k] <= 0, rounded: lower + residual is x_k to twice the
          precision of dtype. The offset into segment k is (x - lower[k]) - residual[k]; the first
          difference is exact where it matters (x within a factor 2 of lower[k], Sterbenz), so the
          offset carries a relative error of a few ulps instead of an absolute one of ulp(x_k),
          which a slope of up to 1e12 (RATIO_EPS) would turn into an O(1) error.
        - ys, slopes: rounded once from float64 (slopes computed in float64).

        In float64, lower = xs and residual = 0.

        Raises:
            ValueError: a segment is so narrow that its slope exceeds the largest value of dtype
                (e.g. x = [0, 1e-40, 1] in float32: slope 1e40 > 3.4e38 would be inf, and
                inf * 0 makes f(x_k) NaN); the message names the segment and the width it needs.
        """
        self._check_slopes_fit(dtype)
        xs = self.xs  # float64, on the CPU: the tables are built there and moved once
        lower = xs.to(dtype)
        rounded_down = lower.to(torch.float64) < xs
        lower = torch.where(rounded_down, torch.nextafter(lower, torch.ones_like(lower)), lower)
        residual = (xs - lower.to(torch.float64)).to(dtype)
        tables = (lower, residual, self.ys.to(dtype), self.slopes().to(dtype))
        if device is None:
            return tables
        return tuple(t.to(device) for t in tables)  # type: ignore[return-value]

    def _check_slopes_fit(self, dtype: torch.dtype) -> None:
        """ValueError unless every slope is finite in ``dtype`` (see ``evaluation_tables``)."""
        largest = torch.finfo(dtype).max
        slopes = self.slopes()
        too_steep = (slopes > largest).nonzero().flatten().tolist()
        if not too_steep:
            return
        k = too_steep[0]
        x0, x1 = self.xs[k].item(), self.xs[k + 1].item()
        rise = (self.ys[k + 1] - self.ys[k]).item()
        name = str(dtype).removeprefix("torch.")
        raise ValueError(
            f"segment {k} of the piecewise-linear function is too narrow for {name}: x from {x0:.6g} to {x1:.6g} "
            f"({x1 - x0:.3g} wide) rising by {rise:.6g} has the slope {slopes[k].item():.3g}, "
            f"beyond the largest {name} value {largest:.3g}; widen it to at least "
            f"{rise / largest:.3g} (or evaluate in float64)"
        )

    def __call__(self, x: Tensor) -> Tensor:
        """Evaluate f on a tensor of any shape (clamped to [0, 1]); differentiable w.r.t. x.

        The result has x's dtype and device (float16/bfloat16 are evaluated in float32 and rounded
        once). On segment k: y_k + slope_k * ((x - lower_k) - residual_k) (see
        ``evaluation_tables``), capped at y_{k+1} so that rounding never leaves the segment's
        y-range [y_k, y_{k+1}] (the offset is >= 0 by the segment search, so the value is >= y_k).
        The derivative is slope_k, capped or not.
        """
        out_dtype = x.dtype
        if x.dtype not in (torch.float32, torch.float64):
            x = x.to(torch.float32)
        lower, residual, ys, slopes = self.evaluation_tables(x.dtype, x.device)
        x = x.clamp(0.0, 1.0)
        seg = torch.searchsorted(lower, x.detach().contiguous(), right=True) - 1
        seg = seg.clamp(0, self.num_segments - 1)
        y = ys[seg] + slopes[seg] * ((x - lower[seg]) - residual[seg])
        # Cap at y_{k+1} without cutting the gradient; y - (y - cap) == cap exactly, as y - cap is
        # exact (Sterbenz: y exceeds the cap by a few ulps at most).
        excess = (y.detach() - ys[seg + 1]).clamp(min=0.0)
        return (y - excess).to(out_dtype)

    def to_dict(self) -> dict[str, list[float]]:
        return {"x": self.xs.tolist(), "y": self.ys.tolist()}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PiecewiseLinear):
            return NotImplemented
        return torch.equal(self.xs, other.xs) and torch.equal(self.ys, other.ys)

    def __repr__(self) -> str:
        pts = ", ".join(f"({x:.4f}, {y:.4f})" for x, y in zip(self.xs.tolist(), self.ys.tolist()))
        return f"PiecewiseLinear([{pts}])"
