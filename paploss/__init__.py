"""paploss: the Parameterized AP Loss (Tao et al., "Searching Parameterized AP Loss for Object
Detection", NeurIPS 2021) with fast pairwise-sum kernels, an Optuna PPO2 search and MMDetection
integration.

The names below load on first use (PEP 562), so ``import paploss.study.split`` and the other
light modules do not import torch (0.9 GB, seconds) through this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from paploss.functions import PiecewiseLinear
    from paploss.localization import localization_scores, scale_gradient
    from paploss.loss import ParameterizedAPLoss, parameterized_ap_loss
    from paploss.params import LossParams

_EXPORTS = {
    "LossParams": "paploss.params",
    "ParameterizedAPLoss": "paploss.loss",
    "PiecewiseLinear": "paploss.functions",
    "localization_scores": "paploss.localization",
    "parameterized_ap_loss": "paploss.loss",
    "scale_gradient": "paploss.localization",
}
__all__ = [
    "LossParams",
    "ParameterizedAPLoss",
    "PiecewiseLinear",
    "localization_scores",
    "parameterized_ap_loss",
    "scale_gradient",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'paploss' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
