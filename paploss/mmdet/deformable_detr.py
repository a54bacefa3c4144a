"""Deformable DETR trained with the Parameterized AP Loss (paper Sec. 4, Tab. 1).

The loss replaces mmdet's focal + L1 + GIoU losses of every decoder layer (and of the encoder
proposals when ``as_two_stage``): one Parameterized AP Loss per layer, over

    B = every (query, class) entry of the batch: bs * num_queries * C logits,
    P = the (query, class of its ground truth) entries of the queries that mmdet's Hungarian
        matcher (unchanged matching costs) assigned to a ground truth,
    l = (GIoU(matched query box, its ground truth) + 1) / 2 in pixel coordinates (the kind is
        configurable through ``loss_cls.loc_score``).

lambda scales the gradient that reaches the box branch (through l). The per-layer losses are
summed with weight 1 each, as mmdet sums its auxiliary decoder losses. For the encoder proposals
mmdet's two-stage convention is kept: every ground truth gets class 0, so the positives sit in
column 0 and the other columns of the encoder classifier are negatives.

Config (mmdet 3.x; full examples: paploss/configs/proxy_deformable_detr_paploss.py and
coco_deformable_detr_r50_paploss.py)::

    custom_imports = dict(imports=['paploss.mmdet'], allow_failed_imports=False)
    model = dict(type='DeformableDETR', ...,
                 bbox_head=dict(type='PAPLossDeformableDETRHead', num_classes=80, ...,
                                loss_cls=dict(type='ParameterizedAPLoss',
                                              params=dict(file='best.json'), loc_score='giou')),
                 train_cfg=dict(assigner=dict(type='HungarianAssigner', match_costs=[...])))

``loss_cls`` is the registered ``'ParameterizedAPLoss'`` (keys: ``paploss.mmdet.loss``); the head
takes no ``loss_bbox`` / ``loss_iou``. The loss keys are ``loss_paploss`` (last decoder layer),
``d{i}.loss_paploss`` (the others) and ``enc_loss_paploss`` (two-stage).
"""

from __future__ import annotations

import copy

import torch
from mmdet.models.dense_heads import DeformableDETRHead
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmdet.utils import InstanceList, OptInstanceList
from torch import Tensor

from paploss.mmdet._common import (
    APLossHead,
    build_prediction_set,
    prediction_loc_scores,
)
from paploss.mmdet.matching import BatchedTargetsMixin, image_factors


