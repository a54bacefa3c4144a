"""Closed-form hand-crafted substitutions for H(.) in the AP formula (paper Tab. 2).

The authors' release defines them, with d = s_j - s_i a score difference and l in [0, 1] a
localization score (GIoU mapped by (g + 1) / 2):

========  ==================================  ==========================
name      ranking terms f2, f4 (of d)         localization f1, f3, f5
========  ==================================  ==========================
sigmoid   sigmoid(d), d not clamped           sigmoid(2 l - 1)
linear    x = clamp(d / 2 + 1 / 2, 0, 1)      l
square    x ** 2                              l ** 2
sqrt      sqrt(x)                             sqrt(l)
========  ==================================  ==========================

(sqrt is in the paper but not in the release; it follows the pattern of square.) sigmoid is not a
function of [0, 1] onto [0, 1] with f(0) = 0 and f(1) = 1, so it is no PiecewiseLinear; the
64-segment presets of :mod:`paploss.params` approximate other curves. These closed forms are
evaluated pairwise in PyTorch (``paploss.kernels.reference.pairwise_sums_of_differences``), which
only the "reference" backend (and "auto") serves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from paploss.kernels.reference import score_differences_to_unit

SUBSTITUTIONS = ("sigmoid", "sqrt", "linear", "square")


@dataclass(frozen=True)
class Substitution:
    """One hand-crafted substitution.

    Attributes:
        name: one of SUBSTITUTIONS.
        rank: d -> (f(d), f'(d)), f2 = f4 as a function of the score difference d = s_j - s_i
            (elementwise, any shape; the derivative is written out so that the pairwise sums need
            not keep a P x N autograd graph).
        loc: f1 = f3 = f5 as a function of the localization score l in [0, 1] (autograd).
    """

    name: str
    rank: Callable[[Tensor], tuple[Tensor, Tensor]]
    loc: Callable[[Tensor], Tensor]

    def rank_value(self, d: Tensor) -> Tensor:
        """f(d) alone (e.g. f(0) for the self pair of release_compatible)."""
        return self.rank(d)[0]


def _sigmoid_rank(d: Tensor) -> tuple[Tensor, Tensor]:
    value = torch.sigmoid(d)
    return value, value * (1.0 - value)


def _clamped_rank(
    fn: Callable[[Tensor], Tensor], slope: Callable[[Tensor], Tensor]
) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """f(x) with x = clamp(d / 2 + 1 / 2, 0, 1): f'(d) = slope(x) / 2 for |d| < 1, else 0 (the
    clamp's convention in the PWL backends)."""

    def rank(d: Tensor) -> tuple[Tensor, Tensor]:
        x = score_differences_to_unit(d)
        inside = (d > -1.0) & (d < 1.0)
        return fn(x), torch.where(inside, 0.5 * slope(torch.where(inside, x, 0.5)), 0.0)

    return rank


def _sqrt_loc(v: Tensor) -> Tensor:
    """sqrt(l) whose gradient at l = 0 is 0, not inf (inf * 0 would be NaN)."""
    positive = v > 0
    return torch.where(positive, torch.where(positive, v, 1.0).sqrt(), 0.0 * v)


_TABLE = {
    "sigmoid": Substitution("sigmoid", _sigmoid_rank, lambda v: torch.sigmoid(2.0 * v - 1.0)),
    "linear": Substitution("linear", _clamped_rank(lambda x: x, torch.ones_like), lambda v: v),
    "square": Substitution(
        "square", _clamped_rank(lambda x: x * x, lambda x: 2.0 * x), lambda v: v * v
    ),
    "sqrt": Substitution(
        "sqrt", _clamped_rank(lambda x: x.sqrt(), lambda x: 0.5 / x.sqrt()), _sqrt_loc
    ),
}


def substitution(name: str) -> Substitution:
    """The substitution called ``name``; ValueError naming the choices otherwise."""
    if name not in _TABLE:
        raise ValueError(f"unknown substitution {name!r}; choose one of {SUBSTITUTIONS}")
    return _TABLE[name]
