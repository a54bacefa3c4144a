"""Fault scenarios of the command line: unreachable and silent storages, missing databases,
malformed COCO jsons, a damaged proxy data cache, unwritable output folders, absurd sizes.

Each bad input ends in one ``error: ...`` line and exit code 2, creates nothing, and never hangs;
a damaged proxy cache is reported (``--check``) or rebuilt."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(ROOT / "studies" / "train.py")


def _train(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, TRAIN, *argv], capture_output=True, text=True, timeout=timeout
    )


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def test_train_with_a_missing_sqlite_file_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "does-not-exist.db"
    export = tmp_path / "e.json"
    proc = _train(
        "--storage",
        f"sqlite:///{db}",
        "--study-name",
        "x",
        "--export-only",
        "--export",
        str(export),
    )
    assert proc.returncode == 2, proc.stderr
    lines = _error_lines(proc.stderr)
    assert (
        len(lines) == 1 and lines[0].startswith("error: ") and "no such database file" in lines[0]
    )
    assert not db.exists() and not export.exists()


def test_train_with_nothing_listening_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:  # a free port, closed again: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = _train(
        "--storage", f"postgresql://u@127.0.0.1:{port}/db", "--study-name", "x",
        "--export-only", "--export", str(tmp_path / "e.json"),
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = _error_lines(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: cannot open storage"), lines
    assert "http" not in lines[0]  # no driver help URL


@pytest.mark.slow
def test_train_with_a_silent_server_times_out(tmp_path: Path) -> None:
    """A listener that accepts TCP connections and never answers: an error after the connect
    timeout (10 s), not a hang."""
    from paploss.study.storage import CONNECT_TIMEOUT

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        started = time.monotonic()
        proc = _train(
            "--storage", f"postgresql://u@127.0.0.1:{port}/db", "--study-name", "x",
            "--export-only", "--export", str(tmp_path / "e.json"),
            timeout=CONNECT_TIMEOUT + 60,
        )  # fmt: skip
        elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr
    lines = _error_lines(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: cannot open storage"), lines
    assert elapsed < CONNECT_TIMEOUT + 30


@pytest.mark.parametrize(
    "text",
    ["null", '{"functions": 5}', '{"functions": [{"x": [0, 1]}]}', "[1, 2", '"linear"'],
)
def test_train_with_a_malformed_params_file_is_one_line(tmp_path: Path, text: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    proc = _train("--params", str(bad), "--export-only", "--export", str(tmp_path / "e.json"))
    assert proc.returncode == 2, proc.stderr
    lines = _error_lines(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"error: --params {bad}: "), lines
    assert not (tmp_path / "e.json").exists()


# ------------------------------------------------------------------------------ malformed COCO
SPLIT = str(ROOT / "studies" / "split_coco.py")
SEARCH = str(ROOT / "studies" / "search.py")


def _run(argv: list[str], env: dict[str, str] | None = None, timeout: float = 180):
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )


def _assert_one_error_line(proc: subprocess.CompletedProcess, *parts: str) -> str:
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = _error_lines(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def _coco(num_images: int = 4) -> dict[str, Any]:
    images = [
        {"id": i + 1, "file_name": f"{i:03d}.png", "width": 64, "height": 64}
        for i in range(num_images)
    ]
    annotations = [
        {"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [2.0, 3.0, 10.0, 12.0]}
        for i in range(num_images)
    ]
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "a"}]}


def _without(entry: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != key}


def _malformed(case: str) -> str:
    """The text of a COCO json with one defect."""
    coco = _coco()
    if case == "truncated":
        return json.dumps(coco)[:60]
    if case == "image without id":
        coco["images"][1] = _without(coco["images"][1], "id")
    elif case == "images is a number":
        coco["images"] = 5
    elif case == "id is a string":
        coco["images"][2]["id"] = "abc"
    elif case == "id is a bool":
        coco["images"][2]["id"] = True
    elif case == "annotation without image_id":
        coco["annotations"][0] = _without(coco["annotations"][0], "image_id")
    elif case == "image_id of no image":
        coco["annotations"][0]["image_id"] = 99
    elif case == "negative width and height":
        coco["annotations"][1]["bbox"] = [1, 1, -5, 4]
        coco["annotations"][3]["bbox"] = [1, 1, 5, -4]
    elif case == "annotation without bbox":
        coco["annotations"][2] = _without(coco["annotations"][2], "bbox")
    elif case == "unknown category":
        coco["annotations"][2]["category_id"] = 7
    elif case == "category without id":
        coco["categories"] = [{"name": "a"}]
    else:
        raise AssertionError(case)
    return json.dumps(coco)


MALFORMED = {
    "truncated": "cannot read COCO json",
    "image without id": "images[1] ",
    "images is a number": "'images' must be a list",
    "id is a string": "images[2] ",
    "id is a bool": "images[2] ",
    "annotation without image_id": "annotations[0] ",
    "image_id of no image": "which no image has",
    "negative width and height": "(2 of 4 annotations are bad)",
    "annotation without bbox": "annotations[2] ",
    "unknown category": "category_id 7",
    "category without id": "categories[0] ",
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_split_coco_rejects_a_malformed_json_in_one_line(tmp_path: Path, case: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(_malformed(case))
    out = tmp_path / "out"
    proc = _run([sys.executable, SPLIT, str(bad), "--out-dir", str(out)])
    _assert_one_error_line(proc, str(bad), MALFORMED[case])
    assert not out.exists()


def test_validate_coco_names_the_first_bad_entry_and_keeps_degenerate_boxes() -> None:
    from paploss.errors import InputError
    from paploss.study.data.coco import validate_coco

    coco = _coco(6)
    coco["annotations"][0]["bbox"] = [5, 5, 0.0, 7]  # zero width: COCO has such boxes
    validate_coco(coco, "ok.json")
    coco["annotations"][4]["bbox"] = [5, 5, float("nan"), 7]
    coco["annotations"][5] = "x"
    with pytest.raises(InputError) as info:
        validate_coco(coco, "a.json")
    message = str(info.value)
    assert message.startswith("COCO json a.json: annotations[4] {'id': 5")
    assert "4 finite numbers" in message and "(2 of 6 annotations are bad)" in message
    coco = _coco(3)
    coco["images"].append(dict(coco["images"][0]))
    with pytest.raises(InputError, match=r"images\[3\] .* repeats the image id 1 \(1 of 4"):
        validate_coco(coco, "a.json")


def test_search_with_a_malformed_coco_json_creates_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(_malformed("image without id"))
    db, work = tmp_path / "s.db", tmp_path / "wd"
    proc = _run(
        [
            sys.executable, SEARCH, "--storage", f"sqlite:///{db}", "--study-name", "x",
            "--data", str(bad), str(tmp_path), "--work-dir", str(work), "--device", "cpu",
        ],
        env={"PAPLOSS_DATA": str(tmp_path / "cache")},
    )  # fmt: skip
    _assert_one_error_line(proc, str(bad), "images[1] ")
    assert not db.exists() and not work.exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("which", ["--data", "--val-data"])
def test_train_validates_both_coco_jsons_before_building_anything(
    tmp_path: Path, which: str
) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(_coco()))
    bad.write_text(_malformed("truncated" if which == "--data" else "negative width and height"))
    data, val = (bad, good) if which == "--data" else (good, bad)
    work = tmp_path / "wd"
    proc = _run(
        [
            sys.executable, TRAIN, "--preset", "linear", "--device", "cpu",
            "--data", str(data), str(tmp_path), "--val-data", str(val), str(tmp_path),
            "--work-dir", str(work),
        ],
        env={"PAPLOSS_DATA": str(tmp_path / "cache")},
    )  # fmt: skip
    _assert_one_error_line(proc, f"{which} {bad}")
    assert not work.exists()


# ------------------------------------------------------------------------------ proxy cache
TINY = ["--num-train", "8", "--num-eval", "4", "--num-val", "4", "--image-size", "64"]


def _proxy(*argv: str, cache: Path) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "paploss.proxy", *argv], env={"PAPLOSS_DATA": str(cache)})


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_damaged_proxy_cache_is_reported_and_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from paploss.proxy import dataset_problem, generate_proxy_dataset

    cache = tmp_path / "cache"
    monkeypatch.setenv("PAPLOSS_DATA", str(cache))
    paths = generate_proxy_dataset(num_train=8, num_eval=4, num_val=4, image_size=64)
    root = paths["train"].parent
    png = paths["train"] / "images" / "000003.png"
    intact = png.read_bytes()
    png.write_bytes(intact[: len(intact) // 2])  # a truncated image
    stale = cache / f".{root.name}.tmp-{_dead_pid()}"  # left by a generation killed with -9
    (stale / "train").mkdir(parents=True)

    check = _proxy("--check", *TINY, cache=cache)
    assert check.returncode == 1, check.stderr
    lines = _error_lines(check.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "damaged" in lines[0], lines
    assert "train/images/000003.png" in lines[0] and str(root) in lines[0]
    assert png.read_bytes() != intact and stale.exists()  # --check changes nothing

    proc = _proxy(*TINY, cache=cache)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(root)
    assert [ln for ln in proc.stderr.splitlines() if "rebuilding" in ln] == [
        f"[paploss.proxy] {root}: damaged (1 of 8 train images are missing or truncated, e.g. "
        "train/images/000003.png); rebuilding it"
    ]
    assert png.read_bytes() == intact and dataset_problem(root) is None
    assert not stale.exists()
    assert _proxy("--check", *TINY, cache=cache).returncode == 0

    (root / "settings.json").unlink()  # incomplete: the completion marker is gone
    assert generate_proxy_dataset(num_train=8, num_eval=4, num_val=4, image_size=64) == paths
    assert dataset_problem(root) is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_damaged_read_only_proxy_cache_names_the_folder_to_delete(tmp_path: Path) -> None:
    from paploss.proxy import generate_proxy_dataset

    cache = tmp_path / "cache"
    paths = generate_proxy_dataset(
        cache / "root", num_train=8, num_eval=4, num_val=4, image_size=64
    )
    (paths["val"] / "annotations.json").write_text("{")
    os.chmod(cache, 0o555)
    try:
        proc = _proxy("--out", str(cache / "root"), *TINY, cache=tmp_path / "other")
        line = _assert_one_error_line(proc, "damaged", f"delete {cache / 'root'}")
        assert "val/annotations.json" in line
    finally:
        os.chmod(cache, 0o755)


# ------------------------------------------------------------------------------ unwritable outputs
def _unwritable(tmp_path: Path, kind: str) -> Path:
    """A folder path that cannot be created: under a read-only folder, or under a file."""
    if kind == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root ignores file permissions")
        parent = tmp_path / "ro"
        parent.mkdir()
        os.chmod(parent, 0o555)
        return parent / "out"
    (tmp_path / "file").write_text("x")
    return tmp_path / "file" / "out"


@pytest.mark.parametrize("kind", ["read-only", "under a file"])
@pytest.mark.parametrize(
    "command", ["split --out-dir", "proxy --out", "train --work-dir", "train --export"]
)
def test_unwritable_outputs_are_one_line_and_create_nothing(
    tmp_path: Path, kind: str, command: str
) -> None:
    target = _unwritable(tmp_path, kind)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_coco()))
    cache = tmp_path / "cache"
    if command == "split --out-dir":
        argv = [SPLIT, str(good), "--out-dir", str(target)]
    elif command == "proxy --out":
        argv = ["-m", "paploss.proxy", "--out", str(target), *TINY]
    elif command == "train --work-dir":
        argv = [TRAIN, "--preset", "linear", "--device", "cpu", "--work-dir", str(target)]
    else:
        target = target / "e.json"
        argv = [TRAIN, "--preset", "linear", "--export", str(target), "--export-only"]
    proc = _run([sys.executable, *argv], env={"PAPLOSS_DATA": str(cache)})
    flag = command.split()[1]
    _assert_one_error_line(proc, str(target) if flag != "--out" else str(target.parent))
    assert flag == "--out" or flag in proc.stderr
    assert not target.exists() and not cache.exists()


def test_split_coco_into_a_file_is_one_line(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    text = json.dumps(_coco())
    good.write_text(text)
    proc = _run([sys.executable, SPLIT, str(good), "--out-dir", str(good), "--force"])
    _assert_one_error_line(proc, f"--out-dir {good}: is a file")
    assert good.read_text() == text


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--image-size", "100000", "image_size must be an int in [64, 1024]"),
        ("--num-train", "0", "num_train must be an int in [1, 1000000]"),
        ("--num-val", "5000000", "num_val must be an int in [1, 1000000]"),
    ],
)
def test_proxy_data_bounds_its_sizes(tmp_path: Path, flag: str, value: str, message: str) -> None:
    out = tmp_path / "p"
    proc = _proxy("--out", str(out), flag, value, cache=tmp_path / "cache")
    _assert_one_error_line(proc, message)
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_train_with_an_unusable_proxy_cache_is_one_line(tmp_path: Path) -> None:
    """$PAPLOSS_DATA under a file: the proxy cannot be generated; no work dir is left behind."""
    (tmp_path / "file").write_text("x")
    cache, work = tmp_path / "file" / "cache", tmp_path / "wd"
    proc = _run(
        [sys.executable, TRAIN, "--preset", "linear", "--device", "cpu", "--work-dir", str(work)],
        env={"PAPLOSS_DATA": str(cache)},
    )
    _assert_one_error_line(proc, "cannot generate the proxy dataset", "set $PAPLOSS_DATA")
    assert not work.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cfg-options", "model.bbox_head.num_classes=abc"], "the config's model does not build"),
        (["--work-dir", "{file}/wd"], "is a file"),
    ],
)
def test_search_input_errors_create_no_study(tmp_path: Path, argv: list[str], message: str) -> None:
    """A bad --cfg-options value or an unusable --work-dir: one line, exit 2, no database."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    db = tmp_path / "s.db"
    argv = [a.replace("{file}", str(afile)) for a in argv]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "studies" / "search.py"), "--storage", f"sqlite:///{db}",
         "--rounds", "1", "--samples-per-round", "2", *argv],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = _error_lines(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not db.exists()


# ==================================================================================== issue 21
# ------------------------------------------------------------------------------ 1. study names
@pytest.mark.parametrize("name", ["../outside", "{abs}", "a/../../outside", "./x", "a//b", ""])
def test_a_study_name_outside_the_work_dir_is_refused(tmp_path: Path, name: str) -> None:
    """The run folder is <work dir>/<study name>: a name that leaves the work dir is exit 2, and
    nothing is written (neither there nor in the storage)."""
    name = name.replace("{abs}", str(tmp_path / "abs" / "outside"))
    db, work = tmp_path / "s.db", tmp_path / "wd" / "inner"
    proc = _run(
        [sys.executable, SEARCH, "--storage", f"sqlite:///{db}", "--study-name", name,
         "--work-dir", str(work), "--device", "cpu"],
        env={"PAPLOSS_DATA": str(tmp_path / "cache")},
    )  # fmt: skip
    _assert_one_error_line(proc, "--study-name", "outside --work-dir" if ".." in name else "")
    assert not db.exists() and not (tmp_path / "wd").exists()
    assert not (tmp_path / "outside").exists() and not (tmp_path / "abs").exists()


def test_study_dir_stays_inside_the_work_dir(tmp_path: Path) -> None:
    from paploss.study.cli import UsageError, study_dir

    assert study_dir(tmp_path, "search/tab1") == (tmp_path / "search" / "tab1").resolve()
    (tmp_path / "link").symlink_to(tmp_path.parent)
    with pytest.raises(UsageError, match="lies outside --work-dir"):
        study_dir(tmp_path, "link/x")
    for bad in ("..", "/etc", "a/..", "~/x", "a\\..\\b"):
        with pytest.raises(UsageError, match="--study-name"):
            study_dir(tmp_path, bad)


# ------------------------------------------------------------------------------ 2. passwords
SECRET = "s3cr3t-Pa55"


def test_redact_hides_passwords_in_urls_and_command_lines() -> None:
    from paploss.study.storage import dashboard_url, redact, render_url

    url = f"postgresql+psycopg2://alice:{SECRET}@db.example:5432/studies"
    for text in (
        url,
        f"paploss-search --storage {url} --study-name x",
        f"--storage={url}",
        f"mysql+pymysql://bob@h/db?password={SECRET}&charset=utf8",
        render_url(url),
        dashboard_url(url),
    ):
        shown = redact(text)
        assert SECRET not in shown and "***" in shown, shown
    assert redact(url) == "postgresql+psycopg2://alice:***@db.example:5432/studies"
    for plain in ("sqlite:///a.db", "postgresql://alice@h/db", "journal:s.log", "lr=0.02"):
        assert redact(plain) == plain


def test_the_recorded_search_command_hides_the_password() -> None:
    from paploss.study.search.record import recorded_command

    argv = ["--storage", f"postgresql://alice:{SECRET}@h/db", "--study-name", "x"]
    command = recorded_command(argv)
    assert SECRET not in command
    assert command == "paploss-search --storage 'postgresql://alice:***@h/db' --study-name x"


def test_the_reproduction_hides_the_password_in_lines_commands_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import optuna

    from paploss.reproduce.children import display_command
    from paploss.reproduce.command import parse
    from paploss.reproduce.report import write_report
    from paploss.reproduce.runner import Reproduction
    from paploss.study import keys

    url = f"postgresql://alice:{SECRET}@127.0.0.1:1/db"
    cmd = [sys.executable, "-m", "paploss.study.train", "--storage", url, "--seed", "0"]
    assert SECRET not in display_command(cmd)
    repro = Reproduction(parse(["tab2", "--budget", "quick", "--storage", url]))
    repro.jobs = []  # only the first line: no storage is opened
    repro.run()
    printed = capsys.readouterr().out
    assert "alice:***@" in printed and SECRET not in printed
    # The report of a storage whose studies recorded the password (made by other means).
    repro.storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'r.db'}")
    search = optuna.create_study(study_name="search/main", storage=repro.storage)
    search.set_user_attr(keys.COMMAND, f"paploss-search --storage {url}")
    row = optuna.create_study(study_name="row/main-3seg", storage=repro.storage)
    trial = row.ask()
    trial.set_user_attr(keys.COMMAND, display_command(cmd).replace("***", SECRET))
    row.tell(trial, 0.5)
    report = write_report(repro, tmp_path / "report.md").read_text()
    assert SECRET not in report and "alice:***@" in report


