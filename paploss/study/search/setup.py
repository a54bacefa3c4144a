"""Setting up a search worker, in the order that writes nothing on bad input.

:func:`prepare` checks the arguments, loads the config, finds its loss heads and builds the
sampler (a :class:`SearchPlan`); :func:`open_study` then prepares the data, opens the storage and
creates or joins the study (an :class:`OpenStudy`), recording the study's settings and dashboard
note once. A study created with other settings, or a bad input anywhere, raises an
:class:`~paploss.errors.InputError`.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paploss.study import keys
from paploss.study.cli import UsageError, check_config_path, check_study_name, study_dir
from paploss.study.config.early_stop import CONFIG_KEY as COLLAPSE_KEY
from paploss.study.config.early_stop import CollapseRule
from paploss.study.config.hyper_space import HyperSpace
from paploss.study.config.space import LossVariant, SearchSpace, SpaceOptions
from paploss.study.data.sources import SearchData
from paploss.study.options import SearchOptions
from paploss.study.runner.devices import check_device
from paploss.study.runner.distributed import check_nproc
from paploss.study.search.settings import StudySettings
from paploss.study.storage import (
    describe_conflict,
    is_journal,
    open_storage,
    settings_conflicts,
)


# ------------------------------------------------------------------------------ settings
def space_options(options: SearchOptions) -> SpaceOptions:
    """The SpaceOptions of ``--segments``, ``--shared-params``, ``--fixed-lambda``."""
    try:
        return SpaceOptions(
            num_segments=options.segments,
            shared=options.shared_params,
            fixed_lambda=options.fixed_lambda,
        )
    except ValueError as exc:
        raise UsageError(f"--segments/--fixed-lambda: {exc}") from exc


def loss_variant(options: SearchOptions) -> LossVariant:
    """The LossVariant of ``--loc-score`` and ``--no-block-grad``."""
    return LossVariant(loc_score=options.loc_score, block_grad=not options.no_block_grad)


def study_settings(
    options: SearchOptions,
    *,
    config_sha: str,
    data_identity: dict,
    space: Any,
    rule: Any = None,
) -> StudySettings:
    """What all workers of a study must agree on (compared when a study is resumed/joined);
    ``--cfg-options`` of machine-local keys (``mmcfg.LOCATION_KEYS``) may differ.

    The search-space options and loss options are entries only when they differ from the
    defaults, so studies of the default search keep the settings they were created with; the
    CollapseRule its trials apply (``rule``, from the config unless ``--no-early-stop``) only when
    there is one."""
    from paploss.study.config.mmcfg import is_machine_local

    loss_options = loss_variant(options).loss_options()
    hyper = isinstance(space, HyperSpace)
    return StudySettings(
        config_sha256=config_sha,
        cfg_options={
            k: v for k, v in sorted(options.cfg_options.items()) if not is_machine_local(k)
        },
        data=data_identity,
        epochs=options.epochs,
        train_seed=options.train_seed,
        sampler=options.sampler,
        rounds=options.rounds,
        samples_per_round=options.samples_per_round,
        sigma_init=options.sigma_init,
        loss_slots=[] if hyper else space.to_json(),
        space_options=None if hyper or space.options.is_default else space.options.to_json(),
        collapse_rule=None if rule is None else rule.to_json(),
        loss_options=loss_options or None,
        hyper_space=space.to_json() if hyper else None,
    )


# ------------------------------------------------------------------------------ prepare
@dataclass(frozen=True)
class SearchPlan:
    """What a worker's arguments resolve to before anything is written.

    Attributes:
        options: the parsed ``studies/search.py`` arguments.
        work_dir: the checked (not yet created) ``--work-dir``.
        config_path: the resolved ``--config``.
        cfg: the loaded mmengine config with ``--cfg-options`` applied.
        space: the search space over the config's loss heads, or a baseline config's declared
            hyperparameters (:class:`~paploss.study.config.hyper_space.HyperSpace`).
        loss_options: the LossVariant's options set on every head (empty for the defaults).
        config_sha: :func:`~paploss.study.config.mmcfg.config_digest` of ``cfg``.
        sampler: the study's sampler (:func:`paploss.samplers.make_sampler`).
        collapse_rule: the config's CollapseRule its trials apply (None: the config declares
            none, or ``--no-early-stop``).
    """

    options: SearchOptions
    work_dir: Path
    config_path: Path
    cfg: Any
    space: SearchSpace | HyperSpace
    loss_options: dict[str, Any]
    config_sha: str
    sampler: Any
    collapse_rule: CollapseRule | None = None


def prepare(options: SearchOptions) -> SearchPlan:
    """Everything that can fail on bad input, in the order that writes nothing first."""
    from paploss.study.config.mmcfg import check_model_builds, config_digest, epochs_of, load_config
    from paploss.study.data.sources import check_data_arg, check_writable_dir

    check_study_name(options.study_name)
    config_path = check_config_path(options.config)
    check_data_arg(options.data)
    work_dir = check_writable_dir(options.work_dir, "--work-dir").resolve()
    check_device(options.device)
    cfg = load_config(config_path, options.cfg_options)
    space = _space_of(cfg, config_path, options)
    options = resolve_sampler(options, space)
    if options.sampler == "ppo2" and options.samples_per_round < 2:
        raise UsageError(
            "--samples-per-round must be >= 2 with --sampler ppo2 (its update needs at least "
            "two rewards per round)"
        )
    epochs_of(cfg)
    check_model_builds(cfg, options.cfg_options)
    check_nproc(cfg, options.nproc_per_trial, options.device)
    return SearchPlan(
        options=options,
        work_dir=work_dir,
        config_path=config_path,
        cfg=cfg,
        space=space,
        loss_options=loss_variant(options).loss_options(),
        config_sha=config_digest(cfg),
        sampler=_make_sampler(options, space, cfg),
        collapse_rule=None if options.no_early_stop else collapse_rule_of(cfg),
    )


def resolve_sampler(options: SearchOptions, space: SearchSpace | HyperSpace) -> SearchOptions:
    """``options`` with the sampler set: ``--sampler`` if given, else PPO2 for a loss search and
    TPE for a baseline's hyperparameters."""
    if options.sampler is not None:
        return options
    return dataclasses.replace(options, sampler="tpe" if isinstance(space, HyperSpace) else "ppo2")


