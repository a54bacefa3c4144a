"""PPO2 search over truncated normal distributions as an Optuna sampler.

This is the outer level of the Parameterized AP Loss search (paper Sec. 3.3, Alg. 1, Eqs. (10)-(11)
and Sec. 4.1 "Search Settings"): round after round, ``S`` parameter sets are drawn from independent
truncated normals on [0, 1]; once the ``S`` rewards of a round are known, the mean of the
distribution is moved by maximizing the clipped PPO2 surrogate.

The module has three layers:

* pure functions (:func:`sigma_schedule`, :func:`lr_schedule`, :func:`ppo2_objective`,
  :func:`ppo2_update`) that implement the mathematics and are tested directly;
* :class:`PPO2Sampler`, which maps trials of an Optuna study onto rounds and keeps every piece of
  state in the study's storage, so that any number of threads and processes sharing one RDB or
  journal study cooperate on the same search;
* the storage keys below, which are the sampler's on-disk format.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, FloatDistribution, distribution_to_json
from optuna.samplers import BaseSampler, RandomSampler
from optuna.samplers._base import _INDEPENDENT_SAMPLING_WARNING_TEMPLATE
from optuna.samplers._lazy_random_state import LazyRandomState
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from paploss.samplers._truncnorm import sample_truncnorm01, truncnorm01_logpdf

if TYPE_CHECKING:
    import torch
    from optuna.study import Study

__all__ = [
    "PPO2Sampler",
    "SearchFinishedError",
    "lr_schedule",
    "ppo2_objective",
    "ppo2_update",
    "sigma_schedule",
]

# A child of Optuna's logger: ``optuna.logging.set_verbosity`` and Optuna's handler apply to it.
_logger = logging.getLogger("optuna." + __name__)

#: Study system attr holding the sampler configuration; workers with a different one are refused.
CONFIG_KEY = "ppo2:config"
#: Study system attr ``ppo2:mean:<t>`` caching the mean of round ``t >= 1`` (computed once).
MEAN_KEY_TEMPLATE = "ppo2:mean:{}"
#: Trial system attr: the round a trial asks to join (written before it checks for a free slot).
CLAIM_KEY = "ppo2:claim"
#: Trial system attr: ``{"round": t, "theta": {name: normalized value}}`` once admitted.
SAMPLE_KEY = "ppo2:sample"
#: User attrs shown by optuna-dashboard for every sampled trial.
USER_ATTR_ROUND = "ppo2_round"
USER_ATTR_SIGMA = "ppo2_sigma"
USER_ATTR_MEAN = "ppo2_mean"
#: User attr set on an enqueued trial (drawn from the current distribution, never counted).
USER_ATTR_ENQUEUED = "ppo2_enqueued"
#: User attr set on a trial requested after the last round finished (it is pruned).
USER_ATTR_SURPLUS = "ppo2_surplus"
#: User attr set on a waiting trial that gave its process to a retry holding the round's slot
#: (``{"round": t, "retries": [trial numbers]}``; the trial is pruned).
USER_ATTR_YIELDED = "ppo2_yielded"

# Means are optimized as logits; a mean exactly on a bound is moved this far inside first.
_MEAN_EPS = 1e-6


class SearchFinishedError(RuntimeError):
    """A trial was requested outside ``study.optimize`` after the last round had finished."""


# --------------------------------------------------------------------------------------------
# Pure functions
# --------------------------------------------------------------------------------------------


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


def _check_sigma(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number > 0, got {value!r}.")
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
    return float(value)


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
    sigma = _check_sigma("sigma", sigma)
    sigma_next = _check_sigma("sigma_next", sigma_next)
    _check_clip_eps(clip_eps)
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
    sigma = _check_sigma("sigma", sigma)
    sigma_next = _check_sigma("sigma_next", sigma_next)
    _check_update_settings(clip_eps=clip_eps, steps=steps, lr=lr, warmup_steps=warmup_steps)

    theta = torch.as_tensor(samples_a, dtype=torch.float64)
    adv = torch.as_tensor(rewards_a - rewards_a.mean(), dtype=torch.float64)
    mean_t = torch.as_tensor(mean_a, dtype=torch.float64)
    with torch.no_grad():
        logp_old = truncnorm01_logpdf(theta, mean_t, sigma)
        z0 = torch.logit(mean_t.clamp(_MEAN_EPS, 1.0 - _MEAN_EPS))
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


def _check_clip_eps(clip_eps: float) -> None:
    if isinstance(clip_eps, bool) or not isinstance(clip_eps, (int, float)):
        raise ValueError(f"clip_eps must be a number in (0, 1), got {clip_eps!r}.")
    if not 0.0 < clip_eps < 1.0:
        raise ValueError(f"clip_eps must be in (0, 1), got {clip_eps!r}.")


def _check_update_settings(*, clip_eps: float, steps: int, lr: float, warmup_steps: int) -> None:
    _check_clip_eps(clip_eps)
    _check_int("update_steps", steps, 1)
    _check_sigma("lr", lr)
    _check_int("warmup_steps", warmup_steps, 0)
    if warmup_steps > steps:
        raise ValueError(f"warmup_steps must be <= update_steps ({steps}), got {warmup_steps!r}.")


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


# --------------------------------------------------------------------------------------------
# Normalization of FloatDistributions to [0, 1]
# --------------------------------------------------------------------------------------------


def _to_unit(dist: FloatDistribution, value: float) -> float:
    """Map ``value`` of ``dist`` to [0, 1] (linearly, or linearly in log space if ``dist.log``)."""
    if dist.log:
        lo, hi = math.log(dist.low), math.log(dist.high)
        return (math.log(value) - lo) / (hi - lo)
    return (value - dist.low) / (dist.high - dist.low)


def _from_unit(dist: FloatDistribution, unit: float) -> float:
    """Inverse of :func:`_to_unit`, clipped into ``[dist.low, dist.high]``."""
    if dist.log:
        lo, hi = math.log(dist.low), math.log(dist.high)
        value = math.exp(lo + float(unit) * (hi - lo))
    else:
        value = dist.low + float(unit) * (dist.high - dist.low)
    return float(min(max(value, dist.low), dist.high))


# --------------------------------------------------------------------------------------------
# Reading the rounds out of storage
# --------------------------------------------------------------------------------------------


def _is_counted(trial: FrozenTrial) -> bool:
    """A trial whose reward can enter an update: COMPLETE with a finite value."""
    return (
        trial.state == TrialState.COMPLETE
        and trial.value is not None
        and math.isfinite(trial.value)
    )


@dataclass
class _RoundsView:
    """Snapshot of all rounds, built from one read of the study's trials."""

    samples_per_round: int
    rounds: int
    #: admitted trials that hold a slot: RUNNING, WAITING (a retry of a failed member), or
    #: COMPLETE with a finite value.
    live: dict[int, list[FrozenTrial]] = field(default_factory=lambda: defaultdict(list))
    #: WAITING retries of failed members (also in ``live``): they hold the slot of the trial they
    #: retry until a worker runs them.
    retries: dict[int, list[FrozenTrial]] = field(default_factory=lambda: defaultdict(list))
    #: admitted COMPLETE trials with a finite value, by trial number.
    counted: dict[int, list[FrozenTrial]] = field(default_factory=lambda: defaultdict(list))
    #: RUNNING trials that claimed a round but are not admitted (yet).
    pending: dict[int, list[FrozenTrial]] = field(default_factory=lambda: defaultdict(list))
    #: first round that is not done (``rounds`` when the search is finished).
    current: int = 0

    @classmethod
    def from_trials(
        cls, trials: Sequence[FrozenTrial], samples_per_round: int, rounds: int
    ) -> _RoundsView:
        view = cls(samples_per_round, rounds)
        for trial in sorted(trials, key=lambda t: t.number):
            sample = trial.system_attrs.get(SAMPLE_KEY)
            if sample is not None:
                t = int(sample["round"])
                if trial.state == TrialState.RUNNING:
                    view.live[t].append(trial)
                elif trial.state == TrialState.WAITING:
                    view.live[t].append(trial)
                    view.retries[t].append(trial)
                elif _is_counted(trial):
                    view.live[t].append(trial)
                    view.counted[t].append(trial)
                # FAIL / PRUNED / non-finite COMPLETE trials free their slot.
                continue
            claim = trial.system_attrs.get(CLAIM_KEY)
            if claim is not None and trial.state == TrialState.RUNNING:
                view.pending[int(claim)].append(trial)
        while view.current < rounds and view.is_done(view.current):
            view.current += 1
        return view

    def used_trials(self, round_index: int) -> list[FrozenTrial]:
        """The first ``S`` COMPLETE trials of the round by trial number (those of the update)."""
        return self.counted[round_index][: self.samples_per_round]

    def is_done(self, round_index: int) -> bool:
        """``S`` COMPLETE trials, and no unfinished member that could still precede the S-th one.

        Once true it stays true: the round has ``S`` slots taken, so nobody can join it any more,
        and the set of the first ``S`` COMPLETE trials by number can no longer change.
        """
        counted = self.counted[round_index]
        if len(counted) < self.samples_per_round:
            return False
        last = counted[self.samples_per_round - 1].number
        return not any(
            t.state in (TrialState.RUNNING, TrialState.WAITING) and t.number < last
            for t in self.live[round_index]
        )

    def taken(self, round_index: int, exclude_trial_id: int | None = None) -> int:
        """Slots of the round taken by admitted or claiming trials other than the excluded one."""
        members = self.live[round_index] + self.pending[round_index]
        return sum(1 for t in members if t._trial_id != exclude_trial_id)