# ------------------------------------------------------------------------------ 3. two reproductions
def test_a_second_reproduction_on_one_storage_is_refused(tmp_path: Path) -> None:
    from paploss.reproduce.lock import LOCK_STUDY, ReproductionLock
    from paploss.study.cli import UsageError

    url = f"sqlite:///{tmp_path / 'r.db'}"
    first = ReproductionLock(url)
    first.acquire()
    try:
        with pytest.raises(UsageError, match="in use by another reproduction") as info:
            ReproductionLock(url).acquire()
        assert f"pid {os.getpid()}" in str(info.value) and "\n" not in str(info.value)
        # The command itself: one line, exit 2, no job run (no row or search study).
        work = tmp_path / "wd"
        proc = _run(
            [sys.executable, "-m", "paploss.reproduce", "tab2", "--budget", "quick",
             "--storage", url, "--work-dir", str(work), "--report", str(tmp_path / "r.md"),
             "--device", "cpu"],
        )  # fmt: skip
        _assert_one_error_line(proc, "in use by another reproduction")
        import optuna

        names = {s.study_name for s in optuna.get_all_study_summaries(url)}
        assert names == {LOCK_STUDY} and not (tmp_path / "r.md").exists()
    finally:
        first.release()
    with ReproductionLock(url):  # released: the next one runs
        pass


