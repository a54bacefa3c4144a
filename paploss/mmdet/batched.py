"""Batched forms of mmdet's per-image Faster R-CNN steps, with results identical to mmdet's.

mmdet 3.x runs the RPN's proposal step, its anchor targets and the RoI assignment image by image
(each through ``InstanceData`` containers, a deep copy of the config and a dozen small tensor
calls) and deep-copies the whole batch of data samples for the RPN; on the proxy's 32-image
batches of 64 x 64 scenes that is a fifth of a training iteration. This module does the same
computations once per batch where that gives bit-identical tensors, and keeps the per-image
calls where it would not:

- :func:`rpn_proposals`: ``RPNHead.predict_by_feat`` (top ``nms_pre`` anchors per level, decode,
  size filter, NMS per level, ``max_per_img``). The level ranking runs batched (a row-wise sort
  equals the 1-D sort of each row, ties included); the sigmoid, the box decoding and the NMS stay
  per image: torch's CPU kernels compute ``exp`` on the vectorized body of a tensor with SLEEF
  and on its tail with the scalar ``std::exp``, which can differ in the last bit, so a batched
  call would round a few elements differently from the per-image call; and a batched NMS would
  shift the box coordinates by another offset (other rounding of the IoU) and cost ``n^2`` over
  all images instead of per image.
- ``paploss.mmdet.batched_assign``: ``MaxIoUAssigner.assign`` of all images at once
  (:func:`~paploss.mmdet.batched_assign.max_iou_assign`) and the anchor targets of a head with a
  ``PseudoSampler`` (the PAPLoss RPN; ``BatchedAnchorTargetsMixin``); a ``RandomSampler`` (the
  baselines' RPN) keeps mmdet's per-image code, whose RNG use must stay as it is.
- :class:`BatchedStandardRoIHead`: ``StandardRoIHead.loss`` with the proposals of all images
  assigned at once (the same batched ``MaxIoUAssigner``); the RoI sampler still runs image by
  image in mmdet's order, so its RNG use (and the sampled RoIs) stay the same.
- :class:`BatchedFasterRCNN`: ``FasterRCNN`` whose training step builds the RPN's ground truth
  (labels set to 0) without mmdet's deep copy of the whole batch of data samples and runs
  :func:`rpn_proposals`, in training and at test time; any RPN head whose proposal step is not
  ``RPNHead``'s falls back to mmdet's.

Measured on the Faster R-CNN proxy (``proxy_faster_rcnn_paploss.py``, 32 images per batch, one
torch thread): see ``paploss/configs/_base_/models/faster_rcnn_r18_fpn_proxy.py``;
``tests/test_frcnn_batched.py`` checks each step against mmdet's per-image code and one
``model.loss`` of the proxy config with and without these steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from mmcv.ops import batched_nms
from mmcv.ops.nms import NMSop
from mmdet.models.dense_heads import RPNHead
from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from mmdet.models.detectors import FasterRCNN
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.task_modules.assigners import AssignResult
from mmdet.models.utils import unpack_gt_instances
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.bbox import empty_box_as, get_box_tensor
from mmdet.utils import InstanceList, OptInstanceList
from mmengine.structures import InstanceData
from torch import Tensor

from paploss.mmdet.batched_assign import assigner_batchable, max_iou_assign

# ----------------------------------------------------------------------------- proposals


def batched_proposals_supported(head: Any) -> bool:
    """Whether :func:`rpn_proposals` reproduces ``head.predict_by_feat``: an ``RPNHead`` (sigmoid
    objectness, one channel) that keeps mmdet's proposal code and plain tensor anchors."""
    cls = type(head)
    return (
        isinstance(head, RPNHead)
        and cls.predict_by_feat is BaseDenseHead.predict_by_feat
        and cls._predict_by_feat_single is RPNHead._predict_by_feat_single
        and cls._bbox_post_process is RPNHead._bbox_post_process
        and head.use_sigmoid_cls
        and head.cls_out_channels == 1
        and not getattr(head.prior_generator, "use_box_type", False)
    )


