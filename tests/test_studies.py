"""Fast tests of the studies library (paploss/study) and scripts: CLI validation and exit codes,
the COCO split, the search space of one or two loss heads, run configs, records and plots.

The end-to-end searches with real trainings are in tests/test_studies_e2e.py.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from paploss import LossParams
from paploss.errors import InputError
from paploss.params import search_space_names
from paploss.study import cli, parsers, storage
from paploss.study.config.space import LossSlot, SearchSpace, make_slots, slot_name_for_key
from paploss.study.data.coco import split_coco
from paploss.study.data.sources import (
    DataSplit,
    check_data_arg,
    default_eval_images,
    merge_coco,
    resolve_data,
)
from paploss.study.runner.child import _select_metrics, is_numerical_blowup
from paploss.study.runner.trial import loss_buckets
from paploss.study.search import records

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
CONFIGS = ROOT / "studies" / "configs"


def run_script(script: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PY, str(ROOT / "studies" / script), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


COMMANDS = {
    "search": "paploss.study.search.command",
    "train": "paploss.study.train",
    "split": "paploss.study.split",
}
"""The module of each command's ``main``."""


def run_main(module: str, argv: list[str], capsys) -> tuple[int, str, str]:
    """Run a script's main() in this process: (exit code, stdout, stderr)."""
    import importlib

    main = importlib.import_module(COMMANDS[module]).main
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def tiny_coco(num_images: int = 10, per_image: int = 2) -> dict:
    images = [
        {"id": 100 + i, "file_name": f"{i:03d}.png", "width": 64, "height": 64}
        for i in range(num_images)
    ]
    anns = []
    for im in images:
        for k in range(per_image):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": im["id"],
                    "category_id": 1 + k,
                    "bbox": [4.0 * k, 4.0, 10.0, 12.0],
                    "area": 120.0,
                    "iscrowd": 0,
                }
            )
    return {
        "info": {"description": "tiny"},
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }


# ------------------------------------------------------------------------------ --help
@pytest.mark.parametrize(
    ("script", "flags"),
    [
        (
            "search.py",
            [
                "--config",
                "--data",
                "--storage",
                "--study-name",
                "--sampler",
                "--rounds",
                "--samples-per-round",
                "--seed",
                "--work-dir",
                "--epochs",
                "--device",
                "--cfg-options",
                "--n-trials",
                "--timeout",
                "--heartbeat-interval",
                "--grace-period",
                "--max-retry",
                "--trial-timeout",
            ],
        ),
        ("train.py", ["--storage", "--study-name", "--preset", "--params", "--export", "--epochs"]),
        ("split_coco.py", ["--out-dir", "--eval-images", "--seed"]),
    ],
)
def test_help_documents_every_flag_with_default(script: str, flags: list[str]) -> None:
    proc = run_script(script, "--help")
    assert proc.returncode == 0, proc.stderr
    for flag in flags:
        assert flag in proc.stdout, flag
    if script == "search.py":
        text = " ".join(proc.stdout.split())
        assert "(default: sqlite:///paploss.db)" in text
        assert "proxy_retinanet_paploss.py" in text
        assert "(default: ppo2 for a config with a PAPLoss head" in text
        assert "(default: 1)" in text


def test_search_parser_defaults_are_the_papers() -> None:
    args = parsers.search_parser().parse_args([])
    assert args.rounds == 40 and args.samples_per_round == 8 and args.sigma_init == 0.2
    # the sampler is chosen with the config: PPO2 for a loss search (TPE for a baseline's
    # search_space, tests/test_hyper_space.py)
    assert args.epochs == 1 and args.sampler is None and args.storage == cli.DEFAULT_STORAGE
    assert args.config == cli.DEFAULT_CONFIG and args.config.is_file()
    assert args.data == ["proxy"] and args.cfg_options == {}


def test_cfg_options_are_parsed_like_mmdet() -> None:
    args = parsers.search_parser().parse_args(
        ["--cfg-options", "a.b=1", "c=0.5", "d=[1,2]", "e=true", "f=None", "g=x"]
    )
    assert args.cfg_options == {"a.b": 1, "c": 0.5, "d": [1, 2], "e": True, "f": None, "g": "x"}