def test_the_lock_of_a_killed_reproduction_expires(tmp_path: Path) -> None:
    """kill -9 leaves the lock trial RUNNING; once its heartbeat is older than the grace period
    the next reproduction takes the lock over (the killed one's trial is FAILED)."""
    import optuna
    from optuna.trial import TrialState

    from paploss.reproduce.lock import LOCK_STUDY, ReproductionLock
    from paploss.study.cli import UsageError

    url = f"sqlite:///{tmp_path / 'r.db'}"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from paploss.reproduce.lock import ReproductionLock\n"
         f"ReproductionLock({url!r}, heartbeat_interval=1, grace_period=3).acquire()\n"
         "print('locked', flush=True)\n"
         "time.sleep(600)\n"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UsageError, match="in use by another reproduction"):
            ReproductionLock(url, heartbeat_interval=1, grace_period=3).acquire()
    finally:
        holder.kill()
        holder.wait()
    time.sleep(4.5)
    with ReproductionLock(url, heartbeat_interval=1, grace_period=3):
        trials = optuna.load_study(study_name=LOCK_STUDY, storage=url).get_trials()
        assert [t.state for t in trials].count(TrialState.RUNNING) == 1
        assert trials[0].state == TrialState.FAIL  # the killed run's lock


# ------------------------------------------------------------------------------ 4. devices
@pytest.mark.parametrize(("script", "device"), [("search", "cuda"), ("train", "cuda:7")])
def test_a_missing_gpu_is_exit_2_before_anything_is_created(
    tmp_path: Path, script: str, device: str
) -> None:
    import torch

    if torch.cuda.is_available() and device == "cuda":
        pytest.skip("this machine has a GPU")
    db, work = tmp_path / "s.db", tmp_path / "wd"
    argv = [SEARCH, "--storage", f"sqlite:///{db}"] if script == "search" else [TRAIN]
    proc = _run(
        [sys.executable, *argv, "--device", device, "--work-dir", str(work)],
        env={"PAPLOSS_DATA": str(tmp_path / "cache")},
    )
    _assert_one_error_line(proc, f"--device {device}: ", "use --device cpu")
    assert not db.exists() and not work.exists() and not (tmp_path / "cache").exists()


