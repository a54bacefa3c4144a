"""Early stop of collapsed search trials (paploss.study.config.early_stop and its use by the search)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest

from paploss.errors import ConfigError
from paploss.study import keys
from paploss.study.config.early_stop import CollapseRule
from tests.test_progress import _progress

optuna.logging.set_verbosity(optuna.logging.WARNING)
CONFIGS = Path(__file__).resolve().parents[1] / "paploss" / "configs"


@pytest.mark.parametrize("seed", range(5))
def test_motion_is_the_mean_step_within_the_window_before_the_check(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rule = CollapseRule(check_at=30, window=12, min_motion=0.02)
    losses = rng.normal(0.0, 0.02, size=50).tolist()
    window = np.asarray(losses[18:30])  # iterations 19..30
    expected = float(np.abs(np.diff(window)).mean())
    assert rule.motion(losses) == pytest.approx(expected, rel=1e-12)
    assert rule.motion(losses[:29]) is None
    assert rule.collapsed(losses) == (expected < 0.02)


def test_a_flat_loss_collapses_and_a_moving_one_does_not() -> None:
    rule = CollapseRule(check_at=40, window=20, min_motion=0.003)
    start = list(np.linspace(0.3, 0.004, 20))  # falls fast, then stays near 0
    flat = start + [0.004 + 0.001 * (k % 3) for k in range(30)]
    moving = start + [0.004 - 0.01 * k + 0.03 * (k % 2) for k in range(30)]
    assert rule.collapsed(flat)
    assert not rule.collapsed(moving)
    assert not rule.collapsed(flat[:39]), "decided before check_at"


@pytest.mark.parametrize(
    "value, message",
    [
        ([1, 2], "must be dict"),
        (dict(check_at=40, window=20), "missing: ['min_motion']"),
        (dict(check_at=40, window=20, min_motion=0.1, max_spread=1), "unknown: ['max_spread']"),
        (dict(check_at=0, window=20, min_motion=0.1), "check_at must be an integer >= 1"),
        (dict(check_at=40.5, window=20, min_motion=0.1), "check_at must be an integer"),
        (dict(check_at=10, window=20, min_motion=0.1), "at most check_at"),
        (dict(check_at=10, window=1, min_motion=0.1), "at least 2"),
        (dict(check_at=40, window=20, min_motion=0), "min_motion must be a finite number > 0"),
        (dict(check_at=40, window=20, min_motion="0.1"), "min_motion must be"),
        (dict(check_at=40, window=20, min_motion=float("nan")), "min_motion must be"),
    ],
)
def test_malformed_rules_are_config_errors(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        CollapseRule.from_config(value)
    assert message in str(info.value)


def test_no_entry_is_no_rule() -> None:
    assert CollapseRule.from_config(None) is None
    rule = CollapseRule.from_config(dict(check_at=40, window=20, min_motion=0.003))
    assert rule == CollapseRule(40, 20, 0.003)
    assert CollapseRule.from_config(rule.to_json()) == rule


def test_only_search_trials_keep_the_rule_and_the_digest_ignores_it(tmp_path: Path) -> None:
    from paploss.study.config.early_stop import CONFIG_KEY
    from paploss.study.config.loss_slots import search_space_of
    from paploss.study.config.mmcfg import config_digest, load_config, prepare_config
    from paploss.study.data.sources import DataSplit

    cfg = load_config(CONFIGS / "proxy_retinanet_paploss.py")
    assert CollapseRule.from_config(cfg.get(CONFIG_KEY)) is not None, "the proxy declares one"
    space = search_space_of(cfg, Path("x"))
    split = DataSplit(tmp_path / "a.json", tmp_path / "img")

    def prepared(**kwargs: object) -> object:
        return prepare_config(
            cfg,
            space=space,
            loss_params={},
            train=split,
            evaluate=split,
            work_dir=tmp_path,
            epochs=1,
            seed=0,
            **kwargs,
        )

    assert CONFIG_KEY in prepared(search=True)
    assert CONFIG_KEY not in prepared(search=True, early_stop=False)
    assert CONFIG_KEY not in prepared(search=False)
    without = load_config(CONFIGS / "proxy_retinanet_paploss.py")
    without.pop(CONFIG_KEY)
    assert config_digest(without) == config_digest(cfg)


def test_the_round_line_counts_the_trials_stopped_early(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from paploss.study.search.records import progress_line

    study = optuna.create_study(direction="maximize")
    for value, collapsed in [(0.3, False), (0.0, True), (0.0, False)]:
        trial = study.ask()
        trial.set_user_attr(keys.COLLAPSED, collapsed)
        if collapsed:
            trial.set_user_attr(keys.COLLAPSED_AT, 40)
        study.tell(trial, value)
    progress = _progress(study, tmp_path, rounds=1, samples=3)
    progress.print_round_summary(progress.complete_trials(), 0)
    out = capsys.readouterr().out
    assert "2/3 at AP < 0.001 (1 stopped early)" in out
    line = progress_line(
        trial_number=1,
        round_index=0,
        rounds=1,
        ap=0.0,
        diverged=False,
        best=0.3,
        best_trial=0,
        complete=2,
        total=3,
        elapsed=10.0,
        eta=5.0,
        collapsed_at=40,
    )
    assert "AP 0.0000 (collapsed, stopped at iteration 40)" in line
    fields = dict(
        round_index=0,
        rounds=1,
        diverged=False,
        best=0.3,
        best_trial=0,
        complete=3,
        total=3,
        elapsed=10.0,
        eta=0.0,
    )
    # a collapsed trial the rule did not stop: tagged by its AP; a low one that learns: no tag
    below = progress_line(trial_number=2, ap=0.0009, **fields)
    assert "AP 0.0009 (collapsed, trained to the end)" in below
    assert "collapsed" not in progress_line(trial_number=2, ap=0.001, **fields)


@pytest.mark.slow
def test_a_search_stops_collapsed_trials_and_counts_them_in_their_round(tmp_path: Path) -> None:
    """A 1-round x 2-sample PPO2 search on the tiny proxy whose rule calls every training at
    iteration 3 collapsed (any motion is below 1e9): both trials stop there with reward 0, are
    recorded as collapsed and complete the round; with --no-early-stop they train to the end."""
    import subprocess
    import sys

    from paploss.proxy import generate_proxy_dataset
    from tests.test_studies_e2e import ENV, FAST, SEARCH

    data = tmp_path / "tiny"
    generate_proxy_dataset(data, seed=0, num_train=8, num_eval=4, num_val=4, image_size=64)
    url = f"sqlite:///{tmp_path / 's.db'}"

    def search(name: str, *extra: str) -> subprocess.CompletedProcess:
        cmd = [
            sys.executable,
            SEARCH,
            "--storage",
            url,
            "--study-name",
            name,
            "--rounds",
            "1",
            "--samples-per-round",
            "2",
            "--data",
            str(data),
            "--work-dir",
            str(tmp_path / "wd"),
            *FAST,
            "collapse_rule.check_at=3",
            "collapse_rule.window=2",
            "collapse_rule.min_motion=1e9",
            *extra,
        ]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=ENV)

    proc = search("stopped")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    study = optuna.load_study(study_name="stopped", storage=url)
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 2
    for t in trials:
        assert t.value == 0.0
        assert t.user_attrs[keys.COLLAPSED] is True
        assert t.user_attrs[keys.COLLAPSED_AT] == 3
        assert t.user_attrs[keys.ITERATIONS] == 3, "trained past the check"
        assert t.user_attrs[keys.ROUND] == 0
    assert study.user_attrs[keys.SETTINGS][keys.COLLAPSE_RULE] == dict(
        check_at=3, window=2, min_motion=1e9
    )
    assert "(collapsed, stopped at iteration 3)" in proc.stdout
    assert "2/2 at AP < 0.001 (2 stopped early)" in proc.stdout

    proc = search("full", "--no-early-stop")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    study = optuna.load_study(study_name="full", storage=url)
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 2
    assert all(t.user_attrs[keys.COLLAPSED] is False for t in trials)
    assert all(t.user_attrs[keys.ITERATIONS] == 4 for t in trials)
    assert keys.COLLAPSE_RULE not in study.user_attrs[keys.SETTINGS]


@pytest.mark.slow
def test_the_proxy_rule_stops_a_collapsing_draw_and_not_a_healthy_one(tmp_path: Path) -> None:
    """On the bundled proxy with its own collapse_rule: the draw known to collapse (AP 0.000 when
    trained to the end) stops at the rule's check with reward 0; the linear preset (AP ~0.3)
    trains to the end."""
    import json

    from paploss import LossParams
    from paploss.study.config.early_stop import CONFIG_KEY
    from paploss.study.config.loss_slots import search_space_of
    from paploss.study.config.mmcfg import ensure_backbones, load_config, prepare_config
    from paploss.study.data.sources import resolve_data
    from paploss.study.runner.warm import WarmRunner

    cfg = load_config(CONFIGS / "proxy_retinanet_paploss.py")
    rule = CollapseRule.from_config(cfg[CONFIG_KEY])
    ensure_backbones(cfg, log=print)
    data = resolve_data(None, work_dir=tmp_path)
    space = search_space_of(cfg, Path("x"))
    vector = json.loads((Path(__file__).parent / "data" / "collapsing_draw.json").read_text())
    sets = {
        "collapsing": LossParams.from_vector(vector["vector"]),
        "linear": LossParams.preset("linear"),
    }
    results = {}
    with WarmRunner(device="cpu") as runner:
        for name, params in sets.items():
            run_dir = tmp_path / name
            run_dir.mkdir()
            run_cfg = prepare_config(
                cfg,
                space=space,
                loss_params={"": params},
                train=data.splits["train"],
                evaluate=data.splits["eval"],
                work_dir=run_dir,
                epochs=1,
                seed=0,
                search=True,
            )
            run_cfg.dump(str(run_dir / "config.py"))
            results[name] = runner.run(run_dir, config=run_dir / "config.py")
    stopped, healthy = results["collapsing"], results["linear"]
    assert stopped.status == "collapsed" and stopped.collapsed_at == rule.check_at
    assert stopped.iterations == rule.check_at
    assert stopped.metrics["AP"] == 0.0
    assert healthy.status == "ok" and healthy.collapsed_at is None
    assert healthy.iterations > rule.check_at
    assert healthy.metrics["AP"] > 0.2
