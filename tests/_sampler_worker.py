"""Worker process used by ``tests/test_ppo2_sampler.py`` (not a test module itself).

Modes:

* ``optimize``: join the study ``--study-name`` in ``--storage`` (``sqlite:///...`` or
  ``journal:<path>``) and run ``study.optimize`` with a :class:`PPO2Sampler`, tagging every trial
  with the user attr ``worker`` (this process's pid). With ``--start-barrier DIR --workers N`` it
  waits, after its imports, until N workers have reached the barrier, so that no worker finishes
  the whole search while another is still importing torch.
* ``repro``: run a sequential in-memory study with ``--seed`` and print its parameters and round
  means as JSON on stdout (for the cross-process reproducibility test).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import optuna
from optuna.distributions import FloatDistribution
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend

from paploss.samplers import PPO2Sampler

SPACE: dict[str, FloatDistribution] = {
    "a": FloatDistribution(0.0, 1.0),
    "b": FloatDistribution(1e-3, 1.0, log=True),
    "c": FloatDistribution(-1.0, 1.0),
}
INIT_MEAN: dict[str, float] = {"a": 0.2, "b": 0.01, "c": 0.0}
TARGET: dict[str, float] = {"a": 0.8, "b": 0.1, "c": 0.5}


def make_sampler(
    *, seed: int | None, samples_per_round: int, rounds: int, poll_interval: float = 0.05
) -> PPO2Sampler:
    """The sampler every worker of the tests uses (same configuration in all of them)."""
    return PPO2Sampler(
        search_space=SPACE,
        init_mean=INIT_MEAN,
        samples_per_round=samples_per_round,
        rounds=rounds,
        seed=seed,
        round_timeout=120.0,
        poll_interval=poll_interval,
    )


def toy_value(params: dict[str, float]) -> float:
    """Reward to maximize: minus a squared distance to ``TARGET`` (``b`` in log10 units)."""
    import math

    return -(
        (params["a"] - TARGET["a"]) ** 2
        + (math.log10(params["b"]) - math.log10(TARGET["b"])) ** 2 / 9.0
        + (params["c"] - TARGET["c"]) ** 2 / 4.0
    )


def make_storage(url: str) -> str | BaseStorage:
    """``journal:<path>`` gives a journal-file storage, anything else is an RDB URL."""
    if url.startswith("journal:"):
        return JournalStorage(JournalFileBackend(url[len("journal:") :]))
    return url


def _optimize(args: argparse.Namespace) -> None:
    sampler = make_sampler(
        seed=args.seed, samples_per_round=args.samples_per_round, rounds=args.rounds
    )
    study = optuna.load_study(
        study_name=args.study_name, storage=make_storage(args.storage), sampler=sampler
    )
    pid = os.getpid()
    if args.start_barrier:
        _wait_at_barrier(Path(args.start_barrier), args.workers, pid)

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", pid)
        params = {
            name: trial.suggest_float(name, d.low, d.high, log=d.log) for name, d in SPACE.items()
        }
        time.sleep(args.trial_seconds * (1 + 0.5 * (trial.number % 3)))
        return toy_value(params)

    # n_trials <= 0: no budget, the sampler stops the loop once the last round is done.
    study.optimize(objective, n_trials=args.n_trials if args.n_trials > 0 else None)
    print(json.dumps({"finished": sampler.is_finished(study)}))


def _wait_at_barrier(folder: Path, workers: int, pid: int, timeout: float = 120.0) -> None:
    """Mark this worker as ready in ``folder`` and wait until ``workers`` workers are."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(pid)).touch()
    deadline = time.monotonic() + timeout
    while len(list(folder.iterdir())) < workers:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(list(folder.iterdir()))} of {workers} workers started")
        time.sleep(0.02)


def _repro(args: argparse.Namespace) -> None:
    print(json.dumps(run_repro(args.seed, args.samples_per_round, args.rounds)))


def run_repro(seed: int, samples_per_round: int, rounds: int) -> dict[str, object]:
    """Sequential in-memory search; returns every trial's parameters and every round mean."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = make_sampler(seed=seed, samples_per_round=samples_per_round, rounds=rounds)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        params = {
            name: trial.suggest_float(name, d.low, d.high, log=d.log) for name, d in SPACE.items()
        }
        return toy_value(params)

    study.optimize(objective)
    return {
        "params": [t.params for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE],
        "means": [sampler.round_mean(study, t) for t in range(rounds + 1)],
    }


def main(argv: list[str]) -> None:
    """Parse ``argv`` and run the requested mode."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=("optimize", "repro"))
    parser.add_argument("--storage", default="")
    parser.add_argument("--study-name", default="")
    parser.add_argument("--n-trials", type=int, default=0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--samples-per-round", type=int, required=True)
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--trial-seconds", type=float, default=0.01)
    parser.add_argument("--start-barrier", default="")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.mode == "optimize":
        _optimize(args)
    else:
        _repro(args)


if __name__ == "__main__":
    main(sys.argv[1:])