# ------------------------------------------------------------------------------ 5. --cfg-options
def test_a_misspelled_cfg_options_key_is_exit_2(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    proc = _run(
        [sys.executable, SEARCH, "--storage", f"sqlite:///{db}", "--device", "cpu",
         "--work-dir", str(tmp_path / "wd"), "--cfg-options", "optim_wrapper.optimizer.lrr=0.02"],
    )  # fmt: skip
    _assert_one_error_line(
        proc, "optim_wrapper.optimizer has no key 'lrr'", "did you mean 'lr'?",
        "+optim_wrapper.optimizer.lrr=VALUE",
    )  # fmt: skip
    assert not db.exists() and not (tmp_path / "wd").exists()


def test_cfg_options_keys_must_exist_unless_marked_new() -> None:
    from paploss.errors import ConfigError
    from paploss.study.cli import DEFAULT_CONFIG
    from paploss.study.config.mmcfg import load_config

    cfg = load_config(
        DEFAULT_CONFIG,
        {
            "optim_wrapper.optimizer.lr": 0.5,
            "+optim_wrapper.optimizer.nesterov": True,
            "+custom_section.a.b": 3,
            "train_dataloader.dataset.pipeline.2.scale": (64, 64),
        },
    )
    assert cfg.optim_wrapper.optimizer.lr == 0.5 and cfg.optim_wrapper.optimizer.nesterov is True
    assert cfg.custom_section.a.b == 3
    assert tuple(cfg.train_dataloader.dataset.pipeline[2].scale) == (64, 64)
    bad = {
        "optim_wrapper.optimizer.lrr": "has no key 'lrr'",
        "optim_wrapper.optimiser.lr": "optim_wrapper has no key 'optimiser'",
        "+optim_wrapper.optimizer.lr": "has optim_wrapper.optimizer.lr already; drop the '+'",
        "train_dataloader.dataset.pipeline.99.scale": "is a list of",
        "train_cfg.max_epochs.x": "not a section with keys",
    }
    for key, message in bad.items():
        with pytest.raises(ConfigError, match=re.escape(message)) as info:
            load_config(DEFAULT_CONFIG, {key: 1})
        assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------ 6. COCO data
def _images(folder: Path, coco: dict[str, Any], *, broken: int | None = None) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(coco["images"]):
        path = folder / image["file_name"]
        if i == broken:
            path.write_text("not an image")
        else:
            Image.new("RGB", (64, 64)).save(path)


def test_a_coco_json_without_annotations_is_exit_2_and_creates_nothing(tmp_path: Path) -> None:
    coco = _coco(6)
    coco["annotations"] = []
    ann, img = tmp_path / "empty.json", tmp_path / "img"
    ann.write_text(json.dumps(coco))
    _images(img, coco)
    db, work = tmp_path / "s.db", tmp_path / "wd"
    proc = _run(
        [sys.executable, SEARCH, "--storage", f"sqlite:///{db}", "--data", str(ann), str(img),
         "--work-dir", str(work), "--device", "cpu"],
    )  # fmt: skip
    _assert_one_error_line(proc, str(ann), "none of its 6 images has an annotation")
    assert not db.exists() and not work.exists()


def test_a_split_without_annotations_in_one_part_is_refused() -> None:
    from paploss.errors import DataError
    from paploss.study.data.coco import split_coco

    coco = _coco(10)
    coco["annotations"] = coco["annotations"][:1]  # one annotated image of 10
    outcomes = set()
    for seed in range(6):
        try:
            train, evaluation = split_coco(coco, eval_images=2, seed=seed)
            assert train["annotations"] and evaluation["annotations"]
            outcomes.add("ok")
        except DataError as exc:
            assert "leaves D_" in str(exc) and "only 1 of the 10 images" in str(exc)
            outcomes.add("refused")
    assert outcomes == {"refused"}  # one annotated image cannot be in both parts


@pytest.mark.parametrize("defect", ["not an image", "missing"])
def test_image_files_that_are_not_images_are_exit_2_before_the_study(
    tmp_path: Path, defect: str
) -> None:
    coco = _coco(20)
    ann, img = tmp_path / "a.json", tmp_path / "img"
    ann.write_text(json.dumps(coco))
    _images(img, coco, broken=19 if defect == "not an image" else None)
    if defect == "missing":
        (img / coco["images"][0]["file_name"]).unlink()
    db, work = tmp_path / "s.db", tmp_path / "wd"
    proc = _run(
        [sys.executable, SEARCH, "--storage", f"sqlite:///{db}", "--data", str(ann), str(img),
         "--work-dir", str(work), "--device", "cpu"],
    )  # fmt: skip
    if defect == "missing":
        _assert_one_error_line(proc, "000.png (images[0], id 1) does not exist")
    else:
        _assert_one_error_line(proc, "019.png (images[19], id 20) is not a readable image")
    assert not db.exists() and not work.exists()


def test_train_opens_a_sample_of_the_val_images(tmp_path: Path) -> None:
    from paploss.errors import DataError
    from paploss.study.data.sources import check_training_data

    coco = _coco(5)
    ann, img = tmp_path / "a.json", tmp_path / "img"
    ann.write_text(json.dumps(coco))
    _images(img, coco)
    check_training_data([str(ann), str(img)], [str(ann), str(img)])
    (img / "002.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10)  # a truncated PNG
    bad = tmp_path / "b.json"  # another file: not accepted earlier in this process
    bad.write_text(json.dumps(coco))
    with pytest.raises(DataError, match=r"--val-data image folder .*002\.png \(images\[2\]"):
        check_training_data([str(ann), str(img)], [str(bad), str(img)])


# ------------------------------------------------------------------------------ 7. params JSON
HUGE = "1" + "0" * 400


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"functions": [{"x": [0, HUGE, 1], "y": [0, 0.5, 1]}]}', "function 1: 'x'[1] is an integer too large"),
        ('{"functions": FIVE, "gradient_scale": HUGE}', "'gradient_scale' is an integer too large"),
        ('{"functions": FIVE, "gradient_scal": 7}', "unknown LossParams dict keys ['gradient_scal'] (did you mean 'gradient_scale'"),
        ('{"functions": [{"x": [0, 1], "y": [0, 1], "z": [1]}]}', "unknown function 1 keys ['z']"),
        ('{"functions": FIVE, "gradient_scale": "3"}', "'gradient_scale' must be a number, got '3'"),
        ('{"functions": [{"x": [0, "0.5", 1], "y": [0, 0.5, 1]}]}', "function 1: 'x'[1] must be a number"),
        ('{"functions": FIVE, "format": "other/2"}', "'format' must be 'paploss.LossParams/1'"),
    ],
)  # fmt: skip
def test_params_json_is_read_strictly_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    from paploss import LossParams
    from paploss.params import ParamsError

    five = json.dumps([{"x": [0, 1], "y": [0, 1]}] * 5)
    path = tmp_path / "p.json"
    path.write_text(text.replace("HUGE", HUGE).replace("FIVE", five))
    with pytest.raises(ParamsError) as info:
        LossParams.load(path)
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)
    with pytest.raises(ParamsError, match=re.escape(message)):
        LossParams.from_config({"file": str(path)})
    proc = _train("--params", str(path), "--export-only", "--export", str(tmp_path / "e.json"))
    assert proc.returncode == 2, proc.stderr
    lines = _error_lines(proc.stderr)
    assert len(lines) == 1 and message in lines[0], lines


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"preset": "linear", "gradient_scal": 7}, "unknown loss_params keys ['gradient_scal'] (did you mean 'gradient_scale'"),
        ({"preset": "paper-retinanet", "num_segments": 7}, "'num_segments' applies to the preset 'linear' only"),
        ({"preset": "linear", "num_segments": 1.9}, "'num_segments' must be an int >= 1, got 1.9"),
        ({"preset": "linear", "gradient_scale": "3"}, "'gradient_scale' must be a number, got '3'"),
        ({"preset": "linear", "file": "x.json"}, "not several; got both 'preset' and 'file'"),
        ({"lambda": "0.5", "num_segments": 1}, "'lambda' must be a number, got '0.5'"),
        ({"lambda": 0.5, "num_segments": 2, "f1_x1": 0.5, "f1_y1": 0.5, "f9_x1": 0.1}, "unknown loss_params keys ['f9_x1']"),
    ],
)  # fmt: skip
def test_params_config_is_read_as_strictly_as_json(cfg: dict[str, Any], message: str) -> None:
    from paploss import LossParams
    from paploss.params import ParamsError

    with pytest.raises(ParamsError) as info:
        LossParams.from_config(cfg)
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_params_config_still_takes_every_documented_form() -> None:
    from paploss import LossParams

    linear7 = LossParams.from_config({"preset": "linear", "num_segments": 7, "gradient_scale": 3})
    assert linear7.num_segments == 7 and linear7.gradient_scale == 3.0
    flat = LossParams.preset("linear", 3).to_search_params()
    assert LossParams.from_config({**flat, "num_segments": 3}).num_segments == 3
    data = LossParams.preset("paper-retinanet").to_dict()
    assert LossParams.from_config(data) == LossParams.from_dict(data)


