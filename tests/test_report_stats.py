"""The report's paired tests of the paper's stated orderings, on made-up rows (no training).

The rows are the report's typed inputs (:class:`RowResult` per training key of the paper's
tables); the p-values are checked against the t distribution computed here from the differences.
"""

from __future__ import annotations

import math
import os
import shlex
import statistics
from pathlib import Path
from typing import Any

import pytest
from scipy import stats

from paploss.reproduce.experiments import BUDGETS, RETINANET, Search
from paploss.reproduce.paper_claims import CLAIMS, claim_training_keys
from paploss.reproduce.paper_tables import PROTOCOL_KEY, TABLES
from paploss.reproduce.plan import plan, row_seeds
from paploss.reproduce.report_stats import (
    ALPHA,
    FAR_BELOW_AP,
    holm_rejects,
    holm_verdicts,
    paired_test,
)
from paploss.reproduce.report_tables import (
    claim_tests,
    claims_markdown,
    ordering_markdown,
    summary_markdown,
)
from paploss.reproduce.snapshot import RowResult

BASE = [38.0, 36.5, 39.2, 37.1, 38.4]
"""AP (%) of seeds 0-4 of one row: the seeds differ by more than the rows' difference below."""


def _row(values: list[float], seeds: tuple[int, ...] | None = None) -> RowResult:
    seeds = tuple(range(len(values))) if seeds is None else seeds
    return RowResult({"AP": values, "AP50": values, "AP75": values}, seeds)


def _t_pvalue(d: list[float]) -> float:
    """One-sided p of mean(d) > 0 from the t distribution (independent of ttest_rel)."""
    n = len(d)
    t = statistics.fmean(d) / (statistics.stdev(d) / math.sqrt(n))
    return float(stats.t.sf(t, df=n - 1))


def _tab4(with_lambda: list[float], without: list[float]) -> dict[str, RowResult]:
    return {"searched": _row(with_lambda), "searched-fixed-lambda": _row(without)}


def test_clear_win_agrees_with_a_small_p() -> None:
    shift = [1.1, 0.9, 1.2, 1.0, 0.8]
    without = [b - s for b, s in zip(BASE, shift)]
    [check] = claim_tests(TABLES["tab4"], _tab4(BASE, without))
    assert check.name == "w/ > w/o" and check.verdict == "agrees"
    assert check.test.n == 5
    assert check.test.p_agree == pytest.approx(_t_pvalue(shift), rel=1e-9)
    assert check.test.p_agree < 1e-3
    [line] = claims_markdown(TABLES["tab4"], _tab4(BASE, without))
    assert line.endswith(": agrees") and "paired t-test (n=5, mean difference +1.0): p = " in line


def test_a_tie_is_unresolved() -> None:
    noise = [0.3, -0.2, 0.1, -0.3, 0.2]
    without = [b + e for b, e in zip(BASE, noise)]
    [check] = claim_tests(TABLES["tab4"], _tab4(BASE, without))
    assert check.verdict == "unresolved"
    d = [-e for e in noise]
    assert check.test.p_agree == pytest.approx(_t_pvalue(d), rel=1e-9)
    assert check.test.p_agree >= ALPHA and check.test.p_disagree >= ALPHA
    assert claims_markdown(TABLES["tab4"], _tab4(BASE, without))[0].endswith(": UNRESOLVED")


def test_a_clear_loss_disagrees() -> None:
    without = [b + 1.0 + 0.1 * k for k, b in enumerate(BASE)]
    [check] = claim_tests(TABLES["tab4"], _tab4(BASE, without))
    assert check.verdict == "disagrees"
    d = [w - b for b, w in zip(BASE, without)]  # the opposite direction
    assert check.test.p_disagree == pytest.approx(_t_pvalue(d), rel=1e-9)
    line = claims_markdown(TABLES["tab4"], _tab4(BASE, without))[0]
    assert line.endswith(": DISAGREES") and "p (opposite direction) = " in line


def test_rows_are_paired_by_seed() -> None:
    # Row b holds the same seeds in another order and one seed row a lacks: seed k pairs with k.
    a = _row([30.0, 35.0, 40.0], seeds=(0, 1, 2))
    b = _row([39.0, 29.2, 34.1, 12.0], seeds=(2, 0, 1, 3))
    assert a.paired(b) == ([30.0, 35.0, 40.0], [29.2, 34.1, 39.0])
    [check] = claim_tests(TABLES["tab4"], {"searched": a, "searched-fixed-lambda": b})
    # The seeds spread by 10 AP, the differences by 0.1: paired, the ordering is decided.
    assert check.test.n == 3 and check.verdict == "agrees"
    assert (
        stats.ttest_ind([30.0, 35.0, 40.0], [29.2, 34.1, 39.0], alternative="greater").pvalue > 0.4
    )


