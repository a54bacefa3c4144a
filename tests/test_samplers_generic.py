"""Optuna's generic sampler test cases (``optuna.testing.pytest_samplers``) run on PPO2Sampler.

Which cases apply, and how:

* ``BasicSamplerTestCase`` and ``RelativeSamplerTestCase`` run unchanged. They suggest parameters
  named ``x``, ``y``, ``z`` of every kind (float, int, stepped, log, categorical) with ranges that
  change from test to test. PPO2Sampler samples continuous ``FloatDistribution`` parameters of its
  own configured ``search_space`` only (the issue's design), so the sampler under test is
  configured with two parameters of its own (``ppo2_u``, ``ppo2_v``) that the test objectives never
  suggest: every trial still joins a round and draws a PPO2 sample (the round machinery runs, and
  with 16 samples per round the 20-trial cases reach round 1 and run an update), while the
  parameters the tests look at are, by design, handled by the independent sampler (RandomSampler)
  with Optuna's warning. Configuring ``x`` itself would make Optuna raise "Cannot set different
  distribution kind" as soon as a case suggests an integer ``x``, which is the intended behaviour
  for a mis-configured study, not something these cases can exercise.
  ``samples_per_round`` is 16 because ``test_sample_relative_*`` leave up to 11 trials RUNNING in
  one study (it creates trials and never finishes them); with fewer slots the 12th would, by
  design, wait for its round to finish.
* ``SingleOnlySamplerTestCase`` applies: PPO2 is single-objective and raises ``ValueError`` on a
  multi-objective study, as Optuna's single-objective samplers do.
* ``MultiObjectiveSamplerTestCase`` does not apply for that reason (it expects multi-objective
  studies to be sampled).
"""

from __future__ import annotations

from collections.abc import Callable

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.samplers import BaseSampler
from optuna.testing.pytest_samplers import (
    BasicSamplerTestCase,
    RelativeSamplerTestCase,
    SingleOnlySamplerTestCase,
)

from paploss.samplers import PPO2Sampler


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)


class TestPPO2SamplerGeneric(
    BasicSamplerTestCase, RelativeSamplerTestCase, SingleOnlySamplerTestCase
):
    """All applicable generic cases on a PPO2Sampler with its own two-parameter space."""

    @pytest.fixture
    def sampler(self) -> Callable[[], BaseSampler]:
        def make() -> BaseSampler:
            return PPO2Sampler(
                search_space={
                    "ppo2_u": FloatDistribution(0.0, 1.0),
                    "ppo2_v": FloatDistribution(1e-3, 1.0, log=True),
                },
                samples_per_round=16,
                rounds=4,
                seed=0,
                round_timeout=30.0,
                poll_interval=0.05,
            )

        return make