# ------------------------------------------------------------------------------ 8. float32 segments
def test_a_segment_too_narrow_for_float32_is_named_and_float64_is_exact() -> None:
    import numpy as np
    import torch

    from paploss import LossParams, ParameterizedAPLoss, PiecewiseLinear

    f = PiecewiseLinear.from_control_points([0.0, 1e-40, 1.0], [0.0, 0.5, 1.0])
    x64 = torch.tensor([0.0, 5e-41, 1e-40, 0.3, 1.0], dtype=torch.float64)
    expected = np.interp(x64.numpy(), f.xs.numpy(), f.ys.numpy())
    y64 = f(x64)
    assert torch.isfinite(y64).all()
    np.testing.assert_allclose(y64.numpy(), expected, rtol=1e-12, atol=1e-15)
    with pytest.raises(
        ValueError, match=r"segment 0 .* too narrow for float32: .*slope 5e\+39"
    ) as info:
        f(torch.tensor([0.0, 0.3]))
    assert "\n" not in str(info.value) and "widen it to at least" in str(info.value)
    # In the loss (f3 on the localization scores): the same reason, not NaN blamed on the inputs.
    params = LossParams([PiecewiseLinear.identity(2)] * 2 + [f] + [PiecewiseLinear.identity(2)] * 2)
    loss = ParameterizedAPLoss(params, backend="reference")
    logits, labels = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1, 0, 1])
    with pytest.raises(ValueError, match="too narrow for float32"):
        loss(logits, labels, torch.tensor([0.0, 0.5, 0.9]))
    value = loss(logits.double(), labels, torch.tensor([0.0, 0.5, 0.9], dtype=torch.float64))
    assert torch.isfinite(value)
    # A segment wider than the bound the message gives evaluates in float32.
    ok = PiecewiseLinear.from_control_points([0.0, 1e-38, 1.0], [0.0, 0.5, 1.0])
    assert torch.isfinite(ok(torch.tensor([0.0, 1e-38, 0.5]))).all()


