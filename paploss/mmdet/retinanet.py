"""RetinaNet head trained by the Parameterized AP Loss (paper Sec. 3.2 and 4, Tab. 1).

``PAPLossRetinaHead`` is mmdet's ``RetinaHead`` (same layers, anchors, assigner and inference) whose
``loss_by_feat`` computes ONE loss over all FPN levels and all images of the batch:

- B: every (anchor, class) entry of the anchors with a non-zero label weight, i.e. the anchors the
  assigner made positive or negative (anchors between its IoU thresholds are ignored);
- P: the entries (positive anchor, its assigned class); all other entries of B are negatives;
- l(b_i): the localization score between the positive's decoded box and its assigned ground truth,
  normalized GIoU (g + 1) / 2 by default, IoU or L1 selectable (``loss_options.loc_score``);
- lambda: the gradient scale of the loss params, applied by the loss to the localization scores,
  i.e. to the gradient that reaches the box branch.

The classification and box branches are trained by this loss alone: ``loss_by_feat`` returns
``dict(loss_paploss=...)`` and the head has no ``loss_cls``/``loss_bbox``.

Config (mmdet 3.x)::

    custom_imports = dict(imports=['paploss.mmdet'], allow_failed_imports=False)
    model = dict(bbox_head=dict(
        type='PAPLossRetinaHead', num_classes=80, in_channels=256, ...,  # as RetinaHead
        loss_params=dict(preset='paper-retinanet'),  # or dict(file='best.json'), explicit values
        loss_options=dict(backend='auto', loc_score='giou', release_compatible=False, topk=None,
                          block_denominator_grad=True)))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from mmdet.models.dense_heads import RetinaHead
from mmdet.registry import MODELS
from mmdet.structures.bbox import cat_boxes, get_box_tensor
from mmdet.utils import InstanceList, OptInstanceList
from torch import Tensor

from paploss.mmdet._common import build_ap_loss, build_prediction_set, prediction_loc_scores

__all__ = ["PAPLossRetinaHead"]


@MODELS.register_module()
class PAPLossRetinaHead(RetinaHead):
    """RetinaHead trained only by the Parameterized AP Loss.

    Args:
        *args, **kwargs: as ``mmdet.models.dense_heads.RetinaHead`` (num_classes, in_channels,
            stacked_convs, feat_channels, anchor_generator, bbox_coder, train_cfg, test_cfg, ...),
            except ``loss_cls``/``loss_bbox`` (this head has no separate losses; passing them
            raises ValueError) and ``reg_decoded_bbox`` (always True: the loc score compares
            decoded boxes with the ground-truth boxes).
        loss_params: anything ``paploss.LossParams.from_config`` accepts (None = "linear").
        loss_options: ``backend``, ``loc_score`` ("giou", "iou", "l1"), ``release_compatible``,
            ``topk``, ``block_denominator_grad``, ``check_finite`` (see
            ``paploss.mmdet._common.LOSS_OPTION_DEFAULTS``).
    """

    def __init__(
        self,
        *args: Any,
        loss_params: Any = None,
        loss_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        for key in ("loss_cls", "loss_bbox"):
            if kwargs.get(key) is not None:
                raise ValueError(
                    f"PAPLossRetinaHead is trained only by the Parameterized AP Loss; remove "
                    f"{key}={kwargs[key]!r} from the config (or use _delete_=True)"
                )
            kwargs.pop(key, None)
        if not kwargs.pop("reg_decoded_bbox", True):
            raise ValueError("PAPLossRetinaHead needs reg_decoded_bbox=True (decoded-box scores)")
        # A sigmoid classifier (C outputs per anchor); the loss object itself is never used.
        kwargs["loss_cls"] = dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0)
        super().__init__(*args, reg_decoded_bbox=True, **kwargs)
        self.loss_cls = None
        self.loss_bbox = None
        self.paploss, self.loc_score = build_ap_loss(loss_params, loss_options)

    def prediction_set(
        self,
        cls_scores: list[Tensor],
        bbox_preds: list[Tensor],
        batch_gt_instances: InstanceList,
        batch_img_metas: list[dict],
        batch_gt_instances_ignore: OptInstanceList = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The inputs of Eq. (6) over all levels and images: logits, targets and loc scores of B.

        Args:
            cls_scores: per level [B, A * C, H, W] classification logits.
            bbox_preds: per level [B, A * 4, H, W] box deltas.
            batch_gt_instances: per image ``InstanceData`` with ``bboxes`` [G, 4] and ``labels``.
            batch_img_metas: per image meta dicts (``img_shape``, ``pad_shape``, ...).
            batch_gt_instances_ignore: per image ignored boxes, or None.

        Returns:
            logits [N], targets [N] int8 (1 = P, 0 = negative), loc scores [N] (0 off P); N =
            (number of non-ignored anchors of all images) * C, ordered image, level, location,
            anchor, class (the order of mmdet's flattened head outputs).
        """
        featmap_sizes = [featmap.size()[-2:] for featmap in cls_scores]
        if len(featmap_sizes) != self.prior_generator.num_levels:
            raise ValueError(
                f"got {len(featmap_sizes)} feature levels, the anchor generator has "
                f"{self.prior_generator.num_levels}"
            )
        device = cls_scores[0].device
        num_imgs = len(batch_img_metas)
        anchor_list, valid_flag_list = self.get_anchors(
            featmap_sizes, batch_img_metas, device=device
        )
        labels_list, label_weights_list, bbox_targets_list, _, _ = self.get_targets(
            anchor_list,
            valid_flag_list,
            batch_gt_instances,
            batch_img_metas,
            batch_gt_instances_ignore=batch_gt_instances_ignore,
        )
        # Per image, all levels concatenated: [B, A_total, ...] -> flattened [B * A_total, ...].
        labels = torch.cat(labels_list, dim=1).reshape(-1)
        label_weights = torch.cat(label_weights_list, dim=1).reshape(-1)
        gt_boxes = torch.cat(bbox_targets_list, dim=1).reshape(-1, 4)
        anchors = torch.cat(
            [get_box_tensor(cat_boxes(per_img)) for per_img in anchor_list], dim=0
        )  # [B * A_total, 4]
        cls_logits = torch.cat(
            [
                s.permute(0, 2, 3, 1).reshape(num_imgs, -1, self.cls_out_channels)
                for s in cls_scores
            ],
            dim=1,
        ).reshape(-1, self.cls_out_channels)
        deltas = torch.cat(
            [
                b.permute(0, 2, 3, 1).reshape(num_imgs, -1, self.bbox_coder.encode_size)
                for b in bbox_preds
            ],
            dim=1,
        ).reshape(-1, self.bbox_coder.encode_size)

        logits, targets, pos_entries, pos_anchors = build_prediction_set(
            cls_logits, labels, label_weights, self.num_classes
        )
        pred_boxes = get_box_tensor(
            self.bbox_coder.decode(anchors[pos_anchors], deltas[pos_anchors])
        )
        loc_scores = prediction_loc_scores(
            pred_boxes, gt_boxes[pos_anchors], pos_entries, logits.shape[0], self.loc_score
        )
        return logits, targets, loc_scores

    def loss_by_feat(
        self,
        cls_scores: list[Tensor],
        bbox_preds: list[Tensor],
        batch_gt_instances: InstanceList,
        batch_img_metas: list[dict],
        batch_gt_instances_ignore: OptInstanceList = None,
    ) -> dict[str, Tensor]:
        """The Parameterized AP Loss over the whole batch (see ``prediction_set`` for the args).

        Returns:
            ``dict(loss_paploss=scalar)``.
        """
        logits, targets, loc_scores = self.prediction_set(
            cls_scores, bbox_preds, batch_gt_instances, batch_img_metas, batch_gt_instances_ignore
        )
        return dict(loss_paploss=self.paploss(logits, targets, loc_scores))
