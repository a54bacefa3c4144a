"""PPO2 search over truncated normal distributions as an Optuna sampler (OptunaHub package).

The outer search of "Searching Parameterized AP Loss for Object Detection" (Tao et al., NeurIPS
2021, Sec. 3.3), usable on any Optuna study with continuous float parameters:

* :mod:`._update`: the mathematics (sigma and learning-rate schedules, the clipped PPO2
  surrogate and the Adam update of the mean), numpy and torch only;
* :mod:`._rounds` (with :mod:`._view` and the storage keys of :mod:`._keys`): the round protocol
  that keeps every piece of state in the study's storage, so that threads and processes sharing
  one RDB or journal study cooperate on one search; its docstring is the specification;
* :mod:`._sampler`: :class:`PPO2Sampler`, the Optuna adapter, with :mod:`._space` (the search
  space and its map to the unit cube) and :mod:`._compat` (every use of Optuna's private API).
"""

from ._rounds import SearchFinishedError
from ._sampler import PPO2Sampler
from ._update import lr_schedule, ppo2_objective, ppo2_update, sigma_schedule

__all__ = [
    "PPO2Sampler",
    "SearchFinishedError",
    "lr_schedule",
    "ppo2_objective",
    "ppo2_update",
    "sigma_schedule",
]