# ------------------------------------------------------------------------------ 9. smaller ones
@pytest.mark.parametrize("topk", [0, -3, 1.5, True])
def test_loss_rejects_a_bad_topk_at_construction(topk: Any) -> None:
    from paploss import ParameterizedAPLoss

    with pytest.raises(ValueError, match="topk must be None or a positive int"):
        ParameterizedAPLoss(topk=topk)


def test_search_help_says_configs_without_an_ap_loss_head_are_refused() -> None:
    from paploss.study.parsers import search_parser, train_parser

    search_help = " ".join(search_parser().format_help().split())
    train_help = " ".join(train_parser().format_help().split())
    assert "trains with its own losses" not in search_help
    assert "searches the hyperparameters its search_space declares" in search_help
    assert "without a search_space it has nothing to search and is refused (exit 2)" in search_help
    assert "trains with its own losses" in train_help
    assert "+KEY=VALUE" in search_help and "+KEY=VALUE" in train_help


def test_split_coco_imports_neither_torch_nor_mmdet(tmp_path: Path) -> None:
    ann = tmp_path / "a.json"
    ann.write_text(json.dumps(_coco(4)))
    code = (
        "import sys\n"
        "from paploss.study.split import main\n"
        f"rc = main([{str(ann)!r}, '--out-dir', {str(tmp_path / 'out')!r}, '--eval-images', '1'])\n"
        "print(rc, sorted(m for m in ('torch', 'mmdet', 'mmengine', 'mmcv') if m in sys.modules))\n"
    )
    proc = _run([sys.executable, "-c", code])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "0 []", proc.stdout
    assert (tmp_path / "out" / "train.json").is_file()


