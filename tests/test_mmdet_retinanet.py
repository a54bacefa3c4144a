"""PAPLossRetinaHead: B/P/loc-score construction, the gradient scale, training and evaluation on
the proxy data through mmengine/mmdet (CocoMetric), and the COCO config."""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmdet")
pytest.importorskip("sklearn")

from mmdet.registry import MODELS  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

import paploss.mmdet  # noqa: E402,F401  (registers the heads)
from paploss import LossParams, ParameterizedAPLoss  # noqa: E402
from paploss.mmdet._common import build_prediction_set, set_data_root  # noqa: E402
from paploss.mmdet.loss import ParameterizedAPLoss as MMDetAPLoss  # noqa: E402
from paploss.mmdet.retinanet import PAPLossRetinaHead  # noqa: E402
from paploss.proxy import generate_proxy_dataset  # noqa: E402

register_all_modules(init_default_scope=True)

CONFIGS = Path(__file__).resolve().parents[1] / "studies" / "configs"

# ---------------------------------------------------------------------------- tiny hand-built head
# Two levels: stride 8 (3 x 3 locations) and stride 16 (2 x 2), one square anchor per location of
# side 16 and 32, on 24 x 24 images. mmdet's AnchorGenerator centres anchors on (stride * x, stride
# * y) (center_offset 0).
NUM_CLASSES = 3
LEVELS = ((8, 3, 16.0), (16, 2, 32.0))  # (stride, featmap side, anchor side)
TRAIN_CFG = dict(
    assigner=dict(
        type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0, ignore_iof_thr=-1
    ),
    sampler=dict(type="PseudoSampler"),
    allowed_border=-1,
    pos_weight=-1,
    debug=False,
)
GTS = (  # per image: (boxes xyxy, labels); chosen to give positive, negative and ignored anchors
    ([[2.0, 0.0, 18.0, 16.0], [11.0, 10.0, 23.0, 24.0]], [2, 0]),
    ([[-1.0, 0.0, 30.0, 29.0], [9.0, 2.0, 22.0, 12.0]], [1, 1]),
)


def _tiny_head(loss: dict | None = None, **kwargs) -> PAPLossRetinaHead:
    """The tiny head; ``loss`` updates its ``loss_cls``, ``kwargs`` its config."""
    cfg = dict(
        type="PAPLossRetinaHead",
        num_classes=NUM_CLASSES,
        in_channels=4,
        stacked_convs=1,
        feat_channels=4,
        anchor_generator=dict(
            type="AnchorGenerator",
            octave_base_scale=2,
            scales_per_octave=1,
            ratios=[1.0],
            strides=[s for s, _, _ in LEVELS],
        ),
        bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[1.0] * 4),
        train_cfg=TRAIN_CFG,
        loss_cls=dict(type="ParameterizedAPLoss", params=dict(preset="paper-retinanet")),
    )
    cfg["loss_cls"].update(loss or {})
    cfg.update(kwargs)
    head = MODELS.build(cfg)
    head.init_weights()
    return head


def _tiny_batch(seed: int = 0, dtype: torch.dtype = torch.float64):
    gen = torch.Generator().manual_seed(seed)
    cls_scores = [
        torch.randn(2, NUM_CLASSES, n, n, generator=gen, dtype=dtype).requires_grad_()
        for _, n, _ in LEVELS
    ]
    bbox_preds = [
        (0.2 * torch.randn(2, 4, n, n, generator=gen, dtype=dtype)).requires_grad_()
        for _, n, _ in LEVELS
    ]
    gts = [
        InstanceData(bboxes=torch.tensor(b, dtype=torch.float32), labels=torch.tensor(lab))
        for b, lab in GTS
    ]
    metas = [dict(img_shape=(24, 24), pad_shape=(24, 24), batch_input_shape=(24, 24))] * 2
    return cls_scores, bbox_preds, gts, metas


def _iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _giou01(a: list[float], b: list[float]) -> float:
    hull = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
    giou = iw * ih / union - (hull - union) / hull
    return (giou + 1.0) / 2.0