def test_unknown_sampler_exits_2_without_a_database(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    proc = run_script("search.py", "--storage", f"sqlite:///{db}", "--sampler", "nope")
    assert proc.returncode == 2
    assert "invalid choice: 'nope'" in proc.stderr and "ppo2" in proc.stderr
    assert not db.exists()


def test_samples_per_round_1_is_accepted_outside_ppo2() -> None:
    from paploss.study.parsers import parse_search
    from paploss.study.search.setup import prepare

    prepare(
        parse_search(["--sampler", "random", "--samples-per-round", "1"])
    )  # no UsageError: only PPO2 needs two rewards per round
    assert prepare(parse_search([])).options.sampler == "ppo2"


def test_unknown_preset_lists_the_presets_once(tmp_path: Path, capsys) -> None:
    code, _, err = run_main("train", ["--preset", "nope", "--work-dir", str(tmp_path)], capsys)
    assert code == 2 and "unknown preset 'nope'" in err
    assert err.count("paper-retinanet") == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rounds", "0"], "must be an integer >= 1"),
        (["--device", "gpu7"], "auto (CUDA if available"),
        (["--cfg-options", "novalue"], "expected KEY=VALUE"),
        (["--samples-per-round", "1"], "--samples-per-round must be >= 2 with --sampler ppo2"),
        (["--data", str(Path("/nonexistent/d"))], "no such folder"),
        (["--data", "/nonexistent/ann.json", "/tmp"], "COCO json /nonexistent/ann.json does not"),
        (["--data", "a", "b", "c"], "got 3 values"),
        (["--config", "nope.py"], "--config nope.py: no such file"),
        (["--cfg-options", "model.backbone.depth=7"], "model does not build"),
        # pretrain=dict() in the config: its fields are new keys (+), checked when built
        (["--cfg-options", "+model.backbone.pretrain.lr=20"], "lr must lie in (0, 10), got 20"),
        # a baseline without its search_space: nothing to search
        (
            [
                "--config",
                str(CONFIGS / "proxy_retinanet_focal_l1.py"),
                "--cfg-options",
                "search_space=None",
            ],
            "no head trained by",
        ),
    ],
)
def test_bad_input_exits_2_without_touching_storage(
    tmp_path: Path, capsys, argv: list[str], message: str
) -> None:
    db = tmp_path / "s.db"
    code, _, err = run_main("search", ["--storage", f"sqlite:///{db}", *argv], capsys)
    assert code == 2
    assert message in err
    assert not db.exists()


def test_malformed_coco_json_exits_2_without_a_database(tmp_path: Path, capsys) -> None:
    db = tmp_path / "s.db"
    bad = tmp_path / "ann.json"
    bad.write_text('{"images": [], "categories": []}')
    code, _, err = run_main(
        "search",
        [
            "--storage",
            f"sqlite:///{db}",
            "--data",
            str(bad),
            str(tmp_path),
            "--work-dir",
            str(tmp_path / "w"),
        ],
        capsys,
    )
    assert code == 2 and "is not a COCO detection json: missing ['annotations']" in err
    assert not db.exists()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:1/nowhere",
        "sqlite:////nonexistent-dir/sub/x.db",
        "nope://x",
    ],
)
def test_unreachable_storage_exits_2(tmp_path: Path, capsys, url: str) -> None:
    code, _, err = run_main(
        "search", ["--storage", url, "--study-name", "x", "--work-dir", str(tmp_path)], capsys
    )
    assert code == 2, err
    assert "error: cannot open storage" in err and "Give a reachable SQLAlchemy URL" in err
    assert "Traceback" not in err
    assert not (tmp_path / "artifacts").exists()


def test_data_arg_checks(tmp_path: Path) -> None:
    check_data_arg(None)
    check_data_arg(["proxy"])
    with pytest.raises(InputError, match="image folder too"):
        check_data_arg([str(tmp_path / "x.json")])
    (tmp_path / "train").mkdir()
    with pytest.raises(InputError, match="eval/annotations.json"):
        (tmp_path / "train" / "annotations.json").write_text("{}")
        check_data_arg([str(tmp_path)])
    with pytest.raises(InputError, match="got 3 values"):
        check_data_arg(["a", "b", "c"])


