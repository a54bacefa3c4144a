"""How an MMDetection config names the Parameterized AP Loss, without importing mmdet.

``paploss.mmdet`` registers the loss under :data:`LOSS_TYPE` and its heads check their
``loss_cls`` with :func:`is_ap_loss_config`; ``paploss.study`` finds a config's loss heads with the
same test before anything imports mmdet. Both refuse the head arguments of paploss 0.1,
:data:`REMOVED_HEAD_KEYS`, with :func:`removed_keys_message`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

LOSS_TYPE = "ParameterizedAPLoss"
"""The registry name: ``loss_cls=dict(type=LOSS_TYPE, ...)``."""
LOSS_SPELLING = f"loss_cls=dict(type='{LOSS_TYPE}', params=..., ...)"
"""How a head config names the loss, for messages."""
REMOVED_HEAD_KEYS = ("loss_params", "loss_options")
"""Head arguments removed in paploss 0.2.0: ``loss_params=P, loss_options=O`` is written
``loss_cls=dict(type='ParameterizedAPLoss', params=P, **O)``."""


def is_ap_loss_config(cfg: Any) -> bool:
    """Whether ``cfg`` is a ``dict(type='ParameterizedAPLoss', ...)`` (also ``mmdet.``-scoped, or
    with the registered class ``paploss.mmdet.loss.ParameterizedAPLoss`` or a subclass as
    ``type``)."""
    if not isinstance(cfg, Mapping):
        return False
    kind = cfg.get("type")
    if isinstance(kind, type):
        # A class can only be the registered one if its module is loaded already.
        module = sys.modules.get("paploss.mmdet.loss")
        return module is not None and issubclass(kind, module.ParameterizedAPLoss)
    return isinstance(kind, str) and kind.rsplit(".", 1)[-1] == LOSS_TYPE


def removed_keys_message(where: str, keys: Iterable[str]) -> str:
    """The error for a head config ``where`` that still has the removed ``keys``."""
    return (
        f"{where}: {' / '.join(f'{k}=' for k in keys)} were removed in paploss 0.2.0; write "
        f"loss_cls=dict(type='{LOSS_TYPE}', params=<loss_params>, **<loss_options>) instead, "
        f"e.g. loss_cls=dict(type='{LOSS_TYPE}', params=dict(preset='paper-retinanet'), "
        "loc_score='giou') (see CHANGELOG.md)"
    )
