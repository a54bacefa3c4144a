"""``studies/reproduce.py``: the experiment plan, bad input (exit 2, nothing written), and a quick
reproduction on a tiny proxy that is interrupted, resumed without retraining finished rows, and
reported."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from paploss.reproduce.experiments import BUDGETS, RETINANET, Search, Training
from paploss.reproduce.paper_claims import CLAIMS
from paploss.reproduce.paper_tables import TABLES
from paploss.reproduce.plan import ALL_ORDER, EXPERIMENTS, plan

ROOT = Path(__file__).resolve().parents[1]
REPRODUCE = str(ROOT / "studies" / "reproduce.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_every_experiment_is_planned_once_with_ordered_jobs() -> None:
    # The 40 x 8 protocol runs only when named.
    assert set(ALL_ORDER) == set(EXPERIMENTS) - {"protocol"} and "protocol" in EXPERIMENTS
    jobs = plan(["all"], BUDGETS["full"])
    keys = [(type(j).__name__, j.key) for j in jobs]
    assert len(keys) == len(set(keys))
    for index, job in enumerate(jobs):  # a row's search runs before the row
        if isinstance(job, Training) and job.search is not None:
            assert ("Search", job.search.key) in keys[:index]
    searches = [j for j in jobs if isinstance(j, Search)]
    assert sum(s.sampler == "random" for s in searches) == 6  # Fig. 3: 6 repeats each
    assert sum(s.sampler == "ppo2" and s.options.is_default and s.variant.loss_options() == {}
               and not s.dataset and s.config == RETINANET for s in searches) == 6  # fmt: skip
    # Tab. 1: one search per detector and one equal-budget search per baseline
    by_key = {s.key: s.config for s in searches}
    assert by_key["frcnn-main"] == "proxy_faster_rcnn_paploss.py"
    assert by_key["detr-main"] == "proxy_deformable_detr_paploss.py"
    assert sorted(s.config for s in searches if s.sampler == "tpe") == sorted(
        r.training.config for r in TABLES["tab1"].rows if r.label.endswith(" (tuned)")
    )
    # The same sampler seeds 0..5 for both samplers (paired by seed).
    assert sorted(s.seed for s in searches if s.sampler == "random") == list(range(6))
    slow = [i for i, j in enumerate(jobs) if "retinanet" not in j.config]
    assert slow == list(range(len(jobs) - len(slow), len(jobs)))  # Faster R-CNN / DETR last


def test_claims_name_rows_of_their_tables() -> None:
    for key, claims in CLAIMS.items():
        labels = {r.label for r in TABLES[key].rows}
        for left, op, right in claims:
            assert left in labels and right in labels and op in (">", ">=", "<<")


def test_tab9_is_the_2x2_beside_the_substitutions_trained_once() -> None:
    from paploss.reproduce.paper_tables import SHARED_FIXED_LAMBDA

    rows = TABLES["tab9"].rows
    assert [r.paper[0] for r in rows] == [3.2, 2.3, 22.9, 36.4, 37.1, 39.4, 37.8, 40.5]
    others = {r.training.key: r.training for k, t in TABLES.items() if k != "tab9" for r in t.rows}
    # Every row but one is a row of Tab. 2-4 (the same training); the new one searches the
    # shared function with lambda fixed to 1.
    assert [r.training.key for r in rows if r.training.key not in others] == [
        "searched-shared-fixed-lambda"
    ]
    assert all(others[r.training.key] == r.training for r in rows if r.training.key in others)
    flags = SHARED_FIXED_LAMBDA.search.flags()
    assert "--shared-params" in flags and flags[flags.index("--fixed-lambda") + 1] == "1"
    jobs = plan(["tab9"], BUDGETS["full"])
    assert [j.key for j in jobs if isinstance(j, Search)] == [
        "shared-fixed-lambda", "fixed-lambda", "shared", "main"
    ]  # fmt: skip
    substitution_rows = [j for j in jobs if isinstance(j, Training) and j.substitution]
    assert jobs[-1] in substitution_rows  # the slow closed form last


def test_tab8_trains_and_searches_on_the_generated_second_dataset(tmp_path: Path) -> None:
    from paploss.proxy import ProxySettings, default_root
    from paploss.reproduce.options import ReproduceOptions
    from paploss.reproduce.runner import Reproduction

    args = ReproduceOptions(budget="full", work_dir=tmp_path, storage=f"sqlite:///{tmp_path}/r.db",
                              experiments=["tab8"], data=["proxy"], device="cpu", workers=1)  # fmt: skip
    repro = Reproduction(args)
    folder = str(default_root(ProxySettings.clutter()))
    searches = [j for j in repro.jobs if isinstance(j, Search)]
    assert [(s.key, s.dataset) for s in searches] == [("main", ""), ("main-clutter", "clutter")]
    for search in searches:
        cmd = repro.search_command(search)
        assert cmd[cmd.index("--data") + 1] == (folder if search.dataset else "proxy")
    trainings = [j for j in repro.jobs if isinstance(j, Training)]
    assert len(trainings) == 3 and all(t.dataset == "clutter" for t in trainings)
    for training in trainings:
        cmd = repro.training_command(training, 0, tmp_path / "seed0")
        assert cmd[cmd.index("--data") + 1] == folder
    # The row of the first proxy's loss takes the main search's params (searched on "proxy").
    row = next(t for t in trainings if t.key == "clutter-searched")
    cmd = repro.training_command(row, 0, tmp_path / "seed0")
    assert cmd[cmd.index("--study-name") + 1] == "search/main"


def test_the_second_dataset_is_generated_into_the_proxy_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from paploss.proxy import ProxySettings, dataset_problem, load_settings
    from paploss.reproduce import experiments
    from paploss.reproduce.options import ReproduceOptions
    from paploss.reproduce.runner import Reproduction

    monkeypatch.setenv("PAPLOSS_DATA", str(tmp_path / "cache"))
    small = dict(num_train=4, num_eval=2, num_val=2)  # the clutter settings, fewer images
    monkeypatch.setitem(experiments.DATASETS, "clutter", lambda: ProxySettings.clutter(**small))
    args = ReproduceOptions(budget="quick", work_dir=tmp_path, storage=f"sqlite:///{tmp_path}/r.db",
                              experiments=["tab8"], data=["proxy"], device="cpu", workers=1)  # fmt: skip
    repro = Reproduction(args)
    repro.generate_dataset("clutter")
    job = next(j for j in repro.jobs if isinstance(j, Training))
    folder = Path(repro.data_flags(job)[1])
    assert folder.parent == tmp_path / "cache" and dataset_problem(folder) is None
    assert load_settings(folder) == ProxySettings.clutter(**small)


def test_active_time_leaves_out_pauses_and_counts_overlaps_once() -> None:
    """Two workers' trainings overlap (counted once), a 60 s start-up gap counts, and a
    one-hour pause between two runs does not: 100 + 60 + 50 s, then 40 s after the pause."""
    from paploss.reproduce.snapshot import active_seconds

    intervals = [(0.0, 100.0), (20.0, 80.0), (160.0, 210.0), (3810.0, 3850.0)]
    assert active_seconds(intervals, pause=300.0) == 210.0 + 40.0
    assert active_seconds(reversed(intervals), pause=300.0) == 250.0
    assert active_seconds(intervals, pause=10_000.0) == 3850.0
    assert active_seconds([]) == 0.0


def test_snapshot_times_count_only_the_named_studies() -> None:
    """The times of a set of studies: another study's trainings (the protocol's search in the
    same storage, a day earlier) add neither to the sums nor to the span."""
    from paploss.reproduce.snapshot import ReportSnapshot

    day = 86_400.0
    snapshot = ReportSnapshot(
        spans={
            "search/main": ((day, day + 40.0), (day + 10.0, day + 60.0)),
            "row/linear": ((day + 100.0, day + 150.0),),
            "search/protocol": ((0.0, 1000.0),),
        }
    )
    times = snapshot.times(["search/main", "row/linear", "row/not-run"])
    assert times.busy_seconds == 40.0 + 50.0 + 50.0
    assert times.span_seconds == 150.0
    assert times.active_seconds == 150.0  # the 40 s gap is no pause
    every = snapshot.times()
    assert every.busy_seconds == 1140.0 and every.span_seconds == day + 150.0
    assert every.active_seconds == 1000.0 + 150.0  # the day between them is a pause


def test_search_flags_are_accepted_by_the_search_parser() -> None:
    from paploss.study.parsers import search_parser

    for job in plan(["all"], BUDGETS["full"]):
        if isinstance(job, Search):
            search_parser().parse_args(job.flags())


def test_children_run_the_installed_modules_and_show_as_console_scripts(tmp_path: Path) -> None:
    import shlex

    from paploss.reproduce.children import display_command, run_key
    from paploss.reproduce.options import ReproduceOptions
    from paploss.reproduce.report import _search_command
    from paploss.reproduce.runner import Reproduction
    from paploss.study.cli import CONFIG_DIR

    args = ReproduceOptions(budget="quick", work_dir=tmp_path, storage=f"sqlite:///{tmp_path}/r.db",
                              experiments=["tab4"], data=["proxy"], device="cpu", workers=1)  # fmt: skip
    repro = Reproduction(args)
    search = next(j for j in repro.jobs if isinstance(j, Search))
    training = next(j for j in repro.jobs if isinstance(j, Training))
    cmd = repro.search_command(search)
    assert cmd[:3] == [sys.executable, "-m", "paploss.study.search"]
    assert Path(cmd[cmd.index("--config") + 1]).parent == CONFIG_DIR
    shown = display_command(cmd)
    assert shown.startswith(f"paploss-search --config paploss/configs/{search.config} ")
    cmd = repro.training_command(training, 0, tmp_path / "seed0")
    assert cmd[:3] == [sys.executable, "-m", "paploss.study.train"]
    assert display_command(cmd).startswith(
        f"paploss-train --config paploss/configs/{training.config}"
    )
    # A seed's marker written by an earlier version (studies/train.py, studies/configs) still
    # identifies the same run; another seed does not.
    old = ["/src/studies/train.py", "--config", f"/src/studies/configs/{training.config}", *cmd[5:]]
    assert run_key(old) == run_key(cmd[1:])
    assert run_key([*old[:-1], "x"]) != run_key(cmd[1:])
    # A search's recorded command: the earlier form is shown as before, the new one shortened.
    assert (
        _search_command("search.py --config /a/b.py") == "python studies/search.py --config /a/b.py"
    )
    recorded = shlex.join(["paploss-search", "--config", str(CONFIG_DIR / search.config)])
    assert _search_command(recorded) == f"paploss-search --config paploss/configs/{search.config}"


def _run(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, REPRODUCE, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tab10"], "invalid choice: 'tab10'"),
        (["tab2", "--budget", "huge"], "invalid choice: 'huge'"),
        (["tab2", "--data", "/nonexistent/folder"], "no such folder"),
        (["tab2", "--device", "gpu3"], "auto (CUDA if available"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    db = tmp_path / "r.db"
    report = tmp_path / "report.md"
    proc = _run(*argv, "--storage", f"sqlite:///{db}", "--work-dir", str(tmp_path / "w"),
                "--report", str(report))  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(("error: ", "paploss-reproduce: error: ")), lines
    assert not db.exists() and not report.exists() and not (tmp_path / "w").exists()


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from paploss.proxy import generate_proxy_dataset

    root = tmp_path_factory.mktemp("proxy") / "tiny"
    generate_proxy_dataset(root, seed=0, num_train=8, num_eval=4, num_val=4, image_size=64)
    return root


def _seed_trials(db: Path, row: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=f"row/{row}", storage=f"sqlite:///{db}")
    return study.get_trials(states=(TrialState.COMPLETE,))


@pytest.mark.slow
def test_quick_reproduction_resumes_and_reports(tiny_data: Path, tmp_path: Path) -> None:
    db, work, report = tmp_path / "r.db", tmp_path / "work", tmp_path / "docs" / "repro.md"
    argv = [REPRODUCE, "tab4", "tab7", "--budget", "quick", "--data", str(tiny_data),
            "--storage", f"sqlite:///{db}", "--work-dir", str(work), "--report", str(report),
            "--device", "cpu", "--workers", "2"]  # fmt: skip
    # Interrupted once the first row seed is recorded.
    proc = subprocess.Popen(
        [sys.executable, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=ENV, cwd=ROOT,
    )  # fmt: skip
    first = None
    deadline = time.monotonic() + 600
    assert proc.stdout is not None
    for line in proc.stdout:
        if ": AP " in line and " seed 0:" in line:
            first = line.split("row ", 1)[1].split(" seed", 1)[0]
            break
        assert time.monotonic() < deadline
    assert first is not None
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "run the same command again" in err
    metrics = work / "rows" / first / "seed0" / "metrics.json"
    stamp = metrics.stat().st_mtime_ns
    # Seed 0, and any seed of the row that finished beside it before the interrupt.
    assert 0 in [t.user_attrs["seed"] for t in _seed_trials(db, first)]

    # Resumed: the finished seed is not trained again; everything else completes.
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=ENV,
                          cwd=ROOT, timeout=1500)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"row {first} seed 0 ->" not in done.stdout
    assert metrics.stat().st_mtime_ns == stamp
    for row in (first, "searched", "searched-fixed-lambda", "searched-no-block"):
        assert sorted(t.user_attrs["seed"] for t in _seed_trials(db, row)) == [0, 1, 2]

    # A third run trains nothing.
    again = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=ENV,
                           cwd=ROOT, timeout=300)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert " -> " not in again.stdout and "search main complete" in again.stdout

    text = report.read_text()
    assert "| w/o | 39.4 |" in text and "| w/ | 40.5 |" in text
    assert "## Tab. 7" in text and "not blocked" in text and "## Fig. 3" in text
    assert "w/ > w/o: paper yes (40.5 vs 39.4); proxy " in text
    assert "paploss-train --config paploss/configs/proxy_retinanet_paploss.py" in text
    assert "paploss-search --config paploss/configs/proxy_retinanet_paploss.py" in text
    assert "paploss-reproduce tab4 tab7 --budget quick" in text
    assert (report.parent / "repro_figures" / "fig4_searched_functions.png").is_file()
