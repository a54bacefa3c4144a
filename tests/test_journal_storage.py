"""Journal-file storage (``--storage journal:PATH``): URL handling, opening it, and two search
workers sharing one journal file and its PPO2 rounds (slow: real proxy trainings).

The two-worker test is the journal counterpart of the SQLite and PostgreSQL two-worker tests
(``tests/test_ppo2_sampler.py``, ``tests/test_studies_e2e.py``): both workers run
``studies/search.py`` at the same time on one journal file, the study ends with exactly S
complete trials per round, both workers trained trials, and PPO2's update used the trials of
round 0 whoever trained them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from paploss.errors import StorageError
from paploss.study import storage as st

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------ URLs
@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("journal:search.log", "search.log"),
        ("journal://search.log", "search.log"),
        ("journal:///tmp/x/search.log", "/tmp/x/search.log"),
        ("journal:/tmp/x/search.log", "/tmp/x/search.log"),
        ("journal:sub/dir/s.journal", "sub/dir/s.journal"),
    ],
)
def test_journal_file_spellings(url: str, path: str) -> None:
    assert st.journal_file(url) == Path(path)
    assert st.is_journal(url)


@pytest.mark.parametrize("url", ["sqlite:///x.db", "postgresql://u@h/db", "x.log", ""])
def test_rdb_urls_and_plain_paths_are_not_journals(url: str) -> None:
    assert st.journal_file(url) is None
    assert not st.is_journal(url)


@pytest.mark.parametrize("url", ["journal:", "journal://"])
def test_journal_without_a_path_is_refused(url: str) -> None:
    with pytest.raises(StorageError, match="no journal file"):
        st.journal_file(url)


def test_open_storage_writes_a_journal_that_optuna_reads(tmp_path: Path) -> None:
    path = tmp_path / "s.log"
    storage = st.open_storage(f"journal:{path}", heartbeat_interval=1, grace_period=2)
    assert isinstance(storage, JournalStorage)
    study = optuna.create_study(study_name="j", storage=storage, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=3)
    # An independent reader of the same file (Optuna's own classes) sees the three trials.
    other = JournalStorage(JournalFileBackend(str(path)))
    again = optuna.load_study(study_name="j", storage=other)
    assert [t.value for t in again.trials] == [t.value for t in study.trials]
    assert len(again.trials) == 3
    # Relative spelling, opened from the file's folder.
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        rel = st.open_storage("journal://s.log", must_exist=True)
        assert len(optuna.load_study(study_name="j", storage=rel).trials) == 3
    finally:
        os.chdir(cwd)


def test_open_storage_journal_errors(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no such journal file"):
        st.open_storage(f"journal:{tmp_path / 'missing.log'}", must_exist=True)
    assert not (tmp_path / "missing.log").exists()
    with pytest.raises(StorageError, match="does not exist"):
        st.open_storage(f"journal:{tmp_path / 'no' / 'such' / 's.log'}")


def test_printed_urls_of_a_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert st.render_url("journal:s.log") == "journal:s.log"
    # optuna-dashboard takes the file's path; a printed paploss command keeps the prefix.
    assert st.dashboard_url("journal:s.log") == str(tmp_path / "s.log")
    assert st.command_url("journal:s.log") == f"journal:{tmp_path / 's.log'}"
    assert st.command_url("sqlite:///x.db") == f"sqlite:///{tmp_path / 'x.db'}"


def test_help_says_heartbeats_are_rdb_only() -> None:
    from paploss.study.parsers import search_parser

    text = " ".join(search_parser().format_help().split())
    assert "journal:PATH" in text
    assert "it has no heartbeats" in text
    assert "RDB storage only, ignored with a warning on a journal storage" in text


# ------------------------------------------------------------------------------ two workers
@pytest.mark.slow
def test_two_search_workers_share_one_journal(tmp_path: Path) -> None:
    from paploss.proxy import generate_proxy_dataset
    from tests.test_studies_e2e import ENV, FAST

    data = tmp_path / "tiny"
    generate_proxy_dataset(data, seed=0, num_train=8, num_eval=4, num_val=4, image_size=64)
    journal = tmp_path / "search.log"
    url = f"journal:{journal}"
    cmd = [
        sys.executable,
        str(ROOT / "studies" / "search.py"),
        "--storage",
        url,
        "--study-name",
        "shared",
        "--rounds",
        "2",
        "--samples-per-round",
        "2",
        "--data",
        str(data),
        "--work-dir",
        str(tmp_path / "wd"),
        *FAST,
    ]
    outs = {k: open(tmp_path / f"{k}.log", "w+") for k in ("a", "b")}
    extra = {"a": [], "b": ["--grace-period", "30"]}
    workers = {
        k: subprocess.Popen(
            cmd + extra[k], cwd=tmp_path, stdout=outs[k], stderr=subprocess.STDOUT, env=ENV
        )
        for k in ("a", "b")
    }
    try:
        for k, proc in workers.items():
            assert proc.wait(timeout=900) == 0, (tmp_path / f"{k}.log").read_text()[-5000:]
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for f in outs.values():
            f.close()
    logs = {k: (tmp_path / f"{k}.log").read_text() for k in ("a", "b")}
    assert "--grace-period has no effect on a journal storage" in logs["b"]
    assert "--grace-period has no effect" not in logs["a"]

    # Read the journal with Optuna's own classes, not through paploss.
    storage = JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name="shared", storage=storage)
    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.FAIL)]
    for r in (0, 1):
        assert len([t for t in complete if t.user_attrs["ppo2_round"] == r]) == 2
    # Both workers trained (each trial records "host:pid" of its worker).
    pids = {str(t.user_attrs["worker"]).rsplit(":", 1)[1] for t in complete}
    assert pids == {str(workers["a"].pid), str(workers["b"].pid)}, pids
    # Round 1's mean was computed from round 0's two complete trials.
    system_attrs = storage.get_study_system_attrs(study._study_id)
    used = system_attrs["ppo2:mean:1"]["trials"]
    by_number = {t.number: t for t in complete}
    assert len(used) == 2 and all(by_number[n].user_attrs["ppo2_round"] == 0 for n in used)

    # paploss-train reads the best trial's params from the journal.
    export = tmp_path / "best.json"
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "studies" / "train.py"),
            "--storage",
            url,
            "--study-name",
            "shared",
            "--export",
            str(export),
            "--export-only",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    exported = json.loads(export.read_text())
    assert exported, "nothing exported"
