"""Deformable DETR with the Parameterized AP Loss (paploss.mmdet.deformable_detr) and its configs.

- The head builds B (all query x class entries), P (Hungarian matches) and the localization
  scores as a direct computation on a tiny hand-built batch (2 images, 4 queries) says it should,
  for every decoder layer and for the two-stage encoder proposals.
- lambda scales the gradient of the box branch and nothing else.
- The proxy config trains a few iterations (finite loss, gradients in both branches) and
  evaluates through pycocotools; the baseline builds and computes its losses; the COCO config
  builds and runs one training iteration on a tiny COCO-format sample.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmdet")

from mmengine.config import Config  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

from paploss import ParameterizedAPLoss  # noqa: E402
from paploss.mmdet.deformable_detr import PAPLossDeformableDETRHead  # noqa: E402
from tests.mmdet_helpers import (  # noqa: E402
    CONFIG_DIR,
    build_model,
    giou_scores,
    grad_of,
    one_loss_step,
    tiny_proxy_root,
    train_and_evaluate,
    train_one_iter_coco,
)


@pytest.fixture(scope="module")
def proxy_root() -> Path:
    return tiny_proxy_root()


PRESET = "paper-retinanet"  # any non-linear Theta; the release has no Deformable DETR set
NUM_CLASSES = 3
NUM_QUERIES = 4
EMBED = 16


def _head(
    gradient_scale: float | None = None, loc_score: str = "giou"
) -> PAPLossDeformableDETRHead:
    loss_params = dict(preset=PRESET)
    if gradient_scale is not None:
        loss_params["gradient_scale"] = gradient_scale
    loss = dict(loss_cls=dict(type="ParameterizedAPLoss", params=loss_params, loc_score=loc_score))
    torch.manual_seed(0)
    head = PAPLossDeformableDETRHead(
        num_classes=NUM_CLASSES,
        embed_dims=EMBED,
        num_pred_layer=2,
        share_pred_layer=False,
        as_two_stage=False,
        train_cfg=dict(
            assigner=dict(
                type="HungarianAssigner",
                match_costs=[
                    dict(type="FocalLossCost", weight=2.0),
                    dict(type="BBoxL1Cost", weight=5.0, box_format="xywh"),
                    dict(type="IoUCost", iou_mode="giou", weight=2.0),
                ],
            )
        ),
        test_cfg=dict(max_per_img=10),
        **loss,
    )
    head.init_weights()
    return head


# Image 0 is 200 x 100 (w x h) with one gt of class 1; image 1 is 80 x 80 with gts of class 0
# and 2. The queries' boxes (normalized cx, cy, w, h) put one query close to each gt and the others
# far away, so the Hungarian matching is unambiguous: (0, q0) -> class 1, (1, q2) -> class 0,
# (1, q1) -> class 2.
IMG_SHAPES = [(100, 200), (80, 80)]
GTS = [
    (torch.tensor([[20.0, 10.0, 60.0, 50.0]]), torch.tensor([1])),
    (torch.tensor([[10.0, 10.0, 30.0, 50.0], [40.0, 20.0, 70.0, 40.0]]), torch.tensor([0, 2])),
]
BOXES = torch.tensor(
    [
        [
            [0.21, 0.29, 0.19, 0.42],
            [0.8, 0.8, 0.1, 0.1],
            [0.6, 0.2, 0.1, 0.1],
            [0.5, 0.7, 0.2, 0.2],
        ],
        [
            [0.9, 0.9, 0.1, 0.1],
            [0.68, 0.38, 0.36, 0.26],
            [0.26, 0.37, 0.24, 0.52],
            [0.1, 0.9, 0.1, 0.1],
        ],
    ]
)
MATCHES = [(0, 0, 0), (1, 2, 0), (1, 1, 1)]  # (image, query, gt index)


def _batch(class_agnostic: bool = False) -> tuple[list[InstanceData], list[dict]]:
    gts = []
    for boxes, labels in GTS:
        labels = torch.zeros_like(labels) if class_agnostic else labels
        gts.append(InstanceData(bboxes=boxes, labels=labels))
    metas = [dict(img_shape=s, pad_shape=s, batch_input_shape=s) for s in IMG_SHAPES]
    return gts, metas


def _direct(
    logits: torch.Tensor, kind: str, class_agnostic: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """B = every (image, query, class); P and l from the known matches and torchvision GIoU."""
    labels = torch.zeros(2, NUM_QUERIES, NUM_CLASSES, dtype=torch.long)
    locs = torch.zeros(2, NUM_QUERIES, NUM_CLASSES)
    for img, q, g in MATCHES:
        h, w = IMG_SHAPES[img]
        cx, cy, bw, bh = BOXES[img, q].tolist()
        pred = torch.tensor(
            [[(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h]]
        )
        boxes, classes = GTS[img]
        c = 0 if class_agnostic else int(classes[g])
        labels[img, q, c] = 1
        locs[img, q, c] = giou_scores(pred, boxes[g : g + 1], kind)[0]
    return logits.reshape(-1), labels.reshape(-1), locs.reshape(-1)


@pytest.mark.parametrize("kind", ["giou", "iou"])
def test_prediction_set_matches_direct_computation(kind: str) -> None:
    head = _head(loc_score=kind)
    torch.manual_seed(1)
    logits = 0.5 * torch.randn(2, NUM_QUERIES, NUM_CLASSES)
    gts, metas = _batch()

    got_logits, targets, locs = head.prediction_set(logits, BOXES, gts, metas)
    exp_logits, exp_labels, exp_locs = _direct(logits, kind)

    assert got_logits.numel() == 2 * NUM_QUERIES * NUM_CLASSES
    torch.testing.assert_close(got_logits, exp_logits)
    assert targets.long().tolist() == exp_labels.tolist()
    torch.testing.assert_close(locs, exp_locs)

    loss = head.loss_by_feat_single(logits, BOXES, gts, metas)[0]
    expected = ParameterizedAPLoss(dict(preset=PRESET))(exp_logits, exp_labels, exp_locs)
    torch.testing.assert_close(loss, expected)


def test_every_decoder_layer_and_the_encoder_get_a_loss() -> None:
    head = _head()
    torch.manual_seed(2)
    layer_logits = 0.5 * torch.randn(2, 2, NUM_QUERIES, NUM_CLASSES)  # 2 decoder layers
    layer_boxes = torch.stack([BOXES, BOXES])
    enc_logits = 0.5 * torch.randn(2, NUM_QUERIES, NUM_CLASSES)
    gts, metas = _batch()
    losses = head.loss_by_feat(layer_logits, layer_boxes, enc_logits, BOXES, gts, metas)
    assert set(losses) == {"loss_paploss", "d0.loss_paploss", "enc_loss_paploss"}
    loss_fn = ParameterizedAPLoss(dict(preset=PRESET))
    for key, logits in (("d0.loss_paploss", layer_logits[0]), ("loss_paploss", layer_logits[1])):
        torch.testing.assert_close(losses[key], loss_fn(*_direct(logits, "giou")))
    # Encoder proposals: mmdet's two-stage convention, every gt has class 0.
    torch.testing.assert_close(
        losses["enc_loss_paploss"], loss_fn(*_direct(enc_logits, "giou", class_agnostic=True))
    )
    # The ground truths given to the caller are left untouched.
    assert gts[1].labels.tolist() == [0, 2]


def test_lambda_scales_only_the_box_branch() -> None:
    gts, metas = _batch()
    torch.manual_seed(3)
    hidden = torch.randn(2, 2, NUM_QUERIES, EMBED)  # [layers, bs, queries, dims]
    references = [torch.rand(2, NUM_QUERIES, 2) * 0.8 + 0.1 for _ in range(3)]
    grads = {}
    for scale in (1.0, 4.0):
        head = _head(gradient_scale=scale)
        torch.manual_seed(4)  # mmdet zero-initializes the last box layer: no gradient below it
        for branch in head.reg_branches:
            torch.nn.init.normal_(branch[-1].weight, std=0.1)
        all_cls, all_boxes = head(hidden, references)
        losses = head.loss_by_feat(all_cls, all_boxes, None, None, gts, metas)
        sum(losses.values()).backward()
        grads[scale] = {n: p.grad.clone() for n, p in head.named_parameters()}
    cls_names = [n for n in grads[1.0] if n.startswith("cls_branches")]
    reg_names = [n for n in grads[1.0] if n.startswith("reg_branches")]
    assert len(cls_names) == 4 and len(reg_names) == 12  # 2 layers: 1 and 3 linear layers each
    for name in cls_names:
        assert grads[1.0][name].abs().sum() > 0, name
        torch.testing.assert_close(grads[4.0][name], grads[1.0][name])
    for name in reg_names:
        assert grads[1.0][name].abs().sum() > 0, name
        torch.testing.assert_close(grads[4.0][name], 4.0 * grads[1.0][name])


def test_head_rejects_separate_losses_and_ignored_gts() -> None:
    with pytest.raises(ValueError, match="loss_iou"):
        PAPLossDeformableDETRHead(num_classes=3, embed_dims=EMBED, loss_iou=dict(type="GIoULoss"))
    with pytest.raises(ValueError, match="loss_cls"):
        PAPLossDeformableDETRHead(
            num_classes=3, embed_dims=EMBED, loss_cls=dict(type="FocalLoss", use_sigmoid=True)
        )
    with pytest.raises(ValueError, match="PAPLossDeformableDETRHead: loss_options= were removed"):
        PAPLossDeformableDETRHead(
            num_classes=3,
            embed_dims=EMBED,
            loss_cls=dict(type="ParameterizedAPLoss"),
            loss_options=dict(loc_score="iou"),
        )
    head = _head()
    gts, metas = _batch()
    with pytest.raises(ValueError, match="batch_gt_instances_ignore"):
        head.loss_by_feat(
            BOXES.new_zeros(1, 2, NUM_QUERIES, NUM_CLASSES),
            BOXES[None],
            None,
            None,
            gts,
            metas,
            batch_gt_instances_ignore=[InstanceData(), InstanceData()],
        )


def test_inference_uses_sigmoid_top_k() -> None:
    head = _head()
    logits = torch.full((NUM_QUERIES, NUM_CLASSES), -5.0)
    logits[2, 1] = 3.0
    result = head._predict_by_feat_single(
        logits, BOXES[1], dict(img_shape=(80, 80), scale_factor=(1.0, 1.0))
    )
    assert result.scores[0].item() == pytest.approx(1 / (1 + math.exp(-3.0)))
    assert int(result.labels[0]) == 1
    torch.testing.assert_close(result.bboxes[0], torch.tensor([11.2, 8.8, 30.4, 50.4]))


# ----------------------------------------------------------------------------------- configs
@pytest.mark.parametrize(
    "name", ["proxy_deformable_detr_paploss.py", "proxy_deformable_detr_focal_l1_giou.py"]
)
def test_proxy_configs_build_and_compute_losses(name: str, proxy_root: Path) -> None:
    cfg = Config.fromfile(str(CONFIG_DIR / name))
    assert cfg.model.num_feature_levels == 1
    model = build_model(cfg)
    losses = one_loss_step(model, cfg, proxy_root)
    for key, value in losses.items():
        assert torch.isfinite(value).all(), f"{key} = {value}"
    if name == "proxy_deformable_detr_paploss.py":
        num_layers = cfg.model.decoder.num_layers
        expected = {"loss_paploss"} | {f"d{i}.loss_paploss" for i in range(num_layers - 1)}
        assert set(losses) == expected


def test_two_stage_box_refine_model_gets_the_encoder_loss(proxy_root: Path) -> None:
    cfg = Config.fromfile(str(CONFIG_DIR / "proxy_deformable_detr_paploss.py"))
    cfg.model.as_two_stage = True
    cfg.model.with_box_refine = True
    cfg.model.num_queries = 50  # top-k encoder proposals (<= the 16 x 16 tokens)
    # mmdet's two-stage proposal embedding is hard-wired to 256-d transformers.
    cfg.model.neck.out_channels = cfg.model.bbox_head.embed_dims = 256
    cfg.model.positional_encoding.num_feats = 128
    for layer_cfg in (cfg.model.encoder.layer_cfg, cfg.model.decoder.layer_cfg):
        for part in layer_cfg.values():
            part.embed_dims = 256
    model = build_model(cfg)
    losses = one_loss_step(model, cfg, proxy_root)
    num_layers = cfg.model.decoder.num_layers
    expected = {"loss_paploss", "enc_loss_paploss"}
    expected |= {f"d{i}.loss_paploss" for i in range(num_layers - 1)}
    assert set(losses) == expected
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    # The encoder proposals' classifier is the extra (last) prediction layer.
    enc_cls = model.bbox_head.cls_branches[num_layers].weight.grad
    assert enc_cls is not None and enc_cls.abs().sum() > 0


def test_proxy_deformable_detr_paploss_trains_and_evaluates(
    proxy_root: Path, tmp_path: Path
) -> None:
    cfg = Config.fromfile(str(CONFIG_DIR / "proxy_deformable_detr_paploss.py"))
    result = train_and_evaluate(cfg, proxy_root, tmp_path, iters=2)
    assert len(result.losses) == 2
    assert all(math.isfinite(v) for v in result.losses)
    # CocoMetric ran on D_eval (its keys); an AP floor needs more training than a fast test
    # has: 80 iterations on the 8 images reach AP 0.006 (tests/test_mmdet_faster_rcnn.py and
    # tests/test_mmdet_retinanet.py hold the floors of the other heads)
    assert set(result.metrics) >= {"coco/bbox_mAP", "coco/bbox_mAP_50"}
    model = result.model
    # with_box_refine=True: every decoder layer has its own prediction layers.
    num_layers = cfg.model.decoder.num_layers
    for name in (
        "bbox_head.cls_branches.0.weight",
        f"bbox_head.cls_branches.{num_layers - 1}.weight",
        "bbox_head.reg_branches.0.4.weight",
        f"bbox_head.reg_branches.{num_layers - 1}.0.weight",
        "query_embedding.weight",
        "neck.lateral_convs.0.conv.weight",
    ):
        grad = grad_of(model, name)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    # the proxy's digit-pretrained backbone is frozen
    assert not any(p.requires_grad for p in model.backbone.parameters())


def test_coco_deformable_detr_config_runs_one_iteration(proxy_root: Path, tmp_path: Path) -> None:
    cfg = Config.fromfile(str(CONFIG_DIR / "coco_deformable_detr_r50_paploss.py"))
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(2e-4)
    assert cfg.train_dataloader.batch_size * 8 == 32
    assert cfg.model.backbone.init_cfg.checkpoint == "torchvision://resnet50"
    assert cfg.model.num_feature_levels == 4
    losses = train_one_iter_coco(cfg, tmp_path, proxy_root, image_scale=(160, 160))
    expected = {"loss", "loss_paploss"} | {f"d{i}.loss_paploss" for i in range(5)}
    assert set(losses) == expected
    assert all(math.isfinite(v) for v in losses.values())


@pytest.mark.slow
def test_coco_deformable_detr_config_runs_one_iteration_with_its_pipeline(
    proxy_root: Path, tmp_path: Path
) -> None:
    """Through mmengine's Runner, with the config's multi-scale (up to 1333 x 800) pipeline."""
    cfg = Config.fromfile(str(CONFIG_DIR / "coco_deformable_detr_r50_paploss.py"))
    losses = train_one_iter_coco(cfg, tmp_path, proxy_root, image_scale=None)
    assert "loss_paploss" in losses and "d4.loss_paploss" in losses
    assert all(math.isfinite(v) for v in losses.values())
