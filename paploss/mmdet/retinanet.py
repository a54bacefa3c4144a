"""RetinaNet head trained by the Parameterized AP Loss (paper Sec. 3.2 and 4, Tab. 1).

``PAPLossRetinaHead`` is mmdet's ``RetinaHead`` (same layers, anchors, assigner and inference) whose
``loss_by_feat`` computes ONE loss over all FPN levels and all images of the batch:

- B: every (anchor, class) entry of the anchors with a non-zero label weight, i.e. the anchors the
  assigner made positive or negative (anchors between its IoU thresholds are ignored);
- P: the entries (positive anchor, its assigned class); all other entries of B are negatives;
- l(b_i): the localization score between the positive's decoded box and its assigned ground truth,
  normalized GIoU (g + 1) / 2 by default, IoU or L1 selectable (``loss_cls.loc_score``);
- lambda: the gradient scale of the loss params, applied by the loss to the localization scores,
  i.e. to the gradient that reaches the box branch.

The classification and box branches are trained by this loss alone: ``loss_cls`` is the
registered ``'ParameterizedAPLoss'`` (``paploss.mmdet.loss``), ``loss_by_feat`` returns
``dict(loss_paploss=...)`` and the head has no ``loss_bbox``.

Config (mmdet 3.x)::

    custom_imports = dict(imports=['paploss.mmdet'], allow_failed_imports=False)
    model = dict(bbox_head=dict(
        type='PAPLossRetinaHead', num_classes=80, in_channels=256, ...,  # as RetinaHead
        loss_cls=dict(
            type='ParameterizedAPLoss',
            params=dict(preset='paper-retinanet'),  # or dict(file='best.json'), explicit values
            loc_score='giou', backend='auto', release_compatible=False, topk=None,
            block_denominator_grad=True, loss_weight=1.0)))
"""

from __future__ import annotations

from mmdet.models.dense_heads import RetinaHead
from mmdet.registry import MODELS

from paploss.mmdet._common import AnchorAPLossHead

__all__ = ["PAPLossRetinaHead"]


@MODELS.register_module()
class PAPLossRetinaHead(AnchorAPLossHead, RetinaHead):
    """RetinaHead trained only by the Parameterized AP Loss (``__init__`` and ``loss_by_feat``:
    ``AnchorAPLossHead``; the loss key is ``loss_paploss``).

    Args:
        *args, **kwargs: as ``mmdet.models.dense_heads.RetinaHead`` (num_classes, in_channels,
            stacked_convs, feat_channels, anchor_generator, bbox_coder, train_cfg, test_cfg, ...),
            except ``loss_bbox`` (the AP loss trains both branches; passing it raises ValueError)
            and ``reg_decoded_bbox`` (always True: the loc score compares decoded boxes with the
            ground-truth boxes).
        loss_cls: ``dict(type='ParameterizedAPLoss', params=..., loc_score='giou', backend=...,
            release_compatible=..., topk=..., block_denominator_grad=..., check_finite=...,
            substitution=..., loss_weight=1.0)`` (``paploss.mmdet.loss``); None = its defaults
            ("linear" params). Any other loss type raises ValueError.
    """
