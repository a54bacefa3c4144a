"""Multi-process trials (``--nproc-per-trial``, :mod:`paploss.study.runner.distributed`).

Fast: torchrun's environment of a rank, the exit-2 checks, the zygote's wait that kills the other
ranks at the first failure, and two real gloo ranks joining a process group set up by
:func:`setup_rank`; the warm runner's trial timeout and its worker's death end every rank
(stand-in trainings). Slow (real proxy trainings on CPU with gloo): a search trial trained by two
ranks completes and records one result; a rank killed mid-training fails that trial only (the
other rank is killed, the worker trains the next trials).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from paploss.study.cli import UsageError
from paploss.study.runner.distributed import (
    RankEnv,
    check_nproc,
    rank_log,
    rank_pid_file,
)

ROOT = Path(__file__).resolve().parents[1]
SEARCH = str(ROOT / "studies" / "search.py")


# ------------------------------------------------------------------------------ fast
def test_rank_environment_is_torchruns() -> None:
    rank = RankEnv(rank=1, world_size=3, master_port=29501)
    env = rank.environ()
    assert env == {
        "RANK": "1",
        "LOCAL_RANK": "1",
        "WORLD_SIZE": "3",
        "LOCAL_WORLD_SIZE": "3",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29501",
    }
    assert RankEnv.from_environ(env) == rank
    assert RankEnv.from_environ({}) is None
    assert RankEnv.from_environ({"WORLD_SIZE": "1", "RANK": "0"}) is None
    assert (rank_log(0), rank_log(2)) == ("child.log", "child.rank2.log")
    assert (rank_pid_file(0), rank_pid_file(1)) == ("child.pid", "child.rank1.pid")


def test_cpu_threads_splits_the_cores_and_keeps_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The share of the cores per process: the integer part of cores / parts, never 0 (also
    where os.cpu_count() cannot tell)."""
    from paploss.study.runner.devices import cpu_threads

    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert [cpu_threads(n) for n in (1, 2, 3, 8, 16, 17, 64)] == [16, 8, 5, 2, 1, 1, 1]
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert cpu_threads(1) == 1 and cpu_threads(4) == 1


def test_check_nproc_refuses_an_indivisible_batch_and_one_gpu() -> None:
    from mmengine.config import Config

    cfg = Config(dict(train_dataloader=dict(batch_size=6)))
    check_nproc(cfg, 1, "cpu")
    check_nproc(cfg, 2, "cpu")
    check_nproc(cfg, 3, "cuda")
    with pytest.raises(UsageError, match="not divisible by 4"):
        check_nproc(cfg, 4, "cpu")
    with pytest.raises(UsageError, match="one GPU each"):
        check_nproc(cfg, 2, "cuda:0")


