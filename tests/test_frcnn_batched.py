"""The batched Faster R-CNN steps (paploss.mmdet.batched, batched_assign) give mmdet's per-image results exactly.

- ``rpn_proposals`` against ``RPNHead.predict_by_feat`` on random head outputs (several images of
  different sizes, logits with many ties, level truncation by ``nms_pre`` or not, the size
  filter).
- ``BatchedAnchorTargetsMixin.get_targets`` against ``AnchorHead.get_targets`` (the same head with
  ``batched_targets = False``) on random ground truth with 0, 1 and many boxes per image,
  duplicated boxes (IoU ties), anchors outside the image, and the assigner's variants.
- One ``model.loss`` (and its gradients) and one ``predict`` of the Faster R-CNN proxy configs,
  seeded, with ``BatchedFasterRCNN`` and the batched targets against mmdet's ``FasterRCNN`` with
  the per-image targets.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmdet")

from mmdet.models.dense_heads import RPNHead  # noqa: E402
from mmengine.config import Config, ConfigDict  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

from paploss.mmdet._common import set_data_root  # noqa: E402
from paploss.mmdet.batched import (  # noqa: E402
    BatchedFasterRCNN,
    BatchedStandardRoIHead,
    batched_proposals_supported,
    rpn_proposals,
)
from paploss.mmdet.batched_assign import (  # noqa: E402
    BatchedAnchorTargetsMixin,
    batched_targets_supported,
    max_iou_assign,
)
from tests.mmdet_helpers import CONFIG_DIR, build_model, tiny_proxy_root  # noqa: E402

ANCHORS = dict(
    type="AnchorGenerator",
    octave_base_scale=3.0,
    scales_per_octave=2,
    ratios=[1.0, 2.0],
    strides=[4, 8, 16],
)
FEATMAPS = [(16, 16), (8, 8), (4, 4)]  # a 64 x 64 padded batch: 1024, 256, 64 anchors per level
IMG_SHAPES = [(64, 64), (50, 64), (64, 41), (33, 29), (64, 64)]


def _metas(shapes: list[tuple[int, int]] = IMG_SHAPES) -> list[dict]:
    return [dict(img_shape=shape, pad_shape=(64, 64), scale_factor=(1.0, 1.0)) for shape in shapes]


class _BatchedRPNHead(BatchedAnchorTargetsMixin, RPNHead):
    """mmdet's RPN head with the batched targets (``batched_targets = False``: mmdet's code)."""


def _rpn_train_cfg(**assigner: object) -> ConfigDict:
    base = dict(
        type="MaxIoUAssigner",
        pos_iou_thr=0.7,
        neg_iou_thr=0.3,
        min_pos_iou=0.3,
        match_low_quality=True,
        ignore_iof_thr=-1,
    )
    base.update(assigner)
    return ConfigDict(
        assigner=base,
        sampler=dict(type="PseudoSampler"),
        allowed_border=-1,
        pos_weight=-1,
        debug=False,
    )


def _head(train_cfg: ConfigDict | None = None, test_cfg: dict | None = None) -> _BatchedRPNHead:
    torch.manual_seed(0)
    return _BatchedRPNHead(
        in_channels=8,
        feat_channels=8,
        anchor_generator=ANCHORS,
        bbox_coder=dict(
            type="DeltaXYWHBBoxCoder",
            target_means=[0.0, 0.0, 0.0, 0.0],
            target_stds=[0.1, 0.1, 0.2, 0.2],
        ),
        reg_decoded_bbox=True,
        train_cfg=train_cfg,
        test_cfg=ConfigDict(test_cfg) if test_cfg is not None else None,
    )


def _head_outputs(num_imgs: int, *, ties: bool, seed: int) -> tuple[list, list]:
    gen = torch.Generator().manual_seed(seed)
    cls_scores, bbox_preds = [], []
    for h, w in FEATMAPS:
        if ties:  # 7 distinct logits: the ranking is decided by tie-breaking
            logits = torch.randint(-3, 4, (num_imgs, 4, h, w), generator=gen).float()
        else:
            logits = torch.randn(num_imgs, 4, h, w, generator=gen) * 3
        cls_scores.append(logits)
        bbox_preds.append(torch.randn(num_imgs, 16, h, w, generator=gen) * 0.8)
    return cls_scores, bbox_preds


def _assert_instances_equal(got: InstanceData, want: InstanceData, where: str) -> None:
    assert set(got.keys()) == set(want.keys()), where
    for key in want.keys():
        a, b = got.get(key), want.get(key)
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where} {key}: {a.shape} {b.shape}"
        assert torch.equal(a, b), f"{where} {key} differs"


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize(
    "test_cfg",
    [
        # the proxy's: levels of 1024 and 256 anchors cut to 100, the 64 of P4 kept
        dict(
            nms_pre=100, max_per_img=100, nms=dict(type="nms", iou_threshold=0.7), min_bbox_size=0
        ),
        # no cut, a size filter that removes boxes, fewer kept boxes
        dict(nms_pre=-1, max_per_img=30, nms=dict(type="nms", iou_threshold=0.5), min_bbox_size=6),
        dict(nms_pre=37, max_per_img=1000, nms=dict(type="nms", iou_threshold=0.9)),
    ],
)
def test_rpn_proposals_equal_mmdet_predict_by_feat(ties: bool, test_cfg: dict) -> None:
    head = _head(test_cfg=test_cfg)
    assert batched_proposals_supported(head)
    metas = _metas()
    cls_scores, bbox_preds = _head_outputs(len(metas), ties=ties, seed=3)
    want = head.predict_by_feat(cls_scores, bbox_preds, batch_img_metas=metas)
    got = rpn_proposals(head, cls_scores, bbox_preds, metas)
    assert len(got) == len(want)
    for img_id, (g, w) in enumerate(zip(got, want, strict=True)):
        assert len(w) > 0
        _assert_instances_equal(g, w, f"image {img_id}")


def test_rpn_proposals_with_every_box_filtered_out() -> None:
    cfg = dict(
        nms_pre=50, max_per_img=10, nms=dict(type="nms", iou_threshold=0.7), min_bbox_size=500
    )
    head = _head(test_cfg=cfg)
    metas = _metas()[:2]
    cls_scores, bbox_preds = _head_outputs(2, ties=False, seed=1)
    want = head.predict_by_feat(cls_scores, bbox_preds, batch_img_metas=metas)
    got = rpn_proposals(head, cls_scores, bbox_preds, metas)
    for g, w in zip(got, want, strict=True):
        assert len(w) == 0
        _assert_instances_equal(g, w, "empty")


def _ground_truth(seed: int, counts: list[int]) -> list[InstanceData]:
    """Random boxes inside 64 x 64, some duplicated (equal IoUs) and some equal to an anchor."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for count in counts:
        xy = torch.rand(count, 2, generator=gen) * 48
        wh = 4 + torch.rand(count, 2, generator=gen) * 40
        boxes = torch.cat([xy, (xy + wh).clamp(max=64)], dim=1)
        if count >= 3:
            boxes[2] = boxes[0]  # a duplicated gt: ties between gts on every anchor
        if count >= 4:
            boxes[3] = torch.tensor([2.0, 2.0, 14.0, 14.0])  # exactly an anchor of P2
        labels = torch.randint(0, 3, (count,), generator=gen)
        out.append(InstanceData(bboxes=boxes, labels=labels))
    return out


