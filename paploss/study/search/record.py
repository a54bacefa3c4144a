"""The record a search study carries from its creation: its user attrs, the resolved config as an
artifact, the command line (password hidden) and the optuna-dashboard note."""

from __future__ import annotations

import shlex
import sys
from typing import TYPE_CHECKING

from paploss.study import keys
from paploss.study.config.hyper_space import HyperSpace
from paploss.study.storage import json_roundtrip, redact_argv

if TYPE_CHECKING:
    from paploss.study.search.setup import OpenStudy, SearchPlan


def record_study(plan: SearchPlan, opened: OpenStudy, settings: dict) -> None:
    """The study's user attrs (its settings last), the resolved config as an artifact and the
    dashboard note."""
    from optuna.artifacts import upload_artifact

    from paploss.study.search.records import dashboard_note

    options, study = plan.options, opened.study
    study.set_user_attr(keys.CONFIG, str(plan.config_path))
    study.set_user_attr(keys.CFG_OPTIONS, options.cfg_options)
    study.set_user_attr(keys.DATA, opened.data.record())
    study.set_user_attr(
        keys.SAMPLER,
        {
            "name": options.sampler,
            "rounds": options.rounds,
            "samples_per_round": options.samples_per_round,
            "sigma_init": options.sigma_init,
            "seed": options.seed,
        },
    )
    study.set_user_attr(keys.EPOCHS, options.epochs)
    study.set_user_attr(keys.TRAIN_SEED, options.train_seed)
    if isinstance(plan.space, HyperSpace):
        study.set_user_attr(keys.HYPER_SPACE, plan.space.to_json())
    else:
        study.set_user_attr(keys.LOSS_SLOTS, plan.space.to_json())
        study.set_user_attr(keys.SPACE_OPTIONS, plan.space.options.to_json())
        study.set_user_attr(keys.LOSS_OPTIONS, plan.loss_options)
    study.set_user_attr(keys.ARTIFACT_DIR, str(opened.artifact_dir))
    study.set_user_attr(keys.COMMAND, recorded_command(sys.argv[1:]))
    # Written last: its presence marks a fully recorded study.
    study.set_user_attr(keys.SETTINGS, json_roundtrip(settings))
    # The resolved config (base files merged, --cfg-options applied) as the study's record.
    config_copy = opened.study_dir / "search_config.py"
    plan.cfg.dump(str(config_copy))
    upload_artifact(
        artifact_store=opened.artifact_store, file_path=str(config_copy), study_or_trial=study
    )
    dashboard_note(study, study_note(plan, opened, config_copy.name))


def recorded_command(argv: list[str]) -> str:
    """The worker's command line as a user types it (``studies/search.py`` and
    ``python -m paploss.study.search`` run the same ``paploss-search``), a storage password
    hidden (``***``): what the study's ``command`` attr holds."""
    return shlex.join(["paploss-search", *redact_argv(argv)])


def study_note(plan: SearchPlan, opened: OpenStudy, config_name: str) -> str:
    """The study's optuna-dashboard note (markdown)."""
    options, data, space = plan.options, opened.data, plan.space
    if isinstance(space, HyperSpace):
        title = "Hyperparameter search of a baseline"
        searched = [
            f"- search space (the config's `search_space`, {len(space.names())} parameters): "
            f"{space.describe()}; trial 0 trains the config's own values",
        ]
    else:
        title = "Parameterized AP Loss search"
        slots = ", ".join(
            f"`{s.key}`" + (f" (`{s.prefix}*`)" if s.name else "") for s in space.slots
        )
        searched = [
            f"- loss heads: {slots}",
            f"- search space: {space.options.describe()} ({len(space.names())} parameters)",
            f"- loss options on every head: `{plan.loss_options or 'config defaults'}`",
        ]
    return "\n".join(
        [
            f"## {title} `{opened.study.study_name}`",
            "",
            f"- config: `{plan.config_path}` (resolved: artifact {config_name})",
            f"- cfg-options: `{options.cfg_options}`",
            f"- data: {data.kind} `{' '.join(data.source)}`; D_train "
            f"`{data.splits['train'].ann_file}`, D_eval `{data.splits['eval'].ann_file}`",
            f"- sampler: {options.sampler}, {options.rounds} rounds x {options.samples_per_round} "
            f"samples, sigma_init {options.sigma_init}, seed {options.seed}",
            f"- inner training: {options.epochs} epoch(s), seed {options.train_seed}",
            *searched,
            "- trial value: bbox mAP on D_eval (maximized); diverged trainings count as 0",
            "- plot: artifact `best_so_far.png` (best AP so far per round, paper Fig. 3)",
        ]
    )
