"""The benchmark scripts run (``--smoke``) and write the tables they promise.

Each script runs in a subprocess at its ``--smoke`` size and writes its results section into a
Markdown file under ``tmp_path`` (never ``benchmarks/RESULTS.md``); the tables are read back and
compared with the script's own raw output (JSON rows, CSV runs) recomputed here.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
OTHER_TEXT = "# Benchmark results\n\nText of another section, kept as it is.\n"


def _run(script: str, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def _section(path: Path, name: str) -> str:
    text = path.read_text()
    assert text.startswith(OTHER_TEXT), "the text outside the section changed"
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    assert text.count(begin) == 1 and text.count(end) == 1
    return text.split(begin, 1)[1].split(end, 1)[0]


def _tables(text: str) -> list[list[list[str]]]:
    """Markdown tables as rows of cells (header first, the |---| rule dropped)."""
    tables: list[list[list[str]]] = []
    inside = False
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip()[1:-1].split("|")]
            if not inside:
                tables.append([])
                inside = True
            if not all(c and set(c) <= {"-"} for c in cells):
                tables[-1].append(cells)
        else:
            inside = False
    return tables


def test_bench_pairwise_smoke_writes_its_table(tmp_path: Path) -> None:
    md, js = tmp_path / "RESULTS.md", tmp_path / "pairwise.json"
    md.write_text(OTHER_TEXT)
    out = _run(
        "bench_pairwise.py",
        "--smoke",
        "--device",
        "cpu",
        "--results-md",
        str(md),
        "--results-json",
        str(js),
    )
    assert not (tmp_path / "pairwise_cpu.csv").exists()
    assert "appended" not in out.stdout  # --smoke writes no CSV unless asked to

    tables = _tables(_section(md, "bench_pairwise"))
    assert len(tables) == 1
    header, *rows = tables[0]
    assert header == [
        "P",
        "N",
        "provider",
        "forward ms",
        "backward ms",
        "full ms (p20-p80)",
        "peak MB",
        "runs",
        "max rel diff vs sorted",
        "note",
    ]
    providers = ["sorted", "reference", "release-dense"]
    sizes = [(8, 300), (32, 2000)]
    assert [(int(r[0]), int(float(r[1])), r[2]) for r in rows] == [
        (p, n, prov) for p, n in sizes for prov in providers
    ]
    record = json.loads(js.read_text())
    assert str(tmp_path) not in record["command"] and str(tmp_path) not in md.read_text()
    full = {
        (r["P"], r["N"], r["provider"]): r
        for r in record["rows"]
        if r["mode"] == "full" and r.get("median_ms")
    }
    for row in rows:
        p, n, prov = int(row[0]), int(float(row[1])), row[2]
        raw = full[(p, n, prov)]
        assert row[7] == "2" == str(raw["repeats"])
        # the table's full median is the JSON row's, formatted
        median = float(row[5].split(" ")[0])
        assert median == pytest.approx(float(raw["median_ms"]), rel=0.01)
        # every provider computes the same sums as the sorted one
        if prov != "sorted":
            assert float(row[8]) < 1e-4, row
    assert {r["mode"] for r in record["rows"]} == {"forward", "backward", "full"}


def test_bench_samplers_smoke_writes_its_tables(tmp_path: Path) -> None:
    from paploss.samplers import SAMPLER_NAMES

    out_dir, md, js = tmp_path / "out", tmp_path / "RESULTS.md", tmp_path / "samplers.json"
    tail = "\n\nText after the section, kept as it is.\n"
    md.write_text(
        OTHER_TEXT + "<!-- bench_samplers:begin -->\nstale\n<!-- bench_samplers:end -->" + tail
    )
    _run(
        "bench_samplers.py",
        "--smoke",
        "--out",
        str(out_dir),
        "--overhead-dir",
        str(tmp_path),
        "--results-md",
        str(md),
        "--results-json",
        str(js),
    )
    section = _section(md, "bench_samplers")
    assert section.strip() == (out_dir / "samplers.md").read_text().strip()  # replaced "stale"
    assert md.read_text().endswith(tail)
    assert str(tmp_path) not in section
    assert (out_dir / "samplers_best_so_far.png").stat().st_size > 1000

    # best-so-far per (objective, sampler, round) over the seeds, from the per-run CSV
    runs: dict[tuple[str, str, int], list[float]] = {}
    with (out_dir / "samplers_runs.csv").open() as fh:
        for row in csv.DictReader(fh):
            key = (row["objective"], row["sampler"], int(row["round"]))
            runs.setdefault(key, []).append(float(row["best_so_far"]))
    assert {len(v) for v in runs.values()} == {2}  # 2 seeds

    tables = _tables(section)
    objectives = ["sphere", "narrow", "plateau"]
    assert len(tables) == len(objectives) + 1
    for obj, table in zip(objectives, tables):
        header, *rows = table
        assert header == ["sampler", "t = 1", "t = 2"]
        assert [r[0] for r in rows] == list(SAMPLER_NAMES)
        for row in rows:
            for t, cell in enumerate(row[1:], start=1):
                mean, std = (float(v) for v in cell.split(" ± "))
                values = runs[(obj, row[0], t)]
                assert mean == pytest.approx(statistics.fmean(values), abs=1e-4)
                assert std == pytest.approx(statistics.pstdev(values), abs=1e-4)
            # the incumbent of a noise-free objective never gets worse
            if obj != "narrow":
                first, second = runs[(obj, row[0], 1)], runs[(obj, row[0], 2)]
                assert all(b >= a for a, b in zip(first, second))
    header, *rows = tables[-1]
    assert header == ["sampler", "in sampler (ms/trial)", "wall (ms/trial)"]
    assert [r[0] for r in rows] == list(SAMPLER_NAMES)
    for row in rows:
        inside, wall = float(row[1]), float(row[2])
        assert 0 < inside <= wall

    record = json.loads(js.read_text())
    assert sorted(record["overhead"]) == sorted(SAMPLER_NAMES)
    assert all(r["trials"] == 4 for r in record["overhead"].values())
    assert len(record["summary"]) == len(objectives) * len(SAMPLER_NAMES)


@pytest.mark.slow
@pytest.mark.parametrize("detector", ["retinanet", "deformable_detr"])
def test_bench_proxy_smoke_writes_the_draws_table(tmp_path: Path, detector: str) -> None:
    """The proxy benchmark on the tiny proxy: the draws table has a row per draw (2 initial, 1
    searched) whose numbers are the JSON's, and the rho over all draws is Spearman's of those
    numbers; another detector's draws are kept apart from RetinaNet's, under its own heading."""
    from scipy.stats import spearmanr

    md, raw = tmp_path / "RESULTS.md", tmp_path / "proxy.json"
    md.write_text(OTHER_TEXT)
    chosen = [] if detector == "retinanet" else ["--detector", detector, "--part", "draws"]
    _run("bench_proxy.py", "--smoke", *chosen, "--results-md", str(md), "--results-json", str(raw))
    results = json.loads(raw.read_text())
    key = "draws" if detector == "retinanet" else f"draws/{detector}"
    assert sorted(k for k in results if k.startswith("draws")) == [key]
    text = _section(md, "bench_proxy")
    heading = "### Rank fidelity over the search's own samples"
    if detector != "retinanet":
        heading += ": Deformable DETR (`proxy_deformable_detr_paploss.py`)"
    assert heading + " (" in text
    (draws,) = _tables(text)
    assert draws[0] == ["draw", "group", "proxy AP", "long AP"]
    assert [row[:2] for row in draws[1:]] == [
        ["draw 0", "initial"],
        ["draw 1", "initial"],
        ["searched 0", "searched"],
    ]
    rows = results[key]["rows"]
    for row, rec in zip(draws[1:], rows):
        assert row[2:] == [f"{rec['proxy']:.4f}", f"{rec['long']:.4f}"]
    rho = spearmanr([r["proxy"] for r in rows], [r["long"] for r in rows]).statistic
    assert f"all **{rho:.2f}**" in text


def test_bench_searches_unreachable_storage_is_a_one_line_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_searches.py"), "--storage", "nosuchdb://x"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("bench_searches.py: error: cannot open storage nosuchdb://x")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.slow
def test_bench_searches_smoke_reads_round_means_from_the_study(tmp_path: Path) -> None:
    """A 2 x 2 search on the tiny proxy: the table's round means, best and verdicts are those
    recomputed here from the study's trials; a second run reads the finished search instead of
    searching again."""
    import optuna
    from optuna.trial import TrialState

    md, raw = tmp_path / "RESULTS.md", tmp_path / "searches.json"
    md.write_text(OTHER_TEXT)
    url = f"sqlite:///{tmp_path / 's.db'}"
    argv = ["--smoke", "--storage", url, "--work-dir", str(tmp_path / "w")]
    argv += ["--results-md", str(md), "--results-json", str(raw)]
    first = _run("bench_searches.py", *argv)
    assert "retinanet seed 0: searching" in first.stdout
    study = optuna.load_study(study_name="retinanet-2x2-s0", storage=url)
    by_round: dict[int, list[float]] = {}  # ppo2_round is 0-based
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        by_round.setdefault(t.user_attrs["ppo2_round"], []).append(t.value)
    means = [statistics.fmean(by_round[r]) for r in sorted(by_round)]
    best = max(v for vs in by_round.values() for v in vs)
    (table,) = _tables(_section(md, "bench_searches"))
    assert table[0][:4] == ["detector", "sampler seed", "round 1 mean", "round 2 mean"]
    (row,) = table[1:]
    assert row[:4] == ["RetinaNet", "0", f"{means[0]:.3f}", f"{means[1]:.3f}"]
    assert row[4].startswith(f"{best:.3f} (trial ")
    verdict = {True: "yes", False: "**no**"}
    later = max(by_round[1]) > max(by_round[0])
    assert row[5:8] == [verdict[best > means[0]], verdict[means[1] > means[0]], verdict[later]]
    second = _run("bench_searches.py", *argv)
    assert "searching" not in second.stdout
    assert json.loads(raw.read_text())["searches"][0]["round_means"] == pytest.approx(means)


@pytest.mark.slow
def test_bench_collapse_smoke_applies_the_rule_to_a_searchs_trials(tmp_path: Path) -> None:
    """The early-stop benchmark on a 1 x 3 search of the tiny proxy: the summary counts the
    search's three trials, the per-trial table holds exactly the trials that collapsed, that the
    rule stops or that the search stopped, and the rule's decision agrees with the trial's motion
    against min_motion."""
    md, raw = tmp_path / "RESULTS.md", tmp_path / "collapse.json"
    md.write_text(OTHER_TEXT)
    _run("bench_collapse.py", "--smoke", "--results-md", str(md), "--results-json", str(raw))
    results = json.loads(raw.read_text())
    tables = _tables(_section(md, "bench_collapse"))
    summary, trials, frontier = tables[:3]
    assert summary[0][:2] == ["trials", "count"]
    counts = {row[0]: int(row[1]) for row in summary[1:]}
    assert counts["all"] == 3 == counts["round 1"]
    rows = {r["label"]: r for r in results["rows"]}
    assert len(rows) == 3 and all(label.startswith("smoke#") for label in rows)
    expected = {
        lb for lb, r in rows.items() if r["ap"] < 1e-3 or r["stops"] or r["stopped_at"] is not None
    }
    assert {row[0] for row in trials[1:]} == expected
    for row in trials[1:]:
        r = rows[row[0]]
        assert row[2] == f"{r['ap']:.4f}"
        assert (row[4] == "yes") == r["stops"]
    min_motion = results["rule"]["min_motion"]
    for r in rows.values():
        assert r["stops"] == (r["motion"] is not None and r["motion"] < min_motion)
    assert frontier[0][:2] == ["check at", "window"]
    if results["cost"]:
        assert tables[3][1][0] == results["cost"][0]["label"]


@pytest.mark.slow
def test_bench_collapse_check_writes_its_own_section(tmp_path: Path) -> None:
    """``--check`` on the smoke search: its own section (the evidence section is not written),
    the summary counts the search's three trials, and the table of stopped trials lists exactly
    the trials the search stopped, with the AP of their training to the end."""
    md, raw = tmp_path / "RESULTS.md", tmp_path / "collapse_check.json"
    md.write_text(OTHER_TEXT)
    _run("bench_collapse.py", "--smoke", "--check", "--results-md", str(md), "--results-json",
         str(raw))  # fmt: skip
    assert "bench_collapse:begin" not in md.read_text()
    results = json.loads(raw.read_text())
    section = _section(md, "bench_collapse_check")
    assert "Out-of-sample check" in section
    tables = _tables(section)
    counts = {row[0]: int(row[1]) for row in tables[0][1:]}
    assert counts["all"] == 3
    stopped = {r["label"]: r for r in results["rows"] if r["stopped_at"] is not None}
    if stopped:
        listed = {row[0]: row for row in tables[1][1:]}
        assert set(listed) == set(stopped)
        for label, row in listed.items():
            assert row[2] == str(stopped[label]["stopped_at"])
            assert row[4] == f"{stopped[label]['ap']:.4f}"


@pytest.mark.slow
def test_bench_proxy_detector_presets_smoke(tmp_path: Path) -> None:
    """``--detector faster_rcnn --part presets`` on the tiny proxy: a table of the Faster R-CNN
    proxy whose rows are the JSON's (means and stds recomputed here from the seeds' APs), kept
    apart from RetinaNet's ``presets``; a part the option does not apply to exits with code 2."""
    md, raw = tmp_path / "RESULTS.md", tmp_path / "proxy.json"
    md.write_text(OTHER_TEXT)
    _run(
        "bench_proxy.py",
        "--smoke",
        "--detector",
        "faster_rcnn",
        "--part",
        "presets",
        "--seeds",
        "2",
        "--results-md",
        str(md),
        "--results-json",
        str(raw),
    )
    results = json.loads(raw.read_text())
    assert "presets" not in results
    part = results["presets/faster_rcnn"]
    text = _section(md, "bench_proxy")
    assert "### Reward per preset: Faster R-CNN (`proxy_faster_rcnn_paploss.py`)" in text
    (table,) = _tables(text)
    assert table[0] == ["preset", "AP per seed", "mean", "std"]
    assert len(table) == 1 + 7
    for row, rec in zip(table[1:], part["rows"]):
        assert len(rec["aps"]) == 2
        assert row[2] == f"{statistics.fmean(rec['aps']):.3f}"
        assert row[3] == f"{statistics.stdev(rec['aps']):.3f}"
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_proxy.py"), "--detector", "faster_rcnn"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "--detector faster_rcnn measures only" in proc.stderr


