"""The protocol experiment (the paper's 40 x 8 search): its plan, the search command's shape, its
report section read from a study built here, and the splice into an existing report."""

from __future__ import annotations

import datetime as dt
import math
import statistics
from pathlib import Path

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from paploss.reproduce.experiments import BUDGETS, Search, Training
from paploss.reproduce.options import ReproduceOptions
from paploss.reproduce.paper_tables import PROTOCOL, TABLES
from paploss.reproduce.plan import plan
from paploss.reproduce.report import splice_section
from paploss.reproduce.report_protocol import HEADING, protocol_section, read_protocol
from paploss.reproduce.snapshot import RowResult
from paploss.study import keys

T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


def test_the_protocol_plans_its_search_and_four_rows_with_the_papers_shape() -> None:
    jobs = plan(["protocol"], BUDGETS["full"])
    searches = [j.key for j in jobs if isinstance(j, Search)]
    rows = [j.key for j in jobs if isinstance(j, Training)]
    # The cheap rows first, the 40 x 8 search and its row last.
    assert searches == ["main", "protocol"]
    assert rows == ["published-retinanet", "searched", "linear", "searched-protocol"]
    assert jobs[-2:] == [PROTOCOL, TABLES["protocol"].rows[0].training]
    assert PROTOCOL.shape(BUDGETS["full"]) == (40, 8)
    assert Search("main").shape(BUDGETS["full"]) == (4, 4)
    assert PROTOCOL.shape(BUDGETS["quick"]) == (3, 2)


def test_the_runner_gives_the_protocol_search_its_own_rounds(tmp_path: Path) -> None:
    from paploss.reproduce.runner import Reproduction

    args = ReproduceOptions(
        budget="full", work_dir=tmp_path, storage=f"sqlite:///{tmp_path}/r.db",
        experiments=["protocol"], data=["proxy"], device="cpu", workers=1, report_only=False,
    )  # fmt: skip
    repro = Reproduction(args)
    cmd = repro.search_command(PROTOCOL)
    assert cmd[cmd.index("--rounds") + 1] == "40"
    assert cmd[cmd.index("--samples-per-round") + 1] == "8"
    main = repro.search_command(Search("main"))
    assert main[main.index("--rounds") + 1] == "4"


RULE = {"check_at": 47, "window": 10, "min_motion": 0.003}
PAUSE = dt.timedelta(hours=1)


def _study(storage: optuna.storages.BaseStorage) -> list[dict]:
    """A 3-round x 2-sample protocol search, recorded as PPO2 and the search command record it."""
    study = optuna.create_study(storage=storage, study_name="search/protocol", direction="maximize")
    study.set_user_attr(keys.SETTINGS, {keys.COLLAPSE_RULE: RULE})
    dist = {"x": FloatDistribution(0.0, 1.0)}
    plan_ = [  # round, AP, collapsed, seconds, mu
        (0, 0.10, False, 60, {"a": 0.2, "b": 0.5}),
        (0, 0.00, True, 12, {"a": 0.2, "b": 0.5}),
        (1, 0.30, False, 50, {"a": 0.5, "b": 0.1}),
        (1, 0.20, False, 70, {"a": 0.5, "b": 0.1}),
        (2, 0.00, True, 10, {"a": 0.6, "b": 0.0}),
        (2, 0.25, False, 40, {"a": 0.6, "b": 0.0}),
    ]
    start = T0
    records = []
    for r, ap, collapsed, seconds, mu in plan_:
        end = start + dt.timedelta(seconds=seconds)
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE,
                value=ap,
                params={"x": 0.5},
                distributions=dist,
                user_attrs={
                    "ppo2_round": r,
                    "ppo2_mean": mu,
                    "ppo2_sigma": 0.2 - 0.05 * r,
                    keys.COLLAPSED: collapsed,
                },
            )
        )
        trial_id = study.get_trials()[-1]._trial_id
        records.append(dict(round=r, ap=ap, collapsed=collapsed, seconds=seconds, mu=mu))
        _set_times(storage, trial_id, start, end)
        start = end + (PAUSE if len(records) == 4 else dt.timedelta(0))  # a pause before round 3
    return records


def _set_times(storage: optuna.storages.RDBStorage, trial_id: int, start, end) -> None:
    """Give a created trial its start and end (``create_trial`` records neither)."""
    import sqlite3

    with sqlite3.connect(storage.url[len("sqlite:///") :]) as db:
        db.execute(
            "UPDATE trials SET datetime_start = ?, datetime_complete = ? WHERE trial_id = ?",
            (start.isoformat(sep=" "), end.isoformat(sep=" "), trial_id),
        )


