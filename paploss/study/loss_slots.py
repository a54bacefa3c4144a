"""The loss heads of an MMDetection config: finding them and writing their parameters.

- :func:`find_loss_slots` finds the heads trained by the Parameterized AP Loss: any model component
  with ``loss_cls=dict(type='ParameterizedAPLoss', ...)``, with the deprecated ``loss_params`` /
  ``loss_options``, or whose registered class takes them (the PAPLoss heads). A slot's key is the
  HEAD's dotted key (``model.bbox_head``), in both spellings.
- :func:`search_space_of` is the search space over those heads.
- :func:`set_loss_params` / :func:`set_loss_options` write a slot's ``loss_cls.params`` / further
  ``loss_cls`` keys (``loss_params`` / ``loss_options`` for a head in the deprecated spelling).
- :func:`save_loss_params` writes every slot's params into a run folder.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from paploss.errors import ConfigError
from paploss.loss_config import LOSS_TYPE, is_ap_loss_config
from paploss.params import LossParams
from paploss.study.space import SearchSpace, SpaceOptions, make_slots

DEPRECATED_LOSS_KEYS = ("loss_params", "loss_options")
"""A head's former loss arguments (still accepted, with a DeprecationWarning, by the heads)."""
AP_LOSS_SPELLING = "loss_cls=dict(type='ParameterizedAPLoss', params=..., ...)"


def as_deprecated_spelling(node: Mapping[str, Any]) -> Mapping[str, Any]:
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
        node["loss_cls"] = dict(type=LOSS_TYPE)
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


def save_loss_params(params: Mapping[str, LossParams], folder: Path) -> None:
    """Write each slot's params into a run folder: ``loss_params.json`` for the single unnamed
    slot, ``loss_params.<slot>.json`` for named ones."""
    for slot, p in params.items():
        p.save(folder / (f"loss_params.{slot}.json" if slot else "loss_params.json"))
