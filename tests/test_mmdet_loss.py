"""The registered mmdet loss ``'ParameterizedAPLoss'`` (paploss.mmdet.loss) and the studies'
config handling of both loss spellings (paploss.study.mmcfg): ``loss_cls=dict(type=
'ParameterizedAPLoss', params=..., ...)`` and the deprecated ``loss_params`` / ``loss_options``.

- The loss builds from a config dict, is ``paploss.ParameterizedAPLoss`` times ``loss_weight``
  (value and gradient), takes exactly the torch loss's keyword arguments plus ``params``,
  ``loc_score``, ``loss_weight`` and ``use_sigmoid``, and names them for an unknown key.
- mmcfg finds the same slots (the heads' keys) in both spellings, writes params and options where
  each spelling keeps them, hashes both spellings alike and refuses configs that mix them.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmdet")

from mmdet.registry import MODELS  # noqa: E402
from mmengine.config import Config  # noqa: E402

import paploss.mmdet  # noqa: E402,F401  (registers the loss and the heads)
from paploss import LossParams  # noqa: E402
from paploss import ParameterizedAPLoss as TorchAPLoss  # noqa: E402
from paploss.errors import ConfigError  # noqa: E402
from paploss.mmdet.loss import ParameterizedAPLoss, accepted_keys  # noqa: E402
from paploss.study.data import DataSplit  # noqa: E402
from paploss.study.loss_slots import (  # noqa: E402
    find_loss_slots,
    search_space_of,
    set_loss_options,
    set_loss_params,
)
from paploss.study.mmcfg import config_digest, prepare_config  # noqa: E402


def _inputs(seed: int = 0, n: int = 60) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, generator=gen, dtype=torch.float64).requires_grad_()
    labels = torch.zeros(n, dtype=torch.long)
    labels[:6] = 1
    labels[-4:] = -1
    locs = torch.zeros(n, dtype=torch.float64)
    locs[:6] = torch.rand(6, generator=gen, dtype=torch.float64) * 0.8 + 0.1
    return logits, labels, locs.requires_grad_()


# ----------------------------------------------------------------------------------- the loss
def test_builds_from_a_config_dict_with_the_mmdet_attributes() -> None:
    loss = MODELS.build(
        dict(
            type="ParameterizedAPLoss",
            params=dict(preset="paper-retinanet"),
            loc_score="iou",
            backend="reference",
            block_denominator_grad=False,
            topk=40,
        )
    )
    assert isinstance(loss, ParameterizedAPLoss) and isinstance(loss, TorchAPLoss)
    assert loss.params == LossParams.preset("paper-retinanet")
    assert (loss.loc_score, loss.backend, loss.topk, loss.loss_weight) == (
        "iou",
        "reference",
        40,
        1,
    )
    assert loss.block_denominator_grad is False
    # what mmdet's heads read from their loss_cls
    assert loss.use_sigmoid is True and loss.custom_cls_channels is True
    assert loss.get_cls_channels(7) == 7
    # inference scores of R-CNN logits [R, C]: C sigmoids and a zero background column
    logits = torch.tensor([[0.0, 2.0], [-1.0, 1.0]])
    expected = torch.tensor([[0.5, 2.0], [-1.0, 1.0]])
    expected[0, 1], expected[1] = logits[0, 1].sigmoid(), logits[1].sigmoid()
    torch.testing.assert_close(
        loss.get_activation(logits), torch.cat([expected, torch.zeros(2, 1)], 1)
    )
    # the defaults are the torch loss's (params None = "linear", GIoU loc scores)
    default = MODELS.build(dict(type="ParameterizedAPLoss"))
    torch_default = TorchAPLoss()
    assert default.params == torch_default.params == LossParams.preset("linear")
    assert default.loc_score == "giou"
    for name in ("backend", "release_compatible", "topk", "block_denominator_grad"):
        assert getattr(default, name) == getattr(torch_default, name), name
    assert (default.check_finite, default.substitution) == (True, None)


@pytest.mark.parametrize("weight", [1.0, 0.25, 3.0])
def test_loss_weight_scales_the_value_and_the_gradient(weight: float) -> None:
    params = dict(preset="paper-retinanet", gradient_scale=2.0)
    logits, labels, locs = _inputs()
    expected = TorchAPLoss(params)(logits, labels, locs)
    exp_grads = torch.autograd.grad(expected, [logits, locs])
    loss = MODELS.build(dict(type="ParameterizedAPLoss", params=params, loss_weight=weight))
    value = loss(logits, labels, locs)
    grads = torch.autograd.grad(value, [logits, locs])
    torch.testing.assert_close(value, weight * expected)
    for got, exp in zip(grads, exp_grads):
        assert exp.abs().sum() > 0
        torch.testing.assert_close(got, weight * exp)
    if weight == 1.0:
        assert torch.equal(value, expected)


def test_accepted_keys_come_from_the_constructors() -> None:
    torch_keys = [
        n for n in inspect.signature(TorchAPLoss.__init__).parameters if n not in ("self", "params")
    ]
    assert set(accepted_keys()) == {
        "params",
        "loc_score",
        "loss_weight",
        "use_sigmoid",
        *torch_keys,
    }
    assert "substitution" in accepted_keys() and "check_finite" in accepted_keys()


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="unknown ParameterizedAPLoss keys \\['gamma'\\]") as info:
        MODELS.build(dict(type="ParameterizedAPLoss", gamma=2.0))
    for key in accepted_keys():
        assert key in str(info.value)
    with pytest.raises(ValueError, match="loc_score"):
        MODELS.build(dict(type="ParameterizedAPLoss", loc_score="diou"))
    with pytest.raises(ValueError, match="use_sigmoid must be True"):
        MODELS.build(dict(type="ParameterizedAPLoss", use_sigmoid=False))
    with pytest.raises(ValueError, match="loss_weight"):
        MODELS.build(dict(type="ParameterizedAPLoss", loss_weight="2"))
    with pytest.raises(ValueError, match="preset"):
        MODELS.build(dict(type="ParameterizedAPLoss", params=dict(preset="nope")))
    with pytest.raises(ValueError, match="substitution"):
        MODELS.build(dict(type="ParameterizedAPLoss", substitution="sqrt", backend="sorted"))


# ------------------------------------------------------------------------- mmcfg: both spellings
def _head(kind: str, params: str, loc_score: str = "giou") -> dict:
    """A PAPLoss head config in the ``kind`` spelling: "new", "deprecated" or "type" (none)."""
    if kind == "new":
        return dict(
            loss_cls=dict(
                type="ParameterizedAPLoss", params=dict(preset=params), loc_score=loc_score
            )
        )
    if kind == "deprecated":
        return dict(loss_params=dict(preset=params), loss_options=dict(loc_score=loc_score))
    return {}


def _faster_rcnn_cfg(kind: str) -> Config:
    return Config(
        dict(
            model=dict(
                type="FasterRCNN",
                rpn_head=dict(type="PAPLossRPNHead", in_channels=4, **_head(kind, "linear")),
                roi_head=dict(
                    type="StandardRoIHead",
                    bbox_head=dict(type="PAPLossBBoxHead", num_classes=3, **_head(kind, "square")),
                ),
            ),
            train_dataloader=dict(dataset=dict(ann_file="a.json", data_prefix=dict(img="i/"))),
            val_dataloader=dict(dataset=dict(ann_file="b.json", data_prefix=dict(img="j/"))),
            val_evaluator=dict(type="CocoMetric", ann_file="b.json"),
            train_cfg=dict(type="EpochBasedTrainLoop", max_epochs=2),
        )
    )


@pytest.mark.parametrize("kind", ["new", "deprecated", "type"])
def test_slots_are_the_heads_in_every_spelling(kind: str) -> None:
    cfg = _faster_rcnn_cfg(kind)
    assert find_loss_slots(cfg) == ["model.rpn_head", "model.roi_head.bbox_head"]
    space = search_space_of(cfg, Path("x.py"))
    assert [(s.name, s.key) for s in space.slots] == [
        ("rpn", "model.rpn_head"),
        ("roi", "model.roi_head.bbox_head"),
    ]
    # a head of another type with an AP loss_cls is a slot too; a baseline loss_cls is not
    other = Config(
        dict(
            model=dict(
                bbox_head=dict(type="MyHead", loss_cls=dict(type="mmdet.ParameterizedAPLoss")),
                neck=dict(type="FPN", loss_cls=dict(type="FocalLoss")),
            )
        )
    )
    assert find_loss_slots(other) == ["model.bbox_head"]


def test_set_params_and_options_where_each_spelling_keeps_them() -> None:
    params = LossParams.preset("paper-retinanet")
    new, old, bare = (_faster_rcnn_cfg(k) for k in ("new", "deprecated", "type"))
    for cfg in (new, old, bare):
        set_loss_params(cfg, "model.rpn_head", params)
        set_loss_options(
            cfg, "model.rpn_head", {"loc_score": "iou", "block_denominator_grad": False}
        )
        set_loss_options(cfg, "model.rpn_head", {})
    head = new.model.rpn_head
    assert LossParams.from_config(head.loss_cls.params) == params
    assert head.loss_cls.type == "ParameterizedAPLoss"
    assert head.loss_cls.loc_score == "iou" and head.loss_cls.block_denominator_grad is False
    assert "loss_params" not in head and "loss_options" not in head
    head = old.model.rpn_head
    assert LossParams.from_config(head.loss_params) == params and "loss_cls" not in head
    assert head.loss_options == {"loc_score": "iou", "block_denominator_grad": False}
    head = bare.model.rpn_head  # no loss fields: the new spelling is written
    assert head.loss_cls.type == "ParameterizedAPLoss"
    assert LossParams.from_config(head.loss_cls.params) == params
    assert head.loss_cls.loc_score == "iou"
    # the other head is untouched
    assert new.model.roi_head.bbox_head.loss_cls.params == dict(preset="square")
    assert old.model.roi_head.bbox_head.loss_params == dict(preset="square")


def test_prepare_config_in_both_spellings(tmp_path: Path) -> None:
    params = {"rpn": LossParams.preset("sqrt"), "roi": LossParams.preset("paper-retinanet")}
    split = DataSplit(tmp_path / "a.json", tmp_path / "img")
    runs = {}
    for kind in ("new", "deprecated"):
        cfg = _faster_rcnn_cfg(kind)
        runs[kind] = prepare_config(
            cfg,
            space=search_space_of(cfg, Path("x.py")),
            loss_params=params,
            train=split,
            evaluate=split,
            work_dir=tmp_path,
            epochs=1,
            seed=0,
            search=True,
            loss_options={"loc_score": "l1"},
        )
    new, old = runs["new"].model, runs["deprecated"].model
    for key, slot in (("rpn_head", "rpn"), ("roi_head", "roi")):
        new_head = new[key] if key == "rpn_head" else new[key].bbox_head
        old_head = old[key] if key == "rpn_head" else old[key].bbox_head
        assert LossParams.from_config(new_head.loss_cls.params) == params[slot]
        assert LossParams.from_config(old_head.loss_params) == params[slot]
        assert new_head.loss_cls.loc_score == old_head.loss_options.loc_score == "l1"
    assert config_digest(runs["new"]) == config_digest(runs["deprecated"])


def test_digest_is_the_same_in_both_spellings() -> None:
    assert config_digest(_faster_rcnn_cfg("new")) == config_digest(_faster_rcnn_cfg("deprecated"))
    changed = _faster_rcnn_cfg("new")
    changed.model.rpn_head.loss_cls.loc_score = "iou"
    assert config_digest(changed) != config_digest(_faster_rcnn_cfg("deprecated"))
    weighted = _faster_rcnn_cfg("new")
    weighted.model.rpn_head.loss_cls.loss_weight = 2.0
    assert config_digest(weighted) != config_digest(_faster_rcnn_cfg("new"))


def test_mixed_or_foreign_loss_configs_are_config_errors() -> None:
    both = _faster_rcnn_cfg("new")
    both.model.rpn_head.loss_params = dict(preset="linear")
    with pytest.raises(ConfigError, match="both loss_cls and the deprecated loss_params"):
        set_loss_params(both, "model.rpn_head", LossParams.preset("linear"))
    foreign = _faster_rcnn_cfg("type")
    foreign.model.rpn_head.loss_cls = dict(type="CrossEntropyLoss", use_sigmoid=True)
    with pytest.raises(ConfigError, match="model.rpn_head.loss_cls is 'CrossEntropyLoss'"):
        set_loss_options(foreign, "model.rpn_head", {"loc_score": "iou"})
    baseline = Config(dict(model=dict(bbox_head=dict(type="RetinaHead"))))
    with pytest.raises(ConfigError, match="loss_cls=dict\\(type='ParameterizedAPLoss'"):
        search_space_of(baseline, Path("base.py"))