def _space_of(cfg: Any, config_path: Path, options: SearchOptions) -> SearchSpace | HyperSpace:
    """The loss heads' Theta, or, for a config without a PAPLoss head, the hyperparameters its
    ``search_space`` declares (a baseline's equal-budget tuning); ConfigError if neither."""
    from paploss.study.config.hyper_space import CONFIG_KEY
    from paploss.study.config.loss_slots import find_loss_slots, search_space_of

    if find_loss_slots(cfg):
        if cfg.get(CONFIG_KEY) is not None:
            raise UsageError(
                f"{config_path.name} has a PAPLoss head and a {CONFIG_KEY}: a search tunes "
                f"either the loss parameters or a baseline's hyperparameters; remove {CONFIG_KEY}"
            )
        return search_space_of(cfg, config_path, space_options(options))
    hyper = HyperSpace.from_config(cfg, config_path)
    if hyper is None:  # neither: the ConfigError that names the PAPLoss heads
        return search_space_of(cfg, config_path, space_options(options))
    loss_flags = [
        flag
        for flag, given in (
            ("--segments", options.segments != SpaceOptions().num_segments),
            ("--shared-params", options.shared_params),
            ("--fixed-lambda", options.fixed_lambda is not None),
            ("--loc-score", options.loc_score is not None),
            ("--no-block-grad", options.no_block_grad),
        )
        if given
    ]
    if loss_flags:
        raise UsageError(
            f"{config_path.name} is a baseline (its {CONFIG_KEY} is searched, it has no PAPLoss "
            f"head), so {', '.join(loss_flags)} cannot apply; use a *_paploss.py config"
        )
    return hyper


def collapse_rule_of(cfg: Any) -> CollapseRule | None:
    """The CollapseRule a config declares (``collapse_rule``), or None."""
    return CollapseRule.from_config(cfg.get(COLLAPSE_KEY))


def _make_sampler(options: SearchOptions, space: SearchSpace | HyperSpace, cfg: Any) -> Any:
    from paploss.samplers import make_sampler

    assert options.sampler is not None
    init = space.init_values(cfg) if isinstance(space, HyperSpace) else space.init_mean()
    try:
        return make_sampler(
            options.sampler,
            search_space=space.distributions(),
            init_mean=init,
            seed=options.seed,
            samples_per_round=options.samples_per_round,
            rounds=options.rounds,
            sigma_init=options.sigma_init,
            round_timeout=options.round_timeout,
        )
    except (ValueError, ImportError) as exc:
        raise UsageError(f"--sampler {options.sampler}: {exc}") from exc


# ------------------------------------------------------------------------------ open
@dataclass(frozen=True)
class OpenStudy:
    """The study a worker runs, with its data and output folders.

    Attributes:
        study: the Optuna study (created or joined).
        data: D_train / D_eval of the search.
        artifact_dir: ``<work dir>/artifacts`` (``optuna-dashboard --artifact-dir``).
        artifact_store: the file-system artifact store over ``artifact_dir``.
        study_dir: ``<work dir>/<study name>``, the trials' run folders.
    """

    study: Any
    data: SearchData
    artifact_dir: Path
    artifact_store: Any
    study_dir: Path


