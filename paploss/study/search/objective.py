"""The objective of one search trial: Theta -> run config -> forked training -> TrialResult -> the
trial's records (user attrs, dashboard note, functions plot, loss curve as intermediate values).

A training that crashes raises :class:`~paploss.study.runner.trial.TrialCrashed` (the trial FAILS, its
error recorded); a diverged one returns AP 0 with ``diverged=True``, one stopped by the config's
CollapseRule AP 0 with ``collapsed=True`` (it still counts as its round's sample).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paploss.study import keys
from paploss.study.config.hyper_space import HyperSpace

FUNCTIONS_PNG = "functions.png"
HYPERPARAMS_JSON = "hyperparams.json"
"""A baseline trial's searched values ``{name: value}`` in its run folder."""


@dataclass(frozen=True)
class TrialSetup:
    """What every trial of a search worker shares.

    Attributes:
        cfg: the loaded config (copied and set up per trial).
        space: the search space over the config's loss slots, or a baseline config's
            hyperparameters (HyperSpace).
        data: the SearchData (D_train and D_eval splits).
        loss_options: merged into every head's ``loss_cls``.
        epochs, train_seed: of every inner training.
        trial_timeout: seconds before a training is killed (None: no limit).
        study_dir: the study's folder of per-trial run folders.
        artifact_store: the study's optuna artifact store.
        early_stop: whether the trials keep the config's ``collapse_rule``.
    """

    cfg: Any
    space: Any
    data: Any
    loss_options: dict[str, Any]
    epochs: int
    train_seed: int
    trial_timeout: float | None
    study_dir: Path
    artifact_store: Any
    early_stop: bool = True


