"""The registered mmdet loss ``'ParameterizedAPLoss'`` (paploss.mmdet.loss) and the studies'
config handling of the loss heads (paploss.study.config.loss_slots, paploss.study.config.mmcfg): ``loss_cls=dict(
type='ParameterizedAPLoss', params=..., ...)``; the 0.1 head arguments ``loss_params`` /
``loss_options`` are refused, and the config digests studies of 0.1 recorded still match.

- The loss builds from a config dict, is ``paploss.ParameterizedAPLoss`` times ``loss_weight``
  (value and gradient), takes exactly the torch loss's keyword arguments plus ``params``,
  ``loc_score``, ``loss_weight`` and ``use_sigmoid``, and names them for an unknown key.
- loss_slots finds the slots (the heads' keys) by ``loss_cls`` or by the head class's
  ``ap_loss_head`` mark, writes params and options into ``loss_cls`` and refuses the removed
  spelling with the migration; mmcfg's digest hashes the config as written and
  ``study_digest`` accepts the digest recorded by 0.1 (a fixed value).
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
from paploss.study.config.loss_slots import (  # noqa: E402
    find_loss_slots,
    search_space_of,
    set_loss_options,
    set_loss_params,
)
from paploss.study.config.mmcfg import (  # noqa: E402
    config_digest,
    legacy_config_digest,
    load_config,
    prepare_config,
    study_digest,
)
from paploss.study.data.sources import DataSplit  # noqa: E402

STUDIES_CONFIGS = Path(__file__).resolve().parents[1] / "studies" / "configs"
RECORDED_BY_0_1 = {
    "faster_rcnn_cfg": "677f9d40232f69865de1f697b98bd5751a3d5a9cc594fdd819b1a7367889c864",
    "proxy_retinanet_paploss.py": (
        "fc84b5a298960660209d1b91438506e2384f1bf9af27a90b83178dbf45d223bc"
    ),
}
"""``config_sha256`` that paploss 0.1 (commit b9dd0e3) recorded in a study's settings for
``_faster_rcnn_cfg("new")`` and for the bundled proxy RetinaNet config: what studies of the
previous layout hold."""


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


# ------------------------------------------------------------------------- loss slots and digests
def _head(kind: str, params: str, loc_score: str = "giou") -> dict:
    """A PAPLoss head config: "new" (``loss_cls``), "removed" (the 0.1 ``loss_params`` /
    ``loss_options``) or "type" (none: the head type alone)."""
    if kind == "new":
        return dict(
            loss_cls=dict(
                type="ParameterizedAPLoss", params=dict(preset=params), loc_score=loc_score
            )
        )
    if kind == "removed":
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


@pytest.mark.parametrize("kind", ["new", "type"])
def test_slots_are_the_heads_by_loss_cls_or_by_their_mark(kind: str) -> None:
    cfg = _faster_rcnn_cfg(kind)
    assert find_loss_slots(cfg) == ["model.rpn_head", "model.roi_head.bbox_head"]
    space = search_space_of(cfg, Path("x.py"))
    assert [(s.name, s.key) for s in space.slots] == [
        ("rpn", "model.rpn_head"),
        ("roi", "model.roi_head.bbox_head"),
    ]
    # a head of another type with an AP loss_cls is a slot too; a baseline loss_cls is not, nor
    # a registered head without the ap_loss_head mark
    other = Config(
        dict(
            model=dict(
                bbox_head=dict(type="MyHead", loss_cls=dict(type="mmdet.ParameterizedAPLoss")),
                neck=dict(type="FPN", loss_cls=dict(type="FocalLoss")),
                rpn_head=dict(type="RPNHead", in_channels=4),
            )
        )
    )
    assert find_loss_slots(other) == ["model.bbox_head"]


def test_every_registered_paploss_head_is_marked() -> None:
    marked = sorted(
        name
        for name, cls in MODELS.module_dict.items()
        if getattr(cls, "ap_loss_head", False) is True
    )
    assert marked == [
        "PAPLossBBoxHead",
        "PAPLossDeformableDETRHead",
        "PAPLossRPNHead",
        "PAPLossRetinaHead",
    ]


def test_set_params_and_options_write_loss_cls() -> None:
    params = LossParams.preset("paper-retinanet")
    new, bare = (_faster_rcnn_cfg(k) for k in ("new", "type"))
    for cfg in (new, bare):
        set_loss_params(cfg, "model.rpn_head", params)
        set_loss_options(
            cfg, "model.rpn_head", {"loc_score": "iou", "block_denominator_grad": False}
        )
        set_loss_options(cfg, "model.rpn_head", {})
    head = new.model.rpn_head
    assert LossParams.from_config(head.loss_cls.params) == params
    assert head.loss_cls.type == "ParameterizedAPLoss"
    assert head.loss_cls.loc_score == "iou" and head.loss_cls.block_denominator_grad is False
    head = bare.model.rpn_head  # no loss fields: loss_cls is created
    assert head.loss_cls.type == "ParameterizedAPLoss"
    assert LossParams.from_config(head.loss_cls.params) == params
    assert head.loss_cls.loc_score == "iou"
    # the other head is untouched
    assert new.model.roi_head.bbox_head.loss_cls.params == dict(preset="square")
    assert "loss_cls" not in bare.model.roi_head.bbox_head


def test_prepare_config_writes_every_slot(tmp_path: Path) -> None:
    params = {"rpn": LossParams.preset("sqrt"), "roi": LossParams.preset("paper-retinanet")}
    split = DataSplit(tmp_path / "a.json", tmp_path / "img")
    cfg = _faster_rcnn_cfg("new")
    run = prepare_config(
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
    for head, slot in ((run.model.rpn_head, "rpn"), (run.model.roi_head.bbox_head, "roi")):
        assert LossParams.from_config(head.loss_cls.params) == params[slot]
        assert head.loss_cls.loc_score == "l1"


def test_the_removed_spelling_is_refused_with_the_migration() -> None:
    removed = _faster_rcnn_cfg("removed")
    migration = r"loss_params= / loss_options= were removed in paploss 0.2.0; write loss_cls="
    with pytest.raises(ConfigError, match="model.rpn_head: " + migration):
        find_loss_slots(removed)
    with pytest.raises(ConfigError, match=migration):
        search_space_of(removed, Path("old.py"))
    both = _faster_rcnn_cfg("new")
    both.model.rpn_head.loss_params = dict(preset="linear")
    with pytest.raises(ConfigError, match=r"model.rpn_head: loss_params= were removed"):
        set_loss_params(both, "model.rpn_head", LossParams.preset("linear"))
    with pytest.raises(ValueError, match=r"PAPLossRPNHead: loss_params= / loss_options= were"):
        MODELS.build(removed.model.rpn_head)


def _sha256_of_json(data: object) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(data, sort_keys=True, default=repr).encode()).hexdigest()


def test_digest_hashes_the_config_as_written() -> None:
    cfg = _faster_rcnn_cfg("new")
    written = cfg.to_dict()
    for loader in ("train_dataloader", "val_dataloader"):  # LOCATION_KEYS are left out
        del written[loader]["dataset"]["ann_file"], written[loader]["dataset"]["data_prefix"]
    del written["val_evaluator"]["ann_file"]
    assert config_digest(cfg) == _sha256_of_json(written)
    changed = _faster_rcnn_cfg("new")
    changed.model.rpn_head.loss_cls.loc_score = "iou"
    assert config_digest(changed) != config_digest(cfg)
    weighted = _faster_rcnn_cfg("new")
    weighted.model.rpn_head.loss_cls.loss_weight = 2.0
    assert config_digest(weighted) != config_digest(cfg)


def test_studies_recorded_by_0_1_still_match() -> None:
    cfg = _faster_rcnn_cfg("new")
    recorded = RECORDED_BY_0_1["faster_rcnn_cfg"]
    assert legacy_config_digest(cfg) == recorded != config_digest(cfg)
    # a study of 0.1 keeps its recorded digest; a new study records config_digest
    assert study_digest(recorded, cfg) == recorded
    assert study_digest(None, cfg) == config_digest(cfg)
    assert study_digest(config_digest(cfg), cfg) == config_digest(cfg)
    # another config does not match the recording: the study's settings conflict
    changed = _faster_rcnn_cfg("new")
    changed.model.rpn_head.loss_cls.loc_score = "iou"
    assert study_digest(recorded, changed) not in (recorded, config_digest(cfg))
    # a config without AP-loss heads hashes alike in both layouts
    bare = Config(dict(model=dict(type="RetinaNet", bbox_head=dict(type="RetinaHead"))))
    assert legacy_config_digest(bare) == config_digest(bare)
    # the bundled proxy RetinaNet config of the 0.1 studies (its loss keys unchanged since)
    bundled = load_config(STUDIES_CONFIGS / "proxy_retinanet_paploss.py")
    recorded = RECORDED_BY_0_1["proxy_retinanet_paploss.py"]
    assert study_digest(recorded, bundled) == recorded


def test_foreign_loss_configs_are_config_errors() -> None:
    foreign = _faster_rcnn_cfg("type")
    foreign.model.rpn_head.loss_cls = dict(type="CrossEntropyLoss", use_sigmoid=True)
    with pytest.raises(ConfigError, match="model.rpn_head.loss_cls is 'CrossEntropyLoss'"):
        set_loss_options(foreign, "model.rpn_head", {"loc_score": "iou"})
    baseline = Config(dict(model=dict(bbox_head=dict(type="RetinaHead"))))
    with pytest.raises(ConfigError, match="loss_cls=dict\\(type='ParameterizedAPLoss'"):
        search_space_of(baseline, Path("base.py"))