def test_far_below_uses_its_margin() -> None:
    linear = [31.0, 30.2, 32.1, 31.5, 30.8]
    far = {"sigmoid": _row([v - 17.0 for v in linear]), "linear": _row(linear)}
    near = {
        "sigmoid": _row([v - 2.0 - 0.1 * k for k, v in enumerate(linear)]),
        "linear": _row(linear),
    }
    table = TABLES["tab2"]
    results = {k.training.key: _row(linear) for k in table.rows}
    for case, verdict in ((far, "agrees"), (near, "disagrees")):
        checks = {c.name: c for c in claim_tests(table, {**results, **case})}
        assert checks["Sigmoid << Linear"].verdict == verdict
    far_by = [FAR_BELOW_AP + 1.0, FAR_BELOW_AP + 1.5, FAR_BELOW_AP + 1.2]
    assert paired_test([0.0] * 3, far_by, "<<").verdict == "agrees"


def test_degenerate_inputs() -> None:
    assert paired_test([38.0], [37.0], ">").verdict == "unresolved"  # one pair: no test
    same = paired_test([30.0, 31.0, 32.0], [30.0, 31.0, 32.0], ">")
    assert same.verdict == "unresolved" and same.test == "sign test"
    constant = paired_test([2.0] * 5, [1.0] * 5, ">")  # every seed 1 AP above: sign test
    assert constant.p_agree == pytest.approx(0.5**5) and constant.verdict == "agrees"
    assert paired_test([1.0] * 6, [0.5, 0.4, 0.3, 0.2, 0.1, 0.0], ">").wilcoxon_p is not None
    with pytest.raises(ValueError, match="different lengths"):
        paired_test([1.0, 2.0], [1.0], ">")
    with pytest.raises(ValueError, match="unknown ordering operator"):
        paired_test([1.0, 2.0], [1.0, 2.0], "<")


def test_tab8_compares_ap50() -> None:
    # The paper gives AP50 only: the rows' AP50 decides, their AP does not enter.
    rows = TABLES["tab8"].rows
    ap50 = {
        "clutter-retinanet-focal-l1": [60.0, 61.0, 59.5],
        "clutter-searched": [66.0, 65.5, 66.4],
    }
    results = {
        key: RowResult({"AP": [30.0, 30.5, 29.0], "AP50": v, "AP75": [10.0, 10.0, 10.0]})
        for key, v in ap50.items()
    }
    results["clutter-searched-clutter"] = RowResult({"AP": [], "AP50": [], "AP75": []})
    checks = {c.name: c for c in claim_tests(TABLES["tab8"], results)}
    first = checks["Parameterized AP Loss searched on the digits proxy > Focal Loss + L1"]
    assert first.verdict == "agrees" and first.paper == (79.6, 77.3)
    assert first.test.p_agree == pytest.approx(
        _t_pvalue(
            [a - b for a, b in zip(ap50["clutter-searched"], ap50["clutter-retinanet-focal-l1"])]
        ),
        rel=1e-9,
    )
    assert sum(c.verdict == "not run" for c in checks.values()) == 2
    lines = claims_markdown(TABLES["tab8"], results)
    assert "paper yes (AP50 79.6 vs 77.3); proxy 66.0 ± 0.5 vs 60.2 ± 0.8" in lines[0]
    assert [r.paper[1] for r in rows] == [77.3, 79.6, 80.2]


def test_full_orders_leave_out_rows_without_a_paper_number_and_tie_equal_ones() -> None:
    """Tab. 1: a hand-set baseline has no paper number and stays out of the order; Faster R-CNN's
    searched row and the published params carry the same paper AP, so either proxy order of the
    two matches the paper's; a baseline above the PAPLoss rows on the proxy does not."""
    table = TABLES["tab1"]

    def orders(ap: dict[str, float]) -> list[str]:
        results = {
            r.training.key: RowResult({m: [ap[r.training.key]] if r.training.key in ap else []
                                       for m in ("AP", "AP50", "AP75")})
            for r in table.rows
        }  # fmt: skip
        return ordering_markdown(table, results)

    base = {"retinanet-focal-l1": 50.0, "retinanet-focal-l1-tuned": 30.0,
            "retinanet-focal-giou-tuned": 31.0, "searched": 35.0,
            "frcnn-ce-l1": 1.0, "frcnn-ce-l1-tuned": 20.0, "frcnn-ce-giou-tuned": 25.0,
            "frcnn-searched": 40.0, "frcnn-paploss": 41.0}  # fmt: skip
    retina, frcnn = orders(base)
    assert retina == (
        "- RetinaNet: paper order Parameterized AP Loss > Focal Loss + GIoU (tuned) > "
        "Focal Loss + L1 (tuned); proxy order Parameterized AP Loss > Focal Loss + GIoU (tuned) > "
        "Focal Loss + L1 (tuned): same order"
    )
    assert "paper order Parameterized AP Loss = Published params (reference) > " in frcnn
    assert frcnn.endswith(": same order")
    swapped = orders(base | {"frcnn-searched": 42.0})[1]
    assert "proxy order Parameterized AP Loss > Published params (reference)" in swapped
    assert swapped.endswith(": same order")
    assert orders(base | {"frcnn-ce-giou-tuned": 40.5})[1].endswith(": DIFFERENT order")


