"""Batched DETR matching (paploss.mmdet.matching) against mmdet's per-image HungarianAssigner.

- On random predictions and ground truths (images with 0, 1, a few and more ground truths than
  queries; two image sizes) the batched assigner gives exactly mmdet's assignment
  (``gt_inds``, ``labels``) and its costs equal mmdet's match costs to 1e-5, for the proxy's
  costs and for the softmax classification / xyxy L1 / IoU variants.
- Its per-image ``assign`` is mmdet's; an unsupported cost type is a ConfigError.
- The heads of both Deformable DETR proxy configs (PAPLoss and Focal + L1 + GIoU), built once
  with mmdet's assigner and once with the batched one from the same weights, give the same
  targets, losses and gradients from the same random decoder features.
- Both proxy configs use the batched assigner and heads that take it.
"""

from __future__ import annotations

import copy

import pytest
import torch

pytest.importorskip("mmdet")

from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

from paploss.errors import ConfigError  # noqa: E402
from paploss.mmdet.matching import (  # noqa: E402
    BatchedHungarianAssigner,
    BatchedTargetsMixin,
    PaddedGroundTruths,
    image_factors,
)
from tests.mmdet_helpers import CONFIG_DIR  # noqa: E402

PROXY_COSTS = [
    dict(type="FocalLossCost", weight=2.0),
    dict(type="BBoxL1Cost", weight=5.0, box_format="xywh"),
    dict(type="IoUCost", iou_mode="giou", weight=2.0),
]
OTHER_COSTS = [
    dict(type="ClassificationCost", weight=1.0),
    dict(type="BBoxL1Cost", weight=3.0, box_format="xyxy"),
    dict(type="IoUCost", iou_mode="iou", weight=1.5),
]
NUM_CLASSES = 10
NUM_QUERIES = 12
GT_COUNTS = (0, 1, 3, 4, 7, 15)  # 15 > NUM_QUERIES: every query is matched
SHAPES = ((64, 64), (48, 80))  # (h, w), alternating over the images


def _metas(num_imgs: int) -> list[dict]:
    return [dict(img_shape=SHAPES[i % 2]) for i in range(num_imgs)]


def _gt_instances(counts: tuple[int, ...], metas: list[dict], gen: torch.Generator) -> list:
    """Random xyxy pixel boxes inside each image and random labels."""
    out = []
    for count, meta in zip(counts, metas):
        h, w = meta["img_shape"]
        size = torch.tensor([w, h, w, h], dtype=torch.float32)
        xy = torch.rand(count, 2, generator=gen) * 0.7
        wh = 0.05 + torch.rand(count, 2, generator=gen) * 0.25
        boxes = torch.cat([xy, xy + wh], dim=1) * size
        labels = torch.randint(0, NUM_CLASSES, (count,), generator=gen)
        out.append(InstanceData(bboxes=boxes, labels=labels))
    return out


