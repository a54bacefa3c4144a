"""Tests of the PPO2 truncated-normal sampler (paper Sec. 3.3, Eqs. (10)-(11), Sec. 4.1)."""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import pickle
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import CmaEsSampler, RandomSampler, TPESampler
from optuna.trial import TrialState
from scipy import stats

from paploss.samplers import (
    SAMPLER_NAMES,
    PPO2Sampler,
    SearchFinishedError,
    lr_schedule,
    make_sampler,
    ppo2_objective,
    ppo2_update,
    sample_truncnorm01,
    sigma_schedule,
    truncnorm01_logpdf,
)
from paploss.samplers._ppo2 import CLAIM_KEY, MEAN_KEY_TEMPLATE, SAMPLE_KEY, USER_ATTR_YIELDED
from tests import _sampler_worker as worker

WORKER = Path(__file__).with_name("_sampler_worker.py")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


# --------------------------------------------------------------------------------------------
# Independent references (scipy / hand-written torch), deliberately not using paploss helpers
# --------------------------------------------------------------------------------------------


def _scipy_truncnorm_pdf(x: np.ndarray, mean: np.ndarray, sigma: float) -> np.ndarray:
    return stats.truncnorm.pdf(x, (0 - mean) / sigma, (1 - mean) / sigma, loc=mean, scale=sigma)


def _reference_objective(
    samples: np.ndarray,
    rewards: np.ndarray,
    mean_old: np.ndarray,
    mean_new: np.ndarray,
    sigma: float,
    sigma_next: float,
    eps: float,
) -> float:
    """Eq. (11) averaged over the round, straight from the definition with scipy densities."""
    ratio = _scipy_truncnorm_pdf(samples, mean_new, sigma_next) / _scipy_truncnorm_pdf(
        samples, mean_old, sigma
    )
    adv = rewards - rewards.mean()
    unclipped = np.prod(ratio, axis=1) * adv
    clipped = np.prod(np.clip(ratio, 1 - eps, 1 + eps), axis=1) * adv
    return float(np.mean(np.minimum(unclipped, clipped)))


def _reference_update(
    samples: np.ndarray,
    rewards: np.ndarray,
    mean: np.ndarray,
    sigma: float,
    sigma_next: float,
    *,
    eps: float = 0.1,
    steps: int = 100,
    lr: float = 0.01,
    warmup: int = 30,
) -> np.ndarray:
    """A second, naive implementation: explicit erf densities, plain product, hand-written Adam."""
    x = torch.tensor(samples, dtype=torch.float64)
    r = torch.tensor(rewards, dtype=torch.float64)
    adv = r - r.mean()

    def cdf(v: torch.Tensor) -> torch.Tensor:
        return 0.5 * (1.0 + torch.erf(v / math.sqrt(2.0)))

    def pdf(m: torch.Tensor, s: float) -> torch.Tensor:
        gauss = torch.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2.0 * math.pi))
        return gauss / (cdf((1.0 - m) / s) - cdf((0.0 - m) / s))

    p_old = pdf(torch.tensor(mean, dtype=torch.float64), sigma)
    z = torch.logit(torch.tensor(mean, dtype=torch.float64))
    m1 = torch.zeros_like(z)
    m2 = torch.zeros_like(z)
    b1, b2 = 0.9, 0.999
    for k in range(steps):
        step_lr = lr * k / warmup if k < warmup else lr * (steps - k) / (steps - warmup)
        zg = z.clone().requires_grad_(True)
        ratio = pdf(torch.sigmoid(zg), sigma_next) / p_old
        objective = torch.mean(
            torch.minimum(ratio.prod(dim=1) * adv, ratio.clamp(1 - eps, 1 + eps).prod(dim=1) * adv)
        )
        (grad,) = torch.autograd.grad(-objective, zg)
        m1 = b1 * m1 + (1 - b1) * grad
        m2 = b2 * m2 + (1 - b2) * grad * grad
        m_hat = m1 / (1 - b1 ** (k + 1))
        v_hat = m2 / (1 - b2 ** (k + 1))
        z = z - step_lr * m_hat / (torch.sqrt(v_hat) + 1e-8)
    return torch.sigmoid(z).numpy()