@MODELS.register_module()
class PAPLossDeformableDETRHead(APLossHead, BatchedTargetsMixin, DeformableDETRHead):
    """Deformable DETR head whose losses are Parameterized AP Losses (``__init__``:
    ``APLossHead``; with a ``BatchedHungarianAssigner`` the matching of all images runs at once:
    ``paploss.mmdet.matching``).

    Args:
        *args, **kwargs: as ``DeformableDETRHead`` (num_classes, embed_dims, num_reg_fcs,
            train_cfg with mmdet's ``HungarianAssigner`` and its usual costs, test_cfg), except
            ``loss_bbox``/``loss_iou`` (the AP loss trains both branches; passing them raises
            ValueError).
        loss_cls: ``dict(type='ParameterizedAPLoss', params=..., loc_score=..., ...)`` (see
            ``paploss.mmdet.loss``); None = its defaults ("linear" params, GIoU). Any other loss
            type raises ValueError.

    mmdet's DETR heads read the loss's ``use_sigmoid`` (True) for the C-channel classifier, the
    prior-probability bias init and the sigmoid top-k inference.
    """

    separate_losses = ("loss_bbox", "loss_iou")
    decoded_boxes = False  # the boxes are predicted directly (normalized cx, cy, w, h)

    def prediction_set(
        self,
        cls_scores: Tensor,
        bbox_preds: Tensor,
        batch_gt_instances: InstanceList,
        batch_img_metas: list[dict],
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Match queries to ground truths (mmdet's assigner) and build B, P and l.

        Args:
            cls_scores: [bs, Q, C] logits of one decoder layer (or of the encoder proposals).
            bbox_preds: [bs, Q, 4] sigmoid boxes, normalized (cx, cy, w, h).
            batch_gt_instances: per image ``bboxes`` [G, 4] xyxy pixels and ``labels`` [G].
            batch_img_metas: per image meta information (``img_shape`` used).

        Returns:
            logits [N], targets [N] int8 (1 = P, 0 = negative), loc scores [N] (0 off P); N =
            bs * Q * C, ordered image, query, class.
        """
        num_imgs, num_queries, num_classes = cls_scores.shape
        if num_classes != self.cls_out_channels:
            raise ValueError(
                f"cls_scores must be [bs, Q, {self.cls_out_channels}], got {tuple(cls_scores.shape)}"
            )
        labels_list, label_weights_list, bbox_targets_list, _, _, _ = self.get_targets(
            list(cls_scores), list(bbox_preds), batch_gt_instances, batch_img_metas
        )
        labels = torch.cat(labels_list, 0)  # [bs * Q], C = unmatched
        label_weights = torch.cat(label_weights_list, 0)  # [bs * Q], all 1
        bbox_targets = torch.cat(bbox_targets_list, 0)  # [bs * Q, 4] normalized cxcywh
        # [bs * Q, 4] (w, h, w, h) of each query's image
        factors = image_factors(batch_img_metas, bbox_preds).expand(-1, num_queries, -1)
        factors = factors.reshape(-1, 4)
        logits, targets, pos_entries, pos_queries = build_prediction_set(
            cls_scores.reshape(-1, num_classes), labels, label_weights, num_classes
        )
        pred_boxes = bbox_cxcywh_to_xyxy(bbox_preds.reshape(-1, 4)[pos_queries])
        gt_boxes = bbox_cxcywh_to_xyxy(bbox_targets[pos_queries])
        loc_scores = prediction_loc_scores(
            pred_boxes * factors[pos_queries],
            gt_boxes * factors[pos_queries],
            pos_entries,
            logits.numel(),
            self.loss_cls.loc_score,
        )
        return logits, targets, loc_scores.to(logits.dtype)

    def loss_by_feat_single(
        self,
        cls_scores: Tensor,
        bbox_preds: Tensor,
        batch_gt_instances: InstanceList,
        batch_img_metas: list[dict],
    ) -> tuple[Tensor]:
        """The Parameterized AP Loss of one decoder layer; args as in :meth:`prediction_set`.

        Returns:
            A 1-tuple (loss,) (mmdet's version returns (loss_cls, loss_bbox, loss_iou)).
        """
        logits, targets, loc_scores = self.prediction_set(
            cls_scores, bbox_preds, batch_gt_instances, batch_img_metas
        )
        return (self.loss_cls(logits, targets, loc_scores),)

    def loss_by_feat(
        self,
        all_layers_cls_scores: Tensor,
        all_layers_bbox_preds: Tensor,
        enc_cls_scores: Tensor | None,
        enc_bbox_preds: Tensor | None,
        batch_gt_instances: InstanceList,
        batch_img_metas: list[dict],
        batch_gt_instances_ignore: OptInstanceList = None,
    ) -> dict[str, Tensor]:
        """Losses of all decoder layers (and of the encoder proposals when two-stage).

        Args:
            all_layers_cls_scores: [L, bs, Q, C] logits of every decoder layer.
            all_layers_bbox_preds: [L, bs, Q, 4] normalized cxcywh boxes.
            enc_cls_scores: [bs, HW, C] encoder proposal logits, or None.
            enc_bbox_preds: [bs, HW, 4] encoder proposals, or None.
            batch_gt_instances, batch_img_metas: as in mmdet.
            batch_gt_instances_ignore: must be None (as in mmdet's DETR heads).

        Returns:
            ``loss_paploss`` (last layer), ``d{i}.loss_paploss`` (earlier layers) and
            ``enc_loss_paploss`` (encoder proposals, two-stage only).
        """
        if batch_gt_instances_ignore is not None:
            raise ValueError(
                f"{type(self).__name__} does not support ignored ground truths; "
                "batch_gt_instances_ignore must be None"
            )
        losses = [
            self.loss_by_feat_single(cls, box, batch_gt_instances, batch_img_metas)[0]
            for cls, box in zip(all_layers_cls_scores, all_layers_bbox_preds)
        ]
        loss_dict = {"loss_paploss": losses[-1]}
        for i, loss in enumerate(losses[:-1]):
            loss_dict[f"d{i}.loss_paploss"] = loss
        if enc_cls_scores is not None:
            proposal_gt_instances = copy.deepcopy(batch_gt_instances)
            for gt in proposal_gt_instances:
                gt.labels = torch.zeros_like(gt.labels)
            loss_dict["enc_loss_paploss"] = self.loss_by_feat_single(
                enc_cls_scores, enc_bbox_preds, proposal_gt_instances, batch_img_metas
            )[0]
        return loss_dict