def test_bench_ranks_smoke_writes_its_table(tmp_path: Path) -> None:
    """The multi-process benchmark on the tiny proxy: one row per layout whose APs, mean and std
    are the JSON's (recomputed here), and a verdict that follows from them."""
    md, raw = tmp_path / "RESULTS.md", tmp_path / "ranks.json"
    md.write_text(OTHER_TEXT)
    _run("bench_ranks.py", "--smoke", "--results-md", str(md), "--results-json", str(raw))
    result = json.loads(raw.read_text())
    text = _section(md, "bench_ranks")
    (table,) = _tables(text)
    assert table[0] == ["layout", "AP per seed", "mean AP", "seed std", "wall s", "train s"]
    assert [row[0] for row in table[1:]] == ["1 process x 2 threads", "2 gloo ranks x 1 thread"]
    for row, rec in zip(table[1:], result["rows"]):
        assert len(rec["aps"]) == 2 and rec["wall"] > 0
        assert row[1] == " / ".join(f"{ap:.3f}" for ap in rec["aps"])
        assert row[2] == f"{statistics.fmean(rec['aps']):.3f}"
        assert row[3] == f"{statistics.stdev(rec['aps']):.3f}"
    one, two = result["rows"]
    diff = two["mean"] - one["mean"]
    assert abs(result["difference"] - diff) < 1e-12
    assert result["same_ap"] == (abs(diff) <= max(one["std"], two["std"]))
    assert ("within" in text) == result["same_ap"]