@pytest.mark.parametrize(
    "assigner, allowed_border, pos_weight",
    [
        (dict(), -1, -1),  # the proxy's RPN
        (dict(), 0, -1),  # anchors outside the smaller images take no part
        (dict(gt_max_assign_all=False), 0, 2.0),
        (dict(match_low_quality=False, neg_iou_thr=(0.1, 0.4)), -1, -1),
        (dict(pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.0), 4, -1),
    ],
)
def test_batched_anchor_targets_equal_mmdet_get_targets(
    assigner: dict, allowed_border: int, pos_weight: float
) -> None:
    train_cfg = _rpn_train_cfg(**assigner)
    train_cfg.allowed_border = allowed_border
    train_cfg.pos_weight = pos_weight
    head = _head(train_cfg=train_cfg)
    head.num_classes = 3  # labels 0..2 from the gt, 3 = background
    metas = _metas()
    gts = _ground_truth(seed=5, counts=[0, 1, 7, 4, 3])
    anchors, flags = head.get_anchors(FEATMAPS, metas, device="cpu")
    got = head.get_targets(anchors, flags, gts, metas)
    head.batched_targets = False
    ref_anchors, ref_flags = head.get_anchors(FEATMAPS, metas, device="cpu")
    want = head.get_targets(ref_anchors, ref_flags, gts, metas)
    for a, b in zip(flags, ref_flags, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert len(got) == len(want) == 5
    for name, g, w in zip(("labels", "label_weights", "bbox_targets", "bbox_weights"), got, want):
        assert len(g) == len(w) == len(FEATMAPS)
        for level, (gl, wl) in enumerate(zip(g, w, strict=True)):
            assert gl.dtype == wl.dtype and gl.shape == wl.shape, (name, level)
            assert torch.equal(gl, wl), f"{name} level {level} differs"
    assert got[4] == want[4]  # avg_factor
    labels = torch.cat(want[0], dim=1)
    assert (labels < 3).sum() > 0, "no positive anchor: the case is not exercised"


def test_batched_anchor_targets_fall_back_for_a_random_sampler() -> None:
    """With mmdet's RandomSampler (the baselines' RPN) the per-image code runs: same RNG use."""
    train_cfg = _rpn_train_cfg()
    train_cfg.sampler = dict(
        type="RandomSampler", num=64, pos_fraction=0.5, neg_pos_ub=-1, add_gt_as_proposals=False
    )
    head = _head(train_cfg=train_cfg)
    metas = _metas()
    gts = _ground_truth(seed=2, counts=[2, 1, 3, 0, 5])
    anchors, flags = head.get_anchors(FEATMAPS, metas, device="cpu")
    torch.manual_seed(11)
    got = head.get_targets(anchors, flags, gts, metas)
    head.batched_targets = False
    torch.manual_seed(11)
    want = head.get_targets(*head.get_anchors(FEATMAPS, metas, device="cpu"), gts, metas)
    for g, w in zip(got[:4], want[:4], strict=True):
        assert all(torch.equal(a, b) for a, b in zip(g, w, strict=True))


@pytest.mark.parametrize(
    "assigner",
    [
        # the proxy's RoI assigner
        dict(pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5, match_low_quality=False),
        dict(pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3, match_low_quality=True),
        dict(pos_iou_thr=0.6, neg_iou_thr=(0.1, 0.5), min_pos_iou=0.2, gt_max_assign_all=False),
    ],
)
def test_max_iou_assign_of_padded_proposals_equals_mmdet_assign(assigner: dict) -> None:
    """Proposals of different counts per image (0 to 40, padded), gts 0 / 1 / many."""
    from mmdet.models.task_modules.assigners import MaxIoUAssigner

    mmdet_assigner = MaxIoUAssigner(ignore_iof_thr=-1, **assigner)
    gts = _ground_truth(seed=7, counts=[3, 0, 1, 6, 2, 4])
    counts = [40, 12, 0, 33, 25, 7]
    props = _ground_truth(seed=8, counts=counts)
    props[0].bboxes[:3] = gts[0].bboxes  # proposals equal to gts (IoU 1, ties)
    most = max(counts)
    padded = torch.zeros(len(counts), most, 4)
    for i, p in enumerate(props):
        padded[i, : counts[i]] = p.bboxes
    valid = torch.arange(most)[None, :] < torch.tensor(counts)[:, None]
    gt_inds, max_overlaps = max_iou_assign(mmdet_assigner, padded, [g.bboxes for g in gts], valid)
    for i, (p, g) in enumerate(zip(props, gts, strict=True)):
        want = mmdet_assigner.assign(InstanceData(priors=p.bboxes), g)
        assert torch.equal(gt_inds[i, : counts[i]], want.gt_inds), i
        assert torch.equal(max_overlaps[i, : counts[i]], want.max_overlaps), i
    assert (gt_inds[valid] > 0).any() and (gt_inds[valid] == 0).any()


# ----------------------------------------------------------------------------------- proxy model
BATCH = 8


@pytest.fixture(scope="module")
def proxy_batch() -> tuple[Path, dict]:
    root = tiny_proxy_root()
    cfg = Config.fromfile(str(CONFIG_DIR / "proxy_faster_rcnn_paploss.py"))
    set_data_root(cfg, root)
    cfg.train_dataloader.batch_size = BATCH
    init_default_scope("mmdet")
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    return root, next(iter(loader))


def _models(name: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The config's model and the same model as mmdet's FasterRCNN with per-image targets."""
    cfg = Config.fromfile(str(CONFIG_DIR / name))
    assert cfg.model.type == "BatchedFasterRCNN"
    batched = build_model(cfg)
    plain_cfg = copy.deepcopy(cfg)
    plain_cfg.model.type = "FasterRCNN"
    assert plain_cfg.model.roi_head.type == "BatchedStandardRoIHead"
    plain_cfg.model.roi_head.type = "StandardRoIHead"
    plain = build_model(plain_cfg)
    assert isinstance(batched, BatchedFasterRCNN) and not isinstance(plain, BatchedFasterRCNN)
    assert isinstance(batched.roi_head, BatchedStandardRoIHead)
    assert not isinstance(plain.roi_head, BatchedStandardRoIHead)
    assert batched_proposals_supported(batched.rpn_head)
    if name == "proxy_faster_rcnn_paploss.py":  # PseudoSampler: the batched targets apply
        assert batched_targets_supported(batched.rpn_head, None)
    if isinstance(plain.rpn_head, BatchedAnchorTargetsMixin):
        plain.rpn_head.batched_targets = False
    for (key, a), b in zip(batched.state_dict().items(), plain.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
    return batched, plain


def _loss_and_grads(model: torch.nn.Module, batch: dict, seed: int) -> tuple[dict, dict]:
    model.train()
    model.zero_grad()
    data = model.data_preprocessor(copy.deepcopy(batch), True)
    torch.manual_seed(seed)
    losses = model(**data, mode="loss")
    total, _ = model.parse_losses(losses)
    total.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    return losses, grads


@pytest.mark.parametrize("name", ["proxy_faster_rcnn_paploss.py", "proxy_faster_rcnn_ce_l1.py"])
def test_proxy_model_loss_is_identical_with_the_batched_steps(
    name: str, proxy_batch: tuple[Path, dict]
) -> None:
    _, batch = proxy_batch
    batched, plain = _models(name)
    for seed in (0, 1):
        got, got_grads = _loss_and_grads(batched, batch, seed)
        want, want_grads = _loss_and_grads(plain, batch, seed)
        assert list(got) == list(want)  # same keys in the same order (the summation order)
        for key in want:
            a, b = got[key], want[key]
            if isinstance(b, list):
                assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True)), key
            else:
                assert torch.equal(a, b), f"{key}: {a} != {b}"
        assert got_grads.keys() == want_grads.keys() and got_grads
        for key in want_grads:
            assert torch.equal(got_grads[key], want_grads[key]), key


def test_proxy_model_predictions_are_identical_with_the_batched_steps(
    proxy_batch: tuple[Path, dict],
) -> None:
    _, batch = proxy_batch
    batched, plain = _models("proxy_faster_rcnn_paploss.py")
    # a few updates so that the scores are not those of the initialization
    for model in (batched, plain):
        optim = torch.optim.SGD(model.parameters(), lr=0.02)
        for seed in range(2):
            _loss_and_grads(model, batch, seed)
            optim.step()
    outputs = []
    for model in (batched, plain):
        model.eval()
        with torch.no_grad():
            data = model.data_preprocessor(copy.deepcopy(batch), False)
            outputs.append(model(**data, mode="predict"))
    for img_id, (g, w) in enumerate(zip(*outputs, strict=True)):
        assert len(w.pred_instances) > 0
        _assert_instances_equal(g.pred_instances, w.pred_instances, f"image {img_id}")