def _direct_prediction_set(cls_scores, bbox_preds, kind: str = "giou"):
    """B, P and l(b_i) written out from the definitions, one (anchor, class) entry at a time."""
    logits, targets, locs = [], [], []
    counts = dict(pos=0, neg=0, ignored=0)
    for img, (gt_boxes, gt_labels) in enumerate(GTS):
        anchors, where = [], []
        for lvl, (stride, n, side) in enumerate(LEVELS):
            for y in range(n):
                for x in range(n):
                    cx, cy = stride * x, stride * y
                    anchors.append([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
                    where.append((lvl, y, x))
        ious = [[_iou(a, g) for g in gt_boxes] for a in anchors]
        # MaxIoUAssigner: negative below 0.4, positive from 0.5 (best gt), then every gt claims
        # its best anchors (min_pos_iou=0, gt_max_assign_all); anything else is ignored.
        assigned = []
        for row in ious:
            best = max(row)
            assigned.append(0 if best < 0.4 else row.index(best) + 1 if best >= 0.5 else -1)
        for g in range(len(gt_boxes)):
            g_best = max(row[g] for row in ious)
            for i, row in enumerate(ious):
                if row[g] == g_best:
                    assigned[i] = g + 1
        for i, (anchor, (lvl, y, x)) in enumerate(zip(anchors, where)):
            if assigned[i] < 0:
                counts["ignored"] += 1
                continue
            counts["pos" if assigned[i] > 0 else "neg"] += 1
            d = bbox_preds[lvl][img, :, y, x].detach().tolist()
            aw, ah = anchor[2] - anchor[0], anchor[3] - anchor[1]
            cx, cy = (
                (anchor[0] + anchor[2]) / 2 + d[0] * aw,
                (anchor[1] + anchor[3]) / 2 + d[1] * ah,
            )
            w, h = aw * math.exp(d[2]), ah * math.exp(d[3])
            pred = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
            for c in range(NUM_CLASSES):
                logits.append(float(cls_scores[lvl][img, c, y, x]))
                is_pos = assigned[i] > 0 and gt_labels[assigned[i] - 1] == c
                targets.append(1 if is_pos else 0)
                gt = gt_boxes[assigned[i] - 1] if is_pos else None
                if not is_pos:
                    locs.append(0.0)
                elif kind == "giou":
                    locs.append(_giou01(pred, gt))
                elif kind == "iou":
                    locs.append(_iou(pred, gt))
                else:  # "l1": 1 / (1 + mean |pred - gt| in units of the gt's width / height)
                    gw, gh = gt[2] - gt[0], gt[3] - gt[1]
                    d = sum(abs(p - q) / s for p, q, s in zip(pred, gt, (gw, gh, gw, gh))) / 4
                    locs.append(1.0 / (1.0 + d))
    return (
        torch.tensor(logits, dtype=torch.float64),
        torch.tensor(targets),
        torch.tensor(locs, dtype=torch.float64),
        counts,
    )


@pytest.mark.parametrize("kind", ["giou", "iou", "l1"])
def test_prediction_set_matches_direct_computation(kind: str) -> None:
    head = _tiny_head(loss=dict(loc_score=kind)).double()
    cls_scores, bbox_preds, gts, metas = _tiny_batch()
    logits, targets, locs = head.prediction_set(cls_scores, bbox_preds, gts, metas)
    exp_logits, exp_targets, exp_locs, counts = _direct_prediction_set(cls_scores, bbox_preds, kind)
    # the hand-built batch exercises every case
    assert counts == dict(pos=4, neg=21, ignored=1)
    assert logits.shape == exp_logits.shape == ((counts["pos"] + counts["neg"]) * NUM_CLASSES,)
    torch.testing.assert_close(logits.detach(), exp_logits)
    assert targets.tolist() == exp_targets.tolist()
    torch.testing.assert_close(locs.detach(), exp_locs)

    # and the head's loss is the loss of this prediction set
    loss = head.loss_by_feat(cls_scores, bbox_preds, gts, metas)
    assert set(loss) == {"loss_paploss"}
    expected = ParameterizedAPLoss(dict(preset="paper-retinanet"))(
        exp_logits, exp_targets, exp_locs
    )
    torch.testing.assert_close(loss["loss_paploss"].detach(), expected)


def test_build_prediction_set_against_loops() -> None:
    gen = torch.Generator().manual_seed(1)
    num, classes = 40, 5
    cls_logits = torch.randn(num, classes, generator=gen)
    labels = torch.randint(0, classes + 1, (num,), generator=gen)
    labels[labels == classes - 1] = classes  # many backgrounds
    weights = (torch.rand(num, generator=gen) > 0.2).float()
    logits, targets, pos_entries, pos_rows = build_prediction_set(
        cls_logits, labels, weights, classes
    )
    exp_logits, exp_targets, exp_rows = [], [], []
    for m in range(num):
        if weights[m] <= 0:
            continue
        for c in range(classes):
            exp_logits.append(float(cls_logits[m, c]))
            exp_targets.append(int(labels[m] == c))
            if labels[m] == c:
                exp_rows.append(m)
    assert logits.tolist() == exp_logits
    assert targets.tolist() == exp_targets
    assert pos_entries.tolist() == [i for i, t in enumerate(exp_targets) if t == 1]
    assert pos_rows.tolist() == exp_rows
    with pytest.raises(ValueError, match="labels must lie in"):
        build_prediction_set(cls_logits, labels + 2, weights, classes)
    with pytest.raises(ValueError, match="cls_logits must be"):
        build_prediction_set(cls_logits[:, :3], labels, weights, classes)


def test_gradient_scale_scales_box_branch_only() -> None:
    torch.manual_seed(0)
    feats = [torch.randn(2, 4, n, n, dtype=torch.float64) for _, n, _ in LEVELS]
    _, _, gts, metas = _tiny_batch()
    grads = {}
    for scale in (1.0, 3.5):
        torch.manual_seed(0)
        params = dict(preset="paper-retinanet", gradient_scale=scale)
        head = _tiny_head(loss=dict(params=params)).double()
        inputs = [f.clone().requires_grad_() for f in feats]
        loss = head.loss(inputs, _data_samples(gts, metas))["loss_paploss"]
        loss.backward()
        grads[scale] = {n: p.grad.clone() for n, p in head.named_parameters()}
        grads[scale]["input"] = torch.cat([f.grad.flatten() for f in inputs])
    box = [n for n in grads[1.0] if n.startswith(("reg_convs", "retina_reg"))]
    cls = [n for n in grads[1.0] if n.startswith(("cls_convs", "retina_cls"))]
    assert box and cls and len(box) + len(cls) + 1 == len(grads[1.0])
    for name in box:
        assert grads[1.0][name].abs().sum() > 0, name
        torch.testing.assert_close(grads[3.5][name], 3.5 * grads[1.0][name])
    for name in cls:
        assert grads[1.0][name].abs().sum() > 0, name
        torch.testing.assert_close(grads[3.5][name], grads[1.0][name])
    # the features feed both branches: their gradient is the cls part plus 3.5 x the box part
    assert not torch.allclose(grads[3.5]["input"], grads[1.0]["input"])


def _data_samples(gts, metas):
    from mmdet.structures import DetDataSample

    samples = []
    for gt, meta in zip(gts, metas):
        sample = DetDataSample(metainfo=meta)
        sample.gt_instances = gt
        samples.append(sample)
    return samples


def test_loc_score_kinds_and_config_errors() -> None:
    cls_scores, bbox_preds, gts, metas = _tiny_batch()
    scores = {}
    for kind in ("giou", "iou", "l1"):
        head = _tiny_head(loss=dict(loc_score=kind)).double()
        _, targets, locs = head.prediction_set(cls_scores, bbox_preds, gts, metas)
        scores[kind] = locs[targets == 1]
        assert ((locs >= 0) & (locs <= 1)).all() and (locs[targets == 0] == 0).all()
    assert not torch.allclose(scores["giou"], scores["iou"])
    assert not torch.allclose(scores["l1"], scores["giou"])
    # l1 is paploss.localization's kind "l1" on the decoded boxes
    assert (scores["l1"] > 0).all()

    with pytest.raises(ValueError, match="loc_score"):
        _tiny_head(loss=dict(loc_score="diou"))
    with pytest.raises(ValueError, match="unknown ParameterizedAPLoss keys"):
        _tiny_head(loss=dict(gamma=2.0))
    with pytest.raises(ValueError, match="loss_cls"):
        _tiny_head(loss_cls=dict(type="FocalLoss", use_sigmoid=True))
    with pytest.raises(ValueError, match="loss_bbox"):
        _tiny_head(loss_bbox=dict(type="GIoULoss"))
    with pytest.raises(ValueError, match="reg_decoded_bbox"):
        _tiny_head(reg_decoded_bbox=False)
    with pytest.raises(ValueError, match="preset"):
        _tiny_head(loss=dict(params=dict(preset="nope")))
    loss = MODELS.build(dict(type="ParameterizedAPLoss", topk=100, loc_score="l1"))
    assert loss.loc_score == "l1" and loss.topk == 100 and loss.backend == "auto"
    loss = MODELS.build(
        dict(
            type="ParameterizedAPLoss",
            params=dict(preset="square", gradient_scale=2.0),
            release_compatible=True,
        )
    )
    assert loss.release_compatible and loss.loc_score == "giou"
    assert loss.params == LossParams.preset("square").with_gradient_scale(2.0)


def test_loss_params_from_file_and_search_values(tmp_path: Path) -> None:
    params = LossParams.preset("paper-retinanet")
    params.save(tmp_path / "best.json")
    head = _tiny_head(loss=dict(params=dict(file=str(tmp_path / "best.json"))))
    assert head.loss_cls.params == params
    head = _tiny_head(loss=dict(params=params.to_search_params()))
    assert head.loss_cls.params.gradient_scale == pytest.approx(params.gradient_scale)
    head = _tiny_head(loss=dict(params=params.to_dict()))
    assert head.loss_cls.params == params


def test_loss_weight_scales_the_head_loss_and_its_gradients() -> None:
    cls_scores, bbox_preds, gts, metas = _tiny_batch()
    values, grads = {}, {}
    for weight in (1.0, 2.5):
        head = _tiny_head(loss=dict(loss_weight=weight)).double()
        values[weight] = head.loss_by_feat(cls_scores, bbox_preds, gts, metas)["loss_paploss"]
        grads[weight] = torch.autograd.grad(values[weight], [*cls_scores, *bbox_preds])
    torch.testing.assert_close(values[2.5], 2.5 * values[1.0])
    assert any(g.abs().sum() > 0 for g in grads[1.0])
    for g1, g25 in zip(grads[1.0], grads[2.5]):
        torch.testing.assert_close(g25, 2.5 * g1)


def test_removed_head_arguments_name_the_loss_cls_spelling() -> None:
    """``loss_params`` / ``loss_options`` (paploss 0.1) are refused with the replacement."""
    migration = (
        r"PAPLossRetinaHead: loss_params= / loss_options= were removed in paploss 0.2.0; write "
        r"loss_cls=dict\(type='ParameterizedAPLoss', params=<loss_params>, \*\*<loss_options>\)"
    )
    with pytest.raises(ValueError, match=migration):
        _tiny_head(
            loss_cls=None, loss_params=dict(preset="linear"), loss_options=dict(loc_score="l1")
        )
    with pytest.raises(ValueError, match="PAPLossRetinaHead: loss_options= were removed"):
        _tiny_head(loss_options=dict(loc_score="l1"))


def test_no_positives_gives_zero_connected_loss() -> None:
    head = _tiny_head().double()
    cls_scores, bbox_preds, _, metas = _tiny_batch()
    empty = [InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0).long())] * 2
    loss = head.loss_by_feat(cls_scores, bbox_preds, empty, metas)["loss_paploss"]
    assert loss.item() == 0.0
    loss.backward()
    assert cls_scores[0].grad is not None