def test_bench_ranks_rejects_an_unknown_preset() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_ranks.py"), "--preset", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "--preset must be one of" in result.stderr


@pytest.mark.slow
def test_bench_reproduce_smoke_times_each_layout(tmp_path: Path) -> None:
    """``--workers`` of the reproduction on the tiny proxy: one row per layout, each with every
    training of tab4 (2 searches of 2 x 2 trials, 2 rows of 3 seeds), its cores' use and speed-up
    recomputed from the JSON."""
    md, raw = tmp_path / "RESULTS.md", tmp_path / "reproduce_workers.json"
    md.write_text(OTHER_TEXT)
    _run("bench_reproduce.py", "--smoke", "--results-md", str(md), "--results-json", str(raw))
    result = json.loads(raw.read_text())
    (table,) = _tables(_section(md, "bench_reproduce"))
    assert table[0][:5] == [
        "workers W",
        "wall",
        "trainings summed",
        "trainings",
        "trainings at once",
    ]
    assert [row[0] for row in table[1:]] == ["1", "2"]
    base = result["layouts"][0]["wall_seconds"]
    for row, rec in zip(table[1:], result["layouts"]):
        assert rec["trainings"] == 2 * 4 + 2 * 3 and row[3] == "14"
        assert 0 < rec["busy_seconds"] and 0 < rec["wall_seconds"]
        assert row[4] == f"{rec['busy_seconds'] / rec['wall_seconds']:.2f}"
        assert row[5] == f"{base / rec['wall_seconds']:.2f}x"
    assert OTHER_TEXT.strip() in md.read_text()


