"""A study recorded by paploss 0.1 (its config digest in the 0.1 spelling) is still joined."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from paploss.study import keys
from paploss.study.cli import UsageError
from paploss.study.config.mmcfg import config_digest, load_config
from paploss.study.search.setup import check_existing

CONFIG = Path(__file__).resolve().parents[1] / "paploss" / "configs" / "proxy_retinanet_paploss.py"
DIGEST_0_1 = "fc84b5a298960660209d1b91438506e2384f1bf9af27a90b83178dbf45d223bc"
"""The config_sha256 that paploss 0.1 recorded for proxy_retinanet_paploss.py."""


def _study(recorded_digest: str) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    study.set_user_attr(keys.SETTINGS, {"config_sha256": recorded_digest, "epochs": 1})
    return study


def test_a_0_1_study_is_joined_and_a_changed_config_is_refused() -> None:
    cfg = load_config(CONFIG)
    mine = {"config_sha256": config_digest(cfg), "epochs": 1}
    assert mine["config_sha256"] != DIGEST_0_1, "the spelling change changes the digest"
    check_existing(_study(DIGEST_0_1), mine, cfg)  # joined
    check_existing(_study(config_digest(cfg)), mine, cfg)  # a study of this version
    changed = load_config(CONFIG, {"optim_wrapper.optimizer.lr": 0.05})
    with pytest.raises(UsageError, match="config_sha256"):
        check_existing(
            _study(DIGEST_0_1), {**mine, "config_sha256": config_digest(changed)}, changed
        )
