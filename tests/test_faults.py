"""Fault scenarios of the command line: unreachable and silent storages, missing databases,
malformed COCO jsons, a damaged proxy data cache, unwritable output folders, absurd sizes.

Each bad input ends in one ``error: ...`` line and exit code 2, creates nothing, and never hangs;
a damaged proxy cache is reported (``--check``) or rebuilt."""

from __future__ import annotations

import json
import os
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
    from paploss.study.coco import validate_coco

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
    return _run(
        [sys.executable, "-m", "paploss.proxy_data", *argv], env={"PAPLOSS_DATA": str(cache)}
    )


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_damaged_proxy_cache_is_reported_and_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from paploss.proxy_data import dataset_problem, generate_proxy_dataset

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
        f"[proxy_data] {root}: damaged (1 of 8 train images are missing or truncated, e.g. "
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
    from paploss.proxy_data import generate_proxy_dataset

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
        argv = ["-m", "paploss.proxy_data", "--out", str(target), *TINY]
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
