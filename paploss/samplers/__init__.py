"""Outer-level search for the Parameterized AP Loss: Optuna samplers (paper Sec. 3.3).

* :class:`PPO2Sampler`: the paper's PPO2 search over truncated normals, safe for many workers on
  one RDB or journal study.
* :func:`make_sampler`: ``"ppo2"``, ``"random"`` (the paper's baseline), ``"tpe"`` or ``"cmaes"``
  from one flag.
* :func:`ppo2_update`, :func:`ppo2_objective`, :func:`sigma_schedule`, :func:`lr_schedule`: the
  mathematics of one round, usable on their own.
"""

from paploss.samplers._factory import SAMPLER_NAMES, make_sampler
from paploss.samplers._ppo2 import (
    PPO2Sampler,
    SearchFinishedError,
    lr_schedule,
    ppo2_objective,
    ppo2_update,
    sigma_schedule,
)
from paploss.samplers._ppo2._truncnorm import sample_truncnorm01, truncnorm01_logpdf

__all__ = [
    "SAMPLER_NAMES",
    "PPO2Sampler",
    "SearchFinishedError",
    "lr_schedule",
    "make_sampler",
    "ppo2_objective",
    "ppo2_update",
    "sample_truncnorm01",
    "sigma_schedule",
    "truncnorm01_logpdf",
]
