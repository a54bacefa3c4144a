"""The mathematics of the PPO2 update (paper Sec. 3.3, Eqs. (10)-(11)), numpy and torch only.

* :func:`sigma_schedule`: the standard deviation ``sigma_t`` of round ``t``;
* :func:`lr_schedule`: the learning rate of an Adam step (linear warm-up, then linear decay);
* :func:`ppo2_objective`: the clipped surrogate of Eq. (11), averaged over a round (Eq. (10));
* :func:`ppo2_update`: the next mean ``mu_{t+1}``, maximizing that surrogate with Adam.

Everything works on normalized samples in [0, 1] and knows nothing of Optuna or storage; the
round protocol (:mod:`._rounds`) feeds it the samples and rewards of a finished round.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ._checks import (
    check_clip_eps,
    check_positive,
    check_update_settings,
)
from ._truncnorm import truncnorm01_logpdf

if TYPE_CHECKING:
    import torch

__all__ = ["MEAN_EPS", "lr_schedule", "ppo2_objective", "ppo2_update", "sigma_schedule"]

#: Means are optimized as logits; a mean exactly on a bound is moved this far inside first.
MEAN_EPS = 1e-6


def sigma_schedule(round_index: int, *, sigma_init: float, rounds: int) -> float:
    """Standard deviation of round ``t``: ``sigma_init * (rounds - t) / rounds``.

    Rounds are numbered ``0 .. rounds - 1``, so ``sigma`` decays linearly from ``sigma_init``
    (round 0) to ``sigma_init / rounds`` (last round) and would reach 0 at ``t = rounds``. That
    value is only needed as the "next" sigma of the update after the last round; there the
    previous sigma is kept (``round_index == rounds`` returns the last round's sigma), so the
    density ratio never divides by a zero-width distribution.

    Args:
        round_index: ``t`` in ``[0, rounds]``.
        sigma_init: ``sigma_0 > 0``.
        rounds: ``T >= 1``.

    Returns:
        ``sigma_t``.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds!r}.")
    if not 0 <= round_index <= rounds:
        raise ValueError(f"round_index must be in [0, {rounds}], got {round_index!r}.")
    t = min(round_index, rounds - 1)
    return sigma_init * (rounds - t) / rounds


def lr_schedule(step: int, *, lr: float, steps: int, warmup_steps: int) -> float:
    """Learning rate of Adam step ``k`` (0-based) in the PPO2 update.

    Linear warm-up from 0: ``lr * k / warmup_steps`` for ``k < warmup_steps`` (so step 0 has a
    learning rate of exactly 0 and only initializes Adam's moment estimates), then linear decay
    towards 0: ``lr * (steps - k) / (steps - warmup_steps)`` (the last step uses
    ``lr / (steps - warmup_steps)``; 0 would be reached one step after the end). This is the
    common "linear schedule with warm-up".
    """
    if step < warmup_steps:
        return lr * step / warmup_steps
    return lr * (steps - step) / (steps - warmup_steps)


def _surrogate(
    theta: torch.Tensor,
    advantages: torch.Tensor,
    logp_old: torch.Tensor,
    mean_new: torch.Tensor,
    sigma_next: float,
    clip_eps: float,
) -> torch.Tensor:
    """Torch version of :func:`ppo2_objective` (to be maximized); see its docstring."""
    import torch

    log_ratio = truncnorm01_logpdf(theta, mean_new, sigma_next) - logp_old  # [S, D]
    # prod_d r_id, computed as exp(sum_d log r_id) (same value, no intermediate under/overflow).
    ratio = torch.exp(log_ratio.sum(dim=1))
    clipped = torch.clamp(torch.exp(log_ratio), 1.0 - clip_eps, 1.0 + clip_eps).prod(dim=1)
    return torch.minimum(ratio * advantages, clipped * advantages).mean()


