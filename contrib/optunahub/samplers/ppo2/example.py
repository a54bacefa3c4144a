"""PPO2Sampler on a toy objective: a quadratic in four float parameters (one on a log scale).

Run ``python example.py`` in this folder's registry checkout (it loads the package with
``optunahub.load_local_module``); the published package is loaded with
``optunahub.load_module(package="samplers/ppo2")``. It prints the mean and best value of every
round: the search distribution's mean moves towards the minimum and its sigma shrinks, so the
later rounds' values are lower.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType

import optuna
import optunahub
from optuna.distributions import FloatDistribution

SEARCH_SPACE = {
    "x": FloatDistribution(-1.0, 1.0),
    "y": FloatDistribution(-3.0, 3.0),
    "z": FloatDistribution(0.0, 4.0),
    "lr": FloatDistribution(1e-4, 1.0, log=True),
}
OPTIMUM = {"x": 0.6, "y": -1.5, "z": 3.0, "lr": 3e-2}


def objective(trial: optuna.Trial) -> float:
    """Squared distance to ``OPTIMUM`` in units of each range (``lr`` in log10 units)."""
    params = {
        name: trial.suggest_float(name, d.low, d.high, log=d.log)
        for name, d in SEARCH_SPACE.items()
    }
    return (
        ((params["x"] - OPTIMUM["x"]) / 2.0) ** 2
        + ((params["y"] - OPTIMUM["y"]) / 6.0) ** 2
        + ((params["z"] - OPTIMUM["z"]) / 4.0) ** 2
        + ((math.log10(params["lr"]) - math.log10(OPTIMUM["lr"])) / 4.0) ** 2
    )


def run(
    module: ModuleType, *, seed: int = 0, rounds: int = 10, samples_per_round: int = 8
) -> optuna.Study:
    """A ``rounds`` x ``samples_per_round`` PPO2 search of :func:`objective` (minimized)."""
    sampler = module.PPO2Sampler(
        search_space=SEARCH_SPACE,
        samples_per_round=samples_per_round,
        rounds=rounds,
        sigma_init=0.2,
        seed=seed,
    )
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.optimize(objective)  # no n_trials: the sampler stops the loop after the last round
    return study


def round_values(study: optuna.Study) -> dict[int, list[float]]:
    """The complete trials' values by PPO2 round (user attr ``ppo2_round``)."""
    rounds: dict[int, list[float]] = {}
    for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        rounds.setdefault(trial.user_attrs["ppo2_round"], []).append(trial.value)
    return dict(sorted(rounds.items()))


if __name__ == "__main__":
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    registry_root = Path(__file__).resolve().parents[2]  # the folder holding samplers/ppo2
    module = optunahub.load_local_module(package="samplers/ppo2", registry_root=str(registry_root))
    study = run(module)
    for index, values in round_values(study).items():
        print(f"round {index}: mean {sum(values) / len(values):.4f}, best {min(values):.4f}")
    print(f"best value {study.best_value:.5f} at {study.best_params}")
