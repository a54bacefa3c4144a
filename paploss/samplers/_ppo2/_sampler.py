"""The Optuna adapter of the PPO2 search: :class:`PPO2Sampler`.

The sampler validates its settings, normalizes parameters (:mod:`._space`), runs the round
protocol (:mod:`._rounds`) to get each trial's normalized sample, and maps it back to parameter
values. Parameters outside its search space go to an independent sampler, as in Optuna's own
relative samplers. :func:`check_search_settings` holds the checks of the search's settings
(paploss's sampler factory applies them to every search method).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from optuna.distributions import BaseDistribution, FloatDistribution, distribution_to_json
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import FrozenTrial, TrialState

from . import _compat
from ._checks import check_int, check_positive, check_update_settings
from ._keys import LOGGER_NAME
from ._rounds import RoundProtocol, RoundSettings
from ._space import UnitSpace

if TYPE_CHECKING:
    from optuna.study import Study

__all__ = ["PPO2Sampler", "SearchSettings", "check_search_settings"]

_logger = logging.getLogger(LOGGER_NAME)


@dataclass(frozen=True, eq=False)
class SearchSettings:
    """The validated settings shared by every search method (see :func:`check_search_settings`)."""

    space: UnitSpace
    init_unit: np.ndarray
    samples_per_round: int
    rounds: int
    sigma_init: float
    round_timeout: float | None


def check_search_settings(
    *,
    search_space: Mapping[str, BaseDistribution],
    init_mean: Mapping[str, float] | None,
    samples_per_round: int,
    rounds: int,
    sigma_init: float,
    seed: int | None,
    round_timeout: float | None,
    min_samples_per_round: int = 2,
) -> SearchSettings:
    """Check the settings that :class:`PPO2Sampler` shares with the other search methods.

    ``search_space`` must be what :class:`PPO2Sampler` accepts, ``init_mean`` within it,
    ``samples_per_round >= min_samples_per_round``, ``rounds >= 1``, ``sigma_init > 0``,
    ``seed`` ``None`` or an integer ``>= 0`` and ``round_timeout`` ``None`` or a number ``> 0``.

    Raises:
        ValueError: An argument is invalid (the message names it).
    """
    space = UnitSpace(search_space)
    init_unit = space.init_unit(init_mean)
    samples_per_round = check_int("samples_per_round", samples_per_round, min_samples_per_round)
    rounds = check_int("rounds", rounds, 1)
    sigma_init = check_positive("sigma_init", sigma_init)
    if seed is not None:
        check_int("seed", seed, 0)
    if round_timeout is not None:
        round_timeout = check_positive("round_timeout", round_timeout)
    return SearchSettings(space, init_unit, samples_per_round, rounds, sigma_init, round_timeout)


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
    after the last round). Because the ratios' numerator uses ``sigma_{t+1}`` and the denominator
    ``sigma_t``, they are not 1 at ``mu = mu_t`` (as in the authors' release). The result is
    stored in the study, so all workers use the same ``mu``.

    **Rounds and workers.** All state lives in the study's storage, so threads, processes and
    machines sharing one RDB or journal study cooperate on one search; the protocol (storage
    keys included) is specified in :mod:`._rounds` of this package. In short:

    * a trial joins the first round that is not done if it has a free slot (failed, pruned and
      non-finite trials free theirs); otherwise it waits, polling storage every
      ``poll_interval`` seconds (logged at INFO by the logger ``LOGGER_NAME`` of :mod:`._keys`) and
      running :func:`~optuna.storages.fail_stale_trials` when the storage has a heartbeat, and
      raises :class:`TimeoutError` after ``round_timeout`` seconds;
    * a retry made by Optuna's ``RetryHeartbeatStaleTrialCallback`` re-runs the failed trial's
      sample in its round and holds its slot; a trial waiting inside ``study.optimize`` for a
      round full only of such WAITING retries ends PRUNED (user attr ``ppo2_yielded``) so that
      the loop runs a retry;
    * enqueued trials draw from the current distribution (user attr ``ppo2_enqueued``) and are
      never used by an update;
    * after ``rounds`` rounds (:meth:`is_finished`) a trial that asks for parameters gets the user
      attr ``ppo2_surplus``: inside ``study.optimize`` the loop is stopped and the trial ends
      PRUNED, outside it :class:`SearchFinishedError` is raised. The simplest driver is
      therefore ``study.optimize(objective)`` without ``n_trials``;
    * every sampled trial records the user attrs ``ppo2_round``, ``ppo2_sigma`` and
      ``ppo2_mean`` in storage (``study.trials`` shows them, the running ``Trial`` does not); its
      sample covers every configured parameter, and the update uses the stored normalized
      sample;
    * a sampler whose configuration differs from the one stored in the study raises
      :class:`ValueError`.

    **Randomness.** Each trial draws from its own generator seeded with
    ``(next integer of the sampler's seeded stream, trial number)``: one process with a seed
    reproduces its samples exactly, and workers started with the same seed still draw different
    samples. :meth:`reseed_rng` reseeds that stream (and the independent sampler) from fresh
    entropy, as Optuna's samplers do (``study.optimize(n_jobs > 1)`` calls it in every thread).
    The sampler can be pickled and deep-copied.

    Parameters that are not in ``search_space`` (or whose distribution differs from the
    configured one) are sampled by ``independent_sampler`` with Optuna's usual warning.
    Multi-objective studies are not supported (``ValueError``). A trial waiting for its round
    holds a RUNNING trial, so an ask-and-tell loop that asks for more than ``S`` trials of one
    round before telling any of them waits until timeout.

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
        common = check_search_settings(
            search_space=search_space,
            init_mean=init_mean,
            samples_per_round=samples_per_round,
            rounds=rounds,
            sigma_init=sigma_init,
            seed=seed,
            round_timeout=round_timeout,
        )
        check_update_settings(
            clip_eps=clip_eps, steps=update_steps, lr=lr, warmup_steps=warmup_steps
        )
        settings = RoundSettings(
            names=common.space.names,
            init_unit=tuple(common.init_unit.tolist()),
            samples_per_round=common.samples_per_round,
            rounds=common.rounds,
            sigma_init=common.sigma_init,
            clip_eps=float(clip_eps),
            update_steps=int(update_steps),
            lr=float(lr),
            warmup_steps=int(warmup_steps),
            round_timeout=common.round_timeout,
            poll_interval=check_positive("poll_interval", poll_interval),
        )
        if independent_sampler is not None and not isinstance(independent_sampler, BaseSampler):
            raise ValueError(
                f"independent_sampler must be an optuna BaseSampler, got {independent_sampler!r}."
            )
        self._space = common.space
        self._settings = settings
        self._protocol = RoundProtocol(settings, self._config())
        self._independent_sampler = independent_sampler or RandomSampler(seed=seed)
        self._warn_independent_sampling = bool(warn_independent_sampling)
        self._rng = _compat.seed_stream(seed)

    # ---- read-only properties -------------------------------------------------------------

    @property
    def search_space(self) -> dict[str, FloatDistribution]:
        """The configured search space (sorted by name, the order of the normalized vectors)."""
        return self._space.distributions

    @property
    def param_names(self) -> tuple[str, ...]:
        """The parameter names in the order of the normalized vectors (sorted)."""
        return self._space.names

    @property
    def init_unit_mean(self) -> dict[str, float]:
        """``mu_0``: the normalized initial mean keyed by name."""
        return dict(zip(self._settings.names, self._settings.init_unit))

    @property
    def samples_per_round(self) -> int:
        """``S``."""
        return self._settings.samples_per_round

    @property
    def rounds(self) -> int:
        """``T``."""
        return self._settings.rounds

    def sigma(self, round_index: int) -> float:
        """``sigma_t`` of this sampler (see :func:`sigma_schedule`)."""
        return self._settings.sigma(round_index)

    # ---- BaseSampler API ------------------------------------------------------------------

    def reseed_rng(self) -> None:
        """Reseed the per-trial seed stream and the independent sampler from fresh entropy."""
        _compat.reseed(self._rng)
        self._independent_sampler.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """The configured search space, for every trial (there is no start-up phase)."""
        return dict(self._space.distributions)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """Join a round (waiting if needed) and draw the trial's parameters from its distribution.

        Names of ``search_space`` that are not configured with an identical distribution (only
        possible when this method is called directly) are sampled by the independent sampler.
        """
        _compat.raise_if_multi_objective(self, study)
        mine = self._space.distributions
        own = [n for n in mine if n in search_space and search_space[n] == mine[n]]
        params: dict[str, Any] = {}
        if own:
            values = self._space.from_unit(self._protocol.sample(study, trial, self._draw_seed))
            params = {name: values[name] for name in own}
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
        _compat.raise_if_multi_objective(self, study)
        if self._warn_independent_sampling:
            _logger.warning(
                _compat.independent_sampling_warning(
                    param_name=param_name,
                    trial_number=trial.number,
                    independent_sampler=self._independent_sampler.__class__.__name__,
                    sampler=self.__class__.__name__,
                    reason=(
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
        return self._protocol.view(study).current >= self.rounds

    def current_round(self, study: Study) -> int:
        """The first round that is not done (``rounds`` once the search is finished)."""
        return self._protocol.view(study).current

    def round_mean(self, study: Study, round_index: int) -> dict[str, float] | None:
        """Normalized ``mu_t`` keyed by name, or ``None`` while round ``t - 1`` is not done.

        ``round_index`` may be ``rounds``: that is the mean after the final update (computed
        with ``sigma_{T-1}`` in place of the zero ``sigma_T``). The mean is computed and stored
        if no worker has done so yet.
        """
        self._check_round_index(round_index)
        view = self._protocol.view(study)
        if round_index > view.current:
            return None
        self._protocol.check_config(study)
        return dict(zip(self.param_names, self._protocol.mean(study, round_index, view).tolist()))

    def stored_round_mean(self, study: Study, round_index: int) -> dict[str, float] | None:
        """Normalized ``mu_t`` keyed by name if it is known without computing anything (round 0,
        or stored by a worker), else ``None``. Reads storage only."""
        self._check_round_index(round_index)
        mean = self._protocol.stored_mean(study, round_index)
        return None if mean is None else dict(zip(self.param_names, mean.tolist()))

    # ---- internals ------------------------------------------------------------------------

    def _check_round_index(self, round_index: int) -> None:
        if not 0 <= round_index <= self.rounds:
            raise ValueError(f"round_index must be in [0, {self.rounds}], got {round_index!r}.")

    def _draw_seed(self) -> int:
        """The next integer of the seeded stream (one per trial that draws a new sample)."""
        return _compat.next_seed(self._rng)

    def _config(self) -> dict[str, Any]:
        """The configuration that all workers of a study must share (JSON values only)."""
        s = self._settings
        return {
            "search_space": {
                n: distribution_to_json(d) for n, d in self._space.distributions.items()
            },
            "init_mean": dict(zip(s.names, s.init_unit)),
            "samples_per_round": s.samples_per_round,
            "rounds": s.rounds,
            "sigma_init": s.sigma_init,
            "clip_eps": s.clip_eps,
            "update_steps": s.update_steps,
            "lr": s.lr,
            "warmup_steps": s.warmup_steps,
        }