def _fixed_round(seed: int, s: int = 8, d: int = 41) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A round drawn from N_trunc(mu_t, 0.2) with rewards favouring a target point."""
    rng = np.random.default_rng(seed)
    mean = rng.uniform(0.15, 0.85, size=d)
    samples = np.stack([sample_truncnorm01(mean, 0.2, rng) for _ in range(s)])
    target = rng.uniform(0, 1, size=d)
    rewards = -np.sum((samples - target) ** 2, axis=1) + rng.normal(0, 0.01, size=s)
    return samples, rewards, mean


def _study_attrs(study: optuna.Study) -> dict[str, object]:
    """Study system attrs (Optuna 5 has no public accessor for them)."""
    return study._storage.get_study_system_attrs(study._study_id)


def _normalize(dist: FloatDistribution, value: float) -> float:
    if dist.log:
        return (math.log(value) - math.log(dist.low)) / (math.log(dist.high) - math.log(dist.low))
    return (value - dist.low) / (dist.high - dist.low)


# --------------------------------------------------------------------------------------------
# Distribution and schedules
# --------------------------------------------------------------------------------------------


def test_truncnorm_logpdf_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(50, 7))
    mean = rng.uniform(0, 1, size=7)
    for sigma in (0.005, 0.05, 0.2, 1.0):
        ours = truncnorm01_logpdf(
            torch.tensor(x, dtype=torch.float64), torch.tensor(mean, dtype=torch.float64), sigma
        ).numpy()
        ref = stats.truncnorm.logpdf(x, -mean / sigma, (1 - mean) / sigma, loc=mean, scale=sigma)
        np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-9)


def test_truncnorm_samples_follow_the_distribution() -> None:
    rng = np.random.default_rng(1)
    mean = np.array([0.05, 0.5, 0.9])
    draws = np.stack([sample_truncnorm01(mean, 0.3, rng) for _ in range(3000)])
    assert draws.min() >= 0.0 and draws.max() <= 1.0
    for d in range(3):
        a, b = -mean[d] / 0.3, (1 - mean[d]) / 0.3
        result = stats.kstest(draws[:, d], stats.truncnorm(a, b, loc=mean[d], scale=0.3).cdf)
        assert result.pvalue > 1e-3


def test_sigma_schedule_is_exact() -> None:
    assert [sigma_schedule(t, sigma_init=0.2, rounds=40) for t in range(41)] == [
        0.2 * (40 - t) / 40 for t in range(40)
    ] + [0.2 * 1 / 40]
    assert sigma_schedule(0, sigma_init=0.3, rounds=1) == 0.3
    assert sigma_schedule(1, sigma_init=0.3, rounds=1) == 0.3  # the last update keeps sigma
    with pytest.raises(ValueError, match="round_index"):
        sigma_schedule(41, sigma_init=0.2, rounds=40)


def test_lr_schedule_warms_up_then_decays() -> None:
    lrs = [lr_schedule(k, lr=0.01, steps=100, warmup_steps=30) for k in range(100)]
    assert lrs[0] == 0.0
    assert lrs[15] == pytest.approx(0.005)
    assert lrs[30] == pytest.approx(0.01)
    assert lrs[99] == pytest.approx(0.01 / 70)
    assert all(a < b for a, b in zip(lrs[:30], lrs[1:31]))
    assert all(a > b for a, b in zip(lrs[30:], lrs[31:]))


def test_sampler_records_exact_sigma_and_round() -> None:
    space = {"u": FloatDistribution(0, 1), "v": FloatDistribution(0, 1)}
    sampler = PPO2Sampler(search_space=space, samples_per_round=2, rounds=5, sigma_init=0.25)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("u", 0, 1) + t.suggest_float("v", 0, 1))
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 10
    for trial in done:
        rnd = trial.user_attrs["ppo2_round"]
        assert rnd == trial.number // 2
        assert trial.user_attrs["ppo2_sigma"] == 0.25 * (5 - rnd) / 5


# --------------------------------------------------------------------------------------------
# The update
# --------------------------------------------------------------------------------------------


def test_objective_equals_direct_reimplementation() -> None:
    samples, rewards, mean = _fixed_round(2)
    rng = np.random.default_rng(3)
    for sigma_next in (0.2, 0.195):
        for scale in (0.0, 0.01, 0.05, 0.2):
            mean_new = np.clip(mean + rng.normal(0, scale, size=mean.shape), 0.01, 0.99)
            ours = ppo2_objective(samples, rewards, mean, mean_new, 0.2, sigma_next, clip_eps=0.1)
            ref = _reference_objective(samples, rewards, mean, mean_new, 0.2, sigma_next, 0.1)
            assert ours == pytest.approx(ref, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", [4, 5])
def test_update_equals_direct_reimplementation(seed: int) -> None:
    samples, rewards, mean = _fixed_round(seed)
    ours = ppo2_update(samples, rewards, mean, 0.2, 0.195)
    ref = _reference_update(samples, rewards, mean, 0.2, 0.195)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-10)
    assert np.max(np.abs(ours - mean)) > 1e-3  # the update did move the mean
    # The result improves the surrogate it maximizes.
    before = ppo2_objective(samples, rewards, mean, mean, 0.2, 0.195)
    after = ppo2_objective(samples, rewards, mean, ours, 0.2, 0.195)
    assert after > before


def test_update_with_equal_rewards_keeps_the_mean() -> None:
    samples, _, mean = _fixed_round(6, s=4, d=5)
    np.testing.assert_allclose(
        ppo2_update(samples, np.ones(4), mean, 0.2, 0.2), mean, rtol=0, atol=1e-12
    )


def test_update_moves_mean_toward_high_reward_samples() -> None:
    rng = np.random.default_rng(7)
    mean = np.full(4, 0.5)
    samples = np.stack([sample_truncnorm01(mean, 0.2, rng) for _ in range(8)])
    rewards = samples[:, 0] - samples[:, 1]  # high reward: large theta_0, small theta_1
    new = ppo2_update(samples, rewards, mean, 0.2, 0.2)
    assert new[0] > mean[0] + 0.01
    assert new[1] < mean[1] - 0.01


def test_update_rejects_bad_inputs() -> None:
    samples, rewards, mean = _fixed_round(8, s=4, d=3)
    with pytest.raises(ValueError, match="rewards"):
        ppo2_update(samples, rewards[:3], mean, 0.2, 0.2)
    with pytest.raises(ValueError, match="samples"):
        ppo2_update(samples + 2.0, rewards, mean, 0.2, 0.2)
    with pytest.raises(ValueError, match="sigma_next"):
        ppo2_update(samples, rewards, mean, 0.2, 0.0)
    with pytest.raises(ValueError, match="warmup_steps"):
        ppo2_update(samples, rewards, mean, 0.2, 0.2, steps=10, warmup_steps=20)
    with pytest.raises(ValueError, match="clip_eps"):
        ppo2_objective(samples, rewards, mean, mean, 0.2, 0.2, clip_eps=1.5)


def test_sampler_update_matches_reference_on_a_study() -> None:
    """The sampler feeds the right samples, rewards, means and sigmas into the update."""
    space = {
        "a": FloatDistribution(-2.0, 3.0),
        "b": FloatDistribution(1e-4, 1.0, log=True),
        "c": FloatDistribution(0.0, 1.0),
    }
    init = {"a": 1.0, "b": 1e-2, "c": 0.3}
    sampler = PPO2Sampler(
        search_space=space, init_mean=init, samples_per_round=6, rounds=2, seed=11
    )
    study = optuna.create_study(direction="minimize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        a = trial.suggest_float("a", -2.0, 3.0)
        b = trial.suggest_float("b", 1e-4, 1.0, log=True)
        c = trial.suggest_float("c", 0.0, 1.0)
        return (a - 2.5) ** 2 + (math.log10(b) + 1) ** 2 + c

    study.optimize(objective, n_trials=7)
    round0 = [t for t in study.trials if t.user_attrs.get("ppo2_round") == 0]
    assert [t.number for t in round0] == list(range(6))
    names = ["a", "b", "c"]
    samples = np.array([[_normalize(space[n], t.params[n]) for n in names] for t in round0])
    rewards = np.array([-t.value for t in round0])  # minimize: reward = -value
    mean0 = np.array([_normalize(space[n], init[n]) for n in names])
    assert study.trials[0].user_attrs["ppo2_mean"] == pytest.approx(dict(zip(names, mean0)))
    ref = _reference_update(samples, rewards, mean0, 0.2, 0.1)  # sigma_1 = 0.2 * (2 - 1) / 2
    trial6 = study.trials[6]
    assert trial6.user_attrs["ppo2_round"] == 1
    assert trial6.user_attrs["ppo2_sigma"] == 0.1
    got = np.array([trial6.user_attrs["ppo2_mean"][n] for n in names])
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-8)
    cached = _study_attrs(study)[MEAN_KEY_TEMPLATE.format(1)]
    assert cached["trials"] == list(range(6))
    assert [cached["mean"][n] for n in names] == got.tolist()


def test_mean_moves_toward_optimum_over_rounds() -> None:
    result = worker.run_repro(seed=3, samples_per_round=8, rounds=8)
    names = ["a", "b", "c"]
    target = np.array([_normalize(worker.SPACE[n], worker.TARGET[n]) for n in names])
    means = [np.array([m[n] for n in names]) for m in result["means"]]
    distances = [float(np.linalg.norm(m - target)) for m in means]
    assert distances[-1] < distances[0] - 0.1
    assert len(result["params"]) == 64


# --------------------------------------------------------------------------------------------
# Reproducibility, pickling, reseeding
# --------------------------------------------------------------------------------------------


def test_reproducible_with_seed_in_this_and_another_process() -> None:
    first = worker.run_repro(seed=123, samples_per_round=4, rounds=3)
    second = worker.run_repro(seed=123, samples_per_round=4, rounds=3)
    assert first == second
    other = worker.run_repro(seed=124, samples_per_round=4, rounds=3)
    assert other["params"] != first["params"]
    out = subprocess.run(
        [sys.executable, str(WORKER), "repro", "--seed", "123"]
        + ["--samples-per-round", "4", "--rounds", "3"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        timeout=120,
    )
    assert json.loads(out.stdout) == json.loads(json.dumps(first))


def _draw_params(sampler: PPO2Sampler, n: int) -> list[dict[str, float]]:
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("a", 0, 1) + t.suggest_float("b", 0, 1), n_trials=n)
    return [t.params for t in study.trials]


def test_pickle_deepcopy_and_reseed_behave_like_optuna_samplers() -> None:
    space = {"a": FloatDistribution(0, 1), "b": FloatDistribution(0, 1)}
    sampler = PPO2Sampler(search_space=space, samples_per_round=3, rounds=3, seed=5)
    _draw_params(sampler, 2)  # advance the stream
    clone = pickle.loads(pickle.dumps(sampler))
    twin = copy.deepcopy(sampler)
    expected = _draw_params(sampler, 4)
    assert _draw_params(clone, 4) == expected
    assert _draw_params(twin, 4) == expected
    reseeded = pickle.loads(pickle.dumps(clone))
    reseeded.reseed_rng()
    assert _draw_params(reseeded, 4) != _draw_params(clone, 4)


def test_workers_with_the_same_seed_draw_different_samples() -> None:
    space = {"a": FloatDistribution(0, 1)}
    study = optuna.create_study()
    one = PPO2Sampler(search_space=space, samples_per_round=4, rounds=2, seed=0)
    two = PPO2Sampler(search_space=space, samples_per_round=4, rounds=2, seed=0)
    values = []
    for sampler in (one, two, one, two):
        trial = study.ask()
        values.append(sampler.sample_relative(study, trial._cached_frozen_trial, space)["a"])
    assert len(set(values)) == 4


# --------------------------------------------------------------------------------------------
# Rounds in storage: failures, waiting, enqueued trials, the end of the search
# --------------------------------------------------------------------------------------------


def _check_rounds(study: optuna.Study, sampler: PPO2Sampler) -> None:
    """Exactly S COMPLETE trials in every round, one mean per round, equal to the stored one."""
    trials = study.get_trials(deepcopy=False)
    s, rounds = sampler.samples_per_round, sampler.rounds
    for rnd in range(rounds):
        members = [t for t in trials if (t.system_attrs.get(SAMPLE_KEY) or {}).get("round") == rnd]
        complete = [t for t in members if t.state == TrialState.COMPLETE]
        assert len(complete) == s, (rnd, [(t.number, t.state) for t in members])
        assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in members)
        means = {json.dumps(t.user_attrs["ppo2_mean"], sort_keys=True) for t in members}
        assert len(means) == 1
        stored = sampler.round_mean(study, rnd)
        assert members[0].user_attrs["ppo2_mean"] == stored
        if rnd > 0:
            cached = _study_attrs(study)[MEAN_KEY_TEMPLATE.format(rnd)]
            assert cached["mean"] == stored
            previous = [t.number for t in trials if t.user_attrs.get("ppo2_round") == rnd - 1]
            assert set(cached["trials"]) <= set(previous)
    assert sampler.is_finished(study)


def test_failed_trial_is_replaced_and_round_completes() -> None:
    space = {"a": FloatDistribution(0, 1), "b": FloatDistribution(0, 1)}
    sampler = PPO2Sampler(search_space=space, samples_per_round=4, rounds=3, seed=0)
    study = optuna.create_study(sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        a, b = trial.suggest_float("a", 0, 1), trial.suggest_float("b", 0, 1)
        if trial.number in (2, 9):
            raise RuntimeError("training diverged")
        return a + b

    study.optimize(objective, catch=(RuntimeError,))
    states = [t.state for t in study.trials]
    assert states.count(TrialState.FAIL) == 2 and states[-1] == TrialState.PRUNED
    assert [t.user_attrs["ppo2_round"] for t in study.trials[:-1]] == [0] * 5 + [1] * 4 + [2] * 5
    assert _study_attrs(study)[MEAN_KEY_TEMPLATE.format(1)]["trials"] == [0, 1, 3, 4]
    _check_rounds(study, sampler)


def test_retried_failed_trial_rejoins_its_round_with_its_sample() -> None:
    """Optuna's retry callback copies the failed trial's sample and round into the retry."""
    space = {"a": FloatDistribution(0, 1), "b": FloatDistribution(0, 1)}
    sampler = PPO2Sampler(search_space=space, samples_per_round=3, rounds=2, seed=2)
    study = optuna.create_study(sampler=sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # RetryFailedTrialCallback in Optuna < 4.9; same behaviour.
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)

    def objective(trial: optuna.Trial) -> float:
        a, b = trial.suggest_float("a", 0, 1), trial.suggest_float("b", 0, 1)
        if trial.number == 1:
            raise RuntimeError("worker lost")
        return a - b

    def retry_failed(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == TrialState.FAIL:
            retry(study, trial)

    study.optimize(objective, catch=(RuntimeError,), callbacks=[retry_failed])
    failed, retried = study.trials[1], study.trials[2]
    assert retried.system_attrs["failed_trial"] == 1
    assert retried.params == failed.params
    assert retried.system_attrs[SAMPLE_KEY] == failed.system_attrs[SAMPLE_KEY]
    assert _study_attrs(study)[MEAN_KEY_TEMPLATE.format(1)]["trials"] == [0, 2, 3]
    _check_rounds(study, sampler)


def test_round_full_but_unfinished_waits_then_times_out(caplog: pytest.LogCaptureFixture) -> None:
    space = {"a": FloatDistribution(0, 1)}
    sampler = PPO2Sampler(
        search_space=space, samples_per_round=2, rounds=2, round_timeout=0.6, poll_interval=0.1
    )
    study = optuna.create_study(sampler=sampler)
    running = [study.ask() for _ in range(2)]
    for trial in running:
        trial.suggest_float("a", 0, 1)
    waiting = study.ask()
    optuna.logging.set_verbosity(optuna.logging.INFO)
    optuna.logging.enable_propagation()
    try:
        with caplog.at_level(logging.INFO), pytest.raises(TimeoutError, match="round_timeout"):
            waiting.suggest_float("a", 0, 1)
    finally:
        optuna.logging.disable_propagation()
    assert "waits for round 0" in caplog.text
    # The waiting trial never claimed a slot of the full round.
    assert study._storage.get_trial_system_attrs(waiting._trial_id).get(CLAIM_KEY) is None


def test_waiting_trial_proceeds_when_the_round_finishes() -> None:
    space = {"a": FloatDistribution(0, 1)}
    sampler = PPO2Sampler(
        search_space=space, samples_per_round=2, rounds=2, round_timeout=30, poll_interval=0.05
    )
    study = optuna.create_study(sampler=sampler)
    running = [study.ask() for _ in range(2)]
    for trial in running:
        trial.suggest_float("a", 0, 1)
    result: dict[str, object] = {}

    def third() -> None:
        trial = study.ask()
        result["value"] = trial.suggest_float("a", 0, 1)
        result["round"] = study._storage.get_trial(trial._trial_id).user_attrs["ppo2_round"]

    thread = threading.Thread(target=third)
    thread.start()
    time.sleep(0.3)
    assert thread.is_alive()  # round 0 is full (2 RUNNING) but not finished
    study.tell(running[0], 1.0)
    study.tell(running[1], 0.0)
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert result["round"] == 1


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_heartbeat_failed_trial_frees_its_slot(tmp_path: Path) -> None:
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{tmp_path / 'hb.db'}", heartbeat_interval=1, grace_period=1
    )
    space = {"a": FloatDistribution(0, 1)}
    sampler = PPO2Sampler(
        search_space=space, samples_per_round=2, rounds=1, round_timeout=30, poll_interval=0.2
    )
    study = optuna.create_study(storage=storage, sampler=sampler)
    with pytest.warns(UserWarning, match="Heartbeat"):
        dead = study.ask()  # a worker that joins round 0 and then dies
    dead.suggest_float("a", 0, 1)
    storage.record_heartbeat(dead._trial_id)
    study.optimize(lambda t: t.suggest_float("a", 0, 1), n_trials=3)
    assert study.trials[0].state == TrialState.FAIL  # failed by the waiting trial's check
    assert [t.user_attrs.get("ppo2_round") for t in study.trials[1:3]] == [0, 0]
    assert sampler.is_finished(study)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_heartbeat_retry_keeps_the_slot_and_a_waiting_trial_yields_to_it(tmp_path: Path) -> None:
    """A dead member's retry holds its slot: the trial waiting for the round runs it instead."""
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{tmp_path / 'retry.db'}",
        heartbeat_interval=1,
        grace_period=2,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
            max_retry=1
        ),
    )
    space = {"a": FloatDistribution(0, 1)}
    sampler = PPO2Sampler(
        search_space=space, samples_per_round=2, rounds=1, round_timeout=30, poll_interval=0.1
    )
    study = optuna.create_study(storage=storage, sampler=sampler, direction="maximize")
    with pytest.warns(UserWarning, match="Heartbeat"):
        dead = study.ask()  # joins round 0, then its worker dies
    dead.suggest_float("a", 0, 1)
    with pytest.warns(UserWarning, match="Heartbeat"):
        done = study.ask()
    study.tell(done, done.suggest_float("a", 0, 1))
    storage.record_heartbeat(dead._trial_id)  # its last beat: stale 2 s from now
    # Trial 2 waits for the full round 0 until trial 0 is stale; the retry (trial 3) is created
    # WAITING with trial 0's sample and keeps the slot, so trial 2 yields and the loop runs trial 3.
    study.optimize(lambda t: t.suggest_float("a", 0, 1))
    trials = study.trials
    assert [t.state for t in trials] == [
        TrialState.FAIL,
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.COMPLETE,
        TrialState.PRUNED,
    ]
    assert trials[2].user_attrs[USER_ATTR_YIELDED] == {"round": 0, "retries": [3]}
    assert trials[3].system_attrs["failed_trial"] == 0
    assert trials[3].system_attrs[SAMPLE_KEY] == trials[0].system_attrs[SAMPLE_KEY]
    assert trials[3].params == trials[0].params
    assert trials[4].user_attrs["ppo2_surplus"] is True
    assert sampler.is_finished(study)
    _check_rounds(study, sampler)


