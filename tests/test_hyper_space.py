"""A baseline config's ``search_space`` (paploss.study.config.hyper_space) and its search.

Fast: the declaration is read and checked against the config (one-line ConfigErrors), values are
applied at dotted keys (list elements too), the bundled baselines declare spaces that hold their
hand-set values, and ``paploss-search`` refuses the loss-only flags on a baseline. Slow: a 1 x 2
TPE search of the Focal + GIoU baseline on the tiny proxy trains its hand-set values first and
one sampled set second, records the space in the study's settings, and ``paploss-train
--study-name`` retrains the best values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from mmengine.config import Config

from paploss.errors import ConfigError
from paploss.study import keys
from paploss.study.config.hyper_space import HyperSpace, get_key, set_key
from paploss.study.config.mmcfg import load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "studies" / "configs"
BASELINES = (
    "proxy_retinanet_focal_giou.py",
    "proxy_retinanet_focal_l1.py",
    "proxy_faster_rcnn_ce_l1.py",
    "proxy_faster_rcnn_ce_giou.py",
    "proxy_deformable_detr_focal_l1_giou.py",
)


def _cfg(space: Any, **extra: Any) -> Config:
    return Config(
        dict(
            optim_wrapper=dict(optimizer=dict(lr=0.02)),
            model=dict(head=dict(stds=(0.1, 0.1, 0.2, 0.2), weight=1.0)),
            search_space=space,
            **extra,
        )
    )


def test_a_declared_space_is_read_and_applied_at_its_keys() -> None:
    cfg = _cfg(
        dict(
            lr=dict(key="optim_wrapper.optimizer.lr", low=0.002, high=0.2, log=True),
            xy=dict(key=["model.head.stds.0", "model.head.stds.1"], low=0.01, high=1.0),
        )
    )
    space = HyperSpace.from_config(cfg, "c.py")
    assert space is not None and space.names() == ["lr", "xy"]
    assert space.init_values(cfg) == {"lr": 0.02, "xy": 0.1}
    dists = space.distributions()
    assert dists["lr"].log and (dists["lr"].low, dists["lr"].high) == (0.002, 0.2)
    assert not dists["xy"].log
    assert space.cfg_options({"lr": 0.05, "xy": 0.3}) == {
        "optim_wrapper.optimizer.lr": 0.05,
        "model.head.stds.0": 0.3,
        "model.head.stds.1": 0.3,
    }
    assert space.cfg_options_text({"lr": 0.05, "xy": 0.3}) == (
        "optim_wrapper.optimizer.lr=0.05 model.head.stds.0=0.3 model.head.stds.1=0.3"
    )
    space.apply(cfg, {"lr": 0.05, "xy": 0.3})
    assert cfg.optim_wrapper.optimizer.lr == 0.05
    assert list(cfg.model.head.stds) == [0.3, 0.3, 0.2, 0.2]
    with pytest.raises(ConfigError, match="missing"):
        space.from_params({"lr": 0.1})
    # the record compares equal after a JSON round trip (the study's settings)
    assert json.loads(json.dumps(space.to_json())) == space.to_json()


def test_get_and_set_key_walk_dicts_and_lists() -> None:
    cfg = {"a": {"b": [1.0, (2.0, 3.0)]}}
    assert get_key(cfg, "a.b.1.0") == 2.0
    set_key(cfg, "a.b.1.0", 5.0)
    assert cfg["a"]["b"][1] == [5.0, 3.0]
    for missing in ("a.c", "a.b.2", "a.b.0.x"):
        with pytest.raises(KeyError):
            get_key(cfg, missing)


def test_a_config_without_search_space_declares_none() -> None:
    assert HyperSpace.from_config(Config(dict(model=dict())), "c.py") is None


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ([1, 2], "must be a dict of name=dict"),
        (dict(), "declares no parameter"),
        (dict(lr=0.1), "must be a dict"),
        (dict(lr=dict(key="optim_wrapper.optimizer.lr", low=0.3, high=0.1)), "low < high"),
        (dict(lr=dict(key="optim_wrapper.optimizer.lr", low=0, high=1, log=True)), "low > 0"),
        (dict(lr=dict(key="optim_wrapper.optimizer.lr", low=0.01, high=1, lg=True)), "unknown"),
        (dict(lr=dict(key="", low=0.01, high=1)), "dotted config key"),
        (dict(lr=dict(key="optim_wrapper.optimizer.lrr", low=0.01, high=1)), "does not have"),
        (dict(lr=dict(key="model.head", low=0.01, high=1)), "not a number"),
        (dict(lr=dict(key="optim_wrapper.optimizer.lr", low=0.05, high=1)), "outside"),
        ({"my-lr": dict(key="optim_wrapper.optimizer.lr", low=0.01, high=1)}, "identifier"),
    ],
)
def test_a_bad_declaration_is_one_line(space: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        HyperSpace.from_config(_cfg(space), "c.py")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", BASELINES)
def test_every_bundled_baseline_declares_a_space_holding_its_hand_set_values(name: str) -> None:
    cfg = load_config(CONFIGS / name, {})
    space = HyperSpace.from_config(cfg, CONFIGS / name)
    assert space is not None and "lr" in space.names()
    init = space.init_values(cfg)
    for p in space.params:
        assert p.low <= init[p.name] <= p.high


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--segments", "3"], "--segments cannot apply"),
        (["--loc-score", "iou"], "--loc-score cannot apply"),
    ],
)
def test_search_refuses_loss_flags_on_a_baseline(tmp_path: Path, argv: list[str], message: str):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "studies" / "search.py"),
            "--config",
            str(CONFIGS / "proxy_retinanet_focal_giou.py"),
            "--storage",
            f"sqlite:///{tmp_path / 's.db'}",
            "--work-dir",
            str(tmp_path / "wd"),
            *argv,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "s.db").exists()


@pytest.mark.slow
def test_a_baseline_search_trains_its_hand_set_values_first_and_retrains_the_best(
    tmp_path: Path,
) -> None:
    from paploss.proxy import generate_proxy_dataset

    data = tmp_path / "tiny"
    generate_proxy_dataset(data, seed=0, num_train=8, num_eval=4, num_val=4, image_size=64)
    fast = [
        "--device",
        "cpu",
        "--data",
        str(data),
        "--cfg-options",
        "train_dataloader.batch_size=2",
        "val_dataloader.batch_size=4",
        "test_dataloader.batch_size=4",
        "train_dataloader.dataset.pipeline.2.scale=(64,64)",
        "val_dataloader.dataset.pipeline.1.scale=(64,64)",
        "test_dataloader.dataset.pipeline.1.scale=(64,64)",
    ]
    config = str(CONFIGS / "proxy_retinanet_focal_giou.py")
    url = f"sqlite:///{tmp_path / 's.db'}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    search = subprocess.run(
        [
            sys.executable,
            str(ROOT / "studies" / "search.py"),
            "--config",
            config,
            "--storage",
            url,
            "--study-name",
            "baseline",
            "--rounds",
            "1",
            "--samples-per-round",
            "2",
            "--work-dir",
            str(tmp_path / "wd"),
            *fast,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert search.returncode == 0, search.stdout[-2000:] + search.stderr[-3000:]
    assert "Best hyperparameters:" in search.stdout and "As --cfg-options:" in search.stdout

    study = optuna.load_study(study_name="baseline", storage=url)
    settings = study.user_attrs[keys.SETTINGS]
    assert settings["sampler"] == "tpe" and settings["loss_slots"] == []
    cfg = load_config(Path(config), {})
    space = HyperSpace.from_config(cfg, config)
    assert settings[keys.HYPER_SPACE] == space.to_json()
    trials = sorted(study.get_trials(), key=lambda t: t.number)
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert trials[0].user_attrs.get(keys.HAND_SET) is True
    assert trials[0].params == pytest.approx(space.init_values(cfg))
    assert trials[1].params != trials[0].params
    # each trial's dumped config carries its values
    for t in trials:
        run_cfg = Config.fromfile(str(Path(t.user_attrs[keys.WORK_DIR]) / "config.py"))
        assert run_cfg.optim_wrapper.optimizer.lr == pytest.approx(t.params["lr"])
        assert run_cfg.model.bbox_head.loss_cls.gamma == pytest.approx(t.params["gamma"])
        stds = list(run_cfg.model.bbox_head.bbox_coder.target_stds)
        assert stds == pytest.approx([t.params["stds_xy"]] * 2 + [t.params["stds_wh"]] * 2)

    train = subprocess.run(
        [
            sys.executable,
            str(ROOT / "studies" / "train.py"),
            "--config",
            config,
            "--storage",
            url,
            "--study-name",
            "baseline",
            "--trial",
            "1",
            "--epochs",
            "1",
            "--work-dir",
            str(tmp_path / "retrain"),
            *fast,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert train.returncode == 0, train.stdout[-2000:] + train.stderr[-3000:]
    assert "hyperparameters of trial 1 of study 'baseline'" in train.stdout
    run_cfg = Config.fromfile(str(tmp_path / "retrain" / "config.py"))
    assert run_cfg.optim_wrapper.optimizer.lr == pytest.approx(trials[1].params["lr"])

    # a loss config cannot take a baseline study's values, nor the reverse
    wrong = subprocess.run(
        [
            sys.executable,
            str(ROOT / "studies" / "train.py"),
            "--config",
            str(CONFIGS / "proxy_retinanet_paploss.py"),
            "--storage",
            url,
            "--study-name",
            "baseline",
            "--work-dir",
            str(tmp_path / "wrong"),
            *fast,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert wrong.returncode == 2 and "searched a baseline's hyperparameters" in wrong.stderr