class Objective:
    """``study.optimize``'s objective: trains one sampled Theta and returns its AP on D_eval.

    Args:
        setup: the worker's TrialSetup.
        runner: a started :class:`~paploss.study.runner.warm.WarmRunner`.

    ``current_trial`` is the number of the trial whose training runs (None between trials and
    after a crash), so that an interrupt can queue that trial's sample again.
    """

    def __init__(self, setup: TrialSetup, runner: Any) -> None:
        self.setup = setup
        self.runner = runner
        self.current_trial: int | None = None

    def __call__(self, trial: Any) -> float:
        from paploss.study.runner.trial import TrialCrashed

        params = self.setup.space.suggest(trial)  # may wait for a PPO2 round, or end the search
        self.current_trial = trial.number
        try:
            if isinstance(self.setup.space, HyperSpace):
                run_dir = self._record_start_hyper(trial, params)
                config_file = self._write_config({}, run_dir, hyper_values=params)
            else:
                run_dir = self._record_start(trial, params)
                config_file = self._write_config(params, run_dir)
            result = self.runner.run(run_dir, config=config_file, timeout=self.setup.trial_timeout)
        except Exception as exc:
            self.current_trial = None  # failed for good (an interrupt keeps it for the retry)
            if isinstance(exc, TrialCrashed):
                trial.set_user_attr(keys.ERROR, str(exc)[-4000:])
            raise
        self._record_result(trial, result)
        self.current_trial = None
        return float(result.metrics["AP"])

    def _record_start(self, trial: Any, params: dict[str, Any]) -> Path:
        """The trial's run folder, user attrs, dashboard note and functions plot."""
        from paploss.study.config.loss_slots import save_loss_params
        from paploss.study.search.records import (
            dashboard_note,
            lambda_attrs,
            params_note,
            plot_functions,
        )

        run_dir, system_attrs = self._start_run(trial)
        for key, value in lambda_attrs(params).items():
            trial.set_user_attr(key, value)
        dashboard_note(trial, params_note(params, f"Trial {trial.number}: loss parameters"))
        png = plot_functions(
            params, run_dir / FUNCTIONS_PNG, f"{trial.study.study_name}, trial {trial.number}"
        )
        inherited = [
            v
            for k, v in system_attrs.items()
            if k.startswith("artifacts:") and FUNCTIONS_PNG in str(v)
        ]
        if not inherited:  # a retried trial keeps the picture of its original
            from optuna.artifacts import upload_artifact

            upload_artifact(
                artifact_store=self.setup.artifact_store, file_path=str(png), study_or_trial=trial
            )
        save_loss_params(params, run_dir)
        return run_dir

    def _start_run(self, trial: Any) -> tuple[Path, dict[str, Any]]:
        """The trial's run folder (created) and the attrs every trial records (worker, folder,
        ranks, the trial it retries); also the trial's system attrs."""
        run_dir = self.setup.study_dir / f"trial_{trial.number:05d}"
        run_dir.mkdir(parents=True, exist_ok=True)
        system_attrs = trial.storage.get_trial_system_attrs(trial._trial_id)
        retry_of = system_attrs.get(keys.FAILED_TRIAL)
        trial.set_user_attr(keys.WORKER, f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr(keys.WORK_DIR, str(run_dir))
        trial.set_user_attr(keys.NPROC, self.runner.nproc_per_trial)
        if retry_of is not None:
            trial.set_user_attr(keys.RETRY_OF, int(retry_of))
        return run_dir, system_attrs

    def _record_start_hyper(self, trial: Any, values: dict[str, float]) -> Path:
        """A baseline trial's run folder, user attrs, dashboard note and ``hyperparams.json``."""
        import json

        from paploss.study.config.hyper_space import format_values
        from paploss.study.search.records import dashboard_note

        run_dir, _ = self._start_run(trial)
        dashboard_note(
            trial,
            f"## Trial {trial.number}: hyperparameters\n\n{format_values(values)}\n\n"
            f"`--cfg-options {self.setup.space.cfg_options_text(values)}`",
        )
        (run_dir / HYPERPARAMS_JSON).write_text(json.dumps(values, indent=1) + "\n")
        return run_dir

    def _write_config(
        self,
        params: dict[str, Any],
        run_dir: Path,
        *,
        hyper_values: dict[str, float] | None = None,
    ) -> Path:
        """The run's config (params or a baseline's hyperparameters, data splits, schedule,
        seed) dumped into its folder."""
        from paploss.study.config.mmcfg import prepare_config

        setup = self.setup
        hyper = isinstance(setup.space, HyperSpace)
        cfg = prepare_config(
            setup.cfg,
            space=None if hyper else setup.space,
            loss_params=params,
            train=setup.data.splits["train"],
            evaluate=setup.data.splits["eval"],
            work_dir=run_dir,
            epochs=setup.epochs,
            seed=setup.train_seed,
            search=True,
            loss_options=setup.loss_options,
            early_stop=setup.early_stop,
        )
        if hyper_values is not None:
            setup.space.apply(cfg, hyper_values)
        config_file = run_dir / "config.py"
        cfg.dump(str(config_file))
        return config_file

    @staticmethod
    def _record_result(trial: Any, result: Any) -> None:
        """The TrialResult as user attrs; the loss curve as intermediate values."""
        from paploss.study.runner.trial import METRICS, loss_buckets

        for step, value in loss_buckets(result.loss_curve):
            trial.report(value, step)
        for name in METRICS:
            trial.set_user_attr(name, float(result.metrics[name]))
        trial.set_user_attr(keys.DIVERGED, result.diverged)
        if result.diverged_at is not None:
            trial.set_user_attr(keys.DIVERGED_AT, int(result.diverged_at))
        trial.set_user_attr(keys.COLLAPSED, result.collapsed)
        if result.collapsed_at is not None:
            trial.set_user_attr(keys.COLLAPSED_AT, int(result.collapsed_at))
        trial.set_user_attr(keys.TRAIN_SECONDS, round(result.train_seconds, 3))
        trial.set_user_attr(keys.EVAL_SECONDS, round(result.eval_seconds, 3))
        if result.startup_seconds is not None:
            trial.set_user_attr(keys.STARTUP_SECONDS, round(result.startup_seconds, 3))
        trial.set_user_attr(keys.ITERATIONS, result.iterations)
        if result.loss_curve:
            trial.set_user_attr(keys.FINAL_LOSS, result.loss_curve[-1][1])
