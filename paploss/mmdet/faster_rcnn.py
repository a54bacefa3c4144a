"""Faster R-CNN trained with the Parameterized AP Loss (paper Sec. 4, Tab. 1): an RPN head and an
RoI box head, each with its own loss parameters Theta (the release searched one set for the RPN and
one for the R-CNN head, presets "paper-faster-rcnn-rpn" and "paper-faster-rcnn-roi").

Both heads replace mmdet's classification + regression losses by one Parameterized AP Loss over
the mini-batch (Eq. (6)): B, P and the localization scores are built from mmdet's own target
assignment, the localization score of a positive is computed on its decoded box, and lambda (the
gradient scale of the loss parameters) scales the gradient that reaches the box branch.

RPN (:class:`PAPLossRPNHead`):
    B = every anchor of the batch with a non-zero label weight (with a ``PseudoSampler`` all
    anchors that the assigner did not ignore; with a ``RandomSampler`` the sampled ones), one
    objectness logit each. P = the anchors assigned to a ground truth. l = localization score of
    the proposal decoded from the anchor against its ground truth.

RoI head (:class:`PAPLossBBoxHead`):
    B = (sampled RoI with label weight > 0) x (C foreground classes); there is no background
    column: ``fc_cls`` outputs C logits (the loss's ``get_cls_channels``). P = the (foreground
    RoI, its ground-truth class) entries. l = localization score of the RoI's box decoded with the
    regression of that class (or with the class-agnostic regression). At test time the scores are
    ``sigmoid`` of the C logits (the loss's ``get_activation``).

Config (mmdet 3.x; full examples: paploss/configs/proxy_faster_rcnn_paploss.py and
coco_faster_rcnn_r50_fpn_paploss.py)::

    custom_imports = dict(imports=['paploss.mmdet'], allow_failed_imports=False)
    model = dict(
        rpn_head=dict(type='PAPLossRPNHead', ...,  # as RPNHead, without loss_bbox
                      loss_cls=dict(type='ParameterizedAPLoss',
                                    params=dict(preset='paper-faster-rcnn-rpn'), loc_score='giou')),
        roi_head=dict(bbox_head=dict(
            type='PAPLossBBoxHead', ...,  # as Shared2FCBBoxHead, without loss_bbox
            loss_cls=dict(type='ParameterizedAPLoss',
                          params=dict(preset='paper-faster-rcnn-roi'), loc_score='giou'))),
        train_cfg=dict(rpn=dict(sampler=dict(type='PseudoSampler')), ...))

(``loss_cls`` keys: ``paploss.mmdet.loss``.) A search over both heads sets
``model.rpn_head.loss_cls.params`` and ``model.roi_head.bbox_head.loss_cls.params``. The loss keys
are ``loss_rpn_paploss`` and ``loss_paploss``.
"""

from __future__ import annotations

from typing import Any

from mmdet.models.dense_heads import RPNHead
from mmdet.models.layers import multiclass_nms
from mmdet.models.roi_heads.bbox_heads import Shared2FCBBoxHead
from mmdet.models.utils import empty_instances
from mmdet.registry import MODELS
from mmdet.structures.bbox import get_box_tensor, scale_boxes
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor

from paploss.mmdet._common import (
    AnchorAPLossHead,
    APLossHead,
    build_prediction_set,
    prediction_loc_scores,
)
from paploss.mmdet.batched_assign import BatchedAnchorTargetsMixin


@MODELS.register_module()
class PAPLossRPNHead(AnchorAPLossHead, BatchedAnchorTargetsMixin, RPNHead):
    """RPN head trained with the Parameterized AP Loss (one objectness logit per anchor;
    ``__init__`` and ``loss_by_feat``: ``AnchorAPLossHead``; the loss key is ``loss_rpn_paploss``;
    with a ``PseudoSampler`` its anchor targets are computed for the whole batch at once,
    ``paploss.mmdet.batched_assign.BatchedAnchorTargetsMixin``, identical to mmdet's per-image ones).

    Args:
        in_channels: channels of the input feature maps.
        loss_cls: ``dict(type='ParameterizedAPLoss', params=..., loc_score=..., ...)`` (see
            ``paploss.mmdet.loss``; e.g. ``params=dict(preset="paper-faster-rcnn-rpn")``); None =
            its defaults ("linear" params, GIoU). Any other loss type raises ValueError.
        **kwargs: as ``RPNHead`` (anchor_generator, bbox_coder, train_cfg, test_cfg, ...), except
            ``loss_bbox`` (the AP loss trains both branches; passing it raises ValueError) and
            ``reg_decoded_bbox`` (always True: the loc score compares decoded proposals with the
            ground-truth boxes).
    """

    loss_name = "loss_rpn_paploss"


