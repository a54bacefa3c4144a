"""A search study's settings record (paploss.study.search.settings): the dict the previous layout
spelled out in search_setup.py, entry by entry, now written by StudySettings."""

from __future__ import annotations

from paploss.study import keys
from paploss.study.config.early_stop import CollapseRule
from paploss.study.config.space import SearchSpace, make_slots
from paploss.study.parsers import parse_search
from paploss.study.search.settings import OPTIONAL
from paploss.study.search.setup import resolve_sampler, space_options, study_settings


def _record(argv: list[str], rule: CollapseRule | None = None) -> tuple[dict, SearchSpace]:
    options = parse_search(argv)
    space = SearchSpace(make_slots(["model.bbox_head"]), space_options(options))
    options = resolve_sampler(options, space)
    settings = study_settings(
        options, config_sha="abc", data_identity={"d": 1}, space=space, rule=rule
    )
    return settings.to_json(), space


def test_the_default_search_records_the_previous_entries_only() -> None:
    record, space = _record(["--cfg-options", "train_dataloader.num_workers=4", "a.b=2"])
    assert record == {
        "config_sha256": "abc",
        "cfg_options": {"a.b": 2},  # the machine-local num_workers left out
        "data": {"d": 1},
        "epochs": 1,
        "train_seed": 0,
        "sampler": "ppo2",
        "rounds": 40,
        "samples_per_round": 8,
        "sigma_init": 0.2,
        "loss_slots": space.to_json(),
    }


def test_the_optional_entries_appear_when_set_under_their_keys() -> None:
    rule = CollapseRule(check_at=30, window=10, min_motion=0.003)
    record, space = _record(["--segments", "3", "--loc-score", "iou", "--rounds", "2"], rule)
    assert set(OPTIONAL) == {
        keys.SPACE_OPTIONS,
        keys.COLLAPSE_RULE,
        keys.LOSS_OPTIONS,
        keys.HYPER_SPACE,
    }
    assert record[keys.SPACE_OPTIONS] == space.options.to_json() and record["rounds"] == 2
    assert record[keys.COLLAPSE_RULE] == rule.to_json()
    assert record[keys.LOSS_OPTIONS] == {"loc_score": "iou"}