def test_waiting_retry_holds_its_slot_outside_optimize() -> None:
    """In ask-and-tell, a WAITING retry keeps its round full: a new trial waits, it never joins."""
    space = {"a": FloatDistribution(0, 1)}
    sampler = PPO2Sampler(
        search_space=space, samples_per_round=2, rounds=2, round_timeout=0.5, poll_interval=0.1
    )
    study = optuna.create_study(sampler=sampler)
    first, second = study.ask(), study.ask()
    first.suggest_float("a", 0, 1)
    second.suggest_float("a", 0, 1)
    extra = study.ask()  # asked before the retry exists, samples after
    study.tell(first, state=TrialState.FAIL)
    study.tell(second, 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RetryHeartbeatStaleTrialCallback()(study, study.trials[0])
    with pytest.raises(TimeoutError, match="round_timeout"):
        extra.suggest_float("a", 0, 1)  # round 0: one COMPLETE, one WAITING retry
    assert USER_ATTR_YIELDED not in study._storage.get_trial(extra._trial_id).user_attrs
    study.tell(extra, state=TrialState.FAIL)
    retry = study.ask()  # Optuna pops the WAITING retry: trial 0's sample, in round 0
    assert retry.number == 3
    assert retry.suggest_float("a", 0, 1) == study.trials[0].params["a"]
    study.tell(retry, 1.0)
    assert sampler.current_round(study) == 1
    assert sampler.round_mean(study, 1) is not None
    assert _study_attrs(study)[MEAN_KEY_TEMPLATE.format(1)]["trials"] == [1, 3]


def test_enqueued_trials_do_not_count() -> None:
    space = {"a": FloatDistribution(0, 1), "b": FloatDistribution(0, 1)}
    sampler = PPO2Sampler(search_space=space, samples_per_round=3, rounds=2, seed=1)
    study = optuna.create_study(sampler=sampler)
    study.enqueue_trial({"a": 0.5})
    study.enqueue_trial({"a": 0.1, "b": 0.9})
    study.optimize(lambda t: t.suggest_float("a", 0, 1) + t.suggest_float("b", 0, 1))
    first, second = study.trials[:2]
    assert first.params["a"] == 0.5 and first.user_attrs["ppo2_enqueued"] is True
    assert SAMPLE_KEY not in first.system_attrs and SAMPLE_KEY not in second.system_attrs
    _check_rounds(study, sampler)
    assert _study_attrs(study)[MEAN_KEY_TEMPLATE.format(1)]["trials"] == [2, 3, 4]


def test_search_finishes_after_rounds() -> None:
    space = {"a": FloatDistribution(0, 1)}
    sampler = PPO2Sampler(search_space=space, samples_per_round=2, rounds=2)
    study = optuna.create_study(sampler=sampler)
    assert not sampler.is_finished(study) and sampler.current_round(study) == 0
    assert sampler.round_mean(study, 1) is None
    study.optimize(lambda t: t.suggest_float("a", 0, 1), n_trials=50)
    assert len(study.trials) == 5  # 4 used + 1 surplus that stopped the loop
    assert study.trials[-1].state == TrialState.PRUNED
    assert study.trials[-1].user_attrs["ppo2_surplus"] is True
    assert sampler.is_finished(study) and sampler.current_round(study) == 2
    final = sampler.round_mean(study, 2)
    assert final is not None and 0 < final["a"] < 1
    trial = study.ask()
    with pytest.raises(SearchFinishedError, match="all 2 rounds are done"):
        trial.suggest_float("a", 0, 1)


def test_parameters_outside_the_space_use_the_independent_sampler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    space = {"a": FloatDistribution(0, 1)}
    sampler = PPO2Sampler(search_space=space, samples_per_round=2, rounds=1, seed=0)
    study = optuna.create_study(sampler=sampler)
    optuna.logging.enable_propagation()
    try:
        with caplog.at_level(logging.WARNING):
            trial = study.ask()
            trial.suggest_float("a", 0, 1)
            choice = trial.suggest_categorical("opt", ["sgd", "adam"])
    finally:
        optuna.logging.disable_propagation()
    assert choice in ("sgd", "adam")
    assert "`opt` in Trial#0 is sampled independently using `RandomSampler`" in caplog.text
    assert "a" in trial.params
    assert study._storage.get_trial(trial._trial_id).user_attrs["ppo2_round"] == 0


def test_configuration_mismatch_between_workers_is_refused() -> None:
    space = {"a": FloatDistribution(0, 1)}
    study = optuna.create_study(sampler=PPO2Sampler(search_space=space, samples_per_round=2))
    study.optimize(lambda t: t.suggest_float("a", 0, 1), n_trials=1)
    other = PPO2Sampler(search_space=space, samples_per_round=3)
    study.sampler = other
    with pytest.raises(ValueError, match="samples_per_round"):
        study.optimize(lambda t: t.suggest_float("a", 0, 1), n_trials=1)


# --------------------------------------------------------------------------------------------
# Parallel workers
# --------------------------------------------------------------------------------------------


def test_four_threads_on_sqlite(tmp_path: Path) -> None:
    sampler = worker.make_sampler(seed=0, samples_per_round=4, rounds=3, poll_interval=0.02)
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'threads.db'}", direction="maximize", sampler=sampler
    )

    def objective(trial: optuna.Trial) -> float:
        params = {
            n: trial.suggest_float(n, d.low, d.high, log=d.log) for n, d in worker.SPACE.items()
        }
        time.sleep(0.005 * (trial.number % 4))
        if trial.number == 5:
            raise RuntimeError("a trial that fails in the middle of a round")
        return worker.toy_value(params)

    study.optimize(objective, n_trials=40, n_jobs=4, catch=(RuntimeError,))
    _check_rounds(study, sampler)
    assert study.trials[5].state == TrialState.FAIL
    assert {t.state for t in study.trials[-2:]} <= {TrialState.PRUNED, TrialState.COMPLETE}


