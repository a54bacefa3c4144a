"""Fault scenarios of the command line: unreachable and silent storages, missing databases.

Each ends in one ``error: ...`` line and exit code 2, creates nothing, and never hangs."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

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
