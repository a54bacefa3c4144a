"""Storage keys of the PPO2 search: every study and trial attribute it reads or writes.

These names are the on-disk format of a PPO2 study (what workers on other machines, optuna-dashboard
and the study reports read), so they are defined here and nowhere else. System attrs carry
the protocol's state; user attrs are for people (optuna-dashboard shows them).
"""

from __future__ import annotations

__all__ = [
    "CLAIM_KEY",
    "CONFIG_KEY",
    "LOGGER_NAME",
    "MEAN_KEY_TEMPLATE",
    "SAMPLE_KEY",
    "USER_ATTR_ENQUEUED",
    "USER_ATTR_MEAN",
    "USER_ATTR_ROUND",
    "USER_ATTR_SIGMA",
    "USER_ATTR_SURPLUS",
    "USER_ATTR_YIELDED",
    "mean_key",
]

#: Study system attr holding the sampler configuration; workers with a different one are refused.
CONFIG_KEY = "ppo2:config"
#: Study system attr ``ppo2:mean:<t>`` caching the mean of round ``t >= 1`` (computed once):
#: ``{"round", "mean": {name: normalized value}, "trials", "sigma", "sigma_next"}``.
MEAN_KEY_TEMPLATE = "ppo2:mean:{}"
#: Trial system attr: the round a trial asks to join (written before it checks for a free slot).
CLAIM_KEY = "ppo2:claim"
#: Trial system attr: ``{"round": t, "theta": {name: normalized value}}`` once admitted.
SAMPLE_KEY = "ppo2:sample"
#: User attrs shown by optuna-dashboard for every sampled trial: round, sigma and normalized mean.
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

#: Logger of the sampler: a child of Optuna's logger, so ``optuna.logging.set_verbosity`` and
#: Optuna's handler apply to it; named after this package (``optuna.paploss.samplers._ppo2`` in
#: paploss).
LOGGER_NAME = "optuna." + __name__.rpartition(".")[0]


def mean_key(round_index: int) -> str:
    """The study system attr caching ``mu_t`` for ``t = round_index >= 1``."""
    return MEAN_KEY_TEMPLATE.format(round_index)
