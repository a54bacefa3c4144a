"""End-to-end tests of studies/search.py and studies/train.py with real MMDetection trainings.

Every trial trains the proxy RetinaNet (``studies/configs/proxy_retinanet_paploss.py``) for one
epoch on a tiny proxy split (8 training images of 64 px) in a child
process (4 iterations of 2 images at 64 px) and evaluates COCO AP on 4 D_eval images, so a trial
takes seconds, not a minute.

- SQLite: a 2-round x 2-sample PPO2 search; resume; settings conflict; optuna-dashboard over HTTP;
  export + retraining with studies/train.py.
- ``--data ANN.json IMG_DIR`` with a COCO-format set written here.
- A crashing training is a FAILED trial; a diverging one a COMPLETE trial with AP 0.
- PostgreSQL: two worker processes on one study, one killed mid-trial (needs a server: CI starts
  one with scripts/start_postgres.sh; the URL is PAPLOSS_TEST_POSTGRES_URL).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
import zlib
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from paploss import LossParams
from paploss.study.storage import normalize_storage_url

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
SEARCH = str(ROOT / "studies" / "search.py")
TRAIN = str(ROOT / "studies" / "train.py")
PG_URL = os.environ.get(
    "PAPLOSS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:55432/paploss_test"
)
# Train at the tiny images' own 64 px (the proxy config resizes to 128 px): 4 iterations of 2 images.
FAST = [
    "--device",
    "cpu",
    "--cfg-options",
    "train_dataloader.batch_size=2",
    "val_dataloader.batch_size=4",
    "test_dataloader.batch_size=4",
    "train_dataloader.dataset.pipeline.2.scale=(64,64)",
    "val_dataloader.dataset.pipeline.1.scale=(64,64)",
    "test_dataloader.dataset.pipeline.1.scale=(64,64)",
    "default_hooks.logger.interval=1",
]
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
# One intra-op thread per training: the tests run several processes on a small shared machine,
# where oversubscribed OpenMP threads slow a tiny training down by an order of magnitude.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=ENV)


def load(url: str, name: str) -> optuna.Study:
    return optuna.load_study(
        study_name=name, storage=optuna.storages.RDBStorage(normalize_storage_url(url))
    )


@pytest.fixture(scope="module")
def tiny_proxy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from paploss.proxy import generate_proxy_dataset

    root = tmp_path_factory.mktemp("proxy") / "tiny"
    generate_proxy_dataset(root, seed=0, num_train=8, num_eval=4, num_val=4, image_size=64)
    return root


@pytest.fixture(scope="module")
def sqlite_search(tiny_proxy: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One 2-round x 2-sample PPO2 search on SQLite, shared by the tests that inspect it."""
    work = tmp_path_factory.mktemp("sqlite_search")
    url = f"sqlite:///{work / 'search.db'}"
    cmd = [
        PY,
        SEARCH,
        "--storage",
        url,
        "--study-name",
        "e2e",
        "--rounds",
        "2",
        "--samples-per-round",
        "2",
        "--data",
        str(tiny_proxy),
        "--work-dir",
        str(work / "wd"),
        *FAST,
    ]
    started = time.monotonic()
    proc = run(cmd, cwd=work)
    return {
        "proc": proc,
        "cmd": cmd,
        "url": url,
        "work": work,
        "wd": work / "wd",
        "seconds": time.monotonic() - started,
    }


