"""How an MMDetection config names the Parameterized AP Loss, without importing mmdet.

``paploss.mmdet`` registers the loss under :data:`LOSS_TYPE` and its heads check their
``loss_cls`` with :func:`is_ap_loss_config`; ``paploss.study`` finds a config's loss heads with the
same test before anything imports mmdet.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

LOSS_TYPE = "ParameterizedAPLoss"
"""The registry name: ``loss_cls=dict(type=LOSS_TYPE, ...)``."""


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