def rpn_proposals(
    head: RPNHead,
    cls_scores: Sequence[Tensor],
    bbox_preds: Sequence[Tensor],
    batch_img_metas: Sequence[dict],
    cfg: Any = None,
) -> InstanceList:
    """``head.predict_by_feat(cls_scores, bbox_preds, batch_img_metas=..., cfg=cfg)`` (rescale
    False, with NMS) with the per-level ranking of all images in one sort.

    Args:
        head: an RPN head for which :func:`batched_proposals_supported` holds.
        cls_scores: per level [B, A, H, W] objectness logits.
        bbox_preds: per level [B, A * 4, H, W] box deltas.
        batch_img_metas: per image meta dicts (``img_shape``).
        cfg: ``nms_pre``, ``max_per_img``, ``nms``, ``min_bbox_size``; None = ``head.test_cfg``.

    Returns:
        Per image ``InstanceData`` with ``bboxes`` [K, 4], ``scores`` [K] and ``labels`` [K] (0),
        equal to mmdet's (same values, order and dtypes). On other devices than the CPU (where
        the equality is tested; a GPU's batched sort may break score ties in another order than
        its 1-D sort) this is ``head.predict_by_feat`` itself.
    """
    if cls_scores[0].device.type != "cpu":
        return head.predict_by_feat(
            list(cls_scores), list(bbox_preds), batch_img_metas=list(batch_img_metas), cfg=cfg
        )
    cfg = head.test_cfg if cfg is None else cfg
    num_imgs = len(batch_img_metas)
    featmap_sizes = [score.shape[-2:] for score in cls_scores]
    mlvl_priors = head.prior_generator.grid_priors(
        featmap_sizes, dtype=cls_scores[0].dtype, device=cls_scores[0].device
    )
    nms_pre = cfg.get("nms_pre", -1)
    reg_dim = head.bbox_coder.encode_size
    level_scores, level_deltas, level_priors, level_ids = [], [], [], []
    for level, (cls_score, bbox_pred, priors) in enumerate(
        zip(cls_scores, bbox_preds, mlvl_priors, strict=True)
    ):
        # [B, H * W * A] and [B, H * W * A, 4]: row i is mmdet's permute(1, 2, 0) of image i.
        logits = cls_score.detach().permute(0, 2, 3, 1).reshape(num_imgs, -1)
        deltas = bbox_pred.detach().permute(0, 2, 3, 1).reshape(num_imgs, -1, reg_dim)
        # One sigmoid per image: the same vectorized body and scalar tail as mmdet's call.
        scores = torch.stack([row.sigmoid() for row in logits])
        if 0 < nms_pre < scores.shape[1]:
            ranked, order = scores.sort(dim=1, descending=True)
            top = order[:, :nms_pre]
            scores = ranked[:, :nms_pre]
            deltas = deltas.gather(1, top[..., None].expand(-1, -1, reg_dim))
            priors = priors[top]
        else:
            priors = priors.expand(num_imgs, -1, -1)
        level_scores.append(scores)
        level_deltas.append(deltas)
        level_priors.append(priors)
        level_ids.append(scores.new_full(scores.shape, level, dtype=torch.long))
    all_scores = torch.cat(level_scores, dim=1)
    all_deltas = torch.cat(level_deltas, dim=1)
    all_priors = torch.cat(level_priors, dim=1)
    all_ids = torch.cat(level_ids, dim=1)
    # Decoding stays per image (its exp, see the module docstring); the size filter is checked
    # for the whole batch at once.
    decoded = torch.stack(
        [
            get_box_tensor(
                head.bbox_coder.decode(
                    all_priors[img_id], all_deltas[img_id], max_shape=img_meta["img_shape"]
                )
            )
            for img_id, img_meta in enumerate(batch_img_metas)
        ]
    )  # [B, N, 4]
    min_size = cfg.get("min_bbox_size", -1)
    if min_size >= 0:
        # mmdet's get_box_wh, over the last dimension
        w = decoded[..., 2] - decoded[..., 0]
        h = decoded[..., 3] - decoded[..., 1]
        valid = (w > min_size) & (h > min_size)
        filtered = (~valid.all(dim=1)).tolist()
    else:
        filtered = [False] * num_imgs
    results_list = []
    for img_id in range(num_imgs):
        bboxes, scores, ids = decoded[img_id], all_scores[img_id], all_ids[img_id]
        if filtered[img_id]:
            keep = valid[img_id]
            bboxes, scores, ids = bboxes[keep], scores[keep], ids[keep]
        results = InstanceData()
        if bboxes.numel() > 0:
            keep = _level_nms(bboxes, scores, ids, cfg.nms)[: cfg.max_per_img]
            results.bboxes = bboxes[keep]
            results.scores = scores[keep]
            results.labels = results.scores.new_zeros(len(keep), dtype=torch.long)
        else:
            results.bboxes = empty_box_as(bboxes)
            results.scores = scores.new_zeros(0)
            results.labels = scores.new_zeros(0)
        results_list.append(results)
    return results_list