def test_normalize_storage_url_picks_an_installed_driver() -> None:
    import importlib.util

    url = storage.normalize_storage_url("postgresql://u@h:1/db")
    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
        assert url == "postgresql+psycopg2://u@h:1/db"
    assert storage.normalize_storage_url("sqlite:///x.db") == "sqlite:///x.db"
    assert storage.normalize_storage_url("postgresql+psycopg2://h/d") == "postgresql+psycopg2://h/d"
    assert "secret" not in storage.render_url("postgresql://u:secret@h/db")


# ------------------------------------------------------------------------------ COCO split
def test_split_coco_partitions_images_and_follows_annotations() -> None:
    data = tiny_coco(20)
    train, ev = split_coco(data, eval_images=5, seed=3)
    ids_t = {im["id"] for im in train["images"]}
    ids_e = {im["id"] for im in ev["images"]}
    assert len(ids_e) == 5 and len(ids_t) == 15 and not ids_t & ids_e
    assert ids_t | ids_e == {im["id"] for im in data["images"]}
    assert all(a["image_id"] in ids_e for a in ev["annotations"])
    assert all(a["image_id"] in ids_t for a in train["annotations"])
    assert len(train["annotations"]) + len(ev["annotations"]) == len(data["annotations"])
    assert train["categories"] == ev["categories"] == data["categories"]
    assert train["info"] == data["info"]
    # seeded: same seed, same split; another seed, another split
    assert split_coco(data, eval_images=5, seed=3)[1] == ev
    assert {im["id"] for im in split_coco(data, eval_images=5, seed=4)[1]["images"]} != ids_e
    # independent of the order of the images in the file
    shuffled = dict(data, images=list(reversed(data["images"])))
    assert {im["id"] for im in split_coco(shuffled, eval_images=5, seed=3)[1]["images"]} == ids_e


def test_default_eval_images_matches_the_paper() -> None:
    assert default_eval_images(118287, None) == 5000
    assert default_eval_images(20, None) == 4
    assert default_eval_images(2, None) == 1
    with pytest.raises(InputError, match="must be in"):
        default_eval_images(10, 10)


def test_split_coco_script(tmp_path: Path, capsys) -> None:
    src = tmp_path / "ann.json"
    src.write_text(json.dumps(tiny_coco(12)))
    out = tmp_path / "out"
    code, stdout, err = run_main(
        "split", [str(src), "--out-dir", str(out), "--eval-images", "3"], capsys
    )
    assert code == 0, err
    assert "D_eval: 3 images" in stdout and "D_train: 9 images" in stdout
    ev = json.loads((out / "eval.json").read_text())
    assert len(ev["images"]) == 3
    code, _, err = run_main("split", [str(src), "--out-dir", str(out)], capsys)
    assert code == 2 and "--force" in err
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": []}')
    code, _, err = run_main("split", [str(bad), "--out-dir", str(tmp_path / "o2")], capsys)
    assert code == 2 and "missing ['annotations', 'categories']" in err
    assert not (tmp_path / "o2").exists()
    # the script itself
    proc = run_script("split_coco.py", str(src), "--out-dir", str(out), "--force", "--seed", "1")
    assert proc.returncode == 0 and "D_train: 10 images" in proc.stdout


def test_resolve_coco_data_writes_the_split_once(tmp_path: Path) -> None:
    from PIL import Image

    src = tmp_path / "ann.json"
    src.write_text(json.dumps(tiny_coco(10)))
    for image in tiny_coco(10)["images"]:  # a sample of them is opened before the split
        Image.new("RGB", (64, 64)).save(tmp_path / image["file_name"])
    data = resolve_data([str(src), str(tmp_path)], work_dir=tmp_path / "w", eval_images=2)
    assert data.kind == "coco" and set(data.splits) == {"train", "eval"}
    assert data.splits["train"].img_dir == tmp_path.resolve()
    assert data.record()["num_images"] == {"train": 8, "eval": 2}
    mtime = data.splits["eval"].ann_file.stat().st_mtime_ns
    again = resolve_data([str(src), str(tmp_path)], work_dir=tmp_path / "w", eval_images=2)
    assert again.splits == data.splits and again.identity() == data.identity()
    assert data.splits["eval"].ann_file.stat().st_mtime_ns == mtime