def _holm_adjusted(pvalues: list[float]) -> list[float]:
    """Holm's adjusted p-values, p~_(k) = max over j <= k of min(1, (m - j + 1) p_(j)): an
    independent form of the step-down (reject where p~ <= alpha)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * m, 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def test_holm_rejects_as_its_adjusted_p_values_say() -> None:
    import random

    rng = random.Random(0)
    for _ in range(200):
        m = rng.randint(1, 12)
        ps = [rng.choice([rng.random() * 0.02, rng.random()]) for _ in range(m)]
        assert holm_rejects(ps) == [a <= ALPHA for a in _holm_adjusted(ps)]
    # the step-down stops at the first p above its bound, even if a later p is below alpha / 1
    assert holm_rejects([0.01, 0.03, 0.04]) == [True, False, False]
    assert holm_rejects([0.01, 0.02, 0.04]) == [True, True, True]
    assert holm_rejects([math.nan, 0.001]) == [False, True]


def test_holm_verdicts_keep_the_direction_and_drop_weak_ones() -> None:
    shift = [1.1, 0.9, 1.2, 1.0, 0.8]
    clear = paired_test([b + s for b, s in zip(BASE, shift)], BASE, ">")
    against = paired_test(BASE, [b + s for b, s in zip(BASE, shift)], ">")
    weak = paired_test([b + e for b, e in zip(BASE, [0.6, -0.1, 0.5, 0.2, 0.4])], BASE, ">")
    assert (clear.verdict, against.verdict, weak.verdict) == ("agrees", "disagrees", "agrees")
    assert 0.01 < weak.p_agree < ALPHA  # below alpha alone, not after doubling and Holm
    many = [clear, against, weak]
    assert holm_verdicts(many) == ["agrees", "disagrees", "unresolved"]
    assert holm_verdicts([weak]) == ["agrees" if 2 * weak.p_agree <= ALPHA else "unresolved"]


def test_summary_counts_the_verdicts() -> None:
    results = {r.training.key: RowResult({"AP": [], "AP50": [], "AP75": []})
               for t in TABLES.values() for r in t.rows}  # fmt: skip
    results.update(_tab4(BASE, [b - 1.0 - 0.05 * k for k, b in enumerate(BASE)]))
    text = "\n".join(summary_markdown(results))
    # Tab. 4's w/ > w/o and Tab. 9's separate, lambda searched > lambda 1: the same two rows.
    assert "2 agree on the proxy, 0 disagree, 0 are unresolved" in text
    assert "With Holm's correction for testing all 2 orderings that ran" in text
    assert f"level alpha = {ALPHA}" in text


def test_claims_hold_on_the_papers_numbers_and_their_rows_train_paired_seeds() -> None:
    budget = BUDGETS["full"]
    assert budget.claim_seeds >= 5
    keys = claim_training_keys()
    seeds = {
        job.key: row_seeds(job, budget)
        for job in plan(["all", "protocol"], budget)
        if hasattr(job, "presets")
    }
    for key, claims in CLAIMS.items():
        m = ("AP", "AP50", "AP75").index(TABLES[key].metric)
        for group in {r.group for r in TABLES[key].rows}:
            rows = {r.label: r for r in TABLES[key].rows if r.group == group}
            for left, op, right in claims:
                if left in rows and right in rows:
                    a, b = rows[left], rows[right]
                    if key != PROTOCOL_KEY:  # the protocol's orderings are not the paper's
                        assert op == "<<" or a.paper[m] > b.paper[m]
                        assert op != "<<" or b.paper[m] - a.paper[m] > FAR_BELOW_AP
                    assert {a.training.key, b.training.key} <= keys
                    assert seeds[a.training.key] == seeds[b.training.key] == budget.claim_seeds
    # Rows outside every ordering keep the budget's seeds (e.g. the hand-set baselines; the
    # orderings of Tab. 1 use the tuned ones).
    assert seeds["frcnn-ce-l1"] == seeds["retinanet-focal-giou"] == budget.seeds
    assert seeds["frcnn-ce-l1-tuned"] == seeds["frcnn-searched"] == budget.claim_seeds
    assert seeds["frcnn-paploss"] == budget.seeds  # the published params: a reference row


# ---- the whole report from a made-up storage (no training) ---------------------------------


def _made_up_reproduction(
    root: Path, budget: str, ppo2_gain: float, experiments: tuple[str, ...] = ("all",)
) -> Any:
    """A :class:`Reproduction` with default storage and work dir under the home folder ``root /
    "home"``, run from ``root / "home" / "proj"``, whose studies are made up: every row seed and
    every search as the runner and the search record them (commands with absolute paths). Search
    k of PPO2 reaches ``ppo2_gain`` + 0.2 (k mod 3) AP points above search k of every other
    sampler."""
    import optuna

    from paploss.reproduce.children import ROW_PREFIX, SEARCH_PREFIX, display_command
    from paploss.reproduce.options import ReproduceOptions
    from paploss.reproduce.runner import Reproduction
    from paploss.study import keys
    from paploss.study.config.space import SearchSpace, SpaceOptions, make_slots

    data = root / "home" / "proj" / "data" / "mine"
    data.mkdir(parents=True)
    args = ReproduceOptions(
        budget=budget, work_dir=None, storage=None, experiments=list(experiments),
        data=[str(data)], device="cpu", workers=2, report_only=True,
    )  # fmt: skip
    repro = Reproduction(args)
    repro.open()
    space = SearchSpace(make_slots(["model.bbox_head"]), SpaceOptions())
    params, dists = space.init_mean(), space.distributions()
    rows = {}
    for job in repro.jobs:
        if isinstance(job, Search):
            study = optuna.create_study(study_name=SEARCH_PREFIX + job.key, storage=repro.storage,
                                        direction="maximize", load_if_exists=True)  # fmt: skip
            study.set_user_attr(
                keys.COMMAND, shlex.join(["paploss-search", *repro.search_command(job)[3:]])
            )
            gain = ppo2_gain + 0.2 * (job.seed % 3) if job.sampler == "ppo2" else 0.0
            n = repro.budget.rounds * repro.budget.samples
            # Params only where the report reads them (Fig. 4: the main search): fewer writes.
            p, d = (params, dists) if job.key == "main" else ({}, {})
            for i in range(n):
                value = (20.0 + job.seed + gain + 10.0 * i / n) / 100.0
                study.add_trial(optuna.trial.create_trial(value=value, params=p, distributions=d))
        else:
            rows[job.key] = job
    for key, training in rows.items():
        study = optuna.create_study(study_name=ROW_PREFIX + key, storage=repro.storage,
                                    direction="maximize")  # fmt: skip
        for seed in range(row_seeds(training, repro.budget)):
            run_dir = repro.work_dir / "rows" / key / f"seed{seed}"
            cmd = display_command(repro.training_command(training, seed, run_dir))
            ap = 0.3 + 0.01 * seed
            attrs = {keys.SEED: seed, keys.COMMAND: cmd, "AP": ap, "AP50": ap, "AP75": ap}
            study.add_trial(optuna.trial.create_trial(value=ap, user_attrs=attrs))
    # A search recorded by an earlier version, in another checkout's studies/configs.
    old = optuna.create_study(study_name=SEARCH_PREFIX + "old", storage=repro.storage)
    old.set_user_attr(keys.COMMAND, shlex.join([
        "search.py", "--config", str(root / "home" / "src" / "studies" / "configs" / RETINANET),
        "--storage", f"sqlite:///{root / 'home' / 'old.db'}", "--work-dir", str(root / "home"),
    ]))  # fmt: skip
    return repro


def test_report_shows_no_path_of_the_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from paploss.reproduce.report import write_report

    machine_home = os.path.expanduser("~")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PAPLOSS_CACHE", raising=False)
    (tmp_path / "home" / "proj").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "home" / "proj")
    repro = _made_up_reproduction(tmp_path, "quick", ppo2_gain=1.0)
    assert str(repro.work_dir).startswith(str(tmp_path))  # the defaults are under the home folder
    path = write_report(repro, Path("docs") / "reproduction.md")
    text = path.read_text()
    for home in (machine_home, os.path.expanduser("~"), str(tmp_path)):
        assert home not in text
    for part in tmp_path.parts[1:]:
        assert f"/{part}" not in text, part
    # Shown as the user types them.
    assert "`sqlite:///$HOME/.cache/paploss/reproduce/quick.db`" in text
    assert "runs and logs in `~/.cache/paploss/reproduce/quick`" in text
    assert "paploss-reproduce all --budget quick --data data/mine --workers 2" in text
    assert f"--config paploss/configs/{RETINANET} --storage 'sqlite:///$HOME" not in text
    assert f"--config paploss/configs/{RETINANET} --storage sqlite:///$HOME/.cache/" in text
    assert "--work-dir ~/.cache/paploss/reproduce/quick/rows/searched/seed0 " in text
    assert f"python studies/search.py --config paploss/configs/{RETINANET} --storage " in text
    assert "sqlite:///$HOME/old.db --work-dir ~`" in text
    assert (path.parent / "reproduction_figures" / "fig3_ppo2_vs_random.png").is_file()


def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PAPLOSS_CACHE", raising=False)
    (tmp_path / "home" / "proj").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "home" / "proj")


@pytest.mark.parametrize(
    ("gain", "verdict"), [(1.0, "agrees"), (-1.0, "DISAGREES"), (-0.2, "UNRESOLVED")]
)
def test_fig3_bands_and_paired_final_best(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gain: float, verdict: str
) -> None:
    from paploss.reproduce.report_figures import fig3

    _home(tmp_path, monkeypatch)
    repro = _made_up_reproduction(tmp_path, "extended", ppo2_gain=gain, experiments=("fig3",))
    lines, drawn = fig3(repro.storage, repro.budget, tmp_path / "fig3.png")
    text = "\n".join(lines)
    assert drawn and (tmp_path / "fig3.png").is_file()
    for name in ("ppo2", "random", "tpe", "cmaes"):
        assert f"- {name}: 6 of 6 searches complete (6 started)" in text
    # Round 1 of random (trials 0-3): search k's best is 20 + k + 10 * 3 / 16 AP.
    std = statistics.stdev(range(6))
    assert f"| 24.4 ± {std:.1f} (21.9-26.9) |" in text
    finals = [20.0 + k + 10.0 * 15 / 16 for k in range(6)]
    ppo2 = [f + gain + 0.2 * (k % 3) for k, f in enumerate(finals)]
    p = stats.ttest_rel(ppo2, finals, alternative="greater").pvalue
    random_line = next(line for line in lines if line.startswith("- PPO2 > random"))
    assert random_line.endswith(f": {verdict}") and "paired t-test (n=6" in random_line
    if verdict != "DISAGREES":
        shown = float(random_line.split("): p = ", 1)[1].split(",", 1)[0])
        assert shown == pytest.approx(p, rel=0.01, abs=5e-4)
    assert any(line.startswith("- PPO2 > cmaes (no claim of the paper)") for line in lines)


def test_extended_budget_adds_samplers_to_the_full_run() -> None:
    full, extended = BUDGETS["full"], BUDGETS["extended"]
    assert extended.storage_name == "full" and full.storage_name == "full"
    full_jobs = plan(["all"], full)
    extra = [j for j in plan(["all"], extended) if j not in full_jobs]
    assert all(j in plan(["all"], extended) for j in full_jobs)
    assert sorted((j.sampler, j.seed) for j in extra) == sorted(
        (s, k) for s in ("tpe", "cmaes") for k in range(full.repeats)
    )


def test_a_protocol_run_alone_rewrites_only_its_section_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``paploss-reproduce protocol`` into an existing report: the text before and after the
    protocol's section is kept byte for byte, and the section says that its rows come from a run
    apart from the other sections'."""
    from paploss.reproduce.report import write_report
    from paploss.reproduce.report_protocol import HEADING

    _home(tmp_path, monkeypatch)
    report = Path("docs") / "reproduction.md"
    report.parent.mkdir()
    before = "# Report\n\n## Tab. 9\n\nrows of another run\n\n"
    after = "## Fig. 3: PPO2 vs random\n\ncurves of another run\n"
    report.write_text(f"{before}{HEADING}\n\nold section\n\n{after}")
    repro = _made_up_reproduction(tmp_path, "quick", ppo2_gain=1.0, experiments=("protocol",))
    text = write_report(repro, report).read_text()
    assert text.startswith(before + HEADING + "\n") and text.endswith("\n" + after)
    section = text[len(before) : -len(after)]
    assert "old section" not in section
    assert "from a run of the protocol alone" in section
    # Without a report to splice into, the whole report is written, and has no such note.
    assert "protocol alone" not in write_report(repro, tmp_path / "fresh.md").read_text()
