"""Benchmark of ``paploss-reproduce --workers N``: how much faster do N trainings at once finish
the same experiments than one?

Runs ``studies/reproduce.py EXPERIMENTS --budget BUDGET --workers W`` once per ``W`` of
``--workers`` (default: 1 and 2), each into its own fresh storage and work dir in a temporary
folder, so every layout trains everything. For each it reports the command's wall time (start to
exit, report included), the trainings' durations summed (workers in parallel count each), how
many cores' worth of trainings ran on average (the sum over the wall time), and the speed-up
against the first layout. The reproduction's own line ``--workers N`` states the scheduling:
searches side by side with one worker each, row seeds as slots free up, a free slot joining a
running search (``paploss/reproduce/pool.py``). Every training gets ``cores // W`` torch
threads. Run it on a quiet machine: nothing else training on the cores.

Output: ``benchmarks/results/reproduce_workers.json`` and the section between the
``bench_reproduce`` markers of ``benchmarks/RESULTS.md``.

    .venv/bin/python benchmarks/bench_reproduce.py              # quiet machine, ~15 min
    .venv/bin/python benchmarks/bench_reproduce.py --smoke      # a check that it runs, ~3 min
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _common import (
    RESULTS_DIR,
    RESULTS_MD,
    ROOT,
    command_line,
    git_commit,
    machine_summary,
    markdown_table,
    replace_section,
    write_json,
)

RESULTS_JSON = RESULTS_DIR / "reproduce_workers.json"
SECTION = "bench_reproduce"
REPRODUCE = ROOT / "studies" / "reproduce.py"
DEFAULT_EXPERIMENTS = ("tab4", "tab3")
"""RetinaNet only: three searches (main, fixed lambda, shared) and their rows."""


@dataclass(frozen=True)
class Layout:
    """One run of the experiments with ``workers`` trainings at once."""

    workers: int
    wall_seconds: float
    busy_seconds: float
    trainings: int

    @property
    def cores_busy(self) -> float:
        """Trainings running on average over the wall time."""
        return self.busy_seconds / self.wall_seconds if self.wall_seconds else 0.0


def run_layout(
    experiments: list[str], budget: str, workers: int, data: list[str], folder: Path
) -> Layout:
    """Run the experiments with ``workers`` slots into ``folder``; their times."""
    from paploss.reproduce.snapshot import read_snapshot

    storage = f"sqlite:///{folder / 'reproduce.db'}"
    cmd = [
        sys.executable, str(REPRODUCE), *experiments, "--budget", budget,
        "--workers", str(workers), "--storage", storage, "--work-dir", str(folder / "work"),
        "--report", str(folder / "report.md"), "--data", *data, "--device", "cpu",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    started = time.monotonic()
    with open(folder / "reproduce.log", "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        tail = (folder / "reproduce.log").read_text()[-2000:]
        raise SystemExit(f"reproduce --workers {workers} exited {proc.returncode}:\n{tail}")
    snapshot = read_snapshot(storage)  # every search and row study, nothing else
    # Complete search trials and recorded row seeds: a PPO2 worker that asks once the last round
    # is full records a surplus trial that trains nothing (PRUNED), left out here.
    trainings = sum(len(s.complete()) for s in snapshot.searches.values())
    trainings += sum(r.result.n for r in snapshot.rows.values())
    return Layout(workers, wall, snapshot.times().busy_seconds, trainings)


def render(result: dict[str, Any]) -> str:
    layouts = [Layout(**d) for d in result["layouts"]]
    base = layouts[0].wall_seconds
    rows = [
        [
            str(x.workers),
            f"{x.wall_seconds / 60:.1f} min",
            f"{x.busy_seconds / 60:.1f} min",
            str(x.trainings),
            f"{x.cores_busy:.2f}",
            f"{base / x.wall_seconds:.2f}x",
        ]
        for x in layouts
    ]
    lines = [
        "## Trainings at once in a reproduction (`benchmarks/bench_reproduce.py`)",
        "",
        f"`{result['command']}` (commit {result['commit']}; {result['machine']}). "
        f"`paploss-reproduce {' '.join(result['experiments'])} --budget {result['budget']} "
        "--workers W`, each layout into its own fresh storage (everything trained). Wall: the "
        "command from start to exit, report included; trainings summed: every training's "
        "duration, parallel ones each counted; trainings: complete search trials and row seeds; "
        "trainings at once: the sum over the wall time.",
        "",
        *markdown_table(
            [
                "workers W",
                "wall",
                "trainings summed",
                "trainings",
                "trainings at once",
                "speed-up vs W=" + str(layouts[0].workers),
            ],
            rows,
        ),  # fmt: skip
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", nargs="+", default=list(DEFAULT_EXPERIMENTS))
    parser.add_argument("--budget", choices=("quick", "full"), default="quick")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--data", nargs="+", default=["proxy"])
    parser.add_argument("--results-md", type=Path, default=None, help="default: RESULTS.md")
    parser.add_argument(
        "--results-json", type=Path, default=None, help="default: reproduce_workers.json"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a check that it runs: tab4 on a tiny proxy (8 images at 64 px), results in a "
        "temporary folder unless --results-md/--results-json are given",
    )
    args = parser.parse_args(argv)
    if any(w < 1 for w in args.workers):
        parser.error("--workers takes positive integers")
    from paploss.reproduce.plan import EXPERIMENTS

    unknown = sorted(set(args.experiments) - set(EXPERIMENTS) - {"all"})
    if unknown:
        parser.error(f"unknown experiments {unknown}; choose from {', '.join(EXPERIMENTS)}")
    with tempfile.TemporaryDirectory(prefix="bench_reproduce_") as tmp:
        experiments, data = args.experiments, args.data
        results_md = args.results_md or RESULTS_MD
        results_json = args.results_json or RESULTS_JSON
        if args.smoke:
            from paploss.proxy import generate_proxy_dataset

            tiny = Path(tmp) / "tiny"
            generate_proxy_dataset(tiny, seed=0, num_train=8, num_eval=4, num_val=4, image_size=64)
            experiments, data = ["tab4"], [str(tiny)]
            results_md = args.results_md or Path(tmp) / "RESULTS.md"
            results_json = args.results_json or Path(tmp) / "reproduce_workers.json"
        layouts = []
        for workers in args.workers:
            folder = Path(tmp) / f"workers{workers}"
            folder.mkdir()
            layouts.append(run_layout(experiments, args.budget, workers, data, folder))
            print(f"workers {workers}: {layouts[-1].wall_seconds:.0f} s", flush=True)
    result = {
        "experiments": experiments,
        "budget": args.budget,
        "layouts": [asdict(x) for x in layouts],
        "machine": machine_summary(),
        "commit": git_commit(),
        "command": command_line(
            "benchmarks/bench_reproduce.py",
            sys.argv[1:] if argv is None else argv,
            drop=("--results-md", "--results-json"),
        ),  # fmt: skip
    }
    write_json(results_json, result)
    replace_section(results_md, SECTION, render(result))
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