@pytest.mark.parametrize(
    "backend",
    # Each worker process pays ~5 s of imports (torch, torch._dynamo via torch.optim); the
    # journal-file run stays in the fast suite, the SQLite one (~17-27 s on 2 busy cores) is slow.
    ["journal", pytest.param("sqlite", marks=pytest.mark.slow)],
)
def test_two_processes_share_one_study(tmp_path: Path, backend: str) -> None:
    if backend == "journal":
        url = f"journal:{tmp_path / 'journal.log'}"
    else:
        url = f"sqlite:///{tmp_path / 'procs.db'}"
    optuna.create_study(study_name="procs", storage=worker.make_storage(url), direction="maximize")
    s, rounds = 4, 3
    command = [sys.executable, str(WORKER), "optimize", "--storage", url]
    command += ["--study-name", "procs", "--n-trials", "0"]  # run until the search is done
    command += ["--samples-per-round", str(s), "--rounds", str(rounds), "--seed", "7"]
    # Both workers start sampling together and each trial takes 0.2-0.4 s, so neither can finish
    # the 12 trials alone while the other is still importing.
    command += ["--start-barrier", str(tmp_path / "ready"), "--workers", "2"]
    command += ["--trial-seconds", "0.2"]
    procs = [
        subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=180) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == {"finished": True}
    sampler = worker.make_sampler(seed=None, samples_per_round=s, rounds=rounds)
    study = optuna.load_study(study_name="procs", storage=worker.make_storage(url))
    _check_rounds(study, sampler)
    workers = {t.user_attrs["worker"] for t in study.trials if t.state == TrialState.COMPLETE}
    assert len(workers) == 2 and os.getpid() not in workers


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------

