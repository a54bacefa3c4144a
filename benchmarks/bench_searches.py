"""Benchmark of short searches on each detector's proxy: does a T x S PPO2 search learn?

For every detector of ``--detector`` and every sampler seed ``K`` of ``--seeds`` this runs
``paploss-search --config <the detector's PAPLoss proxy config> --rounds T --samples-per-round S
--workers W --seed K`` (training seed 0 for every trial, the same w0 as in the paper's Alg. 1)
into the study ``<detector>-<T>x<S>-s<K>`` of one storage (``--storage``, default
``~/.cache/paploss/bench_searches/searches.db``). A search the storage already holds with T x S
complete trials is read, not run again; an interrupted one resumes.

Per search it reports the mean reward (D_eval AP after one epoch) of every round, the best trial,
and the two parts of the criterion a search must meet to count as learning: its **best beats the
round-1 mean** and its **last round's mean is above round 1's** (the round mean rises). The
search's wall time is its first trial's start to its last trial's end.

Output: ``benchmarks/results/searches.json`` and the section between the ``bench_searches``
markers of ``benchmarks/RESULTS.md``.

    .venv/bin/python benchmarks/bench_searches.py            # 2 detectors x 3 seeds, ~80 min
    .venv/bin/python benchmarks/bench_searches.py --smoke    # a check that it runs, ~1 min
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
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
from bench_proxy import DETECTORS, SMOKE_OPTIONS

RESULTS_JSON = RESULTS_DIR / "searches.json"
SECTION = "bench_searches"
CACHE = Path("~/.cache/paploss/bench_searches").expanduser()
DEFAULT_STORAGE = f"sqlite:///{CACHE / 'searches.db'}"
DEFAULT_WORK_DIR = CACHE / "work"
DEFAULT_DETECTORS = ("faster_rcnn", "deformable_detr")


@dataclass(frozen=True)
class SearchOutcome:
    """One finished search, read from its study.

    Attributes:
        detector: key of ``bench_proxy.DETECTORS``.
        seed: the sampler seed.
        round_means: mean reward of each round, round 1 first.
        round_bests: best reward of each round (the search's best is their maximum).
        best_trial, best_round: where the best reward was found (round 1-based).
        zeros: per round, the trials below AP 0.001.
        wall_seconds: the first trial's start to the last trial's end.
    """

    detector: str
    seed: int
    round_means: tuple[float, ...]
    round_bests: tuple[float, ...]
    best_trial: int
    best_round: int
    zeros: tuple[int, ...]
    wall_seconds: float

    @property
    def best(self) -> float:
        return max(self.round_bests)

    @property
    def best_beats_round1(self) -> bool:
        return self.best > self.round_means[0]

    @property
    def mean_rises(self) -> bool:
        return self.round_means[-1] > self.round_means[0]

    @property
    def later_beats_round1(self) -> bool:
        """Whether a trial after round 1 beats round 1's best (reported, not part of the
        criterion: a best drawn in round 1 meets the criterion without any update)."""
        return max(self.round_bests[1:], default=-1.0) > self.round_bests[0]

    @property
    def learns(self) -> bool:
        return self.best_beats_round1 and self.mean_rises


def study_name(detector: str, rounds: int, samples: int, seed: int) -> str:
    return f"{detector}-{rounds}x{samples}-s{seed}"


def read_outcome(
    storage: Any, detector: str, rounds: int, samples: int, seed: int
) -> SearchOutcome | None:
    """The search's outcome, or None when ``storage`` (a URL or an opened Optuna storage) does
    not hold all its T x S trials."""
    import optuna
    from optuna.trial import TrialState

    from paploss.study.config.early_stop import COLLAPSED_AP
    from paploss.study.search.records import best_so_far

    name = study_name(detector, rounds, samples, seed)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None
    trials = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    by_round = best_so_far(trials, samples)
    if len(by_round) < rounds or any(len(r["trials"]) < samples for r in by_round[:rounds]):
        return None
    by_round = by_round[:rounds]
    numbers = {t.number: t for t in trials}
    best_trial = by_round[-1]["best_trial"]
    best_round = next(r["round"] for r in by_round if best_trial in r["trials"])
    used = [numbers[n] for r in by_round for n in r["trials"]]
    wall = max(t.datetime_complete for t in used) - min(t.datetime_start for t in used)
    return SearchOutcome(
        detector=detector,
        seed=seed,
        round_means=tuple(float(r["mean"]) for r in by_round),
        round_bests=tuple(max(map(float, r["values"])) for r in by_round),
        best_trial=int(best_trial),
        best_round=int(best_round) + 1,
        zeros=tuple(sum(v < COLLAPSED_AP for v in r["values"]) for r in by_round),
        wall_seconds=wall.total_seconds(),
    )


def run_search(
    args: argparse.Namespace, detector: str, seed: int, extra: list[str], log: Path
) -> None:
    """Run (or resume) one search; its output goes to ``log``."""
    command = [
        sys.executable, "-m", "paploss.study.search",
        "--config", str(DETECTORS[detector][1]),
        "--rounds", str(args.rounds), "--samples-per-round", str(args.samples_per_round),
        "--workers", str(args.workers), "--seed", str(seed), "--train-seed", "0",
        "--storage", args.storage,
        "--study-name", study_name(detector, args.rounds, args.samples_per_round, seed),
        "--work-dir", str(args.work_dir), *extra,
    ]  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:
        proc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    if proc.returncode != 0:
        tail = log.read_text()[-2000:]
        raise SystemExit(f"bench_searches.py: the search {detector} seed {seed} failed:\n{tail}")


def render(result: dict[str, Any]) -> str:
    outcomes = [SearchOutcome(**d) for d in result["searches"]]
    rounds = result["rounds"]
    yes_no = {True: "yes", False: "**no**"}
    rows = [
        [
            DETECTORS[o.detector][0],
            str(o.seed),
            *(f"{m:.3f}" for m in o.round_means),
            f"{o.best:.3f} (trial {o.best_trial}, round {o.best_round})",
            yes_no[o.best_beats_round1],
            yes_no[o.mean_rises],
            yes_no[o.later_beats_round1],
            " ".join(map(str, o.zeros)),
            f"{o.wall_seconds / 60:.1f}",
        ]
        for o in outcomes
    ]
    learned = sum(o.learns for o in outcomes)
    lines = [
        "## Short searches on the detectors' proxies (`benchmarks/bench_searches.py`)",
        "",
        f"`{result['command']}` (commit {result['commit']}; {result['machine']}). "
        f"`paploss-search --rounds {rounds} --samples-per-round {result['samples_per_round']} "
        f"--workers {result['workers']} --seed K` on each detector's PAPLoss proxy config, "
        "training seed 0 for every trial; reward = D_eval AP after one epoch. A search learns "
        "when its best beats the round-1 mean and its last round's mean is above round 1's; "
        "whether a trial after round 1 beats round 1's best is shown beside (it is not part of "
        "the criterion). Zeros: the trials of each round below AP 0.001.",
        "",
        *markdown_table(
            [
                "detector",
                "sampler seed",
                *(f"round {r + 1} mean" for r in range(rounds)),
                "best",
                "best > round-1 mean",
                f"round {rounds} mean > round 1",
                "a later round beats round 1's best",
                "zeros per round",
                "wall min",
            ],
            rows,
        ),
        "",
        f"{learned} of {len(outcomes)} searches learn.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--detector", action="append", choices=tuple(DETECTORS), help="repeat for several"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--samples-per-round", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--storage", default=DEFAULT_STORAGE)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--results-md", type=Path, default=None, help="default: RESULTS.md")
    parser.add_argument("--results-json", type=Path, default=None, help="default: searches.json")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a check that it runs: a 2 x 2 RetinaNet search on a tiny proxy (8 images at "
        "64 px); storage, work dir and results in a temporary folder unless given",
    )
    args = parser.parse_args(argv)
    for name in ("rounds", "samples_per_round", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if any(s < 0 for s in args.seeds):
        parser.error("--seeds takes non-negative integers")
    detectors = args.detector or list(DEFAULT_DETECTORS)
    extra: list[str] = []
    if args.storage == DEFAULT_STORAGE:
        CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench_searches_") as tmp:
        results_md = args.results_md or RESULTS_MD
        results_json = args.results_json or RESULTS_JSON
        if args.smoke:
            from paploss.proxy import generate_proxy_dataset

            tiny = Path(tmp) / "tiny"
            generate_proxy_dataset(tiny, seed=0, num_train=8, num_eval=4, num_val=4, image_size=64)
            detectors, args.seeds = ["retinanet"], [0]
            args.rounds, args.samples_per_round, args.workers = 2, 2, 1
            if args.storage == DEFAULT_STORAGE:
                args.storage = f"sqlite:///{Path(tmp) / 'searches.db'}"
            if args.work_dir == DEFAULT_WORK_DIR:
                args.work_dir = Path(tmp) / "work"
            options = [f"{k}={str(v).replace(' ', '')}" for k, v in SMOKE_OPTIONS.items()]
            extra = ["--data", str(tiny), "--cfg-options", *options]
            results_md = args.results_md or Path(tmp) / "RESULTS.md"
            results_json = args.results_json or Path(tmp) / "searches.json"
        from paploss.errors import StorageError
        from paploss.study.storage import open_storage

        try:
            storage = open_storage(args.storage)
        except StorageError as exc:
            print(f"bench_searches.py: error: {exc}", file=sys.stderr)
            return 2
        outcomes = []
        for detector in detectors:
            for seed in args.seeds:
                shape = (args.rounds, args.samples_per_round, seed)
                outcome = read_outcome(storage, detector, *shape)
                if outcome is None:
                    print(f"[bench] {detector} seed {seed}: searching", flush=True)
                    log = args.work_dir / f"{study_name(detector, *shape)}.log"
                    run_search(args, detector, seed, extra, log)
                    outcome = read_outcome(storage, detector, *shape)
                if outcome is None:
                    raise SystemExit(
                        f"bench_searches.py: the search {detector} seed {seed} ended without "
                        f"{args.rounds} x {args.samples_per_round} complete trials"
                    )
                outcomes.append(outcome)
                print(
                    f"[bench] {detector} seed {seed}: round means "
                    + " ".join(f"{m:.3f}" for m in outcome.round_means)
                    + f", best {outcome.best:.3f}",
                    flush=True,
                )
        result = {
            "rounds": args.rounds,
            "samples_per_round": args.samples_per_round,
            "workers": args.workers,
            "searches": [asdict(o) for o in outcomes],
            "machine": machine_summary(),
            "commit": git_commit(),
            "command": command_line(
                "benchmarks/bench_searches.py",
                sys.argv[1:] if argv is None else argv,
                drop=("--results-md", "--results-json", "--storage", "--work-dir"),
            ),
        }
        write_json(results_json, result)
        replace_section(results_md, SECTION, render(result))
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