def test_sqlite_ppo2_search_end_to_end(sqlite_search: dict[str, Any]) -> None:
    proc = sqlite_search["proc"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    study = load(sqlite_search["url"], "e2e")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 4
    assert len(study.trials) == 4  # no surplus trial asked for after the last round
    assert sorted(t.user_attrs["ppo2_round"] for t in complete) == [0, 0, 1, 1]
    for t in complete:
        for name in METRICS:
            assert isinstance(t.user_attrs[name], float), name
        assert t.value == t.user_attrs["AP"]
        assert t.user_attrs["diverged"] is False
        assert t.user_attrs["train_seconds"] > 0 and t.user_attrs["eval_seconds"] > 0
        # the warm runner forks the training: no interpreter start, no imports per trial
        assert 0 <= t.user_attrs["startup_seconds"] < 2
        params = LossParams.from_search_params(t.params)
        assert t.user_attrs["lambda"] == pytest.approx(params.gradient_scale)
        assert t.intermediate_values, "the loss curve is reported"
        assert all(v == v for v in t.intermediate_values.values())
        run_dir = Path(t.user_attrs["work_dir"])
        assert (run_dir / "child.log").is_file() and (run_dir / "functions.png").is_file()
        assert list(run_dir.glob("*/*.log")), "mmengine's own training log"
        assert LossParams.load(run_dir / "loss_params.json") == params
    # artifacts on disk: one functions.png per trial, the study's plot and config
    artifacts = optuna.artifacts.get_all_artifact_meta(complete[0], storage=study._storage)
    assert [a.filename for a in artifacts] == ["functions.png"]
    store = sqlite_search["wd"] / "artifacts"
    assert (store / artifacts[0].artifact_id).read_bytes()[:4] == b"\x89PNG"
    study_artifacts = {a.filename for a in optuna.artifacts.get_all_artifact_meta(study)}
    assert {"best_so_far.png", "search_config.py"} <= study_artifacts
    assert len(list(store.iterdir())) == 4 + 2
    # the study's records
    attrs = study.user_attrs
    assert attrs["sampler"]["name"] == "ppo2" and attrs["sampler"]["rounds"] == 2
    assert attrs["data"]["kind"] == "folder" and attrs["epochs"] == 1
    assert attrs["config"].endswith("proxy_retinanet_paploss.py")
    mean_1 = study._storage.get_study_system_attrs(study._study_id)["ppo2:mean:1"]
    assert sorted(mean_1["trials"]) == sorted(
        t.number for t in complete if t.user_attrs["ppo2_round"] == 0
    )
    # progress lines and the final summary
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[search] round")]
    assert len(lines) == 4 and "complete 4/4" in lines[-1] and "ETA 0s" in lines[-1]
    assert "round 1/2" in lines[0] and "round 2/2" in lines[-1]
    rounds = [line for line in proc.stdout.splitlines() if line.startswith("[search] == round")]
    assert len(rounds) == 2 and rounds[0].startswith("[search] == round 1/2 done: best ")
    assert "mean moved" not in rounds[0] and "mean moved" in rounds[1]  # round 1 samples mu_0
    assert "Best vs round 1: AP " in proc.stdout
    assert study.metric_names == ["AP"]
    assert "Best trial" in proc.stdout and "| f1: f(l_i; θ1) |" in proc.stdout
    assert f"optuna-dashboard {sqlite_search['url']} --artifact-dir {store}" in proc.stdout


def test_rerun_resumes_and_other_settings_are_refused(sqlite_search: dict[str, Any]) -> None:
    assert sqlite_search["proc"].returncode == 0
    again = run(sqlite_search["cmd"], cwd=sqlite_search["work"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already complete" in again.stdout
    study = load(sqlite_search["url"], "e2e")
    assert len(study.trials) == len(study.get_trials(states=(TrialState.COMPLETE,)))  # no surplus
    n_trials = len(study.trials)
    other = [*sqlite_search["cmd"]]
    other[other.index("--rounds") + 1] = "3"
    refused = run(other, cwd=sqlite_search["work"])
    assert refused.returncode == 2
    assert "was created with other settings (rounds: study has 2, this command 3)" in (
        refused.stderr
    )
    assert len(load(sqlite_search["url"], "e2e").trials) == n_trials


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        url, headers={"Accept-Encoding": "gzip, deflate, br", "Accept": "*/*"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
        headers = {k.lower(): v for k, v in response.headers.items()}
        encoding = headers.get("content-encoding", "identity")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        else:
            assert encoding == "identity", f"unexpected Content-Encoding {encoding}"
        return response.status, headers, body


def test_dashboard_serves_the_study(sqlite_search: dict[str, Any]) -> None:
    assert sqlite_search["proc"].returncode == 0
    port = _free_port()
    exe = Path(PY).parent / "optuna-dashboard"
    log = open(sqlite_search["work"] / "dashboard.log", "w")
    dashboard = subprocess.Popen(
        [
            str(exe),
            sqlite_search["url"],
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--artifact-dir",
            str(sqlite_search["wd"] / "artifacts"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                status, _, _ = _get(f"{base}/api/meta")
                if status == 200:
                    break
            except OSError:
                pass
            assert dashboard.poll() is None, (sqlite_search["work"] / "dashboard.log").read_text()
            assert time.monotonic() < deadline, "optuna-dashboard did not answer within 90 s"
            time.sleep(0.5)
        _, _, body = _get(f"{base}/api/studies")
        summaries = json.loads(body)["study_summaries"]
        entry = next(s for s in summaries if s["study_name"] == "e2e")
        _, _, body = _get(f"{base}/api/studies/{entry['study_id']}")
        detail = json.loads(body)
        assert detail["name"] == "e2e"
        complete = [t for t in detail["trials"] if t["state"].lower() == "complete"]
        assert len(complete) == 4
        for t in complete:
            attrs = {a["key"]: a["value"] for a in t["user_attrs"]}
            for name in (*METRICS, "lambda", "diverged", "train_seconds", "ppo2_round"):
                assert name in attrs, name
            assert float(attrs["AP"]) == pytest.approx(t["values"][0])
            assert "| f1: f(l_i; θ1) |" in t["note"]["body"]
            assert [a["filename"] for a in t["artifacts"]] == ["functions.png"]
            assert t["intermediate_values"]
        png = complete[0]["artifacts"][0]
        status, headers, body = _get(
            f"{base}/artifacts/{entry['study_id']}/{complete[0]['trial_id']}/{png['artifact_id']}"
        )
        assert status == 200 and body[:4] == b"\x89PNG"
        assert "best_so_far.png" in {a["filename"] for a in detail["artifacts"]}
        assert "Parameterized AP Loss search" in detail["note"]["body"]
        status, headers, body = _get(f"{base}/favicon.ico")  # needs Accept-Encoding
        assert status == 200 and body
    finally:
        dashboard.terminate()
        try:
            dashboard.wait(timeout=20)
        except subprocess.TimeoutExpired:
            dashboard.kill()
            dashboard.wait()
        log.close()


def test_local_workers_share_one_search(tiny_proxy: Path, tmp_path: Path) -> None:
    """``--workers 2``: this process and one copy of the command train the 2 x 2 search's trials
    together (two worker ids among the trials, PPO2's rounds kept), the copy's progress goes to
    worker1.log, and the summary comes once every trial is complete."""
    url = f"sqlite:///{tmp_path / 'search.db'}"
    env = {k: v for k, v in ENV.items() if k != "OMP_NUM_THREADS"}
    cmd = [
        PY, SEARCH, "--storage", url, "--study-name", "two", "--rounds", "2",
        "--samples-per-round", "2", "--data", str(tiny_proxy), "--work-dir",
        str(tmp_path / "wd"), "--workers", "2", *FAST,
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    study = load(url, "two")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 4
    # a worker that asks when the last sample is taken gets a surplus trial, which trains nothing
    others = [t for t in study.trials if t.state != TrialState.COMPLETE]
    assert all(t.user_attrs.get("ppo2_surplus") for t in others), others
    assert sorted(t.user_attrs["ppo2_round"] for t in complete) == [0, 0, 1, 1]
    assert len({t.user_attrs["worker"] for t in complete}) == 2
    assert "[search] worker 1: pid " in proc.stdout
    copy_log = tmp_path / "wd" / "two" / "worker1.log"
    assert "[search] round" in copy_log.read_text()
    assert "Best vs round 1: AP " in proc.stdout.split("[search] worker 1")[-1]
    # every trial's and every round's line once, in order, whichever worker trained it
    trials = [line for line in proc.stdout.splitlines() if line.startswith("[search] round")]
    numbers = sorted(t.number for t in complete)
    assert [line.split(" | ")[1] for line in trials] == [f"trial {n}" for n in numbers]
    rounds = [line for line in proc.stdout.splitlines() if line.startswith("[search] == round")]
    assert [line.split(" done")[0] for line in rounds] == [
        "[search] == round 1/2",
        "[search] == round 2/2",
    ]


def test_train_exports_the_best_params_and_retrains(
    sqlite_search: dict[str, Any], tiny_proxy: Path
) -> None:
    assert sqlite_search["proc"].returncode == 0
    work = sqlite_search["work"]
    study = load(sqlite_search["url"], "e2e")
    export = work / "best.json"
    proc = run(
        [
            PY,
            TRAIN,
            "--storage",
            sqlite_search["url"],
            "--study-name",
            "e2e",
            "--export",
            str(export),
            "--export-only",
        ],
        cwd=work,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = LossParams.from_search_params(study.best_params)
    assert LossParams.from_config(dict(file=str(export))) == best
    assert "model.bbox_head.loss_cls.params=dict(file=" in proc.stdout
    proc = run(
        [
            PY,
            TRAIN,
            "--params",
            str(export),
            "--data",
            str(tiny_proxy),
            "--epochs",
            "1",
            "--work-dir",
            str(work / "train"),
            *FAST,
        ],
        cwd=work,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    metrics = json.loads((work / "train" / "metrics.json").read_text())
    assert set(metrics["metrics"]) == set(METRICS)
    assert metrics["data"]["val"]["ann_file"].endswith("val/annotations.json")
    assert LossParams.from_dict(metrics["loss_params"]["default"]) == best
    merged = json.loads(Path(metrics["data"]["train"]["ann_file"]).read_text())
    assert len(merged["images"]) == 8 + 4, "retrained on D_train + D_eval"
    assert "[train] ok: AP" in proc.stdout
    bad = run([PY, TRAIN, "--preset", "nope", "--export-only", "--export", "x.json"], cwd=work)
    assert bad.returncode == 2 and "unknown preset 'nope'" in bad.stderr


def test_train_runs_a_baseline_config_with_its_own_losses(tiny_proxy: Path, tmp_path: Path) -> None:
    """Tab. 1-style comparisons: a Focal+GIoU config trains on the same data, no loss params."""
    config = ROOT / "studies" / "configs" / "proxy_retinanet_focal_giou.py"
    cmd = [PY, TRAIN, "--config", str(config), "--data", str(tiny_proxy), "--epochs", "1"]
    proc = run([*cmd, "--work-dir", str(tmp_path / "focal"), *FAST], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    metrics = json.loads((tmp_path / "focal" / "metrics.json").read_text())
    assert metrics["status"] == "ok" and set(metrics["metrics"]) == set(METRICS)
    assert metrics["loss_params"] == {}
    assert metrics["data"]["val"]["ann_file"].endswith("val/annotations.json")
    log = next((tmp_path / "focal").glob("*/*.log")).read_text()
    assert "loss_cls" in log and "loss_bbox" in log  # FocalLoss + GIoULoss, not the AP loss
    assert "loss_paploss" not in log


def test_search_with_coco_json_and_image_folder(tiny_proxy: Path, tmp_path: Path) -> None:
    """--data ANN.json IMG_DIR: a COCO-format set is split into D_train / D_eval by image."""
    images = tmp_path / "images"
    images.mkdir()
    coco: dict[str, Any] = {"images": [], "annotations": []}
    for split in ("train", "eval"):
        data = json.loads((tiny_proxy / split / "annotations.json").read_text())
        coco["categories"] = data["categories"]
        offset = len(coco["images"])
        for im in data["images"]:
            name = f"{split}_{im['file_name']}"
            shutil.copy(tiny_proxy / split / "images" / im["file_name"], images / name)
            coco["images"].append(dict(im, id=im["id"] + 1000 * (offset > 0), file_name=name))
        for ann in data["annotations"]:
            coco["annotations"].append(
                dict(
                    ann,
                    id=len(coco["annotations"]) + 1,
                    image_id=ann["image_id"] + 1000 * (offset > 0),
                )
            )
    ann_file = tmp_path / "instances.json"
    ann_file.write_text(json.dumps(coco))
    url = f"sqlite:///{tmp_path / 'coco.db'}"
    cmd = [
        PY,
        SEARCH,
        "--storage",
        url,
        "--study-name",
        "coco",
        "--sampler",
        "random",
        "--rounds",
        "1",
        "--samples-per-round",
        "2",
        "--data",
        str(ann_file),
        str(images),
        "--eval-images",
        "4",
        "--work-dir",
        str(tmp_path / "wd"),
        *FAST,
    ]
    # One trial now (--n-trials 1), then the same command again resumes until the study is done.
    first = run([*cmd, "--n-trials", "1"], cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-4000:]
    assert "complete 1/2" in first.stdout and "not complete yet" in first.stdout
    proc = run(cmd, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "1/2 trials complete" in proc.stdout and "complete 2/2" in proc.stdout
    study = load(url, "coco")
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
    data = study.user_attrs["data"]
    assert data["kind"] == "coco" and data["num_images"] == {"train": 8, "eval": 4}
    assert data["split"] == {"eval_images": 4, "seed": 0, "source_json": str(ann_file)}
    d_eval = json.loads(Path(data["splits"]["eval"]["ann_file"]).read_text())
    assert len(d_eval["images"]) == 4
    config = (Path(study.trials[0].user_attrs["work_dir"]) / "config.py").read_text()
    assert data["splits"]["eval"]["ann_file"] in config and str(images) in config


def test_crash_fails_the_trial_and_divergence_is_ap_zero(tiny_proxy: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    base = [
        PY,
        SEARCH,
        "--storage",
        url,
        "--sampler",
        "random",
        "--rounds",
        "1",
        "--samples-per-round",
        "2",
        "--data",
        str(tiny_proxy),
        "--work-dir",
        str(tmp_path / "wd"),
        *FAST,
    ]
    # A training that crashes (a data transform that does not exist: the model builds, so the
    # input checks pass, and the run fails when its data loader is built): FAILED trial, the
    # worker stops after --max-failures consecutive failures with exit code 1.
    crash = run(
        [
            *base,
            "--study-name",
            "crash",
            "--max-failures",
            "1",
            "--cfg-options",
            "train_dataloader.dataset.pipeline.0.type=NoSuchTransform",
        ],
        cwd=tmp_path,
    )
    assert crash.returncode == 1, crash.stderr[-3000:]
    assert "[search] trial 0 FAILED: training failed: KeyError" in crash.stdout
    assert "NoSuchTransform" in crash.stdout
    study = load(url, "crash")
    (failed,) = study.trials
    assert failed.state == TrialState.FAIL
    assert "NoSuchTransform" in failed.user_attrs["error"]
    # One trial that fails ends the worker with exit code 1 too (not only --max-failures in a row).
    once = run(
        [
            *base,
            "--study-name",
            "crash-once",
            "--n-trials",
            "1",
            "--cfg-options",
            "train_dataloader.dataset.pipeline.0.type=NoSuchTransform",
        ],
        cwd=tmp_path,
    )
    assert once.returncode == 1, once.stderr[-3000:]
    assert "error: the last 1 trial(s) of this worker failed" in once.stderr
    # A diverging training: the loss turns non-finite, the trial is COMPLETE with AP 0.
    div = run(
        [
            *base,
            "--study-name",
            "diverge",
            "--n-trials",
            "1",
            "--cfg-options",
            "optim_wrapper.optimizer.lr=1e30",  # at 1e6 the loss of the head-only training stays finite
            "optim_wrapper.clip_grad=None",
        ],
        cwd=tmp_path,
    )
    assert div.returncode == 0, div.stderr[-3000:]
    assert "AP 0.0000 (diverged)" in div.stdout and "not complete yet" in div.stdout
    (trial,) = load(url, "diverge").trials
    assert trial.state == TrialState.COMPLETE and trial.value == 0.0
    assert trial.user_attrs["diverged"] is True and trial.user_attrs["AP"] == 0.0
    assert trial.user_attrs["diverged_at_iteration"] >= 1


# ------------------------------------------------------------------------------ PostgreSQL
def _postgres_or_skip() -> optuna.storages.RDBStorage:
    try:
        return optuna.storages.RDBStorage(
            normalize_storage_url(PG_URL), engine_kwargs={"connect_args": {"connect_timeout": 5}}
        )
    except Exception as exc:  # no server: CI starts one with scripts/start_postgres.sh
        pytest.skip(
            f"no PostgreSQL server answers at {PG_URL} ({type(exc).__name__}); start one with "
            "scripts/start_postgres.sh or set PAPLOSS_TEST_POSTGRES_URL"
        )


def _trial_children(spec: Path) -> list[int]:
    """PIDs of the live training processes running ``spec`` (the warm runner's forked child
    writes its pid next to the spec)."""
    from paploss.study.runner.warm import PID_FILE

    try:
        pid = int((spec.parent / PID_FILE).read_text())
    except (OSError, ValueError):
        return []
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return []
    return [] if state == "Z" else [pid]


def test_postgres_two_workers_one_killed_mid_trial(tiny_proxy: Path, tmp_path: Path) -> None:
    storage = _postgres_or_skip()
    name = f"kill-test-{uuid.uuid4().hex[:10]}"
    cmd = [
        PY,
        SEARCH,
        "--storage",
        PG_URL,
        "--study-name",
        name,
        "--rounds",
        "2",
        "--samples-per-round",
        "2",
        "--heartbeat-interval",
        "1",
        "--grace-period",
        "10",
        "--data",
        str(tiny_proxy),
        "--work-dir",
        str(tmp_path / "wd"),
        *FAST,
    ]
    outs = {k: open(tmp_path / f"{k}.log", "w+") for k in ("a", "b")}
    workers = {
        k: subprocess.Popen(cmd, cwd=tmp_path, stdout=outs[k], stderr=subprocess.STDOUT, env=ENV)
        for k in ("a", "b")
    }
    victim = workers["b"]
    try:
        # Wait until worker b trains a trial in its child process, then kill b (SIGKILL).
        deadline = time.monotonic() + 400
        target = None
        while target is None:
            assert time.monotonic() < deadline, "worker b never ran a training"
            assert victim.poll() is None, (tmp_path / "b.log").read_text()[-3000:]
            time.sleep(0.3)
            try:
                study = optuna.load_study(study_name=name, storage=storage)
            except KeyError:
                continue
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                # The objective sets "worker" and then "work_dir": a poll may see only the first.
                work_dir = t.user_attrs.get("work_dir")
                if work_dir and str(t.user_attrs.get("worker", "")).endswith(f":{victim.pid}"):
                    spec = Path(work_dir) / "spec.json"
                    if spec.exists() and _trial_children(spec):
                        target, target_spec = t, spec
        before = {t.number: t.value for t in study.get_trials(states=(TrialState.COMPLETE,))}
        children = _trial_children(target_spec)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        # The killed worker's training dies with it (no orphan keeps training).
        deadline = time.monotonic() + 15
        while any(Path(f"/proc/{pid}").exists() for pid in children):
            assert time.monotonic() < deadline, f"training {children} outlived its worker"
            time.sleep(0.2)
        assert workers["a"].wait(timeout=600) == 0, (tmp_path / "a.log").read_text()[-5000:]

        study = optuna.load_study(study_name=name, storage=storage)
        trials = study.get_trials()
        killed = next(t for t in trials if t.number == target.number)
        assert killed.state == TrialState.FAIL
        retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
        assert len(retries) == 1
        (retry,) = retries
        assert retry.state == TrialState.COMPLETE
        assert retry.params == killed.params == target.params
        assert retry.user_attrs["retry_of"] == killed.number
        assert retry.user_attrs["ppo2_round"] == killed.user_attrs["ppo2_round"]
        # The study completed: every used round has S complete trials, and PPO2's update after
        # round 0 used S complete trials of round 0.
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        by_number = {t.number: t for t in complete}
        system_attrs = storage.get_study_system_attrs(study._study_id)
        # The retry took the killed trial's slot back: no round ran an extra training.
        for r in (0, 1):
            in_round = [t for t in complete if t.user_attrs["ppo2_round"] == r]
            assert len(in_round) == 2, (r, [t.number for t in in_round])
        used = system_attrs["ppo2:mean:1"]["trials"]
        assert len(used) == 2 and all(by_number[n].user_attrs["ppo2_round"] == 0 for n in used)
        # Nothing finished is lost: every value complete before the kill is still there.
        for number, value in before.items():
            assert by_number[number].value == value
        log_a = (tmp_path / "a.log").read_text()
        assert f"(retry of {killed.number})" in log_a
        assert "is complete" in log_a or "complete trials, complete" in log_a
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for f in outs.values():
            f.close()
        try:
            optuna.delete_study(study_name=name, storage=storage)
        except KeyError:
            pass


def test_postgres_password_appears_in_no_record_line_or_report(
    tiny_proxy: Path, tmp_path: Path
) -> None:
    """A search on a storage URL with a password (the CI server trusts local connections, so any
    password connects): the password is in no study or trial attribute, no printed line, no file
    of the work dir and not in the reproduction report written from that storage."""
    from sqlalchemy.engine import make_url

    storage = _postgres_or_skip()
    secret = f"pw-{uuid.uuid4().hex[:12]}"
    url = make_url(PG_URL).set(password=secret).render_as_string(hide_password=False)
    name = f"search/password-{uuid.uuid4().hex[:8]}"
    work = tmp_path / "wd"
    cmd = [PY, SEARCH, "--storage", url, "--study-name", name, "--rounds", "1",
           "--samples-per-round", "2", "--data", str(tiny_proxy), "--work-dir", str(work), *FAST]  # fmt: skip
    try:
        proc = run(cmd, cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert secret not in proc.stdout + proc.stderr
        assert ":***@" in proc.stdout  # the printed optuna-dashboard / paploss-train commands
        study = optuna.load_study(study_name=name, storage=storage)
        records = [study.user_attrs, storage.get_study_system_attrs(study._study_id)]
        for t in study.get_trials():
            records += [t.user_attrs, t.system_attrs, t.params]
        assert len(study.get_trials()) == 2 and ":***@" in study.user_attrs["command"]
        for record in records:
            assert secret not in json.dumps(record, default=repr)
        for path in work.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
        report = tmp_path / "reproduction.md"
        rep = run(
            [PY, "-m", "paploss.reproduce", "tab2", "--budget", "quick", "--storage", url,
             "--report-only", "--report", str(report), "--work-dir", str(tmp_path / "rw")],
            cwd=tmp_path,
        )  # fmt: skip
        assert rep.returncode == 0, rep.stdout[-3000:] + rep.stderr[-3000:]
        assert secret not in rep.stdout + rep.stderr
        text = report.read_text()
        assert secret not in text and f"`{name}`" in text and ":***@" in text
    finally:
        try:
            optuna.delete_study(study_name=name, storage=storage)
        except KeyError:
            pass


def test_interrupted_trial_is_retried_with_its_sample(tiny_proxy: Path, tmp_path: Path) -> None:
    """SIGINT during a training: exit 130, the trial FAILED with a WAITING retry of the same sample
    (as a killed worker's trial gets), which the next run trains first."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    cmd = [PY, SEARCH, "--storage", url, "--study-name", "int", "--rounds", "1",
           "--samples-per-round", "2", "--data", str(tiny_proxy), "--work-dir",
           str(tmp_path / "wd"), *FAST]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV, cwd=tmp_path)  # fmt: skip
    pid_file = tmp_path / "wd" / "int" / "trial_00000" / "child.pid"
    deadline = time.monotonic() + 300
    while not pid_file.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "trial 0 was interrupted" in err and "run the same command again" in err
    study = load(url, "int")
    first, retry = study.trials[0], study.trials[1]
    assert first.state == TrialState.FAIL
    assert retry.state == TrialState.WAITING and retry.params == first.params

    done = run(cmd, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    study = load(url, "int")
    retried = [t for t in study.trials if t.user_attrs.get("retry_of") == 0]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert retried[0].params == first.params
    assert retried[0].user_attrs["ppo2_round"] == first.user_attrs["ppo2_round"] == 0
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
    assert not study.get_trials(states=(TrialState.PRUNED,))
