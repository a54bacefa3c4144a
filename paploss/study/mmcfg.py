"""MMDetection configs for searches and final trainings.

- :func:`load_config` reads a config (importing its ``custom_imports``, i.e. ``paploss.mmdet``) and
  applies ``--cfg-options``.
- :func:`find_loss_slots` finds the heads trained by the Parameterized AP Loss: any model component
  with ``loss_cls=dict(type='ParameterizedAPLoss', ...)``, with the deprecated ``loss_params`` /
  ``loss_options``, or whose registered class takes them (the PAPLoss heads). A slot's key is the
  HEAD's dotted key (``model.bbox_head``), in both spellings.
- :func:`set_loss_params` / :func:`set_loss_options` write a slot's ``loss_cls.params`` / further
  ``loss_cls`` keys (``loss_params`` / ``loss_options`` for a head in the deprecated spelling).
- :func:`prepare_config` makes the config of one run: the loss params of every slot, the data
  splits, the number of epochs, the work dir and the training seed.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from paploss.errors import ConfigError
from paploss.params import LossParams
from paploss.study.data import DataSplit
from paploss.study.space import SearchSpace, SpaceOptions, make_slots

DATALOADERS = {"train": "train_dataloader", "val": "val_dataloader", "test": "test_dataloader"}
EVALUATORS = {"val": "val_evaluator", "test": "test_evaluator"}

AP_LOSS_TYPE = "ParameterizedAPLoss"
"""The registered loss type (``paploss.mmdet.loss``, not imported here: it imports mmdet)."""
DEPRECATED_LOSS_KEYS = ("loss_params", "loss_options")
"""A head's former loss arguments (still accepted, with a DeprecationWarning, by the heads)."""
AP_LOSS_SPELLING = "loss_cls=dict(type='ParameterizedAPLoss', params=..., ...)"


def load_config(path: Path, cfg_options: Mapping[str, Any] | None = None) -> Any:
    """``mmengine.Config.fromfile`` + ``merge_from_dict(cfg_options)``; errors -> ConfigError."""
    from mmengine.config import Config

    try:
        cfg = Config.fromfile(str(path))
    except Exception as exc:
        raise ConfigError(f"cannot load config {path}: {type(exc).__name__}: {exc}") from exc
    if cfg_options:
        try:
            cfg.merge_from_dict(dict(cfg_options))
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
    return any(part in LOCATION_KEYS for part in key.split("."))