_SPACE = {"a": FloatDistribution(0, 1), "b": FloatDistribution(1e-3, 1, log=True)}


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"samples_per_round": 1}, "samples_per_round"),
        ({"samples_per_round": 2.5}, "samples_per_round"),
        ({"rounds": 0}, "rounds"),
        ({"sigma_init": 0.0}, "sigma_init"),
        ({"sigma_init": -0.1}, "sigma_init"),
        ({"sigma_init": float("nan")}, "sigma_init"),
        ({"clip_eps": 0.0}, "clip_eps"),
        ({"update_steps": 0}, "update_steps"),
        ({"lr": 0.0}, "lr"),
        ({"warmup_steps": 101}, "warmup_steps"),
        ({"round_timeout": 0}, "round_timeout"),
        ({"poll_interval": -1}, "poll_interval"),
        ({"seed": -1}, "seed"),
        ({"search_space": {}}, "search_space"),
        ({"search_space": {"a": IntDistribution(0, 3)}}, "search_space"),
        ({"search_space": {"a": CategoricalDistribution([1, 2])}}, "search_space"),
        ({"search_space": {"a": FloatDistribution(0, 1, step=0.1)}}, "search_space"),
        ({"search_space": {"a": FloatDistribution(1, 1)}}, "search_space"),
        ({"init_mean": {"a": 1.5}}, "init_mean"),
        ({"init_mean": {"b": 2.0}}, "init_mean"),
        ({"init_mean": {"zzz": 0.5}}, "init_mean"),
        ({"init_mean": {"a": float("nan")}}, "init_mean"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(
    kwargs: dict[str, object], argument: str
) -> None:
    arguments: dict[str, object] = {"search_space": _SPACE}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=argument):
        PPO2Sampler(**arguments)  # type: ignore[arg-type]


