"""The search worker's stop conditions (paploss.study.search.progress.Progress.callbacks)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import optuna
import pytest

from paploss.study.options import SearchOptions
from paploss.study.search.progress import Progress

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _progress(study: optuna.Study, tmp_path: Path, *, rounds: int, samples: int) -> Progress:
    from optuna.artifacts import FileSystemArtifactStore

    (tmp_path / "artifacts").mkdir(parents=True, exist_ok=True)
    options = SearchOptions(
        rounds=rounds,
        samples_per_round=samples,
        sampler="random",
        max_failures=3,
        study_name=study.study_name,
        storage="sqlite:///unused.db",
    )
    return Progress(
        study=study,
        sampler=study.sampler,
        options=options,
        study_dir=tmp_path,
        artifact_store=FileSystemArtifactStore(str(tmp_path / "artifacts")),
    )


@pytest.mark.parametrize("fail_one", [False, True])
def test_two_workers_of_a_random_search_train_exactly_the_budget(
    tmp_path: Path, fail_one: bool
) -> None:
    """Two workers (threads sharing one storage) with staggered trial lengths: the study ends with
    exactly rounds x samples complete trials and no surplus trial started, also when one trial
    fails and has to be made up by another."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    optuna.create_study(study_name="s", storage=storage, direction="maximize")
    failed: list[int] = []
    errors: list[BaseException] = []

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        time.sleep(0.05 if trial.number % 2 == 0 else 0.08)
        if fail_one and trial.number == 3 and not failed:
            failed.append(trial.number)
            raise RuntimeError("crash")
        return x

    def worker(seed: int) -> None:
        study = optuna.load_study(
            study_name="s", storage=storage, sampler=optuna.samplers.RandomSampler(seed=seed)
        )
        progress = _progress(study, tmp_path / f"w{seed}", rounds=3, samples=2)
        try:
            study.optimize(
                objective, n_trials=50, catch=(RuntimeError,), callbacks=progress.callbacks()
            )
        except BaseException as exc:  # a thread's exception would otherwise only warn
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    trials = optuna.load_study(study_name="s", storage=storage).get_trials()
    states = [t.state for t in trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 6
    assert states.count(optuna.trial.TrialState.FAIL) == (1 if fail_one else 0)
    assert len(trials) == 6 + (1 if fail_one else 0), "a surplus trial was started"
    assert (tmp_path / "w0" / "best_so_far.png").exists() or (
        tmp_path / "w1" / "best_so_far.png"
    ).exists()
