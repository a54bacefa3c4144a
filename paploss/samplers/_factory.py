"""One flag for the four outer-level search methods: ``ppo2``, ``random``, ``tpe`` and ``cmaes``."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Mapping

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, CmaEsSampler, RandomSampler, TPESampler

from paploss.samplers._ppo2 import PPO2Sampler, check_search_settings

__all__ = ["SAMPLER_NAMES", "make_sampler"]

#: Names accepted by :func:`make_sampler`.
SAMPLER_NAMES: tuple[str, ...] = ("ppo2", "random", "tpe", "cmaes")


def make_sampler(
    name: str,
    *,
    search_space: Mapping[str, BaseDistribution],
    init_mean: Mapping[str, float] | None,
    seed: int | None,
    samples_per_round: int = 8,
    rounds: int = 40,
    sigma_init: float = 0.2,
    round_timeout: float | None = 86400.0,
) -> BaseSampler:
    """Build the sampler called ``name`` for a search over ``search_space``.

    * ``"ppo2"``: :class:`~paploss.samplers.PPO2Sampler` with all the arguments (its other
      settings keep their defaults).
    * ``"random"``: Optuna's :class:`~optuna.samplers.RandomSampler` ``(seed=seed)``, the random
      search baseline of the paper (uniform over the same distributions the objective suggests;
      log-uniform for log-scale ones).
    * ``"tpe"``: Optuna's :class:`~optuna.samplers.TPESampler` ``(seed=seed)`` with its defaults.
    * ``"cmaes"``: Optuna's :class:`~optuna.samplers.CmaEsSampler`
      ``(x0=init_mean, sigma0=sigma_init, seed=seed)``. Optuna normalizes the search space to
      [0, 1] for CMA-ES, so ``sigma0`` is in the same normalized units as PPO2's ``sigma_init``.
      Optuna >= 4.9 marks ``x0``/``sigma0`` deprecated (removal planned for 6.0; this project pins
      ``optuna < 6``); that ``FutureWarning`` is silenced here. Needs the optional ``cmaes``
      package; if it is missing an :class:`ImportError` says how to install it.

    Every argument is validated for every name, by the checks of :class:`PPO2Sampler`
    (:func:`~paploss.samplers._ppo2.check_search_settings`; no sampler is built for that), so
    that all four methods run over the same space. ``samples_per_round``, ``rounds`` and
    ``round_timeout`` are used by ``ppo2`` only and ``sigma_init`` by ``ppo2`` and ``cmaes``; the
    other methods ignore them (they group trials into rounds only for reporting and never wait
    for a round). ``samples_per_round`` must be >= 2 for ``ppo2`` (its update needs two rewards
    per round) and >= 1 for the others; ``round_timeout`` is ``None`` or a number > 0.

    Raises:
        ValueError: ``name`` is not one of :data:`SAMPLER_NAMES`, or an argument is invalid.
        ImportError: ``name == "cmaes"`` and the ``cmaes`` package is not installed.
    """
    if name not in SAMPLER_NAMES:
        raise ValueError(f"name must be one of {', '.join(SAMPLER_NAMES)}; got {name!r}.")
    if name == "ppo2":
        return PPO2Sampler(
            search_space=search_space,
            init_mean=init_mean,
            samples_per_round=samples_per_round,
            rounds=rounds,
            sigma_init=sigma_init,
            seed=seed,
            round_timeout=round_timeout,
        )
    check_search_settings(
        search_space=search_space,
        init_mean=init_mean,
        samples_per_round=samples_per_round,
        rounds=rounds,
        sigma_init=sigma_init,
        seed=seed,
        round_timeout=round_timeout,
        min_samples_per_round=1,
    )
    if name == "random":
        return RandomSampler(seed=seed)
    if name == "tpe":
        return TPESampler(seed=seed)
    return _cmaes(init_mean=init_mean, sigma_init=sigma_init, seed=seed)


def _cmaes(
    *, init_mean: Mapping[str, float] | None, sigma_init: float, seed: int | None
) -> BaseSampler:
    """Optuna's CMA-ES sampler started at ``init_mean`` with ``sigma0 = sigma_init``."""
    try:
        importlib.import_module("cmaes")
    except ImportError as err:
        raise ImportError(
            "make_sampler('cmaes') needs the optional 'cmaes' package: "
            "pip install cmaes (it is part of paploss[dev])."
        ) from err
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*`(x0|sigma0)`.*", category=FutureWarning)
        return CmaEsSampler(
            x0=dict(init_mean) if init_mean is not None else None,
            sigma0=sigma_init,
            seed=seed,
        )
