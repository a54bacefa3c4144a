"""Plumbing shared by the Parameterized AP Loss heads of ``paploss.mmdet``.

- ``ap_loss_config``: a head's ``loss_cls=dict(type='ParameterizedAPLoss', ...)`` config (the loss:
  ``paploss.mmdet.loss``).
- ``reject_separate_losses``: the clear error for ``loss_bbox`` etc. (the AP loss trains both
  branches).
- ``build_prediction_set``: the flat prediction set B of Eq. (6) (every (prediction, class) entry of
  the non-ignored predictions) with its positives P, from mmdet-style per-prediction targets.
- ``prediction_loc_scores``: scatters the positives' localization scores onto B.
- ``set_data_root``: points a parsed proxy (or COCO) config at another dataset folder.
- ``APLossHead``: the mixin of every AP-loss head (its constructor; the ``ap_loss_head`` mark);
  ``AnchorAPLossHead``: its anchor-head form with the loss over all levels and images.

Importing this module also installs the torch >= 2.6 checkpoint loader (``paploss.mmdet.checkpoint``),
so every head module that uses it makes mmengine's resume work.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from mmdet.structures.bbox import cat_boxes, get_box_tensor
from mmdet.utils import InstanceList, OptInstanceList
from torch import Tensor

from paploss.localization import localization_scores
from paploss.loss_config import (
    LOSS_TYPE,
    REMOVED_HEAD_KEYS,
    is_ap_loss_config,
    removed_keys_message,
)
from paploss.mmdet import checkpoint as _checkpoint  # noqa: F401  (installs the loader)


def ap_loss_config(head: str, loss_cls: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``loss_cls`` config a PAPLoss head builds (with ``MODELS.build``).

    Args:
        head: the head's class name (for messages).
        loss_cls: ``dict(type='ParameterizedAPLoss', ...)`` (see ``paploss.mmdet.loss``); None
            is ``dict(type='ParameterizedAPLoss')`` (the "linear" params).

    Returns:
        A new dict with ``type``.

    Raises:
        ValueError: a ``loss_cls`` of another type.
    """
    if loss_cls is None:
        return dict(type=LOSS_TYPE)
    if not is_ap_loss_config(loss_cls):
        raise ValueError(
            f"{head} is trained only by the Parameterized AP Loss (it trains both branches): "
            f"loss_cls must be dict(type='{LOSS_TYPE}', params=..., loc_score=..., ...), got "
            f"loss_cls={loss_cls!r} (with a base config's loss, use _delete_=True)"
        )
    return dict(loss_cls)


def reject_separate_losses(
    head: str, kwargs: dict[str, Any], keys: tuple[str, ...], *, decoded_boxes: bool = True
) -> None:
    """Raise ValueError for ``loss_*`` configs in ``keys`` (the head is trained by the AP loss
    alone) and, with ``decoded_boxes``, for ``reg_decoded_bbox=False``; removes them from kwargs."""
    for key in keys:
        if kwargs.get(key) is not None:
            raise ValueError(
                f"{head} is trained only by the Parameterized AP Loss; remove {key}={kwargs[key]!r} "
                "from the config (or use _delete_=True)"
            )
        kwargs.pop(key, None)
    if decoded_boxes and not kwargs.pop("reg_decoded_bbox", True):
        raise ValueError(f"{head} needs reg_decoded_bbox=True (loc scores of decoded boxes)")