def config_digest(cfg: Any) -> str:
    """sha256 of the loaded config (with ``--cfg-options`` applied) without ``LOCATION_KEYS``:
    the workers of one study must train the same thing."""

    def strip(node: Any) -> Any:
        if isinstance(node, Mapping):
            node = _in_deprecated_spelling(node)
            return {str(k): strip(v) for k, v in node.items() if k not in LOCATION_KEYS}
        if isinstance(node, (list, tuple)):
            return [strip(v) for v in node]
        return node

    text = json.dumps(strip(cfg.to_dict()), sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def _in_deprecated_spelling(node: Mapping[str, Any]) -> Mapping[str, Any]:
    """A head config with ``loss_cls=dict(type='ParameterizedAPLoss', params=P, **options)`` as
    ``loss_params=P, loss_options=options`` (what :func:`config_digest` hashes, so the digest of
    a config is the same in both spellings and studies created before the rename stay valid)."""
    loss = node.get("loss_cls")
    if not is_ap_loss_config(loss) or any(k in node for k in DEPRECATED_LOSS_KEYS):
        return node
    options = {k: v for k, v in loss.items() if k != "type"}
    out = {k: v for k, v in node.items() if k != "loss_cls"}
    if "params" in options:
        out["loss_params"] = options.pop("params")
    if options:
        out["loss_options"] = options
    return out


def is_ap_loss_config(node: Any) -> bool:
    """Whether ``node`` is a ``dict(type='ParameterizedAPLoss', ...)`` loss config (also
    ``mmdet.``-scoped, or with a class of that name as ``type``)."""
    if not isinstance(node, Mapping):
        return False
    kind = node.get("type")
    name = kind if isinstance(kind, str) else getattr(kind, "__name__", None)
    return isinstance(name, str) and name.rsplit(".", 1)[-1] == AP_LOSS_TYPE


def _is_loss_slot(node: Mapping[str, Any]) -> bool:
    return (
        is_ap_loss_config(node.get("loss_cls"))
        or any(k in node for k in DEPRECATED_LOSS_KEYS)
        or _registered_takes_loss_params(node.get("type"))
    )


def _registered_takes_loss_params(type_name: Any) -> bool:
    """Whether ``type_name`` is a registered class that takes ``loss_params`` (the PAPLoss heads,
    which still accept the deprecated argument), i.e. a head trained by the AP loss."""
    if not isinstance(type_name, str):
        return False
    try:
        import mmdet.models  # noqa: F401  (fills the registry)
        from mmdet.registry import MODELS

        cls = MODELS.get(type_name)
    except Exception:
        return False
    if cls is None:
        return False
    try:
        return "loss_params" in inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return False


def find_loss_slots(cfg: Any) -> list[str]:
    """Dotted keys of the heads trained by the AP loss (``loss_cls`` of type
    ``'ParameterizedAPLoss'``, the deprecated ``loss_params`` / ``loss_options``, or a registered
    PAPLoss head type), in config order. The key is the head's (e.g. ``model.bbox_head``), not its
    loss's, in both spellings."""
    found: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            if _is_loss_slot(node):
                found.append(path)
            for key, value in node.items():
                if key not in ("loss_cls", *DEPRECATED_LOSS_KEYS):
                    walk(value, f"{path}.{key}")
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                walk(value, f"{path}.{i}")

    model = cfg.get("model")
    if model is None:
        raise ConfigError("the config has no 'model'")
    walk(model, "model")
    return found


def search_space_of(
    cfg: Any, config_path: Path, options: SpaceOptions | None = None
) -> SearchSpace:
    """The search space over all loss slots of a config; ConfigError if it has none."""
    keys = find_loss_slots(cfg)
    if not keys:
        raise ConfigError(
            f"{config_path} has no head trained by {AP_LOSS_SPELLING} (types "
            "PAPLossRetinaHead, PAPLossRPNHead, PAPLossBBoxHead, PAPLossDeformableDETRHead); use a "
            "*_paploss.py config"
        )
    return SearchSpace(make_slots(keys), options)


def _node(cfg: Any, key: str) -> Any:
    node = cfg
    for part in key.split("."):
        node = node[int(part)] if isinstance(node, (list, tuple)) else node[part]
    return node


def _uses_deprecated_spelling(node: Any, key: str) -> bool:
    """Whether the head at ``key`` spells its loss as ``loss_params`` / ``loss_options``;
    ConfigError for both spellings or a ``loss_cls`` of another type."""
    if not isinstance(node, Mapping):
        raise ConfigError(f"{key} is not a head config (a dict), got {node!r}")
    deprecated = [k for k in DEPRECATED_LOSS_KEYS if k in node]
    loss = node.get("loss_cls")
    if deprecated and loss is not None:
        raise ConfigError(
            f"{key} sets both loss_cls and the deprecated {'/'.join(deprecated)}; keep only "
            f"{key}.{AP_LOSS_SPELLING}"
        )
    if loss is not None and not is_ap_loss_config(loss):
        kind = loss.get("type") if isinstance(loss, Mapping) else loss
        raise ConfigError(
            f"{key}.loss_cls is {kind!r}; a head trained by the Parameterized AP Loss needs "
            f"{AP_LOSS_SPELLING}"
        )
    return bool(deprecated)


def _ap_loss_node(node: Any) -> Any:
    """The head's ``loss_cls`` node, created as ``dict(type='ParameterizedAPLoss')`` if absent."""
    if node.get("loss_cls") is None:
        node["loss_cls"] = dict(type=AP_LOSS_TYPE)
    return node["loss_cls"]


def set_loss_params(cfg: Any, key: str, params: LossParams) -> None:
    """Replace the params of the head at ``key`` by ``params.to_dict()``: ``<key>.loss_cls.params``
    (``loss_cls`` created as ``dict(type='ParameterizedAPLoss')`` if absent), or
    ``<key>.loss_params`` for a head in the deprecated spelling."""
    node = _node(cfg, key)
    if _uses_deprecated_spelling(node, key):
        node["loss_params"] = params.to_dict()
    else:
        _ap_loss_node(node)["params"] = params.to_dict()


def set_loss_options(cfg: Any, key: str, options: Mapping[str, Any]) -> None:
    """Merge ``options`` (e.g. a LossVariant's ``{'loc_score': 'iou'}``) into the head's
    ``<key>.loss_cls``, or into ``<key>.loss_options`` for a head in the deprecated spelling."""
    if not options:
        return
    node = _node(cfg, key)
    if _uses_deprecated_spelling(node, key):
        node["loss_options"] = {**dict(node.get("loss_options") or {}), **dict(options)}
    else:
        loss = _ap_loss_node(node)
        for name, value in options.items():
            loss[name] = value


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


def save_loss_params(params: Mapping[str, LossParams], folder: Path) -> None:
    """Write each slot's params into a run folder: ``loss_params.json`` for the single unnamed
    slot, ``loss_params.<slot>.json`` for named ones."""
    for slot, p in params.items():
        p.save(folder / (f"loss_params.{slot}.json" if slot else "loss_params.json"))


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
        loss_options: merged into every loss slot's ``loss_cls`` (``loss_options`` in the
            deprecated spelling; see LossVariant).
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
    return cfg


def pretrained_backbones(cfg: Any) -> list[Any]:
    """The ``PretrainSettings`` of every ``ProxyResNet`` with ``pretrain`` in ``cfg.model``."""
    from paploss.proxy_backbone import settings_for

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

    Runs in a child process (``python -m paploss.proxy_backbone``), so the caller neither imports
    torch nor starts its thread pool; cached weights cost nothing.
    """
    import subprocess
    import sys

    from paploss.proxy_backbone import weights_path

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
            [sys.executable, "-m", "paploss.proxy_backbone", "--settings", fields],
            check=True,
            stdout=subprocess.DEVNULL,
        )
