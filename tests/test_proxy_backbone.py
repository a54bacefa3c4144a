"""The proxy's cached digit-pretrained backbone (paploss.proxy.backbone, ProxyResNet)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from paploss.proxy import backbone as pb

TINY = dict(base_channels=4, steps=3, batch=4, crop=24, min_size=8.0, max_size=20.0)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(pb.ENV_CACHE, str(tmp_path))
    return tmp_path / "backbones"


def test_crops_hold_one_digit_of_the_requested_size() -> None:
    from paploss.proxy.scenes import ink_box, load_digits, partition_sources

    settings = pb.PretrainSettings(**TINY)
    images, labels = load_digits()
    pool = partition_sources(labels, 0, settings.split_fractions)["train"]
    crops, classes = pb.render_crops(np.random.default_rng(0), settings, images, labels, pool, 20)
    assert crops.shape == (20, 24, 24) and crops.dtype == np.uint8
    assert classes.dtype == np.int64 and set(classes.tolist()) <= set(range(10))
    # the same generator state gives the same crops (the pretraining is deterministic)
    again, _ = pb.render_crops(np.random.default_rng(0), settings, images, labels, pool, 20)
    assert np.array_equal(crops, again)
    # the ink box the crops size their digits by: the rows and columns with ink above 2 (of 16)
    for src in pool[:50]:
        rows, cols = np.nonzero(images[src] > 2.0)
        expected = (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
        assert ink_box(images[src]) == tuple(int(v) for v in expected)


def test_built_once_reused_and_rebuilt_when_settings_change(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[pb.PretrainSettings] = []
    returned: list[tuple[dict, float]] = []
    real = pb.pretrain

    def counting(settings: pb.PretrainSettings, **kw: object) -> tuple[dict, float]:
        calls.append(settings)
        returned.append(real(settings, **kw))
        return returned[-1]

    monkeypatch.setattr(pb, "pretrain", counting)
    settings = pb.PretrainSettings(**TINY)
    path = pb.ensure_pretrained(settings)
    assert path.parent == cache and path.is_file() and len(calls) == 1
    record = pb.load_record(path)
    # the file holds what the pretraining returned: its weights and held-out accuracy
    state, accuracy = returned[0]
    assert record["settings"] == settings.to_dict() and record["accuracy"] == accuracy
    assert record["state_dict"].keys() == state.keys()
    assert all(torch.equal(record["state_dict"][k], v) for k, v in state.items())
    mtime = path.stat().st_mtime_ns
    assert pb.ensure_pretrained(settings) == path and len(calls) == 1  # reused
    assert path.stat().st_mtime_ns == mtime
    other = pb.PretrainSettings(**{**TINY, "steps": 4})
    other_path = pb.ensure_pretrained(other)
    assert other_path != path and len(calls) == 2  # another setting: another file
    assert not list(cache.glob(".*tmp*"))  # no temporary file left behind


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="depth must be 18 or 34"):
        pb.PretrainSettings(depth=50)
    with pytest.raises(ValueError, match="min_size <= max_size <= crop"):
        pb.PretrainSettings(min_size=30.0, max_size=20.0)
    with pytest.raises(ValueError, match="steps must be an int"):
        pb.PretrainSettings(steps=0)


def test_proxy_resnet_loads_the_cached_weights_into_a_config(cache: Path) -> None:
    from mmdet.registry import MODELS

    import paploss.mmdet  # noqa: F401  (registers ProxyResNet)

    settings = pb.PretrainSettings(**TINY)
    backbone = MODELS.build(
        dict(
            type="ProxyResNet",
            depth=18,
            base_channels=4,
            out_indices=(1, 2, 3),
            frozen_stages=4,
            norm_eval=True,
            pretrain={k: v for k, v in TINY.items() if k != "base_channels"},
        )
    )
    backbone.init_weights()
    state = pb.load_record(pb.weights_path(settings))["state_dict"]
    own = backbone.state_dict()
    assert set(state) == set(own)
    for name, value in state.items():
        assert torch.equal(own[name], value), name
    assert not any(p.requires_grad for p in backbone.parameters())  # frozen_stages=4
    with pytest.raises(ValueError, match="differs from the backbone's base_channels"):
        MODELS.build(
            dict(type="ProxyResNet", depth=18, base_channels=4, pretrain=dict(base_channels=8))
        )


def test_proxy_configs_name_the_pretrained_backbone() -> None:
    from paploss.study.config.mmcfg import load_config, pretrained_backbones

    root = Path(__file__).resolve().parents[1] / "studies" / "configs"
    found = pretrained_backbones(load_config(root / "proxy_retinanet_paploss.py"))
    assert found == [pb.PretrainSettings()]
    assert pretrained_backbones(load_config(root / "proxy_retinanet_focal_giou.py")) == found


@pytest.mark.slow
def test_default_pretraining_recognizes_held_out_digits(tmp_path: Path) -> None:
    """A shortened default pretraining already classifies crops of unseen source digits."""
    settings = pb.PretrainSettings(steps=300)
    _, accuracy = pb.pretrain(settings)
    assert accuracy >= 0.8, accuracy