def test_the_protocol_section_is_read_once_and_matches_a_direct_computation(
    tmp_path: Path,
) -> None:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    records = _study(storage)
    run = read_protocol(storage, rounds=40, samples=2)
    assert run is not None and run.target_rounds == 40
    assert [r.round for r in run.rounds] == [1, 2, 3]
    best = 0.0
    for r, got in enumerate(run.rounds):
        aps = [x["ap"] for x in records if x["round"] == r]
        best = max(best, *aps)
        assert math.isclose(got.best, 100 * best) and math.isclose(got.mean, 100 * sum(aps) / 2)
        assert got.collapsed == sum(x["collapsed"] for x in records if x["round"] == r)
        assert math.isclose(got.sigma, 0.2 - 0.05 * r)
    # mu's RMS shift from round 1's mean, round 3: (0.4, -0.5).
    assert math.isclose(run.rounds[2].mu_shift, math.sqrt((0.4**2 + 0.5**2) / 2))
    assert run.rounds[0].mu_shift == 0.0
    busy = sum(x["seconds"] for x in records)
    assert math.isclose(run.wall_hours, (busy + PAUSE.total_seconds()) / 3600)
    assert math.isclose(run.active_hours, busy / 3600)  # the pause left out
    assert run.collapse_rule == RULE
    full = [x["seconds"] for x in records if not x["collapsed"]]
    assert run.collapsed == 2 and run.collapsed_seconds == 22
    assert math.isclose(run.saved_hours, (2 * statistics.median(full) - 22) / 3600)

    empty = RowResult({"AP": [], "AP50": [], "AP75": []})
    results = {row.training.key: empty for row in TABLES["protocol"].rows}
    figure = tmp_path / "figs" / "protocol.png"
    lines = protocol_section(run, results, figure)
    assert lines[0] == HEADING and figure.stat().st_size > 0
    assert "| 3 | 30.0 | 12.5 | 1/2 |" in "\n".join(lines)
    assert "rounds complete: 3 of 40" in "\n".join(lines)
    assert "over iterations 38-47" in "\n".join(lines)
    assert protocol_section(None, results, figure, provenance="Run by x.")[2].startswith("Not run")
    ran = protocol_section(run, results, figure, provenance="Run by x.")
    assert ran[:4] == [HEADING, "", "Run by x.", ""] and ran[4:] == lines[2:]
    assert "- Searched, 40 x 8 > Linear: not run yet" in lines


def test_the_protocol_orderings_are_decided_by_the_paired_test_alone(tmp_path: Path) -> None:
    from scipy.stats import ttest_rel

    def row(aps: list[float]) -> RowResult:
        return RowResult({"AP": aps, "AP50": aps, "AP75": aps}, (0, 1, 2))

    searched, published = [38.0, 38.4, 38.9], [36.5, 37.0, 37.2]
    rows = dict(zip((r.training.key for r in TABLES["protocol"].rows), TABLES["protocol"].rows))
    results = {key: row(published) for key in rows}
    results["searched-protocol"] = row(searched)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    _study(storage)
    lines = protocol_section(
        read_protocol(storage, rounds=40, samples=2), results, tmp_path / "p.png"
    )
    p = ttest_rel(searched, published, alternative="greater").pvalue
    line = next(x for x in lines if x.startswith("- Searched, 40 x 8 > Published"))
    assert line.endswith(": higher") and f"p = {p:.3f}" in line, (line, p)
    assert not any("paper yes" in x or "paper no" in x for x in lines)


def test_splice_replaces_the_section_or_inserts_it_before_fig3() -> None:
    text = "# R\n\n## Tab. 9\n\nx\n\n## Fig. 3: y\n\nz\n"
    inserted = splice_section(text, HEADING, [HEADING, "", "new", ""], "## Fig. 3")
    assert inserted == f"# R\n\n## Tab. 9\n\nx\n\n{HEADING}\n\nnew\n\n## Fig. 3: y\n\nz\n"
    replaced = splice_section(inserted, HEADING, [HEADING, "", "newer", ""], "## Fig. 3")
    assert replaced == inserted.replace("new\n", "newer\n")
    assert splice_section("# R\n", HEADING, [HEADING], "## Fig. 3") == f"# R\n\n{HEADING}"
