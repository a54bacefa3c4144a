"""The slots of a reproduction: :class:`paploss.reproduce.pool.ChildPool` on real child processes,
and the runner's schedule (searches side by side, row seeds as slots free up, a free slot joining
a running search) with stand-in children that record their study's trials and a row's
metrics.json the way the real commands do, so that the schedule is checked in seconds (the real
trainings run in ``tests/test_reproduce.py``'s slow quick reproduction)."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from paploss.reproduce import runner as runner_module
from paploss.reproduce.experiments import Search, Training
from paploss.reproduce.options import ReproduceOptions
from paploss.reproduce.pool import ChildPool
from paploss.reproduce.runner import Reproduction


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_the_pool_holds_at_most_its_slots_and_returns_every_exit_code(tmp_path: Path) -> None:
    with ChildPool(slots=2, env=os.environ, poll=0.05) as pool:
        pool.start(_python("print('one')"), tmp_path / "a.log", "a", shown="one")
        pool.start(_python("import sys; sys.exit(3)"), tmp_path / "b.log", "b", shown="two")
        assert pool.free == 0
        with pytest.raises(RuntimeError, match="no free slot"):
            pool.start(_python("pass"), tmp_path / "c.log", "c", shown="three")
        codes: dict[str, int] = {}
        while pool.running:
            codes.update(pool.wait_any())
    assert codes == {"a": 0, "b": 3}
    assert (tmp_path / "a.log").read_text() == "\n$ one\none\n"
    assert (tmp_path / "b.log").read_text() == "\n$ two\n"


def test_wait_any_returns_nothing_after_its_timeout(tmp_path: Path) -> None:
    with ChildPool(slots=1, env=os.environ, poll=0.05, grace=5) as pool:
        pool.start(_python("import time; time.sleep(30)"), tmp_path / "a.log", "a", shown="s")
        started = time.monotonic()
        assert pool.wait_any(timeout=0.3) == []
        assert time.monotonic() - started < 5
        assert pool.running == 1


def test_leaving_the_pool_stops_every_child_and_its_children(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    code = f"""
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{child.pid}}")
        time.sleep(60)
    """
    with pytest.raises(KeyboardInterrupt):  # noqa: PT012  (the pool is left by the interrupt)
        with ChildPool(slots=1, env=os.environ, poll=0.05, grace=10) as pool:
            pool.start(_python(code), tmp_path / "a.log", "a", shown="s")
            deadline = time.monotonic() + 30
            while not (pids.exists() and " " in pids.read_text()):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            raise KeyboardInterrupt
    for pid in map(int, pids.read_text().split()):
        deadline = time.monotonic() + 10
        while _alive(pid):
            assert time.monotonic() < deadline, f"process {pid} still runs"
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of an exited grandchild counts as stopped
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


class _StandIns(Reproduction):
    """The reproduction's schedule with stand-in children: a search worker adds its study's
    trials one at a time (``step`` s each) until the study has rounds x samples; a row seed sleeps
    ``step`` s (seed 2: ``long_step`` s, so that the slot beside it frees up while it runs,
    whatever the machine's start-up times) and writes a metrics.json. Every child appends
    ``start end name`` to ``events``."""

    step = 0.4
    long_step = 4.0

    def __init__(self, options: ReproduceOptions, events: Path) -> None:
        super().__init__(options)
        self.events = events

    def search_command(self, search: Search) -> list[str]:
        rounds, samples = search.shape(self.budget)
        return _python(f"""
            import time, optuna
            from optuna.trial import create_trial
            start = time.time()
            study = optuna.create_study(study_name="search/{search.key}",
                storage={self.storage_url!r}, direction="maximize", load_if_exists=True)
            while len(study.get_trials(deepcopy=False)) < {rounds * samples}:
                time.sleep({self.step})
                study.add_trial(create_trial(value=0.5, params={{}}, distributions={{}}))
            with open({str(self.events)!r}, "a") as f:
                f.write(f"{{start}} {{time.time()}} search-{search.key}\\n")
        """) + ["--seed", str(search.seed)]  # fmt: skip

    def training_command(self, training: Training, seed: int, run_dir: Path) -> list[str]:
        summary = {"status": "ok", "metrics": {"AP": 0.1 * (seed + 1)}, "train_seconds": 1.0}
        return _python(f"""
            import json, os, time
            start = time.time()
            time.sleep({self.long_step if seed == 2 else self.step})
            os.makedirs({str(run_dir)!r}, exist_ok=True)
            with open(os.path.join({str(run_dir)!r}, "metrics.json"), "w") as f:
                json.dump({summary!r}, f)
            with open({str(self.events)!r}, "a") as f:
                f.write(f"{{start}} {{time.time()}} row-{training.key}-{seed}\\n")
        """) + ["--seed", str(seed), "--work-dir", str(run_dir)]  # fmt: skip


def _reproduction(tmp_path: Path, experiments: list[str], workers: int) -> _StandIns:
    options = ReproduceOptions(
        experiments=experiments, budget="quick", storage=f"sqlite:///{tmp_path}/r.db",
        work_dir=tmp_path / "work", device="cpu", workers=workers,
    )  # fmt: skip
    repro = _StandIns(options, tmp_path / "events")
    repro.open()
    return repro


def _events(path: Path) -> list[tuple[float, float, str]]:
    rows = [line.split() for line in path.read_text().splitlines()]
    return sorted((float(a), float(b), name) for a, b, name in rows)


def _most_at_once(events: list[tuple[float, float, str]]) -> int:
    edges = sorted([(s, 1) for s, _, _ in events] + [(e, -1) for _, e, _ in events])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def test_two_slots_run_searches_side_by_side_and_fill_with_the_next_rows_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    repro = _reproduction(tmp_path, ["tab4"], workers=2)
    assert repro.run() == 0, repro.failures
    events = _events(tmp_path / "events")
    names = [n for _, _, n in events]
    # tab4 quick: two searches (4 trials each), then their rows' 3 seeds each.
    assert set(names[:2]) == {"search-main", "search-fixed-lambda"}
    assert _most_at_once(events) == 2
    searches = [e for e in events if e[2].startswith("search-")]
    assert searches[1][0] < searches[0][1]  # the two searches overlap
    # The first row's third seed shares the slots with the next row's first seed.
    rows = [e for e in events if e[2].startswith("row-")]
    assert len(rows) == 6
    third = next(e for e in rows if e[2].endswith("-2"))
    others = [e for e in rows if e is not third and e[2].rsplit("-", 1)[0] != third[2].rsplit(
        "-", 1)[0]]  # fmt: skip
    assert any(s < third[1] and third[0] < e for s, e, _ in others)
    for row in {n.rsplit("-", 1)[0][len("row-") :] for _, _, n in rows}:
        study = optuna.load_study(study_name=f"row/{row}", storage=repro.storage_url)
        done = study.get_trials(states=(TrialState.COMPLETE,))
        assert sorted(t.user_attrs["seed"] for t in done) == [0, 1, 2]
        assert sorted(round(t.value, 2) for t in done) == [0.1, 0.2, 0.3]
    out = capsys.readouterr().out
    assert "joins" not in out  # always something else to start
    # Run again: everything is recorded, nothing starts.
    again = _reproduction(tmp_path, ["tab4"], workers=2)
    assert again.run() == 0
    out = capsys.readouterr().out
    assert " -> " not in out and "search main complete" in out
    assert "row searched complete" in out


def test_a_free_slot_with_nothing_else_to_start_joins_the_running_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(runner_module, "REJOIN_SECONDS", 0.2)
    repro = _reproduction(tmp_path, ["fig4"], workers=2)  # the main search alone
    assert repro.run() == 0, repro.failures
    out = capsys.readouterr().out
    assert "search main: worker 1 joins" in out
    assert (tmp_path / "work" / "logs" / "search-main.worker1.log").is_file()
    study = optuna.load_study(study_name="search/main", storage=repro.storage_url)
    assert len(study.get_trials()) >= 4


def test_a_failed_search_fails_its_rows_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")

    class Broken(_StandIns):
        def search_command(self, search: Search) -> list[str]:
            if search.key == "main":
                return _python("import sys; sys.exit(4)")
            return super().search_command(search)

    options = ReproduceOptions(
        experiments=["tab4"], budget="quick", storage=f"sqlite:///{tmp_path}/r.db",
        work_dir=tmp_path / "work", device="cpu", workers=2,
    )  # fmt: skip
    repro = Broken(options, tmp_path / "events")
    repro.open()
    assert repro.run() == 1
    out = capsys.readouterr().out
    assert "search main FAILED (exit 4)" in out
    assert "row searched waits for search main" in out
    assert any(f.startswith("search main (exit 4") for f in repro.failures)
    # The other search and its row ran.
    study = optuna.load_study(study_name="row/searched-fixed-lambda", storage=repro.storage_url)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3