# --------------------------------------------------------------------------------------------
# The sampler
# --------------------------------------------------------------------------------------------


class PPO2Sampler(BaseSampler):
    """PPO2 search with independent truncated normals (Parameterized AP Loss, Sec. 3.3).

    **Distribution.** Every parameter of ``search_space`` (a ``FloatDistribution``; log-scale ones
    are handled in log space) is normalized to [0, 1]. In round ``t = 0 .. rounds - 1`` a trial
    draws ``theta ~ prod_d N_trunc[0,1](mu_t,d, sigma_t^2)`` (:func:`sample_truncnorm01`, i.e.
    :data:`scipy.stats.truncnorm`) and maps it back to the parameters' ranges. ``mu_0`` is
    ``init_mean`` (default: the centre of every range, the geometric centre for log-scale ones);
    ``sigma_t = sigma_init * (rounds - t) / rounds`` (:func:`sigma_schedule`).

    **Update.** When round ``t`` has ``samples_per_round`` (``S``) COMPLETE trials, ``mu_{t+1}`` is
    computed by :func:`ppo2_update` from the first ``S`` COMPLETE trials of the round by trial
    number: their normalized samples, their rewards (the objective value for a maximizing study,
    minus it for a minimizing one), ``mu_t``, ``sigma_t`` and ``sigma_{t+1}`` (``sigma_t`` again
    after the last round). The update uses the advantages ``R_i - mean(R)``, per-component ratios
    ``p(theta_id; mu_d, sigma_{t+1}) / p(theta_id; mu_t,d, sigma_t)`` clipped per component, the
    product over components, and Adam on ``logit(mu)`` with a linear warm-up/decay learning rate
    (see :func:`ppo2_update` and :func:`lr_schedule`). Because the numerator uses
    ``sigma_{t+1}`` and the denominator ``sigma_t``, the ratios are not 1 at ``mu = mu_t`` (as in
    the authors' release). The result is stored in the study system
    attr ``ppo2:mean:<t+1>``; whoever computes it first writes it and every worker then reads the
    stored value, so all workers use the same ``mu``.

    **Rounds and workers.** All state lives in the study's storage (nothing only in memory):

    * a trial joins the first round that is not done, if that round has fewer than ``S`` trials
      that are RUNNING or COMPLETE (failed, pruned, or non-finite trials free their slot, so a
      failed trial is replaced). Joining is a two-step protocol that is safe between threads,
      processes and machines: the trial writes a claim (trial system attr ``ppo2:claim``), re-reads
      the study, and is admitted (``ppo2:sample`` with its round and normalized sample) only if the
      round's admitted plus claiming trials, itself included, are at most ``S``; otherwise it
      withdraws the claim and retries after a random back-off. Of any set of admitted trials, the
      one whose read came last saw all the others' claims, so a round never gets more than ``S``
      members; trials of one process additionally take a lock around the protocol.
    * if the round is full but not done, the trial waits, polling storage every ``poll_interval``
      seconds (logged at INFO through Optuna's logger hierarchy, as
      ``optuna.paploss.samplers._ppo2``); while it waits it also runs Optuna's
      :func:`~optuna.storages.fail_stale_trials` when the storage has a heartbeat, so a dead
      worker's trial frees its slot (without a heartbeat a killed worker's RUNNING trial holds its
      slot until ``round_timeout``). After ``round_timeout`` seconds of waiting (or of retrying
      the join) it raises :class:`TimeoutError`, which fails that trial.
    * round ``t`` is done when it has ``S`` COMPLETE trials and no RUNNING member with a smaller
      number than the S-th of them; extra COMPLETE members (which the protocol does not create,
      but which manual edits could) are kept but not used by the update.
    * a retry made by Optuna's ``RetryHeartbeatStaleTrialCallback`` (``RetryFailedTrialCallback``
      before Optuna 4.9) copies the failed trial's system attrs and parameters, so it re-runs the
      same sample as a member of the same round: from its creation (WAITING) it holds the slot
      of the trial it retries, so no new trial takes that slot. A trial that waits inside
      :meth:`~optuna.study.Study.optimize` for a round that is full only because of such WAITING
      retries gives its process to them: it gets the user attr ``ppo2_yielded`` and ends PRUNED,
      and the optimize loop's next ``ask`` runs a retry (Optuna pops WAITING trials first).
      Outside ``optimize`` it keeps waiting. A retry that is never run keeps its slot, so the
      round finishes when some worker (e.g. the same command started again) runs it.
    * enqueued trials (``study.enqueue_trial``) never join a round: their non-fixed parameters are
      drawn from the current round's distribution, they get the user attr ``ppo2_enqueued``, and
      they are not used by any update.
    * after ``rounds`` rounds are done the search is finished (:meth:`is_finished`). A trial that
      asks for parameters then gets the user attr ``ppo2_surplus``; inside
      :meth:`optuna.study.Study.optimize` the sampler calls :meth:`~optuna.study.Study.stop`
      (which stops only this process's loop; other processes stop at their next trial) and raises
      :class:`optuna.TrialPruned`, so the surplus trial ends PRUNED and ``optimize`` returns
      normally; outside ``optimize`` (ask-and-tell) it raises :class:`SearchFinishedError`. The
      simplest driver is therefore ``study.optimize(objective)`` without ``n_trials``.

    Every sampled trial records the user attrs ``ppo2_round``, ``ppo2_sigma`` and ``ppo2_mean``
    (normalized mean keyed by parameter name), which optuna-dashboard shows. They are written to
    storage when the sample is drawn (the running ``Trial`` object's cached ``user_attrs`` do not
    show them; ``study.trials`` does). A trial's sample covers every configured parameter, also
    those its objective does not suggest, and the update uses the stored normalized sample (not
    the parameter values after their round trip). The configuration is
    stored in the study system attr ``ppo2:config``; a sampler whose configuration differs from
    the stored one raises :class:`ValueError` instead of corrupting the search.

    **Randomness.** Each trial draws from its own generator seeded with
    ``(next integer of the sampler's seeded stream, trial number)``: one process with a seed
    reproduces its samples exactly, and workers started with the same seed still draw different
    samples. :meth:`reseed_rng` reseeds that stream (and the independent sampler) from fresh
    entropy, as Optuna's samplers do (``study.optimize(n_jobs > 1)`` calls it in every thread).
    The sampler can be pickled and deep-copied (the RNG state goes along, the lock is recreated).

    Parameters that are not in ``search_space`` (or whose distribution differs from the
    configured one) are sampled by ``independent_sampler`` with Optuna's usual warning.
    Multi-objective studies are not supported (``ValueError``, as for Optuna's single-objective
    samplers). A trial waiting for its round holds a RUNNING trial, so an ask-and-tell loop that
    asks for more than ``S`` trials of one round before telling any of them waits until timeout.

    Args:
        search_space: ``{name: FloatDistribution}``; required, continuous (no ``step``), with
            ``low < high``. Round 0 samples from it, there is no random start-up phase.
        init_mean: ``{name: value}`` in the parameters' own units, within the ranges (default:
            the centre). Names missing from it start at the centre.
        samples_per_round: ``S >= 2``.
        rounds: ``T >= 1``.
        sigma_init: ``sigma_0 > 0`` in normalized units.
        clip_eps: PPO2 clip range, in (0, 1).
        update_steps: Adam steps per update (>= 1).
        lr: Peak Adam learning rate (> 0).
        warmup_steps: Warm-up steps, in ``[0, update_steps]``.
        seed: Seed of the sampler's random stream (and of the default independent sampler).
        round_timeout: Seconds a trial may wait for a round to finish before raising
            :class:`TimeoutError` (default one day; ``None`` waits forever).
        poll_interval: Seconds between two reads of storage while waiting.
        independent_sampler: Sampler for parameters outside ``search_space``
            (default: :class:`~optuna.samplers.RandomSampler` with ``seed``).
        warn_independent_sampling: Log Optuna's warning when a parameter is sampled
            independently.
    """

    def __init__(
        self,
        *,
        search_space: Mapping[str, BaseDistribution],
        init_mean: Mapping[str, float] | None = None,
        samples_per_round: int = 8,
        rounds: int = 40,
        sigma_init: float = 0.2,
        clip_eps: float = 0.1,
        update_steps: int = 100,
        lr: float = 0.01,
        warmup_steps: int = 30,
        seed: int | None = None,
        round_timeout: float | None = 86400.0,
        poll_interval: float = 1.0,
        independent_sampler: BaseSampler | None = None,
        warn_independent_sampling: bool = True,
    ) -> None:
        self._space = _check_search_space(search_space)
        self._names = list(self._space)
        self._init_unit = _check_init_mean(init_mean, self._space)
        self._samples_per_round = _check_int("samples_per_round", samples_per_round, 2)
        self._rounds = _check_int("rounds", rounds, 1)
        self._sigma_init = _check_sigma("sigma_init", sigma_init)
        _check_update_settings(
            clip_eps=clip_eps, steps=update_steps, lr=lr, warmup_steps=warmup_steps
        )
        self._clip_eps = float(clip_eps)
        self._update_steps = int(update_steps)
        self._lr = float(lr)
        self._warmup_steps = int(warmup_steps)
        if seed is not None:
            _check_int("seed", seed, 0)
        if round_timeout is not None:
            round_timeout = _check_sigma("round_timeout", round_timeout)
        self._round_timeout = round_timeout
        self._poll_interval = _check_sigma("poll_interval", poll_interval)
        if independent_sampler is not None and not isinstance(independent_sampler, BaseSampler):
            raise ValueError(
                f"independent_sampler must be an optuna BaseSampler, got {independent_sampler!r}."
            )
        self._independent_sampler = independent_sampler or RandomSampler(seed=seed)
        self._warn_independent_sampling = bool(warn_independent_sampling)
        self._rng = LazyRandomState(seed)
        self._backoff = random.Random()
        self._lock = threading.Lock()

    # ---- pickling -------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # ---- read-only properties -------------------------------------------------------------

    @property
    def search_space(self) -> dict[str, FloatDistribution]:
        """The configured search space (sorted by name, the order of the normalized vectors)."""
        return dict(self._space)

    @property
    def samples_per_round(self) -> int:
        """``S``."""
        return self._samples_per_round

    @property
    def rounds(self) -> int:
        """``T``."""
        return self._rounds

    def sigma(self, round_index: int) -> float:
        """``sigma_t`` of this sampler (see :func:`sigma_schedule`)."""
        return sigma_schedule(round_index, sigma_init=self._sigma_init, rounds=self._rounds)

    # ---- BaseSampler API ------------------------------------------------------------------

    def reseed_rng(self) -> None:
        """Reseed the per-trial seed stream and the independent sampler from fresh entropy."""
        self._rng.rng.seed()
        self._independent_sampler.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """The configured search space, for every trial (there is no start-up phase)."""
        return dict(self._space)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """Join a round (waiting if needed) and draw the trial's parameters from its distribution.

        Names of ``search_space`` that are not configured with an identical distribution (only
        possible when this method is called directly) are sampled by the independent sampler.
        """
        self._raise_error_if_multi_objective(study)
        own = [n for n in self._names if n in search_space and search_space[n] == self._space[n]]
        params: dict[str, Any] = {}
        if own:
            unit = self._sample_unit(study, trial)
            for name in own:
                params[name] = _from_unit(self._space[name], unit[self._names.index(name)])
        for name, dist in search_space.items():
            if name not in params:
                params[name] = self.sample_independent(study, trial, name, dist)
        return params

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        """Sample a parameter outside the search space with the independent sampler."""
        self._raise_error_if_multi_objective(study)
        if self._warn_independent_sampling:
            _logger.warning(
                _INDEPENDENT_SAMPLING_WARNING_TEMPLATE.format(
                    param_name=param_name,
                    trial_number=trial.number,
                    independent_sampler_name=self._independent_sampler.__class__.__name__,
                    sampler_name=self.__class__.__name__,
                    fallback_reason=(
                        "the parameter is not in the `search_space` given to `PPO2Sampler` "
                        "or its distribution differs from the configured one"
                    ),
                )
            )
        return self._independent_sampler.sample_independent(
            study, trial, param_name, param_distribution
        )

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        """Forward to the independent sampler."""
        self._independent_sampler.before_trial(study, trial)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        """Forward to the independent sampler (round bookkeeping needs no post-processing)."""
        self._independent_sampler.after_trial(study, trial, state, values)

    # ---- public helpers -------------------------------------------------------------------

    def is_finished(self, study: Study) -> bool:
        """Whether all ``rounds`` rounds are done (each has ``S`` COMPLETE trials)."""
        return self._view(study).current >= self._rounds

    def current_round(self, study: Study) -> int:
        """The first round that is not done (``rounds`` once the search is finished)."""
        return self._view(study).current

    def round_mean(self, study: Study, round_index: int) -> dict[str, float] | None:
        """Normalized ``mu_t`` keyed by name, or ``None`` while round ``t - 1`` is not done.

        ``round_index`` may be ``rounds``: that is the mean after the final update (computed
        with ``sigma_{T-1}`` in place of the zero ``sigma_T``).
        """
        if not 0 <= round_index <= self._rounds:
            raise ValueError(f"round_index must be in [0, {self._rounds}], got {round_index!r}.")
        view = self._view(study)
        if round_index > view.current:
            return None
        self._check_config(study)
        return dict(zip(self._names, self._mean(study, round_index, view).tolist()))

    # ---- internals ------------------------------------------------------------------------

    def _view(self, study: Study) -> _RoundsView:
        trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
        return _RoundsView.from_trials(trials, self._samples_per_round, self._rounds)

    def _config(self) -> dict[str, Any]:
        return {
            "search_space": {n: distribution_to_json(d) for n, d in self._space.items()},
            "init_mean": dict(zip(self._names, self._init_unit.tolist())),
            "samples_per_round": self._samples_per_round,
            "rounds": self._rounds,
            "sigma_init": self._sigma_init,
            "clip_eps": self._clip_eps,
            "update_steps": self._update_steps,
            "lr": self._lr,
            "warmup_steps": self._warmup_steps,
        }

    def _check_config(self, study: Study) -> None:
        mine = self._config()
        stored = study._storage.get_study_system_attrs(study._study_id).get(CONFIG_KEY)
        if stored is None:
            study._storage.set_study_system_attr(study._study_id, CONFIG_KEY, mine)
            return
        differing = sorted(k for k in set(mine) | set(stored) if mine.get(k) != stored.get(k))
        if differing:
            raise ValueError(
                "PPO2Sampler configuration differs from the one stored in the study "
                f"({CONFIG_KEY}) in: {', '.join(differing)}. All workers of a study must use "
                f"the same configuration; stored: {stored!r}."
            )

    def _mean(self, study: Study, round_index: int, view: _RoundsView) -> np.ndarray:
        """``mu_t`` from the storage cache, computing and caching it if needed."""
        if round_index == 0:
            return self._init_unit.copy()
        key = MEAN_KEY_TEMPLATE.format(round_index)
        storage = study._storage
        cached = storage.get_study_system_attrs(study._study_id).get(key)
        if cached is None:
            prev = round_index - 1
            if not view.is_done(prev):
                raise RuntimeError(f"round {prev} is not done; mu_{round_index} is unknown.")
            prev_mean = self._mean(study, prev, view)
            used = view.used_trials(prev)
            samples = [[t.system_attrs[SAMPLE_KEY]["theta"][n] for n in self._names] for t in used]
            sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
            rewards = [sign * float(t.value) for t in used]  # type: ignore[arg-type]
            sigma = self.sigma(prev)
            sigma_next = self.sigma(round_index)
            new_mean = ppo2_update(
                samples,
                rewards,
                prev_mean,
                sigma,
                sigma_next,
                clip_eps=self._clip_eps,
                steps=self._update_steps,
                lr=self._lr,
                warmup_steps=self._warmup_steps,
            )
            record = {
                "round": round_index,
                "mean": dict(zip(self._names, new_mean.tolist())),
                "trials": [t.number for t in used],
                "sigma": sigma,
                "sigma_next": sigma_next,
            }
            storage.set_study_system_attr(study._study_id, key, record)
            _logger.info(
                f"PPO2Sampler: computed the mean of round {round_index} from trials "
                f"{record['trials']}."
            )
            # Read back: if another worker wrote at the same time, everyone uses the stored value.
            cached = storage.get_study_system_attrs(study._study_id)[key]
        return np.array([cached["mean"][n] for n in self._names], dtype=np.float64)

    def _sample_unit(self, study: Study, trial: FrozenTrial) -> np.ndarray:
        """Normalized sample of ``trial``: join a round (or reuse its sample) and draw."""
        storage = study._storage
        existing = storage.get_trial_system_attrs(trial._trial_id).get(SAMPLE_KEY)
        if existing is not None:
            return np.array([existing["theta"][n] for n in self._names], dtype=np.float64)
        self._check_config(study)
        # One draw from the seeded stream per trial, whatever happens next (waits, retries).
        rng = np.random.default_rng([int(self._rng.rng.randint(0, 2**31 - 1)), trial.number])
        if "fixed_params" in trial.system_attrs:
            return self._sample_enqueued(study, trial, rng)

        start = time.monotonic()
        attempts = 0
        waiting_logged_for: int | None = None
        while True:
            view = self._view(study)
            t = view.current
            if t >= self._rounds:
                self._finish(study, trial)
            mean = self._mean(study, t, view)
            sigma = self.sigma(t)
            if view.taken(t, exclude_trial_id=trial._trial_id) < self._samples_per_round:
                unit = sample_truncnorm01(mean, sigma, rng)
                if self._try_join(study, trial, t, unit):
                    self._record(study, trial, t, sigma, mean)
                    return unit
                attempts += 1
                time.sleep(self._backoff.uniform(0.0, min(1.0, 0.01 * 2 ** min(attempts, 7))))
            else:
                if view.retries[t] and _in_optimize_loop(study):
                    self._yield_to_retries(study, trial, t, view.retries[t])
                if waiting_logged_for != t:
                    _logger.info(
                        f"PPO2Sampler: trial {trial.number} waits for round {t} to finish "
                        f"({len(view.counted[t])}/{self._samples_per_round} complete, "
                        f"{view.taken(t)} slots taken); polling every {self._poll_interval} s."
                    )
                    waiting_logged_for = t
                self._fail_stale_trials(study)
                time.sleep(self._poll_interval)
            if self._round_timeout is not None and time.monotonic() - start > self._round_timeout:
                raise TimeoutError(
                    f"PPO2Sampler: trial {trial.number} waited more than round_timeout="
                    f"{self._round_timeout} s for round {t} to finish."
                )

    def _try_join(self, study: Study, trial: FrozenTrial, t: int, unit: np.ndarray) -> bool:
        """Claim round ``t``, re-read, and be admitted only if the round still has room."""
        storage = study._storage
        with self._lock:
            storage.set_trial_system_attr(trial._trial_id, CLAIM_KEY, t)
            view = self._view(study)
            if (
                view.current == t
                and view.taken(t, exclude_trial_id=trial._trial_id) + 1 <= self._samples_per_round
            ):
                sample = {"round": t, "theta": dict(zip(self._names, unit.tolist()))}
                storage.set_trial_system_attr(trial._trial_id, SAMPLE_KEY, sample)
                return True
            storage.set_trial_system_attr(trial._trial_id, CLAIM_KEY, None)
            return False

    def _record(
        self, study: Study, trial: FrozenTrial, t: int, sigma: float, mean: np.ndarray
    ) -> None:
        storage = study._storage
        storage.set_trial_user_attr(trial._trial_id, USER_ATTR_ROUND, t)
        storage.set_trial_user_attr(trial._trial_id, USER_ATTR_SIGMA, sigma)
        storage.set_trial_user_attr(
            trial._trial_id, USER_ATTR_MEAN, dict(zip(self._names, mean.tolist()))
        )

    def _sample_enqueued(
        self, study: Study, trial: FrozenTrial, rng: np.random.Generator
    ) -> np.ndarray:
        view = self._view(study)
        t = min(view.current, self._rounds - 1)
        mean = self._mean(study, t, view)
        sigma = self.sigma(t)
        unit = sample_truncnorm01(mean, sigma, rng)
        self._record(study, trial, t, sigma, mean)
        study._storage.set_trial_user_attr(trial._trial_id, USER_ATTR_ENQUEUED, True)
        return unit

    def _yield_to_retries(
        self, study: Study, trial: FrozenTrial, t: int, retries: list[FrozenTrial]
    ) -> None:
        numbers = [r.number for r in retries]
        study._storage.set_trial_user_attr(
            trial._trial_id, USER_ATTR_YIELDED, {"round": t, "retries": numbers}
        )
        message = (
            f"PPO2Sampler: trial {trial.number} yields to the WAITING retries {numbers} that hold "
            f"the free slots of round {t}."
        )
        _logger.info(message)
        raise optuna.TrialPruned(message)

    def _finish(self, study: Study, trial: FrozenTrial) -> None:
        message = (
            f"PPO2Sampler: all {self._rounds} rounds are done; trial {trial.number} is surplus."
        )
        study._storage.set_trial_user_attr(trial._trial_id, USER_ATTR_SURPLUS, True)
        try:
            study.stop()
        except RuntimeError:
            raise SearchFinishedError(message) from None
        _logger.info(message + " Stopping this process's optimize loop.")
        raise optuna.TrialPruned(message)

    @staticmethod
    def _fail_stale_trials(study: Study) -> None:
        from optuna.storages._heartbeat import is_heartbeat_enabled

        if is_heartbeat_enabled(study._storage):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)