@MODELS.register_module()
class PAPLossBBoxHead(APLossHead, Shared2FCBBoxHead):
    """R-CNN box head (2 shared fcs) trained with the Parameterized AP Loss (``__init__``:
    ``APLossHead``).

    ``fc_cls`` outputs C foreground logits (no background column: the loss's
    ``custom_cls_channels`` / ``get_cls_channels``). Inference scores are their sigmoids; a zero
    background column is appended for mmdet's ``multiclass_nms`` (the loss's ``get_activation``).

    Args:
        *args, **kwargs: as ``Shared2FCBBoxHead`` (num_classes, in_channels, roi_feat_size,
            fc_out_channels, bbox_coder, reg_class_agnostic, ...), except ``loss_bbox`` (passing
            it raises ValueError), ``reg_decoded_bbox`` (always True) and ``with_cls=False``
            (ValueError).
        loss_cls: ``dict(type='ParameterizedAPLoss', ...)`` for the R-CNN head (e.g.
            ``params=dict(preset="paper-faster-rcnn-roi")``), as for :class:`PAPLossRPNHead`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if not kwargs.get("with_cls", True):
            raise ValueError(f"{type(self).__name__} needs the classification branch (with_cls)")
        super().__init__(*args, **kwargs)
        # mmdet built fc_cls with C + 1 outputs (``custom_cls_channels`` is False until the end of
        # __init__); it is rebuilt here with the loss's get_cls_channels, C: no background
        # column. The rebuild draws the initial weights after mmdet's own layers, so a seed gives
        # the initial weights the ``tests/test_mmdet_faster_rcnn.py`` losses were recorded with.
        cls_predictor_cfg = self.cls_predictor_cfg.copy()
        cls_predictor_cfg.update(
            in_features=self.cls_last_dim,
            out_features=self.loss_cls.get_cls_channels(self.num_classes),
        )
        self.fc_cls = MODELS.build(cls_predictor_cfg)
        self._fc_cls_built = True

    @property
    def custom_cls_channels(self) -> bool:
        """The loss's ``custom_cls_channels`` (True) once ``fc_cls`` is built (see __init__)."""
        return getattr(self, "_fc_cls_built", False) and super().custom_cls_channels

    def prediction_set(
        self,
        cls_score: Tensor,
        bbox_pred: Tensor,
        rois: Tensor,
        labels: Tensor,
        label_weights: Tensor,
        bbox_targets: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Build B, P and the localization scores from the R-CNN targets.

        Args:
            cls_score: [R, C] foreground logits of the sampled RoIs of the batch.
            bbox_pred: [R, 4 * C] (class-specific) or [R, 4] (class-agnostic) deltas.
            rois: [R, 5] (batch index, x1, y1, x2, y2).
            labels: [R] in 0..C (C = background).
            label_weights: [R]; RoIs with weight 0 take no part.
            bbox_targets: [R, 4] ground-truth boxes xyxy (rows of background RoIs are unused).

        Returns:
            logits [N], targets [N] int8 (1 = P, 0 = negative), loc scores [N] (0 off P); N =
            (number of RoIs with label weight > 0) * C, ordered RoI-major, class-minor.
        """
        num_classes = self.num_classes
        if cls_score.dim() != 2 or cls_score.size(1) != num_classes:
            raise ValueError(
                f"cls_score must be [R, {num_classes}] (no background column), got "
                f"{tuple(cls_score.shape)}"
            )
        logits, targets, pos_entries, pos_rois = build_prediction_set(
            cls_score, labels, label_weights, num_classes
        )
        box_dim = self.bbox_coder.encode_size
        if self.reg_class_agnostic:
            pos_deltas = bbox_pred.view(-1, box_dim)[pos_rois]
        else:
            pos_deltas = bbox_pred.view(-1, num_classes, box_dim)[pos_rois, labels[pos_rois]]
        pred_boxes = get_box_tensor(self.bbox_coder.decode(rois[pos_rois, 1:], pos_deltas))
        loc_scores = prediction_loc_scores(
            pred_boxes, bbox_targets[pos_rois], pos_entries, logits.numel(), self.loss_cls.loc_score
        )
        return logits, targets, loc_scores.to(logits.dtype)

    def loss(
        self,
        cls_score: Tensor,
        bbox_pred: Tensor,
        rois: Tensor,
        labels: Tensor,
        label_weights: Tensor,
        bbox_targets: Tensor,
        bbox_weights: Tensor,
        reduction_override: str | None = None,
    ) -> dict[str, Tensor]:
        """One Parameterized AP Loss over the sampled RoIs x classes (args: ``prediction_set``).

        ``bbox_weights`` [R, 4] is not needed (the positives are the foreground labels).
        ``reduction_override`` must be None: the loss ranks the whole batch and has no per-element
        form.

        Returns:
            ``dict(loss_paploss=scalar)``.
        """
        if reduction_override is not None:
            raise ValueError(
                f"{type(self).__name__} has no per-element loss; reduction_override must be None, "
                f"got {reduction_override!r}"
            )
        if cls_score is None or bbox_pred is None:
            raise ValueError(f"{type(self).__name__} needs both cls_score and bbox_pred")
        logits, targets, loc_scores = self.prediction_set(
            cls_score, bbox_pred, rois, labels, label_weights, bbox_targets
        )
        return dict(loss_paploss=self.loss_cls(logits, targets, loc_scores))

    def _predict_by_feat_single(
        self,
        roi: Tensor,
        cls_score: Tensor,
        bbox_pred: Tensor,
        img_meta: dict,
        rescale: bool = False,
        rcnn_test_cfg: ConfigDict | None = None,
    ) -> InstanceData:
        """As ``BBoxHead._predict_by_feat_single``: scores are the loss's ``get_activation``
        (sigmoids of the C logits and a zero background column).

        Args:
            roi: [R, 5] (batch index, x1, y1, x2, y2).
            cls_score: [R, C] foreground logits.
            bbox_pred: [R, 4 * C] or [R, 4] deltas.
            img_meta: image meta information.
            rescale: map the boxes back to the original image size.
            rcnn_test_cfg: ``test_cfg.rcnn`` (score_thr, nms, max_per_img); None returns the raw
                boxes [R, 4 * C'] and scores [R, C + 1] (background column 0) for aug-test.
        """
        results = InstanceData()
        if roi.shape[0] == 0:
            return empty_instances(
                [img_meta],
                roi.device,
                task_type="bbox",
                instance_results=[results],
                box_type=self.predict_box_type,
                use_box_type=False,
                num_classes=self.num_classes,
                score_per_cls=rcnn_test_cfg is None,
            )[0]
        # [R, C + 1]: multiclass_nms drops the last (background) column.
        scores = self.loss_cls.get_activation(cls_score)
        img_shape = img_meta["img_shape"]
        num_rois = roi.size(0)
        num_reg = 1 if self.reg_class_agnostic else self.num_classes
        roi = roi.repeat_interleave(num_reg, dim=0)
        bbox_pred = bbox_pred.view(-1, self.bbox_coder.encode_size)
        bboxes = self.bbox_coder.decode(roi[..., 1:], bbox_pred, max_shape=img_shape)
        if rescale and bboxes.size(0) > 0:
            if img_meta.get("scale_factor") is None:
                raise ValueError("rescale=True needs 'scale_factor' in img_meta")
            bboxes = scale_boxes(bboxes, [1 / s for s in img_meta["scale_factor"]])
        bboxes = get_box_tensor(bboxes)
        box_dim = bboxes.size(-1)
        bboxes = bboxes.view(num_rois, -1)
        if rcnn_test_cfg is None:
            results.bboxes = bboxes
            results.scores = scores
            return results
        det_bboxes, det_labels = multiclass_nms(
            bboxes,
            scores,
            rcnn_test_cfg.score_thr,
            rcnn_test_cfg.nms,
            rcnn_test_cfg.max_per_img,
            box_dim=box_dim,
        )
        results.bboxes = det_bboxes[:, :-1]
        results.scores = det_bboxes[:, -1]
        results.labels = det_labels
        return results