def test_bench_proxy_baselines_reads_tab1_rows_and_checks_the_targets(tmp_path: Path) -> None:
    """``--part baselines`` on a storage holding two of the detectors' baseline rows (seeds with
    made-up APs): the targets table gives each row's mean ± std of seeds 0-2 and its verdict
    (recomputed here), the rows not in the storage and the parts not run as not measured; a
    storage that does not exist is a one-line error with exit code 2."""
    import optuna
    from optuna.trial import create_trial

    from paploss.study import keys

    db = f"sqlite:///{tmp_path}/r.db"
    made_up = {
        "row/frcnn-ce-l1": [0.46, 0.47, 0.45],  # std 0.010: met
        "row/detr-focal-l1-giou-tuned": [0.44, 0.41, 0.42, 0.38, 0.41],  # std 0.015 (0-2): met
        "row/detr-focal-l1-giou": [0.40, 0.36, 0.44],  # std 0.040: missed
    }
    for name, aps in made_up.items():
        study = optuna.create_study(study_name=name, storage=db, direction="maximize")
        for seed, ap in enumerate(aps):
            study.add_trial(create_trial(value=ap, user_attrs={keys.SEED: seed}))
    md, raw = tmp_path / "RESULTS.md", tmp_path / "proxy.json"
    md.write_text(OTHER_TEXT)
    out = ("--results-md", str(md), "--results-json", str(raw))
    _run("bench_proxy.py", "--part", "baselines", "--reproduction-storage", db, *out)
    text = _section(md, "bench_proxy")
    assert "### Targets of the Faster R-CNN and Deformable DETR proxies" in text
    (table,) = _tables(text)
    assert table[0] == ["detector", "measure", "measured", "target", "met", "from"]
    rows = {(r[0], r[1]): r[2:5] for r in table[1:]}
    for (detector, label), key in {
        ("Faster R-CNN", "Cross Entropy + L1 (hand-set)"): "row/frcnn-ce-l1",
        ("Deformable DETR", "Focal Loss + L1 + GIoU (tuned)"): "row/detr-focal-l1-giou-tuned",
        ("Deformable DETR", "Focal Loss + L1 + GIoU (hand-set)"): "row/detr-focal-l1-giou",
    }.items():
        first = made_up[key][:3]
        mean, std = statistics.fmean(first), statistics.stdev(first)
        measured, _, verdict = rows[(detector, f"val AP, {label}, seeds 0-2")]
        assert measured.startswith(f"{mean:.3f} ± {std:.3f}")
        assert verdict == ("met" if std <= 0.02 else "**missed**")
    assert "(5 seeds: " in rows[("Deformable DETR", "val AP, Focal Loss + L1 + GIoU (tuned), "
                                 "seeds 0-2")][0]  # fmt: skip
    assert ("Faster R-CNN", "val AP, Cross Entropy + GIoU (tuned), seeds 0-2") not in rows
    wall = rows[("Deformable DETR", "one trial, wall s (build + train + eval)")]
    assert wall[0] == "not measured" and wall[2] == "not measured"
    missing = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_proxy.py"), "--part", "baselines",
         "--reproduction-storage", f"sqlite:///{tmp_path}/none.db", *out],
        capture_output=True, text=True,
    )  # fmt: skip
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1 and "paploss-reproduce tab1" in missing.stderr
    assert json.loads(raw.read_text())["baselines"]["rows"]