# ---------------------------------------------------------------------------- proxy training
@pytest.fixture(scope="module")
def tiny_proxy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("proxy") / "data"
    generate_proxy_dataset(root, seed=5, num_train=16, num_eval=8, num_val=8)
    return root


def _proxy_cfg(name: str, root: Path, work_dir: Path) -> Config:
    cfg = Config.fromfile(str(CONFIGS / name))
    set_data_root(cfg, root)
    cfg.work_dir = str(work_dir)
    cfg.train_dataloader.batch_size = 4
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=100)
    cfg.default_hooks.visualization = dict(type="DetVisualizationHook", draw=False)
    cfg.log_level = "WARNING"
    return cfg


def test_proxy_config_trains_with_the_loss_and_evaluates_with_cocometric(
    tiny_proxy: Path, tmp_path: Path
) -> None:
    from mmengine.runner import Runner

    cfg = _proxy_cfg("proxy_retinanet_paploss.py", tiny_proxy, tmp_path)
    assert cfg.val_evaluator.ann_file == str(tiny_proxy / "eval" / "annotations.json")
    runner = Runner.from_cfg(cfg)
    head = runner.model.bbox_head
    assert isinstance(head, PAPLossRetinaHead) and isinstance(head.loss_cls, MMDetAPLoss)
    assert head.loss_bbox is None
    before = {n: p.detach().clone() for n, p in runner.model.named_parameters()}

    # one explicit step: finite loss, gradients in both branches and the neck; the pretrained
    # backbone is frozen (the proxy config's frozen_stages=4)
    batch = next(iter(runner.train_dataloader))
    data = runner.model.data_preprocessor(batch, True)
    losses = runner.model(**data, mode="loss")
    assert set(losses) == {"loss_paploss"} and torch.isfinite(losses["loss_paploss"])
    losses["loss_paploss"].backward()
    for name in (
        "bbox_head.retina_cls.weight",
        "bbox_head.retina_reg.weight",
        "bbox_head.reg_convs.0.conv.weight",
        "neck.lateral_convs.0.conv.weight",
    ):
        grad = dict(runner.model.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    assert not runner.model.backbone.conv1.weight.requires_grad
    runner.model.zero_grad()

    runner.train()  # 4 iterations + ValLoop on D_eval through CocoMetric
    history = runner.message_hub.get_scalar("train/loss_paploss")
    values = history.data[0]
    assert len(values) == 4 and all(math.isfinite(v) for v in values)
    after = dict(runner.model.named_parameters())
    for name in ("bbox_head.retina_cls.weight", "bbox_head.retina_reg.weight"):
        assert not torch.equal(before[name], after[name].detach()), name
    metrics = runner.val_loop.run()
    assert set(metrics) >= {"coco/bbox_mAP", "coco/bbox_mAP_50", "coco/bbox_mAP_s"}


OVERFIT_ITERS = 20
OVERFIT_MIN_AP = 0.08
"""AP on the 8 tiny proxy images trained on after OVERFIT_ITERS iterations: measured 0.137
(0.033 after 1 iteration, the level of a head whose loss does not train it)."""


def test_proxy_retinanet_reaches_an_ap_on_the_images_it_trained_on(tmp_path: Path) -> None:
    from tests.mmdet_helpers import tiny_proxy_root, train_and_evaluate

    cfg = Config.fromfile(str(CONFIGS / "proxy_retinanet_paploss.py"))
    result = train_and_evaluate(
        cfg, tiny_proxy_root(), tmp_path, iters=OVERFIT_ITERS, evaluate_on="train"
    )
    assert len(result.losses) == OVERFIT_ITERS
    assert result.metrics["coco/bbox_mAP"] >= OVERFIT_MIN_AP, result.metrics


@pytest.mark.parametrize("name", ["proxy_retinanet_focal_l1.py", "proxy_retinanet_focal_giou.py"])
def test_baseline_configs_build_and_take_a_step(
    name: str, tiny_proxy: Path, tmp_path: Path
) -> None:
    from mmengine.runner import Runner

    runner = Runner.from_cfg(_proxy_cfg(name, tiny_proxy, tmp_path))
    head = runner.model.bbox_head
    assert type(head).__name__ == "RetinaHead"
    assert type(head.loss_cls).__name__ == "FocalLoss"
    assert type(head.loss_bbox).__name__ == ("L1Loss" if "l1" in name else "GIoULoss")
    batch = next(iter(runner.train_dataloader))
    optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    log = runner.model.train_step(batch, optim_wrapper)
    assert set(log) >= {"loss_cls", "loss_bbox"} and all(torch.isfinite(v) for v in log.values())


def _coco_sample(root: Path) -> Path:
    """A tiny COCO-format sample: proxy scenes whose categories carry COCO class names."""
    from mmdet.datasets import CocoDataset

    generate_proxy_dataset(root / "proxy", seed=9, num_train=2, num_eval=2, num_val=2)
    names = CocoDataset.METAINFO["classes"]
    sample = root / "coco"
    for split, coco_split in (("train", "train2017"), ("val", "val2017")):
        shutil.copytree(root / "proxy" / split / "images", sample / coco_split)
        data = json.loads((root / "proxy" / split / "annotations.json").read_text())
        for cat in data["categories"]:
            cat["name"] = names[cat["id"] - 1]
        (sample / "annotations").mkdir(exist_ok=True)
        (sample / "annotations" / f"instances_{coco_split}.json").write_text(json.dumps(data))
    return sample


def test_coco_config_builds_and_runs_one_iteration(tmp_path: Path) -> None:
    from mmengine.runner import Runner

    cfg = Config.fromfile(str(CONFIGS / "coco_retinanet_r50_fpn_paploss.py"))
    # the paper's settings (Sec. 4.1)
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(0.016)
    assert cfg.train_dataloader.batch_size * 8 == 64
    assert cfg.model.backbone.depth == 50
    assert cfg.model.backbone.init_cfg.checkpoint == "torchvision://resnet50"
    assert cfg.model.bbox_head.loss_cls.type == "ParameterizedAPLoss"
    assert cfg.model.bbox_head.loss_cls.params == dict(preset="paper-retinanet")
    assert cfg.model.bbox_head.loss_cls.loc_score == "giou"
    assert cfg.model.bbox_head.num_classes == 80
    assert LossParams.from_config(cfg.model.bbox_head.loss_cls.params.to_dict()).num_segments == 5

    set_data_root(cfg, _coco_sample(tmp_path))
    cfg.model.backbone.init_cfg = None  # nothing is downloaded in the test
    cfg.work_dir = str(tmp_path / "work")
    cfg.train_dataloader.batch_size = 2
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=1, val_interval=100)
    cfg.param_scheduler = []
    for key in (
        "val_dataloader",
        "val_evaluator",
        "val_cfg",
        "test_dataloader",
        "test_evaluator",
        "test_cfg",
    ):
        cfg[key] = None
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=100)
    cfg.default_hooks.logger.interval = 1
    cfg.log_level = "WARNING"
    # smaller images than the paper's 512 x 512 to keep the CPU test fast; the model is unchanged
    for step in cfg.train_dataloader.dataset.pipeline:
        if step.type == "Resize":
            step.scale = (256, 256)
    runner = Runner.from_cfg(cfg)
    assert isinstance(runner.model.bbox_head, PAPLossRetinaHead)
    runner.train()
    loss = runner.message_hub.get_scalar("train/loss_paploss").current()
    assert math.isfinite(loss)