def _run_python(code: str, tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (forking from pytest's process, which may have a
    thread pool, is avoided)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def test_first_failing_rank_kills_the_others(tmp_path: Path) -> None:
    out = _run_python(
        """
        import json, os, sys, time
        from pathlib import Path
        from paploss.study.runner.distributed import fork_ranks, wait_ranks

        folder = Path(sys.argv[1])

        def rank_main(rank):
            keys = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT")
            (folder / f"env{rank}.json").write_text(json.dumps({k: os.environ[k] for k in keys}))
            if rank == 1:
                time.sleep(0.5)
                return 3
            time.sleep(120)  # ranks 0 and 2 would hang without the kill
            return 0

        started = time.monotonic()
        pids = fork_ranks(3, rank_main)
        rc, rank = wait_ranks(pids)
        alive = [p for p in pids if os.path.exists(f"/proc/{p}")]
        print(json.dumps({"rc": rc, "rank": rank, "seconds": time.monotonic() - started,
                          "alive": alive}))
        """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.splitlines()[-1])
    assert (result["rc"], result["rank"]) == (3, 1)
    assert result["seconds"] < 30
    assert result["alive"] == []  # reaped: none left running or as a zombie
    envs = [json.loads((tmp_path / f"env{r}.json").read_text()) for r in range(3)]
    assert [e["RANK"] for e in envs] == ["0", "1", "2"]
    assert [e["LOCAL_RANK"] for e in envs] == ["0", "1", "2"]
    assert {e["WORLD_SIZE"] for e in envs} == {"3"}
    assert len({e["MASTER_PORT"] for e in envs}) == 1


def test_all_ranks_succeeding_is_exit_zero_and_killed_rank_is_its_signal(tmp_path: Path) -> None:
    out = _run_python(
        """
        import json, os, signal
        from paploss.study.runner.distributed import fork_ranks, wait_ranks

        ok = wait_ranks(fork_ranks(2, lambda rank: 0))

        def rank_main(rank):
            if rank == 0:
                os.kill(os.getpid(), signal.SIGKILL)
            import time
            time.sleep(120)
            return 0

        killed = wait_ranks(fork_ranks(2, rank_main))
        print(json.dumps({"ok": ok, "killed": killed}))
        """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["ok"] == [0, 0]
    assert result["killed"] == [-signal.SIGKILL, 0]


def test_a_killed_rank_is_reported_over_the_peer_that_failed_because_of_it(tmp_path: Path) -> None:
    # Rank 1 is killed; rank 0 then fails (as in a collective whose peer vanished). Both have
    # exited before wait_ranks looks, so waitpid would reap rank 0 first.
    out = _run_python(
        """
        import json, os, signal, time
        from paploss.study.runner.distributed import fork_ranks, wait_ranks

        def rank_main(rank):
            if rank == 1:
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(0.3)
            return 1

        pids = fork_ranks(2, rank_main)
        time.sleep(1.5)
        print(json.dumps(wait_ranks(pids)))
        """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.splitlines()[-1]) == [-signal.SIGKILL, 1]


def test_rank_0_success_decides_and_stragglers_are_killed(tmp_path: Path) -> None:
    out = _run_python(
        """
        import json, os, time
        from paploss.study.runner.distributed import fork_ranks, wait_ranks

        def late_failure(rank):
            if rank == 1:
                time.sleep(1.0)  # fails after rank 0 finished
                return 5
            return 0

        def straggler(rank):
            if rank == 1:
                time.sleep(120)
            return 0

        late = wait_ranks(fork_ranks(2, late_failure))
        started = time.monotonic()
        pids = fork_ranks(2, straggler)
        hung = wait_ranks(pids, grace=1.0)
        seconds = time.monotonic() - started
        alive = [p for p in pids if os.path.exists(f"/proc/{p}")]
        print(json.dumps({"late": late, "hung": hung, "seconds": seconds, "alive": alive}))
        """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["late"] == [0, 0]
    assert result["hung"] == [0, 0]
    assert result["seconds"] < 30 and result["alive"] == []


def test_setup_rank_joins_a_gloo_group_with_the_per_rank_batch(tmp_path: Path) -> None:
    out = _run_python(
        """
        import json, sys
        from pathlib import Path
        from paploss.study.runner.distributed import RankEnv, fork_ranks, wait_ranks

        folder = Path(sys.argv[1])

        def rank_main(rank):
            import torch
            import torch.distributed as dist
            from mmengine.config import Config

            cfg = Config(dict(train_dataloader=dict(batch_size=4), env_cfg=dict(cudnn_benchmark=False)))
            backend = setup_rank(cfg, RankEnv.from_environ())
            value = torch.tensor([float(rank + 1)])
            dist.all_reduce(value)
            outputs = {"loss": torch.tensor(float(rank + 1)), "loss_cls": torch.tensor(7.0)}
            loss_sync_hook().after_train_iter(None, 0, outputs=outputs)
            nan = {"loss": torch.tensor(float("nan") if rank == 1 else 1.0)}
            loss_sync_hook().after_train_iter(None, 1, outputs=nan)
            (folder / f"rank{rank}.json").write_text(json.dumps({
                "backend": backend,
                "sum": float(value),
                "synced_loss": float(outputs["loss"]),
                "other_entry": float(outputs["loss_cls"]),
                "nan_seen": bool(torch.isnan(nan["loss"])),
                "world": dist.get_world_size(),
                "rank": dist.get_rank(),
                "batch": cfg.train_dataloader.batch_size,
                "launcher": cfg.launcher,
                "dist_cfg": dict(cfg.env_cfg.dist_cfg),
                "cudnn_benchmark": cfg.env_cfg.cudnn_benchmark,
                "wrapper": dict(cfg.model_wrapper_cfg),
            }))
            return 0

        from paploss.study.runner.distributed import loss_sync_hook, setup_rank
        print(json.dumps(wait_ranks(fork_ranks(2, rank_main))))
        """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.splitlines()[-1]) == [0, 0]
    for rank in (0, 1):
        record = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert record["backend"] == "gloo"
        assert record["sum"] == 3.0  # 1 + 2 over both ranks
        # The loss sync hook: both ranks see the mean loss (1 + 2) / 2, a NaN on one rank is a
        # NaN on both, and the other log entries stay the rank's own.
        assert record["synced_loss"] == 1.5
        assert record["other_entry"] == 7.0
        assert record["nan_seen"] is True
        assert (record["world"], record["rank"]) == (2, rank)
        assert record["batch"] == 2  # the total batch of 4 is kept
        assert record["launcher"] == "pytorch"
        assert record["dist_cfg"]["backend"] == "gloo"
        assert record["cudnn_benchmark"] is False  # the config's other env_cfg entries stay
        assert record["wrapper"]["type"] == "MMDistributedDataParallel"
        assert record["wrapper"]["device_ids"] is None


def test_search_parser_has_nproc_per_trial() -> None:
    from paploss.study.parsers import search_parser, train_parser

    assert search_parser().parse_args(["--nproc-per-trial", "2"]).nproc_per_trial == 2
    assert train_parser().parse_args([]).nproc_per_trial == 1
    help_text = " ".join(search_parser().format_help().split())
    assert "The total batch is kept" in help_text


# Stand-in trainings (as in tests/test_warm_runner.py): a config whose code runs at parse time,
# inside each forked rank, before any training; it records the rank's pid and sleeps.
def _sleeper(tmp_path: Path) -> Path:
    path = tmp_path / "sleeper.py"
    path.write_text(
        "_os = __import__('os')\n"
        f"open({str(tmp_path)!r} + '/pid' + _os.environ['RANK'], 'w').write(str(_os.getpid()))\n"
        "__import__('time').sleep(120)\n"
    )
    return path


def _rank_pids(tmp_path: Path, nproc: int, seconds: float = 60) -> list[int]:
    deadline = time.monotonic() + seconds
    files = [tmp_path / f"pid{rank}" for rank in range(nproc)]
    while not all(f.is_file() and f.read_text() for f in files):
        assert time.monotonic() < deadline, "the ranks never started"
        time.sleep(0.1)
    return [int(f.read_text()) for f in files]


def _wait_dead(pid: int, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _state(pid) in ("Z", "gone"):
            return True
        time.sleep(0.1)
    return False


def test_trial_timeout_kills_every_rank(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from paploss.study.runner.trial import TrialCrashed
    from paploss.study.runner.warm import WarmRunner

    monkeypatch.setattr("paploss.study.runner.warm.PRELOAD", ("json",))
    with WarmRunner(device="cpu", nproc_per_trial=2) as runner:
        with pytest.raises(TrialCrashed, match="exceeded the trial timeout"):
            runner.run(tmp_path / "run", config=_sleeper(tmp_path), timeout=25)
        pids = _rank_pids(tmp_path, 2, seconds=1)
    assert all(_wait_dead(pid) for pid in pids), "a rank outlived the timeout"


def test_every_rank_dies_with_the_worker(tmp_path: Path) -> None:
    code = f"""\
        import pathlib
        import paploss.study.runner.warm as warm
        warm.PRELOAD = ("json",)
        runner = warm.WarmRunner(device="cpu", nproc_per_trial=2)
        runner.start()
        print(runner._proc.pid, flush=True)
        runner.run(
            pathlib.Path({str(tmp_path / "run")!r}),
            config=pathlib.Path({str(_sleeper(tmp_path))!r}),
        )
        """
    worker = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True
    )
    try:
        zygote = int(worker.stdout.readline())
        pids = _rank_pids(tmp_path, 2)
        assert all(_state(pid) not in ("Z", "gone") for pid in [zygote, *pids])
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        assert _wait_dead(zygote), "the zygote outlived its worker"
        assert all(_wait_dead(pid) for pid in pids), "a rank outlived its worker"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        worker.stdout.close()


# ------------------------------------------------------------------------------ slow
def _search_cmd(data: Path, tmp_path: Path, url: str, *extra: str) -> list[str]:
    from tests.test_studies_e2e import FAST

    return [
        sys.executable,
        SEARCH,
        "--storage",
        url,
        "--study-name",
        "dist",
        "--rounds",
        "1",
        "--samples-per-round",
        "2",
        "--data",
        str(data),
        "--work-dir",
        str(tmp_path / "wd"),
        "--nproc-per-trial",
        "2",
        *FAST,
        *extra,
    ]


@pytest.mark.slow
def test_two_gloo_ranks_train_one_trial_and_record_one_result(tmp_path: Path) -> None:
    from paploss.proxy import generate_proxy_dataset
    from tests.test_studies_e2e import ENV

    data = tmp_path / "tiny"
    generate_proxy_dataset(data, seed=0, num_train=8, num_eval=4, num_val=4, image_size=64)
    url = f"sqlite:///{tmp_path / 's.db'}"
    out = subprocess.run(
        _search_cmd(data, tmp_path, url, "--n-trials", "1"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=900,
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
    study = optuna.load_study(study_name="dist", storage=url)
    (trial,) = study.get_trials()
    assert trial.state == TrialState.COMPLETE, trial.user_attrs.get("error")
    assert trial.user_attrs["nproc_per_trial"] == 2
    assert trial.value == trial.user_attrs["AP"]
    run_dir = Path(trial.user_attrs["work_dir"])
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "ok" and result["metrics"]["AP"] == trial.value
    # Both ranks trained: each logged its own run (2 iterations of 1 image per rank: 8 images,
    # a total batch of 2), and only rank 0 wrote a result.
    assert result["iterations"] == 4
    for rank in (0, 1):
        log = (run_dir / rank_log(rank)).read_text()
        assert "[trial] status=ok" in log, log[-2000:]
    assert sorted(p.name for p in run_dir.glob("result*.json")) == ["result.json"]
    # The mmengine log of rank 0 shows a distributed run of two processes.
    mm_logs = [p.read_text() for p in run_dir.glob("*/*.log")]
    assert any(
        "Distributed launcher: pytorch" in text and "GPU number: 2" in text for text in mm_logs
    ), mm_logs


def _wait_for_training_iteration(run_dir_glob: Path, deadline: float) -> Path:
    """The run folder of the first trial whose rank 0 logged a training iteration."""
    while time.monotonic() < deadline:
        for run_dir in sorted(run_dir_glob.glob("trial_*")):
            log = run_dir / rank_log(0)
            pid_file = run_dir / rank_pid_file(1)
            if pid_file.exists() and log.exists() and "Epoch(train)" in log.read_text():
                return run_dir
        time.sleep(0.05)
    raise AssertionError("no trial reached a training iteration")


@pytest.mark.slow
def test_a_killed_rank_fails_its_trial_and_the_worker_goes_on(tmp_path: Path) -> None:
    from paploss.proxy import generate_proxy_dataset
    from tests.test_studies_e2e import ENV

    data = tmp_path / "small"
    # 64 training images: 32 iterations of a total batch of 2, time to kill a rank mid-training.
    generate_proxy_dataset(data, seed=0, num_train=64, num_eval=4, num_val=4, image_size=64)
    url = f"sqlite:///{tmp_path / 's.db'}"
    log = open(tmp_path / "worker.log", "w+")
    worker = subprocess.Popen(
        _search_cmd(data, tmp_path, url),
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=ENV,
    )
    try:
        run_dir = _wait_for_training_iteration(tmp_path / "wd" / "dist", time.monotonic() + 600)
        rank0 = int((run_dir / rank_pid_file(0)).read_text())
        rank1 = int((run_dir / rank_pid_file(1)).read_text())
        os.kill(rank1, signal.SIGKILL)
        # Rank 0 does not hang in a collective: the zygote kills it.
        deadline = time.monotonic() + 20
        while os.path.exists(f"/proc/{rank0}") and _state(rank0) != "Z":
            assert time.monotonic() < deadline, "rank 0 outlived the killed rank 1"
            time.sleep(0.1)
        assert worker.wait(timeout=900) == 0, (tmp_path / "worker.log").read_text()[-5000:]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        log.close()
    study = optuna.load_study(study_name="dist", storage=url)
    trials = study.get_trials()
    failed = [t for t in trials if t.state == TrialState.FAIL]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(failed) == 1 and len(complete) == 2, [(t.number, t.state) for t in trials]
    (crashed,) = failed
    assert Path(crashed.user_attrs["work_dir"]) == run_dir
    assert "rank 1 of 2" in crashed.user_attrs["error"]
    assert "SIGKILL" in crashed.user_attrs["error"]
    # Rank 0 may see the broken collective and record its own error before the zygote kills it;
    # what must not exist is a result that reads as a finished training.
    result_file = run_dir / "result.json"
    if result_file.exists():
        assert json.loads(result_file.read_text())["status"] == "error", result_file.read_text()
    assert all(t.user_attrs["nproc_per_trial"] == 2 for t in complete)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return "gone"
