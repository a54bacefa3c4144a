"""Batched ``MaxIoUAssigner`` assignment and anchor targets, identical to mmdet's per-image code
(used by ``paploss.mmdet.batched``; the overview and the measurements are in its docstring).

- :func:`max_iou_assign`: ``MaxIoUAssigner.assign`` of all images at once: one IoU over the gts
  of all images padded to the largest count (padded gts and priors that take no part set to -1,
  below every real IoU), the assigner's rules applied per gt index over the whole batch. The IoU
  is mmdet's ``iou_calculator`` on the batch (element-wise, so each value equals the per-image
  one) and ``max`` over a dimension returns the first maximal index as the per-image call does.
- :class:`BatchedAnchorTargetsMixin`: ``AnchorHead.get_anchors`` (valid flags computed once per
  padded shape) and ``AnchorHead.get_targets`` for a ``MaxIoUAssigner`` with a ``PseudoSampler``
  (the PAPLoss RPN: no sampling, so nothing random). Other assigners / samplers (e.g. the
  baselines' ``RandomSampler``, whose per-image RNG use must stay as it is) run mmdet's code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from mmdet.models.task_modules.assigners import MaxIoUAssigner
from mmdet.models.task_modules.prior_generators import anchor_inside_flags
from mmdet.models.task_modules.samplers import PseudoSampler
from mmdet.structures.bbox import get_box_tensor
from mmdet.utils import InstanceList, OptInstanceList
from torch import Tensor


def batched_targets_supported(head: Any, batch_gt_instances_ignore: OptInstanceList) -> bool:
    """Whether :meth:`BatchedAnchorTargetsMixin.get_targets` reproduces mmdet's for ``head``: an
    assigner :func:`assigner_batchable` accepts, a ``PseudoSampler`` and decoded-box targets."""
    return (
        type(getattr(head, "sampler", None)) is PseudoSampler
        and head.reg_decoded_bbox
        and assigner_batchable(getattr(head, "assigner", None), batch_gt_instances_ignore)
    )


def assigner_batchable(assigner: Any, batch_gt_instances_ignore: OptInstanceList) -> bool:
    """Whether :func:`max_iou_assign` reproduces ``assigner.assign``: a plain ``MaxIoUAssigner``
    (no repeated-gt permutation, no ignored boxes in use, no move to the CPU for many gts)."""
    if type(assigner) is not MaxIoUAssigner or assigner.perm_repeat_gt_cfg is not None:
        return False
    if assigner.gpu_assign_thr > 0:
        return False
    return not (
        assigner.ignore_iof_thr > 0
        and any(
            ignore is not None and ignore.bboxes.numel() > 0
            for ignore in batch_gt_instances_ignore or []
        )
    )


def max_iou_assign(
    assigner: MaxIoUAssigner, priors: Tensor, gt_boxes: Sequence[Tensor], valid: Tensor
) -> tuple[Tensor, Tensor]:
    """``MaxIoUAssigner.assign`` of every image at once.

    Args:
        assigner: a plain ``MaxIoUAssigner`` (:func:`assigner_batchable`): ``pos_iou_thr``,
            ``neg_iou_thr``, ``min_pos_iou``, ``match_low_quality``, ``gt_max_assign_all``,
            ``iou_calculator``.
        priors: [P, 4] priors shared by every image (anchors) or [B, P, 4] per image (padded).
        gt_boxes: per image [G_i, 4] ground-truth boxes.
        valid: [B, P] bool, the priors that take part per image (mmdet assigns
            ``priors[valid[i]]`` of image i); the results are meaningful only there.

    Returns:
        ``gt_inds`` [B, P] int64 (0 negative, -1 ignored, k > 0 assigned to gt k - 1 of its image)
        and ``max_overlaps`` [B, P] (0 for an image without gts), as mmdet's AssignResult.
    """
    num_imgs, num_priors = valid.shape
    if priors.dim() == 2:
        priors = priors.expand(num_imgs, -1, -1)
    num_gts = [int(boxes.shape[0]) for boxes in gt_boxes]
    most = max(num_gts, default=0)
    assigned = priors.new_full((num_imgs, num_priors), -1, dtype=torch.long)
    if most == 0 or num_priors == 0:
        return assigned.fill_(0), priors.new_zeros(num_imgs, num_priors)
    padded = priors.new_zeros(num_imgs, most, 4)
    for img_id, boxes in enumerate(gt_boxes):
        padded[img_id, : num_gts[img_id]] = boxes
    count = priors.new_tensor(num_gts, dtype=torch.long)
    has_gt = torch.arange(most, device=priors.device)[None, :] < count[:, None]  # [B, G]
    # [B, G, P]; real IoUs lie in [0, 1], padded gts and priors not taking part get -1.
    overlaps = assigner.iou_calculator(padded, priors)
    overlaps = overlaps.masked_fill(~has_gt[..., None] | ~valid[:, None, :], -1)
    max_overlaps, argmax_overlaps = overlaps.max(dim=1)  # [B, P]
    gt_max_overlaps, gt_argmax_overlaps = overlaps.max(dim=2)  # [B, G]
    neg_thr = assigner.neg_iou_thr
    if isinstance(neg_thr, float):
        assigned[(max_overlaps >= 0) & (max_overlaps < neg_thr)] = 0
    else:
        assigned[(max_overlaps >= neg_thr[0]) & (max_overlaps < neg_thr[1])] = 0
    pos = max_overlaps >= assigner.pos_iou_thr
    assigned[pos] = argmax_overlaps[pos] + 1
    if assigner.match_low_quality:
        for gt_id in range(most):
            takes = has_gt[:, gt_id] & (gt_max_overlaps[:, gt_id] >= assigner.min_pos_iou)
            if assigner.gt_max_assign_all:
                best = overlaps[:, gt_id, :] == gt_max_overlaps[:, gt_id, None]
                assigned[best & takes[:, None]] = gt_id + 1
            else:
                rows = takes.nonzero().flatten()
                assigned[rows, gt_argmax_overlaps[rows, gt_id]] = gt_id + 1
    no_gt = count == 0
    assigned[no_gt] = 0
    max_overlaps = max_overlaps.masked_fill(no_gt[:, None], 0)
    return assigned, max_overlaps


class BatchedAnchorTargetsMixin:
    """``get_anchors`` / ``get_targets`` of an mmdet ``AnchorHead`` computed for the whole batch
    (identical results; see the module docstring). Placed before the mmdet head class.

    ``get_targets`` takes the batched path for a ``MaxIoUAssigner`` + ``PseudoSampler`` with
    decoded-box targets (:func:`batched_targets_supported`), ``unmap_outputs=True`` and
    ``return_sampling_results=False``; otherwise it is mmdet's. The batched path does not fill
    ``_raw_positive_infos`` (read only by ``get_positive_infos``, which no box-only detector
    calls). ``batched_targets = False`` on an instance selects mmdet's code (the tests compare
    both).
    """

    #: Use the batched code where it applies.
    batched_targets: ClassVar[bool] = True

    def get_anchors(
        self, featmap_sizes: list[tuple], batch_img_metas: list[dict], device: Any = "cuda"
    ) -> tuple[list[list[Tensor]], list[list[Tensor]]]:
        """As ``AnchorHead.get_anchors``, with the valid flags computed once per ``pad_shape``
        (images of one padded shape share the flag tensors)."""
        if not self.batched_targets:
            return super().get_anchors(featmap_sizes, batch_img_metas, device=device)
        multi_level_anchors = self.prior_generator.grid_priors(featmap_sizes, device=device)
        anchor_list = [multi_level_anchors for _ in batch_img_metas]
        flags_of: dict[tuple, list[Tensor]] = {}
        valid_flag_list = []
        for img_meta in batch_img_metas:
            key = tuple(img_meta["pad_shape"])
            if key not in flags_of:
                flags_of[key] = self.prior_generator.valid_flags(
                    featmap_sizes, img_meta["pad_shape"], device
                )
            valid_flag_list.append(flags_of[key])
        return anchor_list, valid_flag_list

    def get_targets(
        self,
        anchor_list: list[list[Tensor]],
        valid_flag_list: list[list[Tensor]],
        batch_gt_instances: InstanceList,
        batch_img_metas: list[dict],
        batch_gt_instances_ignore: OptInstanceList = None,
        unmap_outputs: bool = True,
        return_sampling_results: bool = False,
    ) -> tuple:
        """As ``AnchorHead.get_targets`` (same arguments and returns: per level [B, A_l] labels
        and label weights, [B, A_l, 4] box targets and weights, and the avg_factor)."""
        same_anchors = all(
            len(anchors) == len(anchor_list[0])
            and all(a is b for a, b in zip(anchors, anchor_list[0], strict=True))
            for anchors in anchor_list
        )
        if not (
            self.batched_targets
            and unmap_outputs
            and not return_sampling_results
            and same_anchors
            and batched_targets_supported(self, batch_gt_instances_ignore)
        ):
            return super().get_targets(
                anchor_list,
                valid_flag_list,
                batch_gt_instances,
                batch_img_metas,
                batch_gt_instances_ignore=batch_gt_instances_ignore,
                unmap_outputs=unmap_outputs,
                return_sampling_results=return_sampling_results,
            )
        num_level_anchors = [anchors.size(0) for anchors in anchor_list[0]]
        anchors = get_box_tensor(torch.cat([get_box_tensor(a) for a in anchor_list[0]]))
        allowed_border = self.train_cfg["allowed_border"]
        inside = torch.stack(
            [
                anchor_inside_flags(
                    anchors, torch.cat(flags), img_meta["img_shape"][:2], allowed_border
                )
                for flags, img_meta in zip(valid_flag_list, batch_img_metas, strict=True)
            ]
        )  # [B, A]
        if not bool(inside.any(dim=1).all()):
            raise ValueError(
                "There is no valid anchor inside the image boundary. Please check the image size "
                "and anchor sizes, or set ``allowed_border`` to -1 to skip the condition."
            )
        gt_boxes = [get_box_tensor(gt.bboxes) for gt in batch_gt_instances]
        assigned, _ = max_iou_assign(self.assigner, anchors, gt_boxes, inside)
        assigned = assigned.masked_fill(~inside, -1)
        pos, neg = assigned > 0, assigned == 0
        num_imgs, num_anchors = assigned.shape
        labels = anchors.new_full((num_imgs, num_anchors), self.num_classes, dtype=torch.long)
        label_weights = anchors.new_zeros(num_imgs, num_anchors)
        bbox_targets = anchors.new_zeros(num_imgs, num_anchors, 4)
        bbox_weights = anchors.new_zeros(num_imgs, num_anchors, 4)
        pos_img, pos_anchor = pos.nonzero(as_tuple=True)
        if pos_img.numel() > 0:
            offsets = torch.cumsum(
                anchors.new_tensor([0] + [b.shape[0] for b in gt_boxes[:-1]], dtype=torch.long),
                dim=0,
            )
            flat_gt = offsets[pos_img] + assigned[pos_img, pos_anchor] - 1
            bbox_targets[pos_img, pos_anchor] = torch.cat(gt_boxes).to(anchors.dtype)[flat_gt]
            bbox_weights[pos_img, pos_anchor] = 1.0
            labels[pos_img, pos_anchor] = torch.cat([gt.labels for gt in batch_gt_instances])[
                flat_gt
            ]
            pos_weight = self.train_cfg["pos_weight"]
            label_weights[pos_img, pos_anchor] = 1.0 if pos_weight <= 0 else pos_weight
        label_weights[neg] = 1.0
        # PseudoSampler: avg_factor = sum over images of max(#positives, 1).
        avg_factor = sum(max(int(count), 1) for count in pos.sum(dim=1).tolist())
        bounds = torch.tensor(num_level_anchors).cumsum(0).tolist()
        starts = [0] + bounds[:-1]

        def levels(target: Tensor) -> list[Tensor]:
            return [target[:, s:e] for s, e in zip(starts, bounds, strict=True)]

        return (
            levels(labels),
            levels(label_weights),
            levels(bbox_targets),
            levels(bbox_weights),
            avg_factor,
        )