@pytest.mark.slow
def test_sigterm_fails_and_requeues_the_running_trial_like_sigint(tmp_path: Path) -> None:
    """A worker stopped by SIGTERM (kill, a job scheduler) fails its trial at once and queues its
    sample again, as Ctrl-C does (tests/test_studies_e2e.py), instead of leaving it RUNNING until
    the grace period."""
    import optuna
    from optuna.trial import TrialState

    from paploss.proxy import generate_proxy_dataset

    data = tmp_path / "tiny"
    generate_proxy_dataset(data, seed=0, num_train=8, num_eval=4, num_val=4, image_size=64)
    url = f"sqlite:///{tmp_path / 's.db'}"
    cmd = [sys.executable, SEARCH, "--storage", url, "--study-name", "stop", "--rounds", "1",
           "--samples-per-round", "2", "--data", str(data), "--work-dir", str(tmp_path / "wd"),
           "--device", "cpu", "--cfg-options", "train_dataloader.batch_size=2"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    pid_file = tmp_path / "wd" / "stop" / "trial_00000" / "child.pid"
    deadline = time.monotonic() + 300
    while not pid_file.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "trial 0 was interrupted" in err
    first, retry = optuna.load_study(study_name="stop", storage=url).trials[:2]
    assert first.state == TrialState.FAIL
    assert retry.state == TrialState.WAITING and retry.params == first.params
