"""The loss heads of an MMDetection config: finding them and writing their parameters.

- :func:`find_loss_slots` finds the heads trained by the Parameterized AP Loss: any model component
  with ``loss_cls=dict(type='ParameterizedAPLoss', ...)``, or whose registered class is marked
  ``ap_loss_head = True`` (the PAPLoss heads). A slot's key is the HEAD's dotted key
  (``model.bbox_head``). A head with the arguments removed in 0.2.0 (``loss_params`` /
  ``loss_options``) is a ConfigError that names the ``loss_cls`` spelling.
- :func:`search_space_of` is the search space over those heads.
- :func:`set_loss_params` / :func:`set_loss_options` write a slot's ``loss_cls.params`` / further
  ``loss_cls`` keys.
- :func:`save_loss_params` writes every slot's params into a run folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from paploss.errors import ConfigError
from paploss.loss_config import (
    LOSS_SPELLING,
    LOSS_TYPE,
    REMOVED_HEAD_KEYS,
    is_ap_loss_config,
    removed_keys_message,
)
from paploss.params import LossParams
from paploss.study.config.space import SearchSpace, SpaceOptions, make_slots


def _is_loss_slot(node: Mapping[str, Any], path: str) -> bool:
    removed = [k for k in REMOVED_HEAD_KEYS if k in node]
    if removed:
        raise ConfigError(removed_keys_message(path, removed))
    return is_ap_loss_config(node.get("loss_cls")) or _registered_ap_loss_head(node.get("type"))


def _registered_ap_loss_head(type_name: Any) -> bool:
    """Whether ``type_name`` names a registered head class marked ``ap_loss_head = True`` (the
    PAPLoss heads: ``paploss.mmdet._common.APLossHead``), i.e. a head trained by the AP loss."""
    if not isinstance(type_name, str):
        return False
    try:
        import mmdet.models  # noqa: F401  (fills the registry)
        from mmdet.registry import MODELS

        cls = MODELS.get(type_name)
    except Exception:
        return False
    return getattr(cls, "ap_loss_head", False) is True


def find_loss_slots(cfg: Any) -> list[str]:
    """Dotted keys of the heads trained by the AP loss (``loss_cls`` of type
    ``'ParameterizedAPLoss'``, or a registered head type marked ``ap_loss_head``), in config
    order. The key is the head's (e.g. ``model.bbox_head``), not its loss's.

    Raises:
        ConfigError: the config has no ``model``, or a head has ``loss_params`` /
            ``loss_options`` (removed in 0.2.0).
    """
    found: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            if _is_loss_slot(node, path):
                found.append(path)
            for key, value in node.items():
                if key != "loss_cls":
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
            f"{config_path} has no head trained by {LOSS_SPELLING} (types "
            "PAPLossRetinaHead, PAPLossRPNHead, PAPLossBBoxHead, PAPLossDeformableDETRHead); use a "
            "*_paploss.py config, or declare a search_space in a baseline config to tune its "
            "hyperparameters"
        )
    return SearchSpace(make_slots(keys), options)


def _node(cfg: Any, key: str) -> Any:
    node = cfg
    for part in key.split("."):
        node = node[int(part)] if isinstance(node, (list, tuple)) else node[part]
    return node


def _check_head(node: Any, key: str) -> None:
    """ConfigError unless the head at ``key`` is a dict whose ``loss_cls`` (if any) is the AP
    loss and which has none of the arguments removed in 0.2.0."""
    if not isinstance(node, Mapping):
        raise ConfigError(f"{key} is not a head config (a dict), got {node!r}")
    removed = [k for k in REMOVED_HEAD_KEYS if k in node]
    if removed:
        raise ConfigError(removed_keys_message(key, removed))
    loss = node.get("loss_cls")
    if loss is not None and not is_ap_loss_config(loss):
        kind = loss.get("type") if isinstance(loss, Mapping) else loss
        raise ConfigError(
            f"{key}.loss_cls is {kind!r}; a head trained by the Parameterized AP Loss needs "
            f"{LOSS_SPELLING}"
        )


def _ap_loss_node(node: Any) -> Any:
    """The head's ``loss_cls`` node, created as ``dict(type='ParameterizedAPLoss')`` if absent."""
    if node.get("loss_cls") is None:
        node["loss_cls"] = dict(type=LOSS_TYPE)
    return node["loss_cls"]


def set_loss_params(cfg: Any, key: str, params: LossParams) -> None:
    """Replace the params of the head at ``key`` by ``params.to_dict()``: ``<key>.loss_cls.params``
    (``loss_cls`` created as ``dict(type='ParameterizedAPLoss')`` if absent)."""
    node = _node(cfg, key)
    _check_head(node, key)
    _ap_loss_node(node)["params"] = params.to_dict()


def set_loss_options(cfg: Any, key: str, options: Mapping[str, Any]) -> None:
    """Merge ``options`` (e.g. a LossVariant's ``{'loc_score': 'iou'}``) into the head's
    ``<key>.loss_cls``."""
    if not options:
        return
    node = _node(cfg, key)
    _check_head(node, key)
    loss = _ap_loss_node(node)
    for name, value in options.items():
        loss[name] = value


def save_loss_params(params: Mapping[str, LossParams], folder: Path) -> None:
    """Write each slot's params into a run folder: ``loss_params.json`` for the single unnamed
    slot, ``loss_params.<slot>.json`` for named ones."""
    for slot, p in params.items():
        p.save(folder / (f"loss_params.{slot}.json" if slot else "loss_params.json"))