def test_search_space_is_required_and_keyword_only() -> None:
    with pytest.raises(TypeError):
        PPO2Sampler()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        PPO2Sampler(_SPACE)  # type: ignore[misc]


def test_init_mean_on_the_bounds_and_partial() -> None:
    sampler = PPO2Sampler(search_space=_SPACE, init_mean={"a": 1.0}, samples_per_round=2, rounds=2)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("a", 0, 1) + t.suggest_float("b", 1e-3, 1, log=True))
    mean0 = sampler.round_mean(study, 0)
    assert mean0 == {"a": 1.0, "b": 0.5}
    assert 0 < sampler.round_mean(study, 1)["a"] < 1


# --------------------------------------------------------------------------------------------
# The factory
# --------------------------------------------------------------------------------------------


def test_make_sampler_builds_all_four_from_one_flag() -> None:
    space = {f"x{i}": FloatDistribution(0, 1) for i in range(4)}
    init = {name: 0.3 for name in space}
    kinds = {"ppo2": PPO2Sampler, "random": RandomSampler, "tpe": TPESampler, "cmaes": CmaEsSampler}
    assert set(SAMPLER_NAMES) == set(kinds)
    for name, cls in kinds.items():
        sampler = make_sampler(
            name,
            search_space=space,
            init_mean=init,
            seed=0,
            samples_per_round=4,
            rounds=3,
            sigma_init=0.2,
        )
        assert type(sampler) is cls
        study = optuna.create_study(sampler=sampler)
        study.optimize(lambda t: sum(t.suggest_float(n, 0, 1) for n in space), n_trials=12)
        assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 12