def test_merge_coco_keeps_images_with_absolute_paths(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(tiny_coco(3)))
    b.write_text(json.dumps(tiny_coco(2)))
    merged = merge_coco(
        [DataSplit(a, tmp_path / "A"), DataSplit(b, tmp_path / "B")], tmp_path / "m.json"
    )
    data = json.loads(merged.ann_file.read_text())
    assert [im["id"] for im in data["images"]] == [1, 2, 3, 4, 5]
    assert data["images"][3]["file_name"] == str(tmp_path / "B" / "000.png")
    assert len(data["annotations"]) == 10
    assert {a["image_id"] for a in data["annotations"]} == {1, 2, 3, 4, 5}


# ------------------------------------------------------------------------------ search space
def test_single_head_space_is_loss_params_space() -> None:
    space = SearchSpace(make_slots(["model.bbox_head"]))
    assert space.names() == search_space_names()
    assert space.distributions() == LossParams.search_space()
    assert space.init_mean() == LossParams.preset("linear").to_search_params()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    params = space.suggest(trial)
    assert list(params) == [""]
    assert params[""] == LossParams.from_search_params(trial.params)


def test_two_heads_are_searched_jointly_with_prefixes() -> None:
    slots = make_slots(["model.rpn_head", "model.roi_head.bbox_head"])
    assert [s.name for s in slots] == ["rpn", "roi"]
    space = SearchSpace(slots)
    names = space.names()
    assert len(names) == 82 and names[0] == "rpn/f1_x1" and names[-1] == "roi/lambda"
    assert set(space.distributions()) == set(names)
    assert all(d == FloatDistribution(0.0, 1.0) for d in space.distributions().values())
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    params = space.suggest(trial)
    assert set(params) == {"rpn", "roi"} and params["rpn"] != params["roi"]
    assert space.from_params(trial.params) == params
    rpn_values = {n.removeprefix("rpn/"): v for n, v in trial.params.items() if "rpn/" in n}
    assert params["rpn"] == LossParams.from_search_params(rpn_values)
    with pytest.raises(ValueError, match="missing"):
        space.from_params({"rpn/lambda": 0.5})
    assert SearchSpace.from_json(space.to_json()).slots == space.slots


def test_slot_names() -> None:
    assert slot_name_for_key("model.rpn_head") == "rpn"
    assert slot_name_for_key("model.roi_head.bbox_head") == "roi"
    assert [s.name for s in make_slots(["model.a_head.x", "model.a_head.y"])] == [
        "a_head_x",
        "a_head_y",
    ]
    with pytest.raises(ValueError, match="no name"):
        SearchSpace([LossSlot("x", "model.bbox_head")])


# ------------------------------------------------------------------------------ run configs
@pytest.fixture(scope="module")
def proxy_cfg():
    from paploss.study.config.mmcfg import load_config

    return load_config(CONFIGS / "proxy_retinanet_paploss.py")


