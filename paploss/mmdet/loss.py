"""The Parameterized AP Loss as an MMDetection 3.x loss, registered in mmdet's ``MODELS`` as
``'ParameterizedAPLoss'``.

The PAPLoss heads (``PAPLossRetinaHead``, ``PAPLossRPNHead``, ``PAPLossBBoxHead``,
``PAPLossDeformableDETRHead``) take it as their ``loss_cls`` and build it with ``MODELS.build``::

    loss_cls=dict(
        type='ParameterizedAPLoss',
        params=dict(preset='paper-retinanet'),  # anything LossParams.from_config accepts
        loc_score='giou',                       # 'giou', 'iou' or 'l1'
        backend='auto', release_compatible=False, topk=None, block_denominator_grad=True,
        check_finite=True, substitution=None,   # paploss.ParameterizedAPLoss's arguments
        loss_weight=1.0)

It trains the classification AND the box branch (lambda scales the gradient that reaches the box
branch through the localization scores), so these heads take no ``loss_bbox``. It is
:class:`paploss.ParameterizedAPLoss` (called with logits [N], labels [N] in {1, 0, -1} and
localization scores [N] over the head's prediction set B) times ``loss_weight``, plus the
attributes mmdet's heads read from their ``loss_cls``: ``use_sigmoid`` (C sigmoid logits, no
background channel) and the ``custom_cls_channels`` hooks with which ``BBoxHead`` sizes the R-CNN
classifier to C and turns its logits into scores.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

import torch
from mmdet.registry import MODELS
from torch import Tensor

from paploss.localization import LOC_SCORE_KINDS
from paploss.loss import ParameterizedAPLoss as TorchParameterizedAPLoss
from paploss.loss_config import LOSS_TYPE

__all__ = ["ParameterizedAPLoss", "accepted_keys", "torch_loss_options"]


def _plain(value: Any) -> Any:
    """Recursively turn (Config)dicts and tuples into plain dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _keyword_names(function: Any, skip: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The named parameters of ``function`` (no self, no ``*args``/``**kwargs``)."""
    return tuple(
        name
        for name, p in inspect.signature(function).parameters.items()
        if name != "self" and name not in skip and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    )


def torch_loss_options() -> tuple[str, ...]:
    """The keyword arguments of ``paploss.ParameterizedAPLoss`` besides ``params`` (backend,
    release_compatible, topk, ...): read from its constructor, where their defaults live."""
    return _keyword_names(TorchParameterizedAPLoss.__init__, skip=("params",))


def accepted_keys() -> tuple[str, ...]:
    """Every key ``loss_cls=dict(type='ParameterizedAPLoss', ...)`` accepts besides ``type``."""
    return _keyword_names(ParameterizedAPLoss.__init__) + torch_loss_options()


@MODELS.register_module(name=LOSS_TYPE)
class ParameterizedAPLoss(TorchParameterizedAPLoss):
    """:class:`paploss.ParameterizedAPLoss` as an mmdet loss (registered as
    ``'ParameterizedAPLoss'``).

    Args:
        params: Theta, anything ``paploss.LossParams.from_config`` accepts (``dict(preset=...)``,
            ``dict(file='best.json')``, a ``to_dict()`` dict, flat search-space values, a
            LossParams); None = the "linear" preset. mmengine ``ConfigDict`` values are accepted.
        loc_score: the localization score l the heads compute for the positives: "giou"
            (normalized (GIoU + 1) / 2), "iou" or "l1" (see ``paploss.localization``).
        loss_weight: multiplies the loss (and so its gradients), as in every mmdet loss.
        use_sigmoid: must be True (the loss ranks C independent logits per prediction, no
            background channel); accepted because mmdet's anchor heads read it from the config.
        **options: ``paploss.ParameterizedAPLoss``'s keyword arguments (``backend``,
            ``release_compatible``, ``topk``, ``block_denominator_grad``, ``check_finite``,
            ``substitution``), with its defaults.

    Raises:
        ValueError: an unknown key (the message lists the accepted ones), an unknown
            ``loc_score``, ``use_sigmoid=False``, a non-finite ``loss_weight``, or invalid
            params / options.
    """

    #: mmdet heads: C sigmoid logits per prediction (no background channel).
    use_sigmoid = True
    #: mmdet ``BBoxHead``: size the classifier with ``get_cls_channels`` and turn logits into
    #: scores with ``get_activation``.
    custom_cls_channels = True
    custom_activation = False
    custom_accuracy = False

    def __init__(
        self,
        params: Any = None,
        *,
        loc_score: str = "giou",
        loss_weight: float = 1.0,
        use_sigmoid: bool = True,
        **options: Any,
    ) -> None:
        unknown = sorted(set(options) - set(torch_loss_options()))
        if unknown:
            raise ValueError(
                f"unknown {LOSS_TYPE} keys {unknown}; accepted: type, {', '.join(accepted_keys())}"
            )
        if loc_score not in LOC_SCORE_KINDS:
            raise ValueError(
                f"unknown {LOSS_TYPE} loc_score {loc_score!r}; choose one of {LOC_SCORE_KINDS}"
            )
        if use_sigmoid is not True:
            raise ValueError(
                f"{LOSS_TYPE} ranks C sigmoid logits per prediction; use_sigmoid must be True, "
                f"got {use_sigmoid!r}"
            )
        if (
            isinstance(loss_weight, bool)
            or not isinstance(loss_weight, (int, float))
            or not math.isfinite(loss_weight)
        ):
            raise ValueError(
                f"{LOSS_TYPE} loss_weight must be a finite number, got {loss_weight!r}"
            )
        super().__init__(_plain(params), **options)
        self.loc_score = loc_score
        self.loss_weight = float(loss_weight)

    def forward(self, logits: Tensor, labels: Tensor, loc_scores: Tensor) -> Tensor:
        """``loss_weight`` times Eq. (6) over the prediction set B.

        Args:
            logits: [N] classification logits of every (prediction, class) entry of B.
            labels: [N] integer, 1 positive, 0 negative, -1 ignored.
            loc_scores: [N] localization scores in [0, 1] (0 off the positives).

        Returns:
            A scalar tensor.
        """
        return super().forward(logits, labels, loc_scores) * self.loss_weight

    def get_cls_channels(self, num_classes: int) -> int:
        """Classifier outputs of an R-CNN box head: C (no background channel)."""
        return num_classes

    def get_activation(self, cls_score: Tensor) -> Tensor:
        """Scores of [R, C] logits: [R, C + 1], the C sigmoids and a zero background column (the
        column mmdet's ``multiclass_nms`` drops)."""
        return torch.cat([cls_score.sigmoid(), cls_score.new_zeros(cls_score.size(0), 1)], 1)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, loc_score={self.loc_score!r}, "
            f"loss_weight={self.loss_weight:g}"
        )