def _check_round_arrays(
    samples: np.ndarray | Sequence[Sequence[float]],
    rewards: np.ndarray | Sequence[float],
    mean: np.ndarray | Sequence[float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The round as float64 arrays ``[S, D]``, ``[S]``, ``[D]``; shapes and ranges checked."""
    samples_a = np.asarray(samples, dtype=np.float64)
    rewards_a = np.asarray(rewards, dtype=np.float64)
    mean_a = np.asarray(mean, dtype=np.float64)
    if samples_a.ndim != 2 or samples_a.shape[0] < 1 or samples_a.shape[1] < 1:
        raise ValueError(f"samples must have shape [S, D] with S, D >= 1, got {samples_a.shape}.")
    if rewards_a.shape != (samples_a.shape[0],):
        raise ValueError(
            f"rewards must have shape [{samples_a.shape[0]}] (one per sample), "
            f"got {rewards_a.shape}."
        )
    if mean_a.shape != (samples_a.shape[1],):
        raise ValueError(f"mean must have shape [{samples_a.shape[1]}], got {mean_a.shape}.")
    for name, arr in (("samples", samples_a), ("mean", mean_a)):
        if not np.all(np.isfinite(arr)) or np.any(arr < 0.0) or np.any(arr > 1.0):
            raise ValueError(f"{name} must lie in [0, 1] (normalized), got {arr.tolist()!r}.")
    if not np.all(np.isfinite(rewards_a)):
        raise ValueError(f"rewards must be finite, got {rewards_a.tolist()!r}.")
    return samples_a, rewards_a, mean_a


def ppo2_objective(
    samples: np.ndarray | Sequence[Sequence[float]],
    rewards: np.ndarray | Sequence[float],
    mean_old: np.ndarray | Sequence[float],
    mean_new: np.ndarray | Sequence[float],
    sigma: float,
    sigma_next: float,
    *,
    clip_eps: float = 0.1,
) -> float:
    """Clipped PPO2 surrogate of Eq. (11), averaged over the round as in Eq. (10).

    With advantages ``A_i = R_i - mean(R)`` and per-component density ratios
    ``r_id = p(theta_id; mean_new_d, sigma_next) / p(theta_id; mean_old_d, sigma)`` of truncated
    normals on [0, 1], the value is
    ``mean_i min(prod_d r_id * A_i, prod_d clip(r_id, 1 - clip_eps, 1 + clip_eps) * A_i)``.

    Args:
        samples: Normalized samples ``theta`` of the round, shape ``[S, D]``.
        rewards: Rewards ``R_i`` (larger is better), shape ``[S]``.
        mean_old: Mean ``mu_t`` the samples were drawn with, shape ``[D]``.
        mean_new: Candidate mean ``mu``, shape ``[D]``, in [0, 1].
        sigma: ``sigma_t`` the samples were drawn with.
        sigma_next: ``sigma_{t+1}`` used in the numerator of the ratio.
        clip_eps: ``epsilon`` of the clip.

    Returns:
        The surrogate value (a Python float).
    """
    import torch

    samples_a, rewards_a, mean_a = _check_round_arrays(samples, rewards, mean_old)
    _, _, new_a = _check_round_arrays(samples, rewards, mean_new)
    sigma = check_positive("sigma", sigma)
    sigma_next = check_positive("sigma_next", sigma_next)
    check_clip_eps(clip_eps)
    theta = torch.as_tensor(samples_a, dtype=torch.float64)
    adv = torch.as_tensor(rewards_a - rewards_a.mean(), dtype=torch.float64)
    logp_old = truncnorm01_logpdf(theta, torch.as_tensor(mean_a, dtype=torch.float64), sigma)
    value = _surrogate(
        theta, adv, logp_old, torch.as_tensor(new_a, dtype=torch.float64), sigma_next, clip_eps
    )
    return float(value)


def ppo2_update(
    samples: np.ndarray | Sequence[Sequence[float]],
    rewards: np.ndarray | Sequence[float],
    mean: np.ndarray | Sequence[float],
    sigma: float,
    sigma_next: float,
    *,
    clip_eps: float = 0.1,
    steps: int = 100,
    lr: float = 0.01,
    warmup_steps: int = 30,
) -> np.ndarray:
    """Solve Eq. (10) for one round: the next mean ``mu_{t+1}`` of the search distribution.

    The surrogate of :func:`ppo2_objective` is maximized over ``mu`` with Adam (torch defaults:
    betas (0.9, 0.999), eps 1e-8, no weight decay) on the logit ``z = log(mu / (1 - mu))``, so
    ``mu = sigmoid(z)`` stays in (0, 1). ``z`` starts at ``logit(mu_t)`` (``mu_t`` moved
    ``1e-6`` inside [0, 1] if it lies on a bound) and takes ``steps`` steps with the learning rate
    of :func:`lr_schedule`. Everything runs in float64 on the CPU and uses no randomness, so the
    result is a deterministic function of the inputs. If the surrogate ever becomes non-finite
    (a ratio overflowing float64, which needs hundreds of standard deviations), the optimization
    stops at the last finite iterate.

    Args:
        samples: Normalized samples of round ``t``, shape ``[S, D]``, in [0, 1].
        rewards: Their rewards (larger is better), shape ``[S]``.
        mean: ``mu_t``, shape ``[D]``, in [0, 1].
        sigma: ``sigma_t`` (the samples' standard deviation).
        sigma_next: ``sigma_{t+1}`` (see :func:`sigma_schedule`).
        clip_eps: ``epsilon`` of the PPO2 clip, in (0, 1).
        steps: Number of Adam steps (>= 1).
        lr: Peak learning rate (> 0).
        warmup_steps: Linear warm-up length, in ``[0, steps]``.

    Returns:
        ``mu_{t+1}``, a float64 array of shape ``[D]`` in (0, 1).
    """
    import torch

    samples_a, rewards_a, mean_a = _check_round_arrays(samples, rewards, mean)
    sigma = check_positive("sigma", sigma)
    sigma_next = check_positive("sigma_next", sigma_next)
    check_update_settings(clip_eps=clip_eps, steps=steps, lr=lr, warmup_steps=warmup_steps)

    theta = torch.as_tensor(samples_a, dtype=torch.float64)
    adv = torch.as_tensor(rewards_a - rewards_a.mean(), dtype=torch.float64)
    mean_t = torch.as_tensor(mean_a, dtype=torch.float64)
    with torch.no_grad():
        logp_old = truncnorm01_logpdf(theta, mean_t, sigma)
        z0 = torch.logit(mean_t.clamp(MEAN_EPS, 1.0 - MEAN_EPS))
    z = z0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr, foreach=False)
    last_good = z0.clone()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_schedule(step, lr=lr, steps=steps, warmup_steps=warmup_steps)
        optimizer.zero_grad()
        loss = -_surrogate(theta, adv, logp_old, torch.sigmoid(z), sigma_next, clip_eps)
        if not bool(torch.isfinite(loss)):
            break
        loss.backward()
        if not bool(torch.all(torch.isfinite(z.grad))):
            break
        last_good = z.detach().clone()
        optimizer.step()
    else:
        last_good = z.detach().clone()
    return torch.sigmoid(last_good).numpy().astype(np.float64)