def test_a_read_config_dumps_without_yapf_and_reads_back_the_same(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Run configs are logged and dumped several times per trial; their text skips yapf (also
    in a copy, as mmengine's Runner makes one) and is still the same config."""
    import copy

    import mmengine.config.config
    from mmengine.config import Config

    from paploss.study.config.mmcfg import read_config

    path = CONFIGS / "proxy_retinanet_paploss.py"
    cfg = copy.deepcopy(read_config(path))

    def no_yapf(*args: object, **kwargs: object) -> None:
        raise AssertionError("yapf formatted a run config")

    monkeypatch.setattr(mmengine.config.config, "FormatCode", no_yapf)
    cfg.dump(str(tmp_path / "config.py"))
    assert Config.fromfile(str(tmp_path / "config.py")).to_dict() == (
        Config.fromfile(str(path)).to_dict()
    )


def test_loss_slots_of_the_configs() -> None:
    from paploss.study.config.loss_slots import find_loss_slots
    from paploss.study.config.mmcfg import load_config

    assert find_loss_slots(load_config(CONFIGS / "proxy_retinanet_paploss.py")) == [
        "model.bbox_head"
    ]
    assert find_loss_slots(load_config(CONFIGS / "proxy_faster_rcnn_paploss.py")) == [
        "model.rpn_head",
        "model.roi_head.bbox_head",
    ]
    assert find_loss_slots(load_config(CONFIGS / "proxy_retinanet_focal_l1.py")) == []


def test_prepare_config_sets_params_data_epochs(proxy_cfg, tmp_path: Path) -> None:
    from mmengine.config import Config

    from paploss.study.config.loss_slots import search_space_of
    from paploss.study.config.mmcfg import prepare_config

    space = search_space_of(proxy_cfg, Path("x"))
    params = LossParams.preset("paper-retinanet")
    train = DataSplit(tmp_path / "t.json", tmp_path / "timg")
    ev = DataSplit(tmp_path / "e.json", tmp_path / "eimg")
    cfg = prepare_config(
        proxy_cfg,
        space=space,
        loss_params={"": params},
        train=train,
        evaluate=ev,
        work_dir=tmp_path / "run",
        epochs=3,
        seed=7,
        search=True,
    )
    path = tmp_path / "config.py"
    cfg.dump(str(path))
    back = Config.fromfile(str(path))
    assert LossParams.from_config(back.model.bbox_head.loss_cls.params) == params
    assert back.train_dataloader.dataset.ann_file == str(train.ann_file)
    assert back.train_dataloader.dataset.data_prefix.img == str(train.img_dir) + "/"
    assert back.val_dataloader.dataset.ann_file == str(ev.ann_file)
    assert back.val_evaluator.ann_file == str(ev.ann_file)
    assert back.train_cfg.max_epochs == 3 and back.train_cfg.val_interval == 3
    assert back.default_hooks.checkpoint is None
    assert back.randomness.seed == 7 and back.work_dir == str(tmp_path / "run")
    # the cosine decay to 0 ends with the 3-epoch run; the iteration-based warm-up is kept
    warmup, cosine = back.param_scheduler
    assert (warmup.by_epoch, warmup.end) == (False, 16)
    assert (cosine.type, cosine.end, cosine.T_max) == ("CosineAnnealingLR", 3, 3)
    # the loaded config is not modified
    assert proxy_cfg.model.bbox_head.loss_cls.params == {"preset": "linear"}
    assert proxy_cfg.param_scheduler[1]["end"] == 1


def test_stretch_schedule_moves_only_schedulers_that_end_with_the_run() -> None:
    from mmengine.config import Config

    from paploss.study.config.mmcfg import stretch_schedule

    cfg = Config(
        dict(
            param_scheduler=[
                dict(type="LinearLR", by_epoch=False, begin=0, end=16),
                dict(type="CosineAnnealingLR", by_epoch=True, begin=0, end=2, T_max=2),
                dict(type="MultiStepLR", by_epoch=True, begin=0, end=2, milestones=[1]),
                dict(type="ConstantLR", by_epoch=True, begin=0, end=1),
                dict(type="CosineAnnealingLR", by_epoch=True, begin=1, end=2, T_max=1),
            ]
        )
    )
    stretch_schedule(cfg, 2, 6)
    ends = [(s["end"], s.get("T_max")) for s in cfg.param_scheduler]
    assert ends == [(16, None), (6, 6), (6, None), (1, None), (6, 5)]


def test_faster_rcnn_gets_one_param_set_per_head(tmp_path: Path) -> None:
    from mmengine.config import Config

    from paploss.study.config.loss_slots import search_space_of
    from paploss.study.config.mmcfg import config_digest, load_config, prepare_config

    cfg = load_config(CONFIGS / "proxy_faster_rcnn_paploss.py")
    space = search_space_of(cfg, Path("x"))
    assert [(s.name, s.key) for s in space.slots] == [
        ("rpn", "model.rpn_head"),
        ("roi", "model.roi_head.bbox_head"),
    ]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))
    params = space.suggest(study.ask())
    split = DataSplit(tmp_path / "a.json", tmp_path / "img")
    run_cfg = prepare_config(
        cfg,
        space=space,
        loss_params=params,
        train=split,
        evaluate=split,
        work_dir=tmp_path,
        epochs=1,
        seed=0,
        search=True,
    )
    run_cfg.dump(str(tmp_path / "c.py"))
    back = Config.fromfile(str(tmp_path / "c.py"))
    assert LossParams.from_config(back.model.rpn_head.loss_cls.params) == params["rpn"]
    assert LossParams.from_config(back.model.roi_head.bbox_head.loss_cls.params) == params["roi"]
    # the digest ignores where the data lies, not what is trained
    assert config_digest(run_cfg) != config_digest(cfg)
    moved = prepare_config(
        cfg,
        space=space,
        loss_params=params,
        train=DataSplit(Path("/elsewhere/a.json"), Path("/elsewhere/img")),
        evaluate=split,
        work_dir=tmp_path / "other",
        epochs=1,
        seed=0,
        search=True,
    )
    assert config_digest(moved) == config_digest(run_cfg)