def _level_nms(boxes: Tensor, scores: Tensor, level_ids: Tensor, nms_cfg: Any) -> Tensor:
    """``mmcv.ops.batched_nms(boxes, scores, level_ids, nms_cfg)[1]``: the kept indices, in
    descending score order. For ``type='nms'`` below ``split_thr`` boxes (the RPN's case) mmcv's
    own steps are repeated with ``NMSop`` called directly (the ``mmcv.ops.nms`` wrapper reads its
    own signature with ``inspect`` on every call); any other config calls ``batched_nms``.

    Args:
        boxes: [N, 4] xyxy. scores: [N]. level_ids: [N] int64 (NMS within each level).
        nms_cfg: mmcv's NMS config (``type``, ``iou_threshold``, ...).
    """
    cfg = dict(nms_cfg)
    nms_type = cfg.pop("type", "nms")
    split_thr = cfg.pop("split_thr", 10000)
    iou_threshold = cfg.pop("iou_threshold", None)
    offset = cfg.pop("offset", 0)
    if nms_type != "nms" or cfg or iou_threshold is None or boxes.shape[0] >= split_thr:
        return batched_nms(boxes, scores, level_ids, nms_cfg)[1]
    # mmcv.ops.batched_nms: one offset per level, larger than every coordinate.
    max_coordinate = boxes.max()
    offsets = level_ids.to(boxes) * (max_coordinate + torch.tensor(1).to(boxes))
    return NMSop.apply(boxes + offsets[:, None], scores, iou_threshold, offset, 0, -1)


# ----------------------------------------------------------------------------- RoI head


@MODELS.register_module()
class BatchedStandardRoIHead(StandardRoIHead):
    """``StandardRoIHead`` whose training step assigns the proposals of all images to their gts
    at once (:func:`max_iou_assign`, proposals padded to the largest count) and then samples
    image by image as mmdet does (the sampler's RNG use is unchanged): identical losses. Same
    arguments as ``StandardRoIHead``; an assigner other than a plain ``MaxIoUAssigner``
    (:func:`assigner_batchable`) runs mmdet's per-image code."""

    def loss(
        self, x: tuple[Tensor, ...], rpn_results_list: InstanceList, batch_data_samples: SampleList
    ) -> dict:
        """As ``StandardRoIHead.loss``."""
        assert len(rpn_results_list) == len(batch_data_samples)
        batch_gt_instances, batch_gt_instances_ignore, _ = unpack_gt_instances(batch_data_samples)
        if not rpn_results_list or not assigner_batchable(
            self.bbox_assigner, batch_gt_instances_ignore
        ):
            return super().loss(x, rpn_results_list, batch_data_samples)
        num_imgs = len(batch_data_samples)
        for rpn_results in rpn_results_list:
            # rename rpn_results.bboxes to rpn_results.priors (as mmdet)
            rpn_results.priors = rpn_results.pop("bboxes")
        priors = [get_box_tensor(rpn_results.priors) for rpn_results in rpn_results_list]
        counts = [int(p.shape[0]) for p in priors]
        most = max(counts, default=0)
        padded = priors[0].new_zeros(num_imgs, most, 4)
        for img_id, boxes in enumerate(priors):
            padded[img_id, : counts[img_id]] = boxes
        count = torch.tensor(counts, device=padded.device)
        valid = torch.arange(most, device=padded.device)[None, :] < count[:, None]
        gt_boxes = [get_box_tensor(gt.bboxes) for gt in batch_gt_instances]
        gt_inds, max_overlaps = max_iou_assign(self.bbox_assigner, padded, gt_boxes, valid)
        sampling_results = []
        for img_id in range(num_imgs):
            n = counts[img_id]
            inds = gt_inds[img_id, :n]
            labels = inds.new_full((n,), -1)
            pos = (inds > 0).nonzero().flatten()
            if pos.numel() > 0:
                labels[pos] = batch_gt_instances[img_id].labels[inds[pos] - 1]
            assign_result = AssignResult(
                num_gts=gt_boxes[img_id].shape[0],
                gt_inds=inds,
                max_overlaps=max_overlaps[img_id, :n],
                labels=labels,
            )
            sampling_results.append(
                self.bbox_sampler.sample(
                    assign_result,
                    rpn_results_list[img_id],
                    batch_gt_instances[img_id],
                    feats=[lvl_feat[img_id][None] for lvl_feat in x],
                )
            )
        losses = dict()
        if self.with_bbox:
            bbox_results = self.bbox_loss(x, sampling_results)
            losses.update(bbox_results["loss_bbox"])
        if self.with_mask:
            mask_results = self.mask_loss(
                x, sampling_results, bbox_results["bbox_feats"], batch_gt_instances
            )
            losses.update(mask_results["loss_mask"])
        return losses