def test_make_sampler_one_sample_per_round_only_outside_ppo2() -> None:
    space = {f"x{i}": FloatDistribution(0, 1) for i in range(2)}
    for name in ("random", "tpe", "cmaes"):
        assert make_sampler(name, search_space=space, init_mean=None, seed=0, samples_per_round=1)
        with pytest.raises(ValueError, match="samples_per_round must be an integer >= 1"):
            make_sampler(name, search_space=space, init_mean=None, seed=0, samples_per_round=0)
    with pytest.raises(ValueError, match="samples_per_round must be an integer >= 2"):
        make_sampler("ppo2", search_space=space, init_mean=None, seed=0, samples_per_round=1)


def test_make_sampler_passes_cmaes_x0_and_sigma0() -> None:
    space = {"x": FloatDistribution(0, 10), "y": FloatDistribution(0, 1)}
    sampler = make_sampler(
        "cmaes", search_space=space, init_mean={"x": 9.0, "y": 0.1}, seed=1, sigma_init=1e-3
    )
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("x", 0, 10) + t.suggest_float("y", 0, 1), n_trials=3)
    # trial 0 comes from the independent sampler; CMA-ES then samples tightly around x0
    for trial in study.trials[1:]:
        assert trial.params["x"] == pytest.approx(9.0, abs=0.2)
        assert trial.params["y"] == pytest.approx(0.1, abs=0.02)


def test_make_sampler_rejects_unknown_name_and_missing_cmaes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    space = {"x": FloatDistribution(0, 1)}
    with pytest.raises(ValueError, match="ppo2, random, tpe, cmaes"):
        make_sampler("grid", search_space=space, init_mean=None, seed=0)
    monkeypatch.setitem(sys.modules, "cmaes", None)  # makes `import cmaes` fail for real
    with pytest.raises(ImportError, match="pip install cmaes"):
        make_sampler("cmaes", search_space=space, init_mean=None, seed=0)