def test_study_settings_conflicts_ignore_worker_local_options() -> None:
    from paploss.study.config.mmcfg import is_machine_local
    from paploss.study.storage import settings_conflicts

    assert is_machine_local("train_dataloader.num_workers")
    assert is_machine_local("env_cfg.cudnn_benchmark")
    assert is_machine_local("default_hooks.logger.interval")
    assert is_machine_local("train_dataloader.dataset.data_root")
    assert not is_machine_local("optim_wrapper.optimizer.lr")
    stored = {"rounds": 3, "cfg_options": {"a": [1, 2]}}
    assert settings_conflicts(stored, {"rounds": 3, "cfg_options": {"a": (1, 2)}}) == []
    assert settings_conflicts(stored, {"rounds": 4, "cfg_options": {"a": [1, 2]}}) == ["rounds"]


def test_dashboard_command_has_absolute_sqlite_path(tmp_path: Path, monkeypatch) -> None:
    from paploss.study.search.progress import dashboard_command
    from paploss.study.storage import dashboard_url

    monkeypatch.chdir(tmp_path)
    assert dashboard_url("sqlite:///x.db") == f"sqlite:///{tmp_path / 'x.db'}"
    command = dashboard_command("sqlite:///x.db", Path("w/artifacts"))
    assert command.endswith(f"sqlite:///{tmp_path / 'x.db'} --artifact-dir {tmp_path}/w/artifacts")
    assert "optuna-dashboard" in command


# ------------------------------------------------------------------------------ trial results
def test_select_metrics_prefers_full_precision_and_maps_no_detections_to_zero() -> None:
    raw = {
        "coco/bbox_mAP": 0.123,
        "coco/bbox_mAP_50": 0.3,
        "coco/bbox_mAP_75": 0.1,
        "coco/bbox_mAP_s": 0.05,
        "coco/bbox_mAP_m": 0.2,
        "coco/bbox_mAP_l": -1.0,
    }
    stats = [("bbox", [0.12312, 0.30004, 0.1, 0.0501, 0.2002, -1.0] + [0.0] * 6)]
    metrics, found = _select_metrics(raw, stats)
    assert found and metrics["AP"] == pytest.approx(0.12312) and metrics["APl"] == -1.0
    wrong = [("bbox", [0.9] * 12)]  # not this evaluation's stats: the rounded values are used
    assert _select_metrics(raw, wrong)[0]["AP"] == 0.123
    assert _select_metrics({}, []) == (
        dict.fromkeys(("AP", "AP50", "AP75", "APs", "APm", "APl"), 0.0),
        False,
    )


def test_numerical_blowup_detection() -> None:
    import torch

    from paploss import ParameterizedAPLoss
    from paploss.errors import NonFiniteError

    logits = torch.tensor([float("nan"), 0.0])
    with pytest.raises(NonFiniteError) as caught:  # what the loss raises after a blow-up
        ParameterizedAPLoss()(logits, torch.tensor([1, 0]), torch.tensor([0.5, 0.0]))
    assert is_numerical_blowup(caught.value)
    assert is_numerical_blowup(FloatingPointError("x"))
    try:
        try:
            raise NonFiniteError("scores must be finite")
        except NonFiniteError as inner:
            raise KeyError("wrapped") from inner
    except KeyError as outer:
        assert is_numerical_blowup(outer)
    assert not is_numerical_blowup(KeyError("information"))
    assert not is_numerical_blowup(ValueError("loss is nan"))  # by type, not by message


