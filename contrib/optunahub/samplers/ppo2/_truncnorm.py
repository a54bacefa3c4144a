"""Truncated normal distributions on [0, 1], one independent component per dimension.

Sampling uses :data:`scipy.stats.truncnorm`. The log-density used by the PPO2 update has to be
differentiable with respect to the mean, so it is built from :class:`torch.distributions.Normal`
(``log_prob`` minus the log of the probability mass ``cdf(1) - cdf(0)`` that the truncation keeps);
it equals :func:`scipy.stats.truncnorm.logpdf` up to rounding (paploss's tests compare them).

The mass ``cdf(1) - cdf(0)`` is computed directly (no log-space tricks): for a mean inside [0, 1]
at least about half of the normal's mass lies in [0, 1] whatever the standard deviation, so the
difference never cancels catastrophically. The PPO2 update keeps its means in (0, 1) by
construction (they are optimized through a logit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

if TYPE_CHECKING:
    import torch

__all__ = ["sample_truncnorm01", "truncnorm01_logpdf"]


def sample_truncnorm01(mean: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Draw one sample from independent truncated normals ``N_trunc[0,1](mean_d, sigma^2)``.

    Args:
        mean: Means of the components, shape ``[D]``, each in [0, 1].
        sigma: Common standard deviation (> 0) of the untruncated normals.
        rng: Generator that supplies all randomness (so a draw is reproducible from its seed).

    Returns:
        A float64 array of shape ``[D]`` with every entry in [0, 1].
    """
    mean = np.asarray(mean, dtype=np.float64)
    if sigma <= 0.0 or not np.isfinite(sigma):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}.")
    if np.any(~np.isfinite(mean)) or np.any(mean < 0.0) or np.any(mean > 1.0):
        raise ValueError(f"mean must lie in [0, 1], got {mean.tolist()!r}.")
    lower = (0.0 - mean) / sigma
    upper = (1.0 - mean) / sigma
    draw = stats.truncnorm.rvs(
        lower, upper, loc=mean, scale=sigma, size=mean.shape, random_state=rng
    )
    # scipy returns values inside the bounds; the clip only guards the last ulp.
    return np.clip(np.asarray(draw, dtype=np.float64), 0.0, 1.0)


def truncnorm01_logpdf(x: torch.Tensor, mean: torch.Tensor, sigma: float) -> torch.Tensor:
    """Log-density of ``N_trunc[0,1](mean, sigma^2)`` at ``x``, differentiable in ``mean``.

    Args:
        x: Points in [0, 1], any shape broadcastable with ``mean``.
        mean: Means in [0, 1] (same dtype as ``x``).
        sigma: Standard deviation (> 0) of the untruncated normal.

    Returns:
        ``log N(x; mean, sigma) - log(Phi((1 - mean) / sigma) - Phi((0 - mean) / sigma))``,
        broadcast over ``x`` and ``mean``.
    """
    import torch

    scale = torch.as_tensor(sigma, dtype=mean.dtype)
    normal = torch.distributions.Normal(mean, scale, validate_args=False)
    mass = normal.cdf(torch.ones_like(mean)) - normal.cdf(torch.zeros_like(mean))
    return normal.log_prob(x) - torch.log(mass)
