"""paploss: the Parameterized AP Loss (Tao et al., "Searching Parameterized AP Loss for Object
Detection", NeurIPS 2021) with fast pairwise-sum kernels, an Optuna PPO2 search and MMDetection
integration."""

from paploss.functions import PiecewiseLinear
from paploss.localization import localization_scores, scale_gradient
from paploss.loss import ParameterizedAPLoss, parameterized_ap_loss
from paploss.params import LossParams

__all__ = [
    "LossParams",
    "ParameterizedAPLoss",
    "PiecewiseLinear",
    "localization_scores",
    "parameterized_ap_loss",
    "scale_gradient",
]
__version__ = "0.1.0"
