"""MMDetection configs for searches and final trainings.

- :func:`load_config` reads a config (importing its ``custom_imports``, i.e. ``paploss.mmdet``) and
  applies ``--cfg-options``; :func:`read_config` reads one without formatting its text.
- :func:`config_digest`: what the workers of one study must agree on (machine-local keys left out).
  :func:`study_digest` also accepts the digest paploss 0.1 recorded (:func:`legacy_config_digest`).
- :func:`prepare_config` makes the config of one run: the loss params of every slot, the data
  splits, the number of epochs, the work dir and the training seed; the loss heads themselves are
  found and written by :mod:`paploss.study.config.loss_slots`.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from paploss.errors import ConfigError
from paploss.loss_config import REMOVED_HEAD_KEYS, is_ap_loss_config
from paploss.params import LossParams
from paploss.study.config.early_stop import CONFIG_KEY as COLLAPSE_KEY
from paploss.study.config.loss_slots import set_loss_options, set_loss_params
from paploss.study.config.space import SearchSpace
from paploss.study.data.sources import DataSplit

DATALOADERS = {"train": "train_dataloader", "val": "val_dataloader", "test": "test_dataloader"}
EVALUATORS = {"val": "val_evaluator", "test": "test_evaluator"}


def read_config(path: Path | str) -> Any:
    """``mmengine.Config.fromfile(path)`` whose text (``pretty_text``) is not passed through yapf.

    mmengine formats a config's text with yapf each time it logs or dumps it: 0.1-0.3 s per call
    on 2 cores, four calls in every run (the log, the work dir's copy, the visualizer's copy, the
    runtime-info hook's metadata) and one per trial in the search worker. The unformatted text is the same Python, laid out by
    mmengine's own printer. ``fromfile`` drops its ``format_python_code=False`` for a config
    without lazy imports (mmengine 0.10.7), so the flag is set on the result.
    """
    from mmengine.config import Config

    cfg = Config.fromfile(str(path))
    object.__setattr__(cfg, "_format_python_code", False)
    return cfg


def load_config(path: Path, cfg_options: Mapping[str, Any] | None = None) -> Any:
    """``mmengine.Config.fromfile`` + ``merge_from_dict(cfg_options)``; errors -> ConfigError.
    Every option key must exist in the config unless marked new (``+KEY``, see
    :mod:`paploss.study.config.cfg_options`)."""
    from paploss.study.config.cfg_options import checked_options

    try:
        cfg = read_config(path)
    except Exception as exc:
        raise ConfigError(f"cannot load config {path}: {type(exc).__name__}: {exc}") from exc
    if cfg_options:
        options = checked_options(cfg, cfg_options)
        try:
            cfg.merge_from_dict(options)
        except Exception as exc:
            raise ConfigError(f"--cfg-options {dict(cfg_options)} do not apply: {exc}") from exc
    return cfg


def check_model_builds(cfg: Any, cfg_options: Mapping[str, Any] | None = None) -> None:
    """Build the config's model once (no weights loaded) so that a bad config or ``--cfg-options``
    value (e.g. ``num_classes=abc``) is a ConfigError before a study records it, not a FAILED
    trial. Imports mmdet (~5 s)."""
    import warnings

    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.registry import DefaultScope

    import paploss.mmdet  # noqa: F401  (registers the PAPLoss heads and ProxyResNet)

    register_all_modules(init_default_scope=False)
    try:
        with warnings.catch_warnings(), DefaultScope.overwrite_default_scope("mmdet"):
            warnings.simplefilter("ignore")
            MODELS.build(copy.deepcopy(cfg.model))
    except Exception as exc:  # any build error is a problem of the config the user gave
        given = f" with --cfg-options {dict(cfg_options)}" if cfg_options else ""
        message = str(exc).strip().splitlines()
        raise ConfigError(
            f"the config's model does not build{given}: {type(exc).__name__}: "
            f"{message[-1] if message else ''}; fix the config or the option values"
        ) from exc


LOCATION_KEYS = frozenset(
    {
        "data_root",
        "ann_file",
        "data_prefix",
        "work_dir",
        "launcher",
        "num_workers",
        "persistent_workers",
        "pin_memory",
        "prefetch_factor",
        "backend_args",
        "env_cfg",
        "log_level",
        "visualizer",
        "vis_backends",
        "logger",
    }
)
"""Config keys that say where things are or how one machine runs, not what is trained: left out
of :func:`config_digest`, and ``--cfg-options`` naming them may differ between the workers of a
study, so workers on other machines (other data paths, loader workers, log intervals) can join."""


def is_machine_local(key: str) -> bool:
    """Whether a dotted config key (e.g. ``train_dataloader.num_workers``) lies in
    ``LOCATION_KEYS``: it may differ between the workers of one study."""
    return any(part in LOCATION_KEYS for part in key.removeprefix("+").split("."))


def _digest(cfg: Any, rewrite: Any = None) -> str:
    """sha256 of the loaded config without ``LOCATION_KEYS`` and without its ``collapse_rule``
    (which the study's settings record); ``rewrite`` maps every dict node before it is hashed."""

    def strip(node: Any) -> Any:
        if isinstance(node, Mapping):
            if rewrite is not None:
                node = rewrite(node)
            return {str(k): strip(v) for k, v in node.items() if k not in LOCATION_KEYS}
        if isinstance(node, (list, tuple)):
            return [strip(v) for v in node]
        return node

    data = {k: v for k, v in cfg.to_dict().items() if k != COLLAPSE_KEY}
    text = json.dumps(strip(data), sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def config_digest(cfg: Any) -> str:
    """sha256 of the loaded config (with ``--cfg-options`` applied) without ``LOCATION_KEYS``:
    the workers of one study must train the same thing."""
    return _digest(cfg)


def _as_0_1_spelling(node: Mapping[str, Any]) -> Mapping[str, Any]:
    """A head config with ``loss_cls=dict(type='ParameterizedAPLoss', params=P, **options)`` as
    paploss 0.1 hashed it: ``loss_params=P, loss_options=options``."""
    loss = node.get("loss_cls")
    if not is_ap_loss_config(loss) or any(k in node for k in REMOVED_HEAD_KEYS):
        return node
    options = {k: v for k, v in loss.items() if k != "type"}
    out = {k: v for k, v in node.items() if k != "loss_cls"}
    if "params" in options:
        out["loss_params"] = options.pop("params")
    if options:
        out["loss_options"] = options
    return out


def legacy_config_digest(cfg: Any) -> str:
    """The digest paploss 0.1 recorded for ``cfg`` (its AP-loss heads hashed in the 0.1 spelling
    ``loss_params`` / ``loss_options``); equal to :func:`config_digest` for a config without
    AP-loss heads."""
    return _digest(cfg, _as_0_1_spelling)


def study_digest(recorded: str | None, cfg: Any) -> str:
    """The digest a worker compares with a study's recorded ``config_sha256``: ``recorded`` when
    it is ``cfg``'s :func:`legacy_config_digest` (a study created by paploss 0.1 with this
    config), else :func:`config_digest` (which a new study records)."""
    if recorded is not None and recorded == legacy_config_digest(cfg):
        return recorded
    return config_digest(cfg)


def _dataset_of(cfg: Any, loader_key: str) -> Any:
    loader = cfg.get(loader_key)
    if loader is None:
        raise ConfigError(f"the config has no {loader_key}")
    dataset = loader["dataset"]
    while "ann_file" not in dataset and "dataset" in dataset:  # RepeatDataset, ClassBalanced...
        dataset = dataset["dataset"]
    if "ann_file" not in dataset:
        raise ConfigError(
            f"{loader_key}.dataset ({dataset.get('type')}) has no ann_file; the studies scripts "
            "need a COCO-style dataset (possibly inside a RepeatDataset)"
        )
    return dataset


def set_split(cfg: Any, stage: str, split: DataSplit) -> None:
    """Point the dataloader (and evaluator) of ``stage`` ("train", "val", "test") at a split."""
    dataset = _dataset_of(cfg, DATALOADERS[stage])
    dataset["data_root"] = ""
    dataset["ann_file"] = str(split.ann_file)
    prefix = dict(dataset.get("data_prefix") or {})
    img = str(split.img_dir)
    prefix["img"] = img if img.endswith("/") else img + "/"
    dataset["data_prefix"] = prefix
    if stage in EVALUATORS and cfg.get(EVALUATORS[stage]) is not None:
        evaluators = cfg[EVALUATORS[stage]]
        for evaluator in evaluators if isinstance(evaluators, list) else [evaluators]:
            if "ann_file" in evaluator:
                evaluator["ann_file"] = str(split.ann_file)


def epochs_of(cfg: Any) -> int:
    """``train_cfg.max_epochs``; ConfigError for iteration-based schedules."""
    train_cfg = cfg.get("train_cfg") or {}
    if "max_epochs" not in train_cfg:
        raise ConfigError(
            "the config's train_cfg has no max_epochs (an iteration-based loop?); the studies "
            "scripts train by epochs: use an EpochBasedTrainLoop config"
        )
    return int(train_cfg["max_epochs"])


def stretch_schedule(cfg: Any, old_epochs: int, new_epochs: int) -> None:
    """Make epoch-based LR schedulers that end with the configured training (``end`` equal to
    ``old_epochs``, e.g. a cosine decay to 0) end with a run of ``new_epochs`` instead; their
    ``T_max`` follows when it spanned the whole run."""
    schedulers = cfg.get("param_scheduler")
    if new_epochs == old_epochs or not schedulers:
        return
    if isinstance(schedulers, Mapping):
        schedulers = [schedulers]
    for sched in schedulers:
        if not sched.get("by_epoch", True) or sched.get("end") != old_epochs:
            continue
        begin = sched.get("begin", 0)
        if sched.get("T_max") == old_epochs - begin:
            sched["T_max"] = new_epochs - begin
        sched["end"] = new_epochs


def prepare_config(
    cfg: Any,
    *,
    space: SearchSpace | None,
    loss_params: Mapping[str, LossParams],
    train: DataSplit,
    evaluate: DataSplit,
    work_dir: Path,
    epochs: int | None,
    seed: int,
    search: bool,
    loss_options: Mapping[str, Any] | None = None,
    early_stop: bool = True,
) -> Any:
    """A copy of ``cfg`` set up for one run.

    Args:
        cfg: the loaded config (not modified).
        space: its loss slots (None for a config without PAPLoss heads, e.g. a baseline).
        loss_params: ``{slot name: LossParams}``; slots missing here keep the config's value.
        train: training split (``train_dataloader``).
        evaluate: evaluation split (``val_dataloader``/``val_evaluator`` and the test ones).
        work_dir: mmengine work dir of the run.
        epochs: ``train_cfg.max_epochs`` (None keeps the config's).
        seed: ``randomness.seed`` (the same initial weights for every trial of a search).
        search: a search trial: validation only after the last epoch, no checkpoints.
        loss_options: merged into every loss slot's ``loss_cls`` (see LossVariant).
        early_stop: a search trial keeps the config's ``collapse_rule``
            (:mod:`paploss.study.config.early_stop`); any other run, or ``early_stop=False``, drops it.
    """
    cfg = copy.deepcopy(cfg)
    for slot in space.slots if space is not None else []:
        if slot.name in loss_params:
            set_loss_params(cfg, slot.key, loss_params[slot.name])
        set_loss_options(cfg, slot.key, loss_options or {})
    set_split(cfg, "train", train)
    set_split(cfg, "val", evaluate)
    if cfg.get("test_dataloader") is not None:
        set_split(cfg, "test", evaluate)
    configured = epochs_of(cfg)
    max_epochs = configured if epochs is None else epochs
    cfg.train_cfg["max_epochs"] = max_epochs
    stretch_schedule(cfg, configured, max_epochs)
    if search:
        cfg.train_cfg["val_interval"] = max_epochs
        if cfg.get("default_hooks") is not None and "checkpoint" in cfg.default_hooks:
            cfg.default_hooks["checkpoint"] = None
    cfg.work_dir = str(work_dir)
    randomness = dict(cfg.get("randomness") or {})
    randomness["seed"] = seed
    cfg.randomness = randomness
    cfg.launcher = "none"
    if not (search and early_stop) and COLLAPSE_KEY in cfg:
        cfg.pop(COLLAPSE_KEY)
    return cfg


def pretrained_backbones(cfg: Any) -> list[Any]:
    """The ``PretrainSettings`` of every ``ProxyResNet`` with ``pretrain`` in ``cfg.model``."""
    from paploss.proxy.backbone import settings_for

    found: list[Any] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            if node.get("type") == "ProxyResNet" and node.get("pretrain") is not None:
                found.append(
                    settings_for(
                        node["pretrain"],
                        depth=node.get("depth"),
                        # mmdet ResNet's default width (mmdet is not imported here)
                        base_channels=node.get("base_channels", 64),
                    )
                )
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk(cfg.get("model"))
    return found


def ensure_backbones(cfg: Any, *, log: Any = print) -> None:
    """Pretrain (once, cached) the backbones the config's ``ProxyResNet`` entries name; a
    ConfigError for invalid settings (e.g. ``--cfg-options model.backbone.depth=7``).

    Runs in a child process (``python -m paploss.proxy.backbone``), so the caller neither imports
    torch nor starts its thread pool; cached weights cost nothing.
    """
    import subprocess
    import sys

    from paploss.proxy.backbone import weights_path

    try:
        found = pretrained_backbones(cfg)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"the config's ProxyResNet pretrain settings are invalid: {exc}; fix the backbone "
            "in the config or --cfg-options"
        ) from exc
    for settings in found:
        if weights_path(settings).is_file():
            continue
        log(f"pretraining the proxy backbone once (~1-2 min): {weights_path(settings)}")
        fields = json.dumps(dataclasses.asdict(settings))
        subprocess.run(
            [sys.executable, "-m", "paploss.proxy.backbone", "--settings", fields],
            check=True,
            stdout=subprocess.DEVNULL,
        )
