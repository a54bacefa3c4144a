"""Every use of Optuna's private API by the PPO2 sampler, each behind one small function.

Optuna 5 has no public accessor for a study's system attrs, for writing a trial's attrs from a
sampler, or for telling whether the calling thread runs ``study.optimize``; the sampler needs all
of them. Keeping those accesses here means an Optuna upgrade that moves one of them is fixed in
this module only. What each function touches:

* storage: ``study._storage``, ``study._study_id`` and ``FrozenTrial._trial_id``;
* the optimize loop: ``study._thread_local.in_optimize_loop``;
* enqueued trials: the ``fixed_params`` trial system attr written by ``Study.enqueue_trial``;
* heartbeats: ``optuna.storages._heartbeat.is_heartbeat_enabled``;
* randomness: ``optuna.samplers._lazy_random_state.LazyRandomState`` (Optuna's own samplers'
  seeded stream, created on first use);
* samplers: ``BaseSampler._raise_error_if_multi_objective`` and
  ``optuna.samplers._base._INDEPENDENT_SAMPLING_WARNING_TEMPLATE``;
* normalization: ``optuna._transform._SearchSpaceTransform`` (parameters to the unit cube, in
  log space for log-scale distributions).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna._transform import _SearchSpaceTransform
from optuna.samplers._base import _INDEPENDENT_SAMPLING_WARNING_TEMPLATE
from optuna.samplers._lazy_random_state import LazyRandomState
from optuna.storages._heartbeat import is_heartbeat_enabled

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.samplers import BaseSampler
    from optuna.study import Study
    from optuna.trial import FrozenTrial

__all__ = [
    "SeedStream",
    "UnitTransform",
    "all_trials",
    "fail_stale_trials",
    "from_unit",
    "in_optimize_loop",
    "independent_sampling_warning",
    "is_enqueued",
    "next_seed",
    "raise_if_multi_objective",
    "reseed",
    "seed_stream",
    "set_study_system_attr",
    "set_trial_system_attr",
    "set_trial_user_attr",
    "study_system_attrs",
    "to_unit",
    "trial_id",
    "trial_system_attrs",
    "unit_transform",
]

#: Optuna's seeded random stream of a sampler (picklable; seeded on first use).
SeedStream = LazyRandomState
#: Optuna's map of a search space to the unit cube and back.
UnitTransform = _SearchSpaceTransform


# ---- storage ----------------------------------------------------------------------------------


def all_trials(study: Study) -> list[FrozenTrial]:
    """All trials of ``study`` read from its storage, not copied (do not modify them)."""
    return study._storage.get_all_trials(study._study_id, deepcopy=False)


def study_system_attrs(study: Study) -> dict[str, Any]:
    """The study's system attrs, read from storage."""
    return study._storage.get_study_system_attrs(study._study_id)


def set_study_system_attr(study: Study, key: str, value: Any) -> None:
    """Write the study system attr ``key``."""
    study._storage.set_study_system_attr(study._study_id, key, value)


def trial_id(trial: FrozenTrial) -> int:
    """The storage id of ``trial`` (unique across the studies of a storage)."""
    return trial._trial_id


def trial_system_attrs(study: Study, trial: FrozenTrial) -> dict[str, Any]:
    """The trial's system attrs, read from storage (newer than ``trial.system_attrs``)."""
    return study._storage.get_trial_system_attrs(trial._trial_id)


def set_trial_system_attr(study: Study, trial: FrozenTrial, key: str, value: Any) -> None:
    """Write the trial system attr ``key`` of a trial that is not finished."""
    study._storage.set_trial_system_attr(trial._trial_id, key, value)


def set_trial_user_attr(study: Study, trial: FrozenTrial, key: str, value: Any) -> None:
    """Write the trial user attr ``key`` of a trial that is not finished."""
    study._storage.set_trial_user_attr(trial._trial_id, key, value)


def fail_stale_trials(study: Study) -> None:
    """Run :func:`optuna.storages.fail_stale_trials` if the storage has a heartbeat.

    Its ``ExperimentalWarning`` is silenced; without a heartbeat nothing happens.
    """
    if is_heartbeat_enabled(study._storage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)


# ---- trials and the optimize loop -------------------------------------------------------------


def in_optimize_loop(study: Study) -> bool:
    """Whether the calling thread runs ``study.optimize`` (so a pruned trial is followed by an ask)."""
    return bool(getattr(study._thread_local, "in_optimize_loop", False))


def is_enqueued(trial: FrozenTrial) -> bool:
    """Whether ``trial`` was created by ``study.enqueue_trial``."""
    return "fixed_params" in trial.system_attrs


def raise_if_multi_objective(sampler: BaseSampler, study: Study) -> None:
    """Raise Optuna's ``ValueError`` for a single-objective ``sampler`` on a multi-objective study."""
    sampler._raise_error_if_multi_objective(study)


def independent_sampling_warning(
    *, param_name: str, trial_number: int, independent_sampler: str, sampler: str, reason: str
) -> str:
    """Optuna's warning text for a parameter sampled by the independent sampler."""
    return _INDEPENDENT_SAMPLING_WARNING_TEMPLATE.format(
        param_name=param_name,
        trial_number=trial_number,
        independent_sampler_name=independent_sampler,
        sampler_name=sampler,
        fallback_reason=reason,
    )


# ---- randomness -------------------------------------------------------------------------------


def seed_stream(seed: int | None) -> SeedStream:
    """A seeded stream of integers as Optuna's samplers keep it (fresh entropy if ``None``)."""
    return LazyRandomState(seed)


def next_seed(stream: SeedStream) -> int:
    """The next integer in ``[0, 2**31 - 1)`` of ``stream``."""
    return int(stream.rng.randint(0, 2**31 - 1))


def reseed(stream: SeedStream) -> None:
    """Reseed ``stream`` from fresh entropy."""
    stream.rng.seed()


# ---- normalization ----------------------------------------------------------------------------


def unit_transform(space: Mapping[str, BaseDistribution]) -> UnitTransform:
    """Optuna's map of the continuous ``space`` to ``[0, 1]^D`` (columns in ``space``'s order).

    A value ``x`` of a ``FloatDistribution(low, high)`` maps to ``(x - low) / (high - low)``, or
    to ``(log x - log low) / (log high - log low)`` if the distribution is log-scale;
    ``untransform`` maps back and clips into ``[low, high)`` as Optuna's samplers do.
    """
    return _SearchSpaceTransform(dict(space), transform_log=True, transform_0_1=True)


def to_unit(transform: UnitTransform, params: Mapping[str, float]) -> np.ndarray:
    """``params`` (every name of the space) as a float64 vector in the unit cube."""
    return np.asarray(transform.transform(dict(params)), dtype=np.float64)


def from_unit(transform: UnitTransform, unit: np.ndarray) -> dict[str, float]:
    """The parameters of the unit-cube vector ``unit``, keyed by name."""
    return {n: float(v) for n, v in transform.untransform(np.asarray(unit, np.float64)).items()}