def _in_optimize_loop(study: Study) -> bool:
    """Whether the calling thread runs ``study.optimize`` (so a pruned trial is followed by an ask)."""
    return bool(getattr(study._thread_local, "in_optimize_loop", False))


def _check_search_space(search_space: Any) -> dict[str, FloatDistribution]:
    if not isinstance(search_space, Mapping) or len(search_space) == 0:
        raise ValueError(
            "search_space must be a non-empty dict {name: FloatDistribution}, "
            f"got {search_space!r}."
        )
    space: dict[str, FloatDistribution] = {}
    for name in sorted(search_space):
        dist = search_space[name]
        if not isinstance(name, str):
            raise ValueError(f"search_space names must be strings, got {name!r}.")
        if not isinstance(dist, FloatDistribution):
            raise ValueError(
                f"search_space[{name!r}] must be a FloatDistribution (PPO2Sampler samples "
                f"continuous parameters only), got {dist!r}."
            )
        if dist.step is not None:
            raise ValueError(
                f"search_space[{name!r}] must be continuous (step=None), got {dist!r}."
            )
        if not dist.low < dist.high:
            raise ValueError(f"search_space[{name!r}] must have low < high, got {dist!r}.")
        space[name] = dist
    return space


def _check_init_mean(
    init_mean: Mapping[str, float] | None, space: dict[str, FloatDistribution]
) -> np.ndarray:
    unit = np.full(len(space), 0.5, dtype=np.float64)
    if init_mean is None:
        return unit
    if not isinstance(init_mean, Mapping):
        raise ValueError(f"init_mean must be a dict {{name: value}} or None, got {init_mean!r}.")
    unknown = sorted(set(init_mean) - set(space))
    if unknown:
        raise ValueError(f"init_mean has names outside search_space: {unknown!r}.")
    for i, (name, dist) in enumerate(space.items()):
        if name not in init_mean:
            continue
        value = init_mean[name]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
            raise ValueError(f"init_mean[{name!r}] must be a number, got {value!r}.")
        value = float(value)
        if not (math.isfinite(value) and dist.low <= value <= dist.high):
            raise ValueError(
                f"init_mean[{name!r}]={value!r} is outside search_space[{name!r}] "
                f"[{dist.low}, {dist.high}]."
            )
        unit[i] = min(max(_to_unit(dist, value), 0.0), 1.0)
    return unit
