"""The round protocol of the PPO2 search: rounds of trials, with all state in the study's storage.

A :class:`RoundProtocol` maps the trials of an Optuna study onto rounds and computes each round's
mean with :func:`~._update.ppo2_update`. Nothing lives only in memory, so any number of threads
and processes sharing one RDB or journal study cooperate on the same search. The attribute names
are those of :mod:`._keys`; storage is reached through :mod:`._compat`.

Specification (``S`` = ``samples_per_round``, ``T`` = ``rounds``):

* **Membership.** A trial belongs to round ``t`` once it holds the trial system attr
  ``ppo2:sample`` = ``{"round": t, "theta": {name: normalized value}}``. A member holds a slot
  of its round while it is RUNNING, WAITING (a retry, below) or COMPLETE with a finite value;
  FAIL, PRUNED and non-finite COMPLETE members free their slot, so a failed trial is replaced.
* **Done.** Round ``t`` is done when it has ``S`` COMPLETE members with a finite value and no
  RUNNING or WAITING member numbered below the S-th of them; the first ``S`` such members by
  trial number are the round's *used* trials. Once done a round stays done. The *current* round
  is the first one not done; the search is finished when ``T`` rounds are done.
* **Admission.** A trial joins only the current round, and only if its slots taken (members
  holding a slot plus RUNNING trials that claim the round) are fewer than ``S``. Joining takes two
  steps: write the claim (trial system attr ``ppo2:claim`` = ``t``), re-read the study, and write
  ``ppo2:sample`` only if the round is still current and the slots taken by the others plus its
  own are at most ``S``; otherwise withdraw the claim (``None``) and retry after a random
  back-off. Of any set of admitted trials, the one whose read came last saw all the others'
  claims, so a round never gets more than ``S`` members; the trials of one process also take a
  lock around the two steps.
* **Waiting.** If the current round is full but not done, the trial waits, re-reading the study
  every ``poll_interval`` seconds and running Optuna's ``fail_stale_trials`` when the storage has
  a heartbeat (a dead worker's trial then frees its slot). After ``round_timeout`` seconds of
  waiting or retrying it raises :class:`TimeoutError`, which fails the trial.
* **Retries.** A retry made by Optuna's ``RetryHeartbeatStaleTrialCallback`` copies the failed
  trial's system attrs, so from its creation (WAITING) it is a member holding the failed trial's
  slot, and it re-runs the same sample. A trial that waits inside ``study.optimize`` for a round
  that is full only because of WAITING retries yields: user attr ``ppo2_yielded`` =
  ``{"round": t, "retries": [numbers]}``, then :class:`optuna.TrialPruned`, so the loop's next
  ``ask`` runs a retry. Outside ``optimize`` it keeps waiting.
* **Means.** ``mu_0`` is the initial mean. ``mu_{t+1}`` is computed once round ``t`` is done,
  by whichever worker needs it first, from the used trials' normalized samples and rewards (the
  value, negated for a minimizing study), ``mu_t``, ``sigma_t`` and ``sigma_{t+1}``, and stored in
  the study system attr ``ppo2:mean:<t+1>`` (``{"round", "mean", "trials", "sigma",
  "sigma_next"}``). The worker then reads the attr back, so all workers use the stored value even
  if two of them computed it at the same time.
* **Records.** Every sampled trial gets the user attrs ``ppo2_round``, ``ppo2_sigma`` and
  ``ppo2_mean`` (normalized mean keyed by name) when its sample is drawn.
* **Enqueued trials** (``study.enqueue_trial``) never join a round: they draw from the current
  round's distribution (the last round's once the search is finished), get the user attr
  ``ppo2_enqueued`` and are not used by any update.
* **The end.** A trial that asks for a sample once the search is finished gets the user attr
  ``ppo2_surplus``; inside ``study.optimize`` the protocol calls ``study.stop()`` and raises
  :class:`optuna.TrialPruned`, outside it raises :class:`SearchFinishedError`.
* **Configuration.** The first worker stores the sampler's configuration in the study system
  attr ``ppo2:config``; a worker with a different one raises :class:`ValueError`.
* **Randomness.** A trial draws from a generator seeded with ``(seed, trial number)``, where
  ``seed`` is taken from the sampler's seeded stream once per trial that needs a new sample.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from . import _compat
from ._keys import (
    CLAIM_KEY,
    CONFIG_KEY,
    LOGGER_NAME,
    SAMPLE_KEY,
    USER_ATTR_ENQUEUED,
    USER_ATTR_MEAN,
    USER_ATTR_ROUND,
    USER_ATTR_SIGMA,
    USER_ATTR_SURPLUS,
    USER_ATTR_YIELDED,
    mean_key,
)
from ._truncnorm import sample_truncnorm01
from ._update import ppo2_update, sigma_schedule
from ._view import RoundsView

if TYPE_CHECKING:
    from optuna.study import Study

__all__ = ["RoundProtocol", "RoundSettings", "RoundsView", "SearchFinishedError"]

_logger = logging.getLogger(LOGGER_NAME)


class SearchFinishedError(RuntimeError):
    """A trial was requested outside ``study.optimize`` after the last round had finished."""


@dataclass(frozen=True)
class RoundSettings:
    """The settings of the search that the protocol uses (already validated)."""

    names: tuple[str, ...]
    init_unit: tuple[float, ...]
    samples_per_round: int
    rounds: int
    sigma_init: float
    clip_eps: float
    update_steps: int
    lr: float
    warmup_steps: int
    round_timeout: float | None
    poll_interval: float

    def sigma(self, round_index: int) -> float:
        """``sigma_t`` (see :func:`~._update.sigma_schedule`)."""
        return sigma_schedule(round_index, sigma_init=self.sigma_init, rounds=self.rounds)


class RoundProtocol:
    """The protocol of the module docstring, run for one sampler.

    The object holds only settings, a lock and a back-off generator; every piece of state of the
    search is in the study's storage. It can be pickled and deep-copied (the lock is recreated).

    Args:
        settings: The validated settings.
        config: The sampler's configuration as stored in ``ppo2:config`` (JSON values only).
    """

    def __init__(self, settings: RoundSettings, config: Mapping[str, Any]) -> None:
        self.settings = settings
        self._config = dict(config)
        self._backoff = random.Random()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # ---- reading ----------------------------------------------------------------------------

    def view(self, study: Study) -> RoundsView:
        """All rounds as they are in storage now."""
        s = self.settings
        return RoundsView.from_trials(_compat.all_trials(study), s.samples_per_round, s.rounds)

    def check_config(self, study: Study) -> None:
        """Store the configuration if the study has none; refuse a different one.

        Raises:
            ValueError: The study stores another configuration (the message names the keys).
        """
        mine = self._config
        stored = _compat.study_system_attrs(study).get(CONFIG_KEY)
        if stored is None:
            _compat.set_study_system_attr(study, CONFIG_KEY, mine)
            return
        differing = sorted(k for k in set(mine) | set(stored) if mine.get(k) != stored.get(k))
        if differing:
            raise ValueError(
                "PPO2Sampler configuration differs from the one stored in the study "
                f"({CONFIG_KEY}) in: {', '.join(differing)}. All workers of a study must use "
                f"the same configuration; stored: {stored!r}."
            )

    def stored_mean(self, study: Study, round_index: int) -> np.ndarray | None:
        """``mu_t`` if it is known without computing (round 0, or stored), else ``None``."""
        if round_index == 0:
            return np.array(self.settings.init_unit, dtype=np.float64)
        record = _compat.study_system_attrs(study).get(mean_key(round_index))
        return None if record is None else self._vector(record["mean"])

    def mean(self, study: Study, round_index: int, view: RoundsView) -> np.ndarray:
        """``mu_t``, computed and stored first if needed (round ``t - 1`` must be done)."""
        mean = self.stored_mean(study, round_index)
        if mean is not None:
            return mean
        self._store_mean(study, round_index, view)
        # Read back: if another worker wrote at the same time, everyone uses the stored value.
        return self._vector(_compat.study_system_attrs(study)[mean_key(round_index)]["mean"])

    def _store_mean(self, study: Study, round_index: int, view: RoundsView) -> None:
        """Compute ``mu_t`` from the used trials of round ``t - 1`` and store it."""
        s = self.settings
        prev = round_index - 1
        if not view.is_done(prev):
            raise RuntimeError(f"round {prev} is not done; mu_{round_index} is unknown.")
        prev_mean = self.mean(study, prev, view)
        used = view.used_trials(prev)
        samples = [self._vector(t.system_attrs[SAMPLE_KEY]["theta"]) for t in used]
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        rewards = [sign * float(t.value) for t in used]  # type: ignore[arg-type]
        sigma, sigma_next = s.sigma(prev), s.sigma(round_index)
        new_mean = ppo2_update(
            np.array(samples),
            rewards,
            prev_mean,
            sigma,
            sigma_next,
            clip_eps=s.clip_eps,
            steps=s.update_steps,
            lr=s.lr,
            warmup_steps=s.warmup_steps,
        )
        record = {
            "round": round_index,
            "mean": dict(zip(s.names, new_mean.tolist())),
            "trials": [t.number for t in used],
            "sigma": sigma,
            "sigma_next": sigma_next,
        }
        _compat.set_study_system_attr(study, mean_key(round_index), record)
        _logger.info(
            f"PPO2Sampler: computed the mean of round {round_index} from trials {record['trials']}."
        )

    def _vector(self, by_name: Mapping[str, float]) -> np.ndarray:
        """A ``{name: normalized value}`` record as a vector in the order of ``names``."""
        return np.array([by_name[n] for n in self.settings.names], dtype=np.float64)

    # ---- sampling -----------------------------------------------------------------------------

    def sample(self, study: Study, trial: FrozenTrial, draw_seed: Callable[[], int]) -> np.ndarray:
        """The normalized sample of ``trial``: the stored one, or a new one (joining a round).

        ``draw_seed`` is called once if a new sample is drawn; the trial's generator is seeded
        with ``(draw_seed(), trial.number)``.
        """
        existing = _compat.trial_system_attrs(study, trial).get(SAMPLE_KEY)
        if existing is not None:
            return self._vector(existing["theta"])
        self.check_config(study)
        # One draw from the seeded stream per trial, whatever happens next (waits, retries).
        rng = np.random.default_rng([draw_seed(), trial.number])
        if _compat.is_enqueued(trial):
            return self._sample_enqueued(study, trial, rng)
        return self._join(study, trial, rng)

    def _join(self, study: Study, trial: FrozenTrial, rng: np.random.Generator) -> np.ndarray:
        """Admission, waiting, yielding and the end of the search for one trial."""
        s = self.settings
        start = time.monotonic()
        attempts = 0
        waiting_logged_for: int | None = None
        while True:
            view = self.view(study)
            t = view.current
            if t >= s.rounds:
                self._finish(study, trial)
            mean = self.mean(study, t, view)
            sigma = s.sigma(t)
            if view.taken(t, exclude_trial_id=_compat.trial_id(trial)) < s.samples_per_round:
                unit = sample_truncnorm01(mean, sigma, rng)
                if self._try_join(study, trial, t, unit):
                    self._record(study, trial, t, sigma, mean)
                    return unit
                attempts += 1
                time.sleep(self._backoff.uniform(0.0, min(1.0, 0.01 * 2 ** min(attempts, 7))))
            else:
                if view.retries[t] and _compat.in_optimize_loop(study):
                    self._yield_to_retries(study, trial, t, view.retries[t])
                if waiting_logged_for != t:
                    _logger.info(
                        f"PPO2Sampler: trial {trial.number} waits for round {t} to finish "
                        f"({len(view.counted[t])}/{s.samples_per_round} complete, "
                        f"{view.taken(t)} slots taken); polling every {s.poll_interval} s."
                    )
                    waiting_logged_for = t
                _compat.fail_stale_trials(study)
                time.sleep(s.poll_interval)
            if s.round_timeout is not None and time.monotonic() - start > s.round_timeout:
                raise TimeoutError(
                    f"PPO2Sampler: trial {trial.number} waited more than round_timeout="
                    f"{s.round_timeout} s for round {t} to finish."
                )

    def _try_join(self, study: Study, trial: FrozenTrial, t: int, unit: np.ndarray) -> bool:
        """Claim round ``t``, re-read, and be admitted only if the round still has room."""
        with self._lock:
            _compat.set_trial_system_attr(study, trial, CLAIM_KEY, t)
            view = self.view(study)
            others = view.taken(t, exclude_trial_id=_compat.trial_id(trial))
            if view.current == t and others + 1 <= self.settings.samples_per_round:
                sample = {"round": t, "theta": dict(zip(self.settings.names, unit.tolist()))}
                _compat.set_trial_system_attr(study, trial, SAMPLE_KEY, sample)
                return True
            _compat.set_trial_system_attr(study, trial, CLAIM_KEY, None)
            return False

    def _record(
        self, study: Study, trial: FrozenTrial, t: int, sigma: float, mean: np.ndarray
    ) -> None:
        """The user attrs of a sampled trial: its round, sigma and normalized mean."""
        _compat.set_trial_user_attr(study, trial, USER_ATTR_ROUND, t)
        _compat.set_trial_user_attr(study, trial, USER_ATTR_SIGMA, sigma)
        mean_by_name = dict(zip(self.settings.names, mean.tolist()))
        _compat.set_trial_user_attr(study, trial, USER_ATTR_MEAN, mean_by_name)

    def _sample_enqueued(
        self, study: Study, trial: FrozenTrial, rng: np.random.Generator
    ) -> np.ndarray:
        """A draw from the current round's distribution that joins no round."""
        view = self.view(study)
        t = min(view.current, self.settings.rounds - 1)
        mean = self.mean(study, t, view)
        sigma = self.settings.sigma(t)
        unit = sample_truncnorm01(mean, sigma, rng)
        self._record(study, trial, t, sigma, mean)
        _compat.set_trial_user_attr(study, trial, USER_ATTR_ENQUEUED, True)
        return unit

    def _yield_to_retries(
        self, study: Study, trial: FrozenTrial, t: int, retries: list[FrozenTrial]
    ) -> NoReturn:
        """Prune ``trial`` so that the optimize loop runs one of the round's WAITING retries."""
        numbers = [r.number for r in retries]
        _compat.set_trial_user_attr(
            study, trial, USER_ATTR_YIELDED, {"round": t, "retries": numbers}
        )
        message = (
            f"PPO2Sampler: trial {trial.number} yields to the WAITING retries {numbers} that hold "
            f"the free slots of round {t}."
        )
        _logger.info(message)
        raise optuna.TrialPruned(message)

    def _finish(self, study: Study, trial: FrozenTrial) -> NoReturn:
        """End a surplus trial: stop the optimize loop, or raise :class:`SearchFinishedError`."""
        message = (
            f"PPO2Sampler: all {self.settings.rounds} rounds are done; "
            f"trial {trial.number} is surplus."
        )
        _compat.set_trial_user_attr(study, trial, USER_ATTR_SURPLUS, True)
        try:
            study.stop()
        except RuntimeError:
            raise SearchFinishedError(message) from None
        _logger.info(message + " Stopping this process's optimize loop.")
        raise optuna.TrialPruned(message)
