"""PPO2 search over truncated normal distributions as an Optuna sampler (paper Sec. 3.3).

The outer level of the Parameterized AP Loss search (Alg. 1, Eqs. (10)-(11), Sec. 4.1 "Search
Settings"): round after round, ``S`` parameter sets are drawn from independent truncated normals
on [0, 1]; once the ``S`` rewards of a round are known, the mean of the distribution is moved by
maximizing the clipped PPO2 surrogate. The package has three layers:

* :mod:`._update`: the mathematics (:func:`sigma_schedule`, :func:`lr_schedule`,
  :func:`ppo2_objective`, :func:`ppo2_update`), numpy and torch only;
* :mod:`._rounds` (with :mod:`._view` and the storage keys of :mod:`._keys`): the round protocol
  that keeps every piece of state in the study's storage, so that any number of threads and
  processes sharing one RDB or journal study cooperate on the same search; its docstring is the
  protocol's specification;
* :mod:`._sampler`: :class:`PPO2Sampler`, the Optuna adapter, with :mod:`._space` (the search
  space and its map to the unit cube).

:mod:`._checks` validates numeric settings; :mod:`._compat` holds every use of Optuna's private
API.
"""

from paploss.samplers._ppo2._keys import (
    CLAIM_KEY,
    CONFIG_KEY,
    MEAN_KEY_TEMPLATE,
    SAMPLE_KEY,
    USER_ATTR_ENQUEUED,
    USER_ATTR_MEAN,
    USER_ATTR_ROUND,
    USER_ATTR_SIGMA,
    USER_ATTR_SURPLUS,
    USER_ATTR_YIELDED,
    mean_key,
)
from paploss.samplers._ppo2._rounds import SearchFinishedError
from paploss.samplers._ppo2._sampler import PPO2Sampler, check_search_settings
from paploss.samplers._ppo2._update import (
    lr_schedule,
    ppo2_objective,
    ppo2_update,
    sigma_schedule,
)

__all__ = [
    "CLAIM_KEY",
    "CONFIG_KEY",
    "MEAN_KEY_TEMPLATE",
    "SAMPLE_KEY",
    "USER_ATTR_ENQUEUED",
    "USER_ATTR_MEAN",
    "USER_ATTR_ROUND",
    "USER_ATTR_SIGMA",
    "USER_ATTR_SURPLUS",
    "USER_ATTR_YIELDED",
    "PPO2Sampler",
    "SearchFinishedError",
    "check_search_settings",
    "lr_schedule",
    "mean_key",
    "ppo2_objective",
    "ppo2_update",
    "sigma_schedule",
]