def test_set_data_root_rewrites_loaders_and_evaluators(tmp_path: Path) -> None:
    cfg = Config.fromfile(str(CONFIGS / "proxy_retinanet_focal_l1.py"))
    original = copy.deepcopy(cfg.val_evaluator.ann_file)
    assert original.endswith("eval/annotations.json")
    set_data_root(cfg, tmp_path)
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        assert cfg[key].dataset.data_root == str(tmp_path) + "/"
    assert cfg.val_evaluator.ann_file == str(tmp_path / "eval" / "annotations.json")
    assert cfg.test_evaluator.ann_file == str(tmp_path / "val" / "annotations.json")


# ---------------------------------------------------------------------------- learning check
LEARN_IMAGES = 2000
LEARN_MIN_AP = 0.08


@pytest.mark.slow
def test_short_proxy_training_improves_eval_ap(tmp_path: Path) -> None:
    """One epoch of the default proxy config on a third of the default D_train reaches a clearly
    non-zero D_eval AP, far above the untrained model's (same seed, same initial weights)."""
    from mmengine.runner import Runner

    root = tmp_path / "data"
    generate_proxy_dataset(root, seed=0, num_train=LEARN_IMAGES, num_eval=200, num_val=8)

    def cfg_for(work_dir: Path, epochs: int) -> Config:
        cfg = Config.fromfile(str(CONFIGS / "proxy_retinanet_paploss.py"))
        set_data_root(cfg, root)
        cfg.work_dir = str(work_dir)
        cfg.train_cfg.max_epochs = epochs
        cfg.train_cfg.val_interval = epochs
        cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=100)
        cfg.default_hooks.visualization = dict(type="DetVisualizationHook", draw=False)
        cfg.log_level = "WARNING"
        return cfg

    untrained = Runner.from_cfg(cfg_for(tmp_path / "untrained", 1)).val()["coco/bbox_mAP"]
    runner = Runner.from_cfg(cfg_for(tmp_path / "trained", 1))
    runner.train()
    trained = runner.val_loop.run()["coco/bbox_mAP"]
    print(f"D_eval AP: untrained {untrained:.4f}, after one epoch {trained:.4f}")
    assert untrained < 0.01 and trained >= LEARN_MIN_AP, (untrained, trained)