def _predictions(num_imgs: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """[bs, Q, C] logits and [bs, Q, 4] sigmoid normalized cxcywh boxes."""
    scores = torch.randn(num_imgs, NUM_QUERIES, NUM_CLASSES, generator=gen) * 2
    boxes = torch.randn(num_imgs, NUM_QUERIES, 4, generator=gen).sigmoid()
    return scores, boxes


def _pixel_xyxy(boxes: torch.Tensor, metas: list[dict]) -> torch.Tensor:
    """Normalized cxcywh [bs, Q, 4] -> xyxy pixels, written out (as the heads pass them)."""
    factors = image_factors(metas, boxes)
    cx, cy, w, h = boxes.unbind(-1)
    xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
    return xyxy * factors


@pytest.mark.parametrize("costs", [PROXY_COSTS, OTHER_COSTS], ids=["proxy", "other"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_assignment_and_costs_are_mmdets(costs: list[dict], seed: int) -> None:
    from mmdet.registry import TASK_UTILS

    init_default_scope("mmdet")
    gen = torch.Generator().manual_seed(seed)
    metas = _metas(len(GT_COUNTS))
    gts = _gt_instances(GT_COUNTS, metas, gen)
    scores, boxes = _predictions(len(GT_COUNTS), gen)
    bboxes = _pixel_xyxy(boxes, metas)
    reference = TASK_UTILS.build(dict(type="HungarianAssigner", match_costs=copy.deepcopy(costs)))
    batched = TASK_UTILS.build(
        dict(type="BatchedHungarianAssigner", match_costs=copy.deepcopy(costs))
    )
    padded = PaddedGroundTruths.from_instances(gts, like=bboxes)
    factors = image_factors(metas, bboxes)
    cost = batched.batch_cost(scores=scores, bboxes=bboxes, gts=padded, factors=factors)
    assignment = batched.assign_batch(scores=scores, bboxes=bboxes, gts=padded, factors=factors)
    assert assignment.counts == GT_COUNTS
    results = assignment.assign_results()
    for i, (gt, meta) in enumerate(zip(gts, metas)):
        preds = InstanceData(scores=scores[i], bboxes=bboxes[i])
        expected = reference.assign(pred_instances=preds, gt_instances=gt, img_meta=meta)
        torch.testing.assert_close(assignment.gt_inds[i], expected.gt_inds, rtol=0, atol=0)
        torch.testing.assert_close(assignment.labels[i], expected.labels, rtol=0, atol=0)
        assert results[i].num_gts == expected.num_gts
        torch.testing.assert_close(results[i].gt_inds, expected.gt_inds, rtol=0, atol=0)
        assert int((assignment.gt_inds[i] > 0).sum()) == min(len(gt), NUM_QUERIES)
        if len(gt) == 0:
            continue
        mmdet_cost = sum(
            c(pred_instances=preds, gt_instances=gt, img_meta=meta) for c in reference.match_costs
        )
        torch.testing.assert_close(cost[i, :, : len(gt)], mmdet_cost, rtol=0, atol=1e-5)


def test_per_image_assign_is_mmdets() -> None:
    from mmdet.registry import TASK_UTILS

    init_default_scope("mmdet")
    gen = torch.Generator().manual_seed(3)
    metas = _metas(1)
    (gt,) = _gt_instances((5,), metas, gen)
    scores, boxes = _predictions(1, gen)
    preds = InstanceData(scores=scores[0], bboxes=_pixel_xyxy(boxes, metas)[0])
    results = [
        TASK_UTILS.build(dict(type=kind, match_costs=copy.deepcopy(PROXY_COSTS))).assign(
            pred_instances=preds, gt_instances=gt, img_meta=metas[0]
        )
        for kind in ("HungarianAssigner", "BatchedHungarianAssigner")
    ]
    torch.testing.assert_close(results[0].gt_inds, results[1].gt_inds, rtol=0, atol=0)
    torch.testing.assert_close(results[0].labels, results[1].labels, rtol=0, atol=0)


@pytest.mark.parametrize(
    "cost",
    [
        dict(type="DiceCost"),
        dict(type="FocalLossCost", binary_input=True),
        dict(type="BinaryFocalLossCost"),
    ],
)
def test_unsupported_cost_is_a_config_error(cost: dict) -> None:
    init_default_scope("mmdet")
    with pytest.raises(ConfigError, match="use type='HungarianAssigner'"):
        BatchedHungarianAssigner(match_costs=[dict(type="BBoxL1Cost"), cost])


# ------------------------------------------------------------------------ heads of the configs
CONFIGS = {
    "paploss": ("proxy_deformable_detr_paploss.py", "PAPLossDeformableDETRHead"),
    "baseline": ("proxy_deformable_detr_focal_l1_giou.py", "DeformableDETRHead"),
}


def _head(config: str, head_type: str | None, assigner_type: str) -> torch.nn.Module:
    """The config's bbox_head as the DeformableDETR detector builds it, with the given head
    and assigner types, weights from torch seed 0."""
    from mmdet.registry import MODELS

    import paploss.mmdet  # noqa: F401  (registers the heads)

    init_default_scope("mmdet")
    model = Config.fromfile(str(CONFIG_DIR / config)).model
    head = copy.deepcopy(model.bbox_head)
    if head_type is not None:
        head.type = head_type
    train_cfg = copy.deepcopy(model.train_cfg)
    train_cfg.assigner.type = assigner_type
    head.update(
        share_pred_layer=not model.with_box_refine,
        num_pred_layer=model.decoder.num_layers,
        as_two_stage=model.as_two_stage,
        train_cfg=train_cfg,
        test_cfg=model.test_cfg,
    )
    torch.manual_seed(0)
    built = MODELS.build(head)
    built.init_weights()
    return built


def _head_pair(name: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(mmdet's matching, batched matching) heads of a config, same weights."""
    config, mmdet_type = CONFIGS[name]
    reference = _head(config, mmdet_type, "HungarianAssigner")
    batched = _head(config, None, "BatchedHungarianAssigner")
    batched.load_state_dict(reference.state_dict())
    assert isinstance(batched, BatchedTargetsMixin)
    assert type(batched.assigner) is BatchedHungarianAssigner
    assert type(reference.assigner).__name__ == "HungarianAssigner"
    return reference, batched


def _decoder_batch(
    head: torch.nn.Module, seed: int
) -> tuple[torch.Tensor, list[torch.Tensor], list, list[dict]]:
    """Random decoder states [L, bs, Q, D] and references, ground truths and metas (64 px)."""
    gen = torch.Generator().manual_seed(seed)
    counts = (0, 1, 4, 2, 3, 4, 1, 30)
    metas = [dict(img_shape=(64, 64)) for _ in counts]
    gts = _gt_instances(counts, metas, gen)
    num_layers, num_queries = head.num_pred_layer, 30
    states = torch.randn(num_layers, len(counts), num_queries, head.embed_dims, generator=gen)
    refs = [
        torch.rand(len(counts), num_queries, 4, generator=gen) * 0.8 + 0.1
        for _ in range(num_layers + 1)
    ]
    return states, refs, gts, metas


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_head_targets_losses_and_gradients_are_mmdets(name: str) -> None:
    reference, batched = _head_pair(name)
    states, refs, gts, metas = _decoder_batch(reference, seed=5)
    outputs = {}
    for key, head in (("mmdet", reference), ("batched", batched)):
        hidden = states.clone().requires_grad_(True)
        cls_scores, bbox_preds = head(hidden, refs)
        targets = head.get_targets(list(cls_scores[-1]), list(bbox_preds[-1]), gts, metas)
        losses = head.loss_by_feat(cls_scores, bbox_preds, None, None, gts, metas)
        total = sum(losses.values())
        total.backward()
        outputs[key] = (targets, losses, hidden.grad)
    (ref_targets, ref_losses, ref_grad), (targets, losses, grad) = (
        outputs["mmdet"],
        outputs["batched"],
    )
    for expected, got in zip(ref_targets[:4], targets[:4]):
        assert len(expected) == len(got) == len(gts)
        for e, g in zip(expected, got):
            torch.testing.assert_close(g, e, rtol=0, atol=1e-7)
    assert ref_targets[4:] == targets[4:]  # numbers of positives and negatives
    assert targets[4] == sum(min(len(g), 30) for g in gts)
    assert sorted(losses) == sorted(ref_losses) and len(losses) >= 2
    for key, value in ref_losses.items():
        assert torch.isfinite(value)
        torch.testing.assert_close(losses[key], value, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_proxy_configs_use_the_batched_assigner(name: str) -> None:
    from mmdet.registry import MODELS

    import paploss.mmdet  # noqa: F401  (registers the heads)

    model = Config.fromfile(str(CONFIG_DIR / CONFIGS[name][0])).model
    assert model.train_cfg.assigner.type == "BatchedHungarianAssigner"
    assert model.train_cfg.assigner.match_costs == PROXY_COSTS
    assert issubclass(MODELS.get(model.bbox_head.type), BatchedTargetsMixin)