def build_prediction_set(
    cls_logits: Tensor, labels: Tensor, label_weights: Tensor, num_classes: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The prediction set B of Eq. (6) from per-prediction classification targets.

    B holds every (prediction, class) entry of the predictions with a positive label weight
    (predictions with weight 0, e.g. anchors between the assigner's IoU thresholds, are ignored);
    the positives P are the entries (positive prediction, its assigned class); every other entry
    of B is a negative. Entries are ordered prediction-major, class-minor (flattened
    ``cls_logits[kept]``).

    Args:
        cls_logits: [M, C] classification logits of M predictions (e.g. all anchors of all images).
        labels: [M] int64 assigned class in [0, C), or C (= ``num_classes``) for background.
        label_weights: [M] float, > 0 for the predictions that take part.
        num_classes: C.

    Returns:
        logits [N] (N = kept * C), targets [N] int8 (1 positive, 0 negative), positive entry
        indices [P] into the N entries, and the prediction index in [0, M) of each positive [P].

    Raises:
        ValueError: mismatching shapes or labels outside [0, C].
    """
    if cls_logits.dim() != 2 or cls_logits.shape[1] != num_classes:
        raise ValueError(
            f"cls_logits must be [M, num_classes={num_classes}], got {tuple(cls_logits.shape)}"
        )
    num = cls_logits.shape[0]
    if labels.shape != (num,) or label_weights.shape != (num,):
        raise ValueError(
            f"labels and label_weights must be [{num}], got {tuple(labels.shape)} and "
            f"{tuple(label_weights.shape)}"
        )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) > num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}] ({num_classes} = background), got values in "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
    kept = (label_weights > 0).nonzero().flatten()  # [M'] predictions in B
    kept_labels = labels[kept]
    is_pos = kept_labels < num_classes
    pos_rows = is_pos.nonzero().flatten()  # [P] rows of the kept predictions
    pos_entries = pos_rows * num_classes + kept_labels[pos_rows]
    logits = cls_logits[kept].reshape(-1)
    targets = torch.zeros(logits.shape[0], dtype=torch.int8, device=logits.device)
    targets[pos_entries] = 1
    return logits, targets, pos_entries, kept[pos_rows]


def prediction_loc_scores(
    pred_boxes: Tensor,
    target_boxes: Tensor,
    pos_entries: Tensor,
    num_entries: int,
    kind: str = "giou",
) -> Tensor:
    """Localization scores l(b_i) of Eq. (4) on the prediction set: the positives' scores, 0 else.

    Args:
        pred_boxes: [P, 4] decoded predicted boxes (xyxy) of the positives, differentiable.
        target_boxes: [P, 4] their assigned ground-truth boxes (xyxy).
        pos_entries: [P] the positives' entry indices in B (from ``build_prediction_set``).
        num_entries: N, the size of B.
        kind: "giou", "iou" or "l1" (see ``paploss.localization``).

    Returns:
        [N] loc scores in [0, 1]; the gradient reaches ``pred_boxes`` only.
    """
    scores = localization_scores(pred_boxes, target_boxes.to(pred_boxes.dtype), kind)
    return pred_boxes.new_zeros(num_entries).index_put((pos_entries,), scores)


_DATASET_KEYS = ("train_dataloader", "val_dataloader", "test_dataloader")
_EVALUATOR_KEYS = ("val_evaluator", "test_evaluator")


def set_data_root(cfg: Any, data_root: str | os.PathLike[str]) -> Any:
    """Point a parsed config's dataloaders and evaluators at another dataset folder.

    mmengine substitutes a base config's ``data_root`` variable when the file is parsed, so
    assigning ``cfg.data_root`` afterwards changes nothing; this rewrites every dataset's
    ``data_root`` and every CocoMetric ``ann_file`` that was relative to the old root.

    Args:
        cfg: an mmengine ``Config`` (modified in place and returned).
        data_root: the new root (e.g. the parent of ``generate_proxy_dataset()``'s split folders).

    Returns:
        ``cfg``.
    """
    new_root = os.path.join(os.path.expanduser(os.fspath(data_root)), "")
    old_root = cfg.get("data_root")
    for key in _DATASET_KEYS:
        loader = cfg.get(key)
        if loader is None:
            continue
        dataset = loader["dataset"]
        while "dataset" in dataset and "data_root" not in dataset:  # wrappers (RepeatDataset)
            dataset = dataset["dataset"]
        dataset["data_root"] = new_root
    for key in _EVALUATOR_KEYS:
        evaluators = cfg.get(key)
        if evaluators is None:
            continue
        for evaluator in evaluators if isinstance(evaluators, list) else [evaluators]:
            ann_file = evaluator.get("ann_file")
            if ann_file is None:
                continue
            if old_root and ann_file.startswith(old_root):
                evaluator["ann_file"] = new_root + ann_file[len(old_root) :].lstrip("/")
            elif not os.path.isabs(ann_file):
                evaluator["ann_file"] = os.path.join(new_root, ann_file)
    cfg["data_root"] = new_root
    return cfg


class APLossHead:
    """Mixin of every head trained by the Parameterized AP Loss: the constructor logic they share.

    Placed before the mmdet head class (``class PAPLossRetinaHead(AnchorAPLossHead,
    RetinaHead)``), its ``__init__`` turns ``loss_cls`` into the AP loss's config
    (:func:`ap_loss_config`), refuses the head's separate losses (``separate_losses``, e.g.
    ``loss_bbox``), forces ``reg_decoded_bbox=True`` where the loc score needs decoded boxes
    (``decoded_boxes``), builds the mmdet head with that ``loss_cls`` and sets the separate losses
    to None.

    Args:
        *args, **kwargs: as the mmdet head, except the ``separate_losses`` (passing one raises
            ValueError) and ``reg_decoded_bbox`` (always True with ``decoded_boxes``).
        loss_cls: ``dict(type='ParameterizedAPLoss', params=..., loc_score=..., ...)`` (see
            ``paploss.mmdet.loss``), built with ``MODELS.build`` as ``self.loss_cls``; None = its
            defaults ("linear" params, GIoU). Any other loss type raises ValueError.

    Raises:
        ValueError: a separate loss, another ``loss_cls`` type, or the head arguments removed in
            0.2.0 (``loss_params`` / ``loss_options``; the message gives the ``loss_cls``
            spelling).
    """

    #: Marks the heads trained by the AP loss (``paploss.study.config.loss_slots`` finds them by it).
    ap_loss_head: ClassVar[bool] = True
    #: The mmdet head's own losses that the AP loss replaces (refused, then set to None).
    separate_losses: ClassVar[tuple[str, ...]] = ("loss_bbox",)
    #: Whether the loc score compares decoded boxes (``reg_decoded_bbox=True`` is forced).
    decoded_boxes: ClassVar[bool] = True
    #: Keys added to ``loss_cls`` unless given (e.g. ``use_sigmoid`` for mmdet's AnchorHead).
    loss_cls_defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(
        self, *args: Any, loss_cls: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        name = type(self).__name__
        removed = [key for key in REMOVED_HEAD_KEYS if key in kwargs]
        if removed:
            raise ValueError(removed_keys_message(name, removed))
        loss_cls = ap_loss_config(name, loss_cls)
        for key, value in self.loss_cls_defaults.items():
            loss_cls.setdefault(key, value)
        reject_separate_losses(name, kwargs, self.separate_losses, decoded_boxes=self.decoded_boxes)
        if self.decoded_boxes:
            kwargs["reg_decoded_bbox"] = True
        super().__init__(*args, loss_cls=loss_cls, **kwargs)
        for key in self.separate_losses:
            setattr(self, key, None)


class AnchorAPLossHead(APLossHead):
    """Mixin for mmdet ``AnchorHead`` subclasses (RetinaNet, RPN) trained only by the
    Parameterized AP Loss: one loss over the prediction set B of Eq. (6), i.e. all FPN levels and
    all images of the batch, built from mmdet's own anchor targets.

    Constructor: :class:`APLossHead`; ``use_sigmoid=True`` is implied in ``loss_cls`` (mmdet's
    AnchorHead sizes its classifier from it: C outputs per anchor, 1 for the RPN).
    """

    #: Key of the loss in the dict ``loss_by_feat`` returns.
    loss_name = "loss_paploss"
    loss_cls_defaults: ClassVar[Mapping[str, Any]] = {"use_sigmoid": True}

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
            ``{loss_name: scalar}``.
        """
        logits, targets, loc_scores = self.prediction_set(
            cls_scores, bbox_preds, batch_gt_instances, batch_img_metas, batch_gt_instances_ignore
        )
        return {self.loss_name: self.loss_cls(logits, targets, loc_scores)}

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
            cls_scores: per level [B, A * C, H, W] classification logits (C = 1 for the RPN).
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
            pred_boxes, gt_boxes[pos_anchors], pos_entries, logits.shape[0], self.loss_cls.loc_score
        )
        return logits, targets, loc_scores.to(logits.dtype)