def test_loss_buckets() -> None:
    curve = [[i, float(i)] for i in range(1, 101)]
    buckets = loss_buckets(curve, max_points=10)
    assert len(buckets) == 10 and buckets[0] == (10, 5.5) and buckets[-1] == (100, 95.5)
    assert loss_buckets([[1, 2.0], [2, math.nan]]) == [(1, 2.0)]
    assert loss_buckets([]) == []


# ------------------------------------------------------------------------------ records
def test_params_note_has_the_control_points_table() -> None:
    p = LossParams.preset("paper-retinanet")
    note = records.params_note({"": p}, "Trial 3")
    assert note.startswith("## Trial 3")
    assert "| function | k=0 | k=1 | k=2 | k=3 | k=4 | k=5 |" in note
    for i, f in enumerate(p.functions):
        row = next(line for line in note.splitlines() if line.startswith(f"| f{i + 1}:"))
        assert row.count("(") == 7  # the name plus 6 control points
        assert f"({records._fmt(f.xs[1].item())}, {records._fmt(f.ys[1].item())})" in row
    assert f"λ = {p.gradient_scale:.4g}" in note
    two = records.params_note({"rpn": p, "roi": LossParams.preset("linear")}, "x")
    assert "### rpn" in two and "### roi" in two
    assert records.lambda_attrs({"rpn": p, "roi": p}) == {
        "rpn/lambda": p.gradient_scale,
        "roi/lambda": p.gradient_scale,
    }


def test_plots_are_png(tmp_path: Path) -> None:
    png = records.plot_functions({"": LossParams.preset("sqrt")}, tmp_path / "f.png", "t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [
        {
            "round": 0,
            "best": 0.1,
            "best_trial": 0,
            "mean": 0.05,
            "values": [0.1, 0.0],
            "trials": [0, 1],
        }
    ]
    best = records.plot_best_so_far(rows, tmp_path / "b.png", "t")
    assert best.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _complete(number: int, value: float, round_index: int | None) -> optuna.trial.FrozenTrial:
    trial = create_trial(
        value=value,
        params={"x": 0.5},
        distributions={"x": FloatDistribution(0, 1)},
        user_attrs={} if round_index is None else {"ppo2_round": round_index},
    )
    trial.number = number
    return trial


def test_best_so_far_per_round() -> None:
    trials = [
        _complete(0, 0.2, 0),
        _complete(1, 0.1, 0),
        _complete(2, 0.15, 1),
        _complete(3, 0.3, 1),
        _complete(4, 0.25, 2),
    ]
    failed = create_trial(state=TrialState.FAIL)
    rows = records.best_so_far([*trials, failed], samples_per_round=2)
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert [r["best"] for r in rows] == [0.2, 0.3, 0.3]
    assert [r["best_trial"] for r in rows] == [0, 3, 3]
    assert rows[1]["mean"] == pytest.approx(0.225) and rows[1]["trials"] == [2, 3]
    # without PPO2 rounds: rounds of S trials in order of completion
    plain = [_complete(i, v, None) for i, v in enumerate([0.1, 0.3, 0.2])]
    assert [r["round"] for r in records.best_so_far(plain, 2)] == [0, 1]


def test_progress_line_and_durations() -> None:
    line = records.progress_line(
        trial_number=7,
        round_index=1,
        rounds=3,
        ap=0.1234,
        diverged=False,
        best=0.2,
        best_trial=3,
        complete=6,
        total=12,
        elapsed=125.0,
        eta=3700.0,
    )
    assert line == (
        "[search] round 2/3 | trial 7 | AP 0.1234 | best 0.2000 (trial 3) | complete 6/12 | "
        "elapsed 2m05s | ETA 1h01m40s"
    )
    assert "(diverged)" in records.progress_line(
        trial_number=0,
        round_index=0,
        rounds=1,
        ap=0.0,
        diverged=True,
        best=0.0,
        best_trial=0,
        complete=1,
        total=2,
        elapsed=1,
        eta=None,
        retry_of=None,
    )
    assert records.format_duration(None) == "?" and records.format_duration(7.4) == "7s"


