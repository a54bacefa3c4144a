"""``paploss-train`` (``studies/train.py``): train with the searched (or given) loss parameters
and evaluate on val.

The parameters of every loss head come from, in this order of precedence for each head: an
explicit ``--preset`` / ``--params`` for it (``SLOT=...``) or for all heads, else the best (or
``--trial``) trial of ``--storage``/``--study-name``, else the config's own ``loss_cls.params``.
Giving one head two sources is an error. A config without PAPLoss heads (a baseline such as
``proxy_retinanet_focal_giou.py``) trains with its own losses on the same data. The run trains
in this process (mmengine's logs and checkpoints go to ``--work-dir``) and writes
``metrics.json`` there.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paploss.errors import InputError
from paploss.params import LossParams
from paploss.study.cli import EXIT_USAGE, UsageError, check_config_path
from paploss.study.config.hyper_space import HyperSpace
from paploss.study.config.space import LossVariant, SearchSpace
from paploss.study.options import TrainOptions
from paploss.study.parsers import parse_train
from paploss.study.runner.devices import check_device
from paploss.study.runner.distributed import check_nproc
from paploss.study.runner.summary import TrainingSummary
from paploss.study.train_params import (
    explicit_params,
    export_paths,
    hyper_values_from_study,
    params_from_study,
)


def training_data(options: TrainOptions, work_dir: Path) -> tuple[Any, Any, dict[str, Any]]:
    """(train split, val split, description) of ``--data`` / ``--val-data``."""
    from paploss.study.data.sources import (
        PROXY,
        DataSplit,
        check_training_data,
        merge_coco,
        resolve_data,
    )

    check_training_data(
        options.data, options.val_data
    )  # both COCO jsons valid before anything is built
    if len(options.data) == 2:
        train = DataSplit(*(Path(p).expanduser().resolve() for p in options.data))
        val = None
    else:
        data = resolve_data(options.data, work_dir=work_dir)
        val = data.splits.get("val")
        if data.kind != PROXY and val is None and options.val_data is None:
            raise UsageError(f"--data {options.data[0]} has no val/ split; give --val-data ANN IMG")
        splits = [data.splits["train"], data.splits["eval"]]
        train = merge_coco(splits, work_dir / "data" / "train_eval.json")
    if options.val_data is not None:
        val = DataSplit(*(Path(p).expanduser().resolve() for p in options.val_data))
    if val is None:
        raise UsageError("a COCO --data needs --val-data ANN.json IMG_DIR for the evaluation")
    return train, val, {"train": train.to_json(), "val": val.to_json()}


def run(options: TrainOptions) -> int:
    from paploss.study.config.loss_slots import find_loss_slots, search_space_of
    from paploss.study.config.mmcfg import load_config
    from paploss.study.runner.trial import child_env

    check_device(options.device)  # a GPU that is not there: exit 2, no fallback to the CPU
    if options.device != "auto":  # before torch is imported
        os.environ.update(
            {k: v for k, v in child_env(options.device).items() if k == "CUDA_VISIBLE_DEVICES"}
        )
    if (options.storage is None) != (options.study_name is None):
        raise UsageError("--storage and --study-name go together (the study to take params from)")
    if options.trial is not None and options.study_name is None:
        raise UsageError("--trial needs --storage and --study-name")
    if options.export_only and options.export is None:
        raise UsageError("--export-only needs --export PATH")
    config_path = check_config_path(options.config)
    from paploss.study.data.sources import (
        check_data_arg,
        check_training_data,
        check_writable_dir,
        check_writable_file,
    )

    check_data_arg(options.data)
    # Outputs writable before the storage is opened or any data is built.
    if options.export is not None:
        check_writable_file(options.export, "--export")
    if not options.export_only:
        check_writable_dir(options.work_dir, "--work-dir")
    cfg = load_config(config_path, options.cfg_options)
    if not options.export_only:
        check_training_data(options.data, options.val_data)
        check_nproc(cfg, options.nproc_per_trial, options.device)
    if not find_loss_slots(cfg):
        return _train_baseline(options, config_path, cfg)
    space = search_space_of(cfg, config_path)
    slot_names = [s.name for s in space.slots]
    params = explicit_params(options.preset, options.params, slot_names)
    loss_options: dict[str, Any] = {}
    if options.study_name is not None:
        from_study, trial, study_options = params_from_study(
            options.storage, options.study_name, options.trial, space
        )
        for slot, p in from_study.items():
            if slot in params:
                raise UsageError(
                    f"loss head {slot or 'of the config'} gets params from both the study and "
                    "--preset/--params; give one source per head"
                )
            params[slot] = p
        loss_options.update(study_options)
        value = f"{trial.value:.4f}" if trial.value is not None else "-"
        print(
            f"[train] params of trial {trial.number} of study {options.study_name!r} (AP {value})"
        )
    loss_options.update(_loss_variant(options).loss_options())
    params = _apply_lambda_and_substitution(options, params, slot_names)
    if options.export is not None:
        if not params:
            raise UsageError("--export needs params: --storage/--study-name, --preset or --params")
        keys = {s.name: s.key for s in space.slots}
        for slot, path in export_paths(options.export, list(params)).items():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                params[slot].save(path)
            except OSError as exc:
                raise UsageError(
                    f"--export {path}: cannot write it ({exc.strerror or exc}); choose a "
                    "writable path"
                ) from exc
            print(f"[train] wrote {path}: {keys[slot]}.loss_cls.params=dict(file='{path}')")
        if options.export_only:
            return 0
    return _train_and_evaluate(options, config_path, cfg, space, params, loss_options)


def _loss_variant(options: TrainOptions) -> LossVariant:
    return LossVariant(
        loc_score=options.loc_score,
        block_grad=not options.no_block_grad,
        substitution=options.substitution,
    )


def _apply_lambda_and_substitution(
    options: TrainOptions, params: dict[str, LossParams], slot_names: Sequence[str]
) -> dict[str, LossParams]:
    """``--substitution`` (its heads carry only lambda: linear params, lambda 1) and
    ``--fixed-lambda`` (every head's lambda replaced)."""
    if options.substitution is not None:
        if params:
            raise UsageError(
                f"--substitution {options.substitution} replaces the loss functions; give no "
                "--preset/--params/--study-name with it (--fixed-lambda sets lambda)"
            )
        params = {slot: LossParams.preset("linear") for slot in slot_names}
    if options.fixed_lambda is not None:
        if not params:
            raise UsageError(
                "--fixed-lambda needs params to set it on: --storage/--study-name, --preset, "
                "--params or --substitution"
            )
        params = {slot: p.with_gradient_scale(options.fixed_lambda) for slot, p in params.items()}
    return params


def _train_baseline(options: TrainOptions, config_path: Path, cfg: Any) -> int:
    """A config without PAPLoss heads (e.g. the Focal+GIoU baselines): train it as it is, or
    with the best (or ``--trial``) hyperparameters of a study that searched its
    ``search_space``."""
    from paploss.study.config.hyper_space import format_values

    hyper = HyperSpace.from_config(cfg, config_path)
    given = [
        flag
        for flag, value in (
            ("--preset", options.preset),
            ("--params", options.params),
            ("--storage/--study-name", hyper is None and options.study_name),
            ("--export", options.export),
            ("--loc-score", options.loc_score),
            ("--no-block-grad", options.no_block_grad),
            ("--substitution", options.substitution),
            ("--fixed-lambda", options.fixed_lambda),
        )
        if value
    ]
    if given:
        raise UsageError(
            f"{config_path.name} has no head trained by loss_cls=dict(type='ParameterizedAPLoss', "
            f"...) (a baseline trains with its own losses), so {', '.join(given)} cannot apply; "
            "use a *_paploss.py config"
            + ("" if hyper else " (a study applies to a baseline that declares a search_space)")
        )
    if hyper is not None and options.study_name is not None:
        assert options.storage is not None
        values, trial = hyper_values_from_study(
            options.storage, options.study_name, options.trial, hyper
        )
        cfg = copy.deepcopy(cfg)
        hyper.apply(cfg, values)
        value = f"{trial.value:.4f}" if trial.value is not None else "-"
        print(
            f"[train] hyperparameters of trial {trial.number} of study {options.study_name!r} "
            f"(AP {value}): {format_values(values)}"
        )
    return _train_and_evaluate(options, config_path, cfg, None, {})


def _train_and_evaluate(
    options: TrainOptions,
    config_path: Path,
    cfg: Any,
    space: SearchSpace | None,
    params: dict[str, LossParams],
    loss_options: dict[str, Any] | None = None,
) -> int:
    """Train ``cfg`` (with ``params`` in its loss slots) on ``--data``, evaluate on val."""
    from paploss.study.config.loss_slots import save_loss_params
    from paploss.study.config.mmcfg import prepare_config
    from paploss.study.data.sources import check_writable_dir, ensure_writable_dir
    from paploss.study.runner.child import execute

    work_dir = check_writable_dir(options.work_dir, "--work-dir").resolve()
    train, val, data_record = training_data(options, work_dir)
    ensure_writable_dir(work_dir, "--work-dir")
    run_cfg = prepare_config(
        cfg,
        space=space,
        loss_params=params,
        train=train,
        evaluate=val,
        work_dir=work_dir,
        epochs=options.epochs,
        seed=options.seed,
        search=False,
        loss_options=loss_options,
    )
    config_file = work_dir / "config.py"
    run_cfg.dump(str(config_file))
    save_loss_params(params, work_dir)
    print(
        f"[train] {config_path.name}: {run_cfg.train_cfg['max_epochs']} epoch(s) on "
        f"{train.ann_file}, evaluation on {val.ann_file}; work dir {work_dir}",
        flush=True,
    )
    # N ranks forked by the warm runner (paploss.study.runner.distributed)
    if options.nproc_per_trial > 1:
        from paploss.study.runner.trial import TrialCrashed
        from paploss.study.runner.warm import WarmRunner

        try:
            with WarmRunner(
                device=options.device, nproc_per_trial=options.nproc_per_trial
            ) as runner:
                result = runner.run(work_dir, config=config_file)
        except TrialCrashed as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    else:
        result = execute(config_file, work_dir / "result.json")
    summary = TrainingSummary(
        status=result.status,
        metrics=result.metrics,
        train_seconds=result.train_seconds,
        eval_seconds=result.eval_seconds,
        config=str(config_path),
        data=data_record,
        loss_params={slot or "default": p.to_dict() for slot, p in params.items()},
        loss_options=loss_options or {},
    )
    summary_path = summary.write(work_dir)
    m = result.metrics
    print(
        f"[train] {result.status}: AP {m['AP']:.4f}  AP50 {m['AP50']:.4f}  AP75 {m['AP75']:.4f}"
        f"  APs {m['APs']:.4f}  APm {m['APm']:.4f}  APl {m['APl']:.4f}  "
        f"(train {result.train_seconds:.0f} s); {summary_path}",
        flush=True,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``paploss-train`` (``studies/train.py``); returns the exit code."""
    options = parse_train(argv)
    try:
        return run(options)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
