"""The warm trial runner (paploss.study.runner.warm): forked trainings, crashes, kills, timeouts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from paploss.study.runner.trial import RESULT_FILE, TrialCrashed, TrialResult
from paploss.study.runner.warm import WarmRunner

# Trainings are stood in for by configs whose code acts at parse time: mmengine executes a Python
# config in Config.fromfile, inside the forked child, before any training would start. (They use
# __import__: mmengine turns import statements in a config into lazy objects.)
LIGHT = ("json",)


def _config(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie counts as dead
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def _wait_dead(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch):
    # A zygote that preloads nothing heavy: the protocol is what is tested here.
    monkeypatch.setattr("paploss.study.runner.warm.PRELOAD", LIGHT)
    with WarmRunner(device="cpu") as r:
        yield r


def test_crash_kill_and_timeout_fail_only_their_trial(runner: WarmRunner, tmp_path: Path) -> None:
    raising = _config(tmp_path, "raising", "raise ValueError('broken config on purpose')\n")
    with pytest.raises(TrialCrashed, match="broken config on purpose"):
        runner.run(tmp_path / "a", config=raising)
    zygote = runner._proc.pid

    killed = _config(tmp_path, "killed", "_os = __import__('os')\n_os.kill(_os.getpid(), 9)\n")
    with pytest.raises(TrialCrashed, match="killed by SIGKILL"):
        runner.run(tmp_path / "b", config=killed)
    assert runner._proc.pid == zygote  # the zygote survived both

    pid_file = tmp_path / "sleeper.pid"
    sleeper = _config(
        tmp_path,
        "sleeper",
        f"_os = __import__('os')\nopen({str(pid_file)!r}, 'w').write(str(_os.getpid()))\n__import__('time').sleep(60)\n",
    )
    started = time.monotonic()
    with pytest.raises(TrialCrashed, match="exceeded the trial timeout of 2 s"):
        runner.run(tmp_path / "c", config=sleeper, timeout=2)
    assert time.monotonic() - started < 20
    assert _wait_dead(int(pid_file.read_text()))  # the training was killed

    # the next trial runs normally (in a new zygote after the timeout)
    with pytest.raises(TrialCrashed, match="broken config on purpose"):
        runner.run(tmp_path / "d", config=raising)
    assert "broken config on purpose" in (tmp_path / "d" / "child.log").read_text()


def test_result_of_a_finished_child_is_returned(runner: WarmRunner, tmp_path: Path) -> None:
    # A stand-in training: the child writes a result file and exits 0, as run_spec does after a
    # training; the real training path is the slow end-to-end search test.
    config = _config(
        tmp_path,
        "finisher",
        f"""\
        _os = __import__("os")
        __import__("json").dump(
            {{"status": "ok", "metrics": {{"AP": 0.25}}, "raw_metrics": {{}},
              "has_detections": True, "loss_curve": [[1, 0.5]], "iterations": 1,
              "diverged_at": None, "diverged_reason": None, "train_seconds": 1.0,
              "eval_seconds": 0.5, "wall_seconds": 2.0, "startup_seconds": 0.0,
              "work_dir": str(_os.getpid())}},
            open({str(tmp_path / "e" / RESULT_FILE)!r}, "w"),
        )
        _os._exit(0)
        """,
    )
    result = runner.run(tmp_path / "e", config=config)
    assert isinstance(result, TrialResult) and result.status == "ok"
    assert result.metrics["AP"] == 0.25 and result.loss_curve == [(1, 0.5)]
    pid = int(result.work_dir)  # the writer's pid, put there by the stand-in
    assert pid != os.getpid() and pid != runner._proc.pid  # a forked child


def test_children_die_with_the_worker(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    sleeper = _config(
        tmp_path,
        "sleeper",
        f"_os = __import__('os')\nopen({str(pid_file)!r}, 'w').write(str(_os.getpid()))\n__import__('time').sleep(120)\n",
    )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""\
                import paploss.study.runner.warm as warm
                warm.PRELOAD = {LIGHT!r}
                r = warm.WarmRunner(device="cpu")
                r.start()
                print(r._proc.pid, flush=True)
                r.run(__import__("pathlib").Path({str(tmp_path / "run")!r}),
                      config=__import__("pathlib").Path({str(sleeper)!r}))
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    zygote = int(worker.stdout.readline())
    deadline = time.monotonic() + 60
    while not pid_file.is_file() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the training never started"
        time.sleep(0.1)
    child = int(pid_file.read_text())
    assert _alive(zygote) and _alive(child)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert _wait_dead(zygote), "the zygote outlived its worker"
    assert _wait_dead(child), "the training outlived its worker"