def open_study(plan: SearchPlan) -> OpenStudy:
    """Prepare the data, open the storage, create or join the study."""
    import optuna
    from optuna.artifacts import FileSystemArtifactStore
    from optuna.exceptions import ExperimentalWarning

    from paploss.study.config.mmcfg import ensure_backbones
    from paploss.study.data.sources import ensure_writable_dir, resolve_data

    options = plan.options
    # The data first: a bad COCO json must not leave a database or a work dir behind.
    data = resolve_data(
        options.data,
        work_dir=plan.work_dir,
        eval_images=options.eval_images,
        split_seed=options.split_seed,
    )
    ensure_writable_dir(plan.work_dir, "--work-dir")
    ensure_backbones(plan.cfg, log=lambda msg: print(f"[search] {msg}", flush=True))
    storage = open_storage(
        options.storage,
        heartbeat_interval=options.heartbeat_interval,
        grace_period=options.grace_period,
        max_retry=options.max_retry,
    )
    if is_journal(options.storage) and options.grace_period is not None:
        print(
            "[search] warning: --grace-period has no effect on a journal storage (heartbeats "
            "exist only on RDB storage): a killed worker's trial stays RUNNING and is not retried",
            file=sys.stderr,
            flush=True,
        )
    settings = study_settings(
        options,
        config_sha=plan.config_sha,
        data_identity=data.identity(),
        space=plan.space,
        rule=plan.collapse_rule,
    ).to_json()
    try:
        storage.get_study_id_from_name(options.study_name)
        exists = True
    except KeyError:
        exists = False
    if exists:
        study = optuna.load_study(
            study_name=options.study_name,
            storage=storage,
            sampler=plan.sampler,
            pruner=optuna.pruners.NopPruner(),
        )
        check_existing(study, settings, plan.cfg)
    else:
        study = optuna.create_study(
            study_name=options.study_name,
            storage=storage,
            sampler=plan.sampler,
            pruner=optuna.pruners.NopPruner(),
            direction="maximize",
            load_if_exists=True,
        )
        with warnings.catch_warnings():  # experimental in Optuna
            warnings.simplefilter("ignore", ExperimentalWarning)
            study.set_metric_names(["AP"])  # the objective's name in optuna-dashboard
        if isinstance(plan.space, HyperSpace) and options.sampler != "ppo2":
            # The hand-set baseline is the first trial: the tuned row can only match or beat it
            # on D_eval. (PPO2 starts its first round's distribution there instead.)
            study.enqueue_trial(plan.space.init_values(plan.cfg), user_attrs={keys.HAND_SET: True})
    artifact_dir = plan.work_dir / "artifacts"
    artifact_dir.mkdir(parents=True, exist_ok=True)
    run_dir = study_dir(plan.work_dir, options.study_name)
    run_dir.mkdir(parents=True, exist_ok=True)
    opened = OpenStudy(
        study=study,
        data=data,
        artifact_dir=artifact_dir,
        artifact_store=FileSystemArtifactStore(str(artifact_dir)),
        study_dir=run_dir,
    )
    if keys.SETTINGS not in study.user_attrs:
        from paploss.study.search.record import record_study

        record_study(plan, opened, settings)
    # Another worker may have created it concurrently with different settings.
    check_existing(study, settings, plan.cfg)
    return opened


def check_existing(study: Any, settings: dict, cfg: Any = None) -> None:
    """Refuse a study that is not one maximized value or was created with other settings.

    ``cfg``: the worker's config; a study created by paploss 0.1 recorded its digest in the 0.1
    spelling (:func:`~paploss.study.config.mmcfg.study_digest`), which it is then compared with."""
    from optuna.study import StudyDirection

    from paploss.study.config.mmcfg import study_digest

    if study.directions != [StudyDirection.MAXIMIZE]:
        raise UsageError(
            f"study {study.study_name!r} is not a single-objective maximization study; "
            "choose a new --study-name"
        )
    stored = study.user_attrs.get(keys.SETTINGS)
    if stored is None:
        return
    if cfg is not None:
        recorded = stored.get("config_sha256")
        settings = {**settings, "config_sha256": study_digest(recorded, cfg)}
    conflicts = settings_conflicts(stored, settings)
    if conflicts:
        raise UsageError(describe_conflict(study.study_name, conflicts, stored, settings))


# ------------------------------------------------------------------------------ the record