def test_update_study_artifact_keeps_one_artifact(tmp_path: Path) -> None:
    from optuna.artifacts import FileSystemArtifactStore, get_all_artifact_meta

    store = FileSystemArtifactStore(str(tmp_path / "store"))
    (tmp_path / "store").mkdir()
    study = optuna.create_study()
    png = tmp_path / "best_so_far.png"
    png.write_bytes(b"one")
    (first,) = records.update_study_artifact(study, store, png)
    png.write_bytes(b"two")
    assert records.update_study_artifact(study, store, png) == [first]
    assert [m.filename for m in get_all_artifact_meta(study)] == ["best_so_far.png"]
    assert (tmp_path / "store" / first).read_bytes() == b"two"


# ------------------------------------------------------------------------------ train.py
def test_train_param_sources_per_head(tmp_path: Path) -> None:
    from paploss.study.train_params import explicit_params, export_paths

    linear, sqrt = LossParams.preset("linear"), LossParams.preset("sqrt")
    assert explicit_params(["linear"], [], [""]) == {"": linear}
    both = explicit_params(["paper-faster-rcnn-rpn"], [], ["rpn", "roi"])
    assert both["rpn"] == both["roi"] == LossParams.preset("paper-faster-rcnn-rpn")
    path = tmp_path / "p.json"
    sqrt.save(path)
    mixed = explicit_params(["rpn=linear"], [f"roi={path}"], ["rpn", "roi"])
    assert mixed == {"rpn": linear, "roi": sqrt}
    with pytest.raises(InputError, match="gets two parameter sets"):
        explicit_params(["linear"], [f"roi={path}"], ["rpn", "roi"])
    with pytest.raises(InputError, match="unknown loss head 'bbox'"):
        explicit_params(["bbox=linear"], [], ["rpn", "roi"])
    with pytest.raises(InputError, match="unknown preset"):
        explicit_params(["nope"], [], [""])
    with pytest.raises(InputError, match="does not exist"):
        explicit_params([], [str(tmp_path / "missing.json")], [""])
    assert export_paths(Path("b.json"), [""]) == {"": Path("b.json")}
    assert export_paths(Path("d/b.json"), ["rpn", "roi"]) == {
        "rpn": Path("d/b.rpn.json"),
        "roi": Path("d/b.roi.json"),
    }


def test_train_refuses_bad_input(tmp_path: Path, capsys) -> None:
    code, _, err = run_main("train", ["--storage", "sqlite:///x.db"], capsys)
    assert code == 2 and "--storage and --study-name go together" in err
    code, _, err = run_main("train", ["--export-only"], capsys)
    assert code == 2 and "--export-only needs --export" in err
    code, _, err = run_main("train", ["--data", str(tmp_path / "nope")], capsys)
    assert code == 2 and "no such folder" in err
    code, _, err = run_main(
        "train", ["--export", str(tmp_path / "e.json"), "--export-only"], capsys
    )
    assert code == 2 and "--export needs params" in err
    db = tmp_path / "t.db"
    optuna.create_study(storage=f"sqlite:///{db}", study_name="empty")
    code, _, err = run_main(
        "train", ["--storage", f"sqlite:///{db}", "--study-name", "other"], capsys
    )
    assert code == 2 and "has no study 'other'; studies: ['empty']" in err
    code, _, err = run_main(
        "train", ["--storage", f"sqlite:///{db}", "--study-name", "empty"], capsys
    )
    assert code == 2 and "has no complete trial yet" in err
    baseline = str(CONFIGS / "proxy_retinanet_focal_giou.py")
    code, _, err = run_main("train", ["--config", baseline, "--preset", "linear"], capsys)
    assert code == 2 and "proxy_retinanet_focal_giou.py has no head trained by loss_cls=" in err
    assert "--preset cannot apply" in err