# ----------------------------------------------------------------------------- detector


def rpn_ground_truth(
    batch_data_samples: SampleList,
) -> tuple[InstanceList, OptInstanceList, list[dict]]:
    """The RPN's inputs of ``TwoStageDetector.loss`` (``unpack_gt_instances`` of a deep copy of
    the data samples with every gt label set to 0) without copying the samples: new
    ``InstanceData`` sharing the gt tensors, labels replaced by zeros.

    Returns:
        (per image gt instances, per image ignored instances or None, per image meta dicts).
    """
    batch_gt_instances, batch_gt_instances_ignore, batch_img_metas = unpack_gt_instances(
        batch_data_samples
    )
    rpn_gts = []
    for gt in batch_gt_instances:
        rpn_gt = InstanceData(metainfo=gt.metainfo)
        for key, value in gt.items():
            setattr(rpn_gt, key, torch.zeros_like(value) if key == "labels" else value)
        rpn_gts.append(rpn_gt)
    return rpn_gts, batch_gt_instances_ignore, batch_img_metas


@MODELS.register_module()
class BatchedFasterRCNN(FasterRCNN):
    """``FasterRCNN`` with the RPN's ground truth built without a deep copy of the batch and the
    proposals of :func:`rpn_proposals` (training and test); results identical to mmdet's
    ``FasterRCNN``. Same arguments as ``FasterRCNN``; an RPN head whose proposal step is not
    ``RPNHead``'s (:func:`batched_proposals_supported`) runs mmdet's code."""

    def _batched_rpn(self) -> bool:
        return self.with_rpn and batched_proposals_supported(self.rpn_head)

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> dict:
        """As ``TwoStageDetector.loss`` (same losses, same key order, same RNG use)."""
        if not self._batched_rpn():
            return super().loss(batch_inputs, batch_data_samples)
        x = self.extract_feat(batch_inputs)
        losses = dict()
        proposal_cfg = self.train_cfg.get("rpn_proposal", self.test_cfg.rpn)
        rpn_gts, rpn_ignores, img_metas = rpn_ground_truth(batch_data_samples)
        outs = self.rpn_head(x)
        rpn_losses = self.rpn_head.loss_by_feat(*outs, rpn_gts, img_metas, rpn_ignores)
        rpn_results_list = rpn_proposals(self.rpn_head, *outs, img_metas, proposal_cfg)
        for key in list(rpn_losses.keys()):
            if "loss" in key and "rpn" not in key:
                rpn_losses[f"rpn_{key}"] = rpn_losses.pop(key)
        losses.update(rpn_losses)
        roi_losses = self.roi_head.loss(x, rpn_results_list, batch_data_samples)
        losses.update(roi_losses)
        return losses

    def predict(
        self, batch_inputs: Tensor, batch_data_samples: SampleList, rescale: bool = True
    ) -> SampleList:
        """As ``TwoStageDetector.predict``, with :func:`rpn_proposals`."""
        if not self._batched_rpn() or batch_data_samples[0].get("proposals", None) is not None:
            return super().predict(batch_inputs, batch_data_samples, rescale=rescale)
        x = self.extract_feat(batch_inputs)
        img_metas = [data_sample.metainfo for data_sample in batch_data_samples]
        rpn_results_list = rpn_proposals(self.rpn_head, *self.rpn_head(x), img_metas, None)
        results_list = self.roi_head.predict(
            x, rpn_results_list, batch_data_samples, rescale=rescale
        )
        return self.add_pred_to_datasample(batch_data_samples, results_list)
