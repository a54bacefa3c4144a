"""Benchmark of multi-process trials (``--nproc-per-trial``): does a proxy trial trained by two
gloo ranks reach the AP of one process, and what does it cost in wall time?

The RetinaNet proxy (preset ``--preset``, default linear) is trained for one epoch (the search's
reward, AP on D_eval) with the same ``--seeds`` in two layouts that use the same 2 cores:

- one process with 2 torch threads (how a single search worker trains on this machine);
- 2 ranks of ``torch.distributed`` (gloo), one torch thread each, the total batch kept
  (:mod:`paploss.study.runner.distributed`: each rank trains half of every batch, DDP averages
  the gradients).

The rows are paired by seed. The verdict: the difference of the two layouts' mean AP against the
larger of their seed standard deviations ("same AP" when it is within it), and a two-sided paired
t-test. Wall time is a trial's from the warm runner's request to its result (fork, build,
training, evaluation): run it on a quiet machine, nothing else training on the cores.

Trainings are cached in ``bench_proxy``'s cache (``--cache``) under a key that includes the
layout, so an interrupted run resumes.

Output: ``benchmarks/results/ranks.json`` and the section between the ``bench_ranks`` markers of
``benchmarks/RESULTS.md``.

    .venv/bin/python benchmarks/bench_ranks.py            # quiet machine, ~4 min
    .venv/bin/python benchmarks/bench_ranks.py --smoke    # a check that it runs, ~1 min
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench_proxy
from _common import (
    RESULTS_DIR,
    RESULTS_MD,
    command_line,
    machine_summary,
    markdown_table,
    replace_section,
    write_json,
)

RESULTS_JSON = RESULTS_DIR / "ranks.json"
SECTION = "bench_ranks"


@dataclass(frozen=True)
class Layout:
    """How one training uses the cores: ``nproc`` processes of ``threads`` torch threads."""

    label: str
    nproc: int
    threads: int


LAYOUTS = (
    Layout("1 process x 2 threads", nproc=1, threads=2),
    Layout("2 gloo ranks x 1 thread", nproc=2, threads=1),
)


def measure(trainer: bench_proxy.Trainer, preset: str, seeds: int) -> dict[str, Any]:
    """Train ``preset`` with ``seeds`` seeds in every layout, one training at a time."""
    from scipy.stats import ttest_rel

    from paploss.params import LossParams

    params = LossParams.preset(preset).to_dict()
    rows = []
    for layout in LAYOUTS:
        runs = [
            bench_proxy.Run(
                preset, params, seed, 1, "eval", nproc=layout.nproc, threads=layout.threads
            )
            for seed in range(seeds)
        ]
        done = trainer.run_all(runs, workers=1, nproc=layout.nproc, threads=layout.threads)
        entries = [done[r.key()] for r in runs]
        aps = [e["metrics"]["AP"] for e in entries]
        walls = [e["trial_seconds"] for e in entries]
        rows.append(
            dict(
                layout=layout.label,
                nproc=layout.nproc,
                threads=layout.threads,
                aps=aps,
                mean=statistics.fmean(aps),
                std=statistics.stdev(aps) if len(aps) > 1 else 0.0,
                wall=statistics.fmean(walls),
                train=statistics.fmean(e["train_seconds"] for e in entries),
            )
        )
    one, two = rows
    diff = two["mean"] - one["mean"]
    tolerance = max(one["std"], two["std"])
    p_value = float(ttest_rel(two["aps"], one["aps"]).pvalue) if seeds > 1 else float("nan")
    return dict(
        preset=preset,
        seeds=seeds,
        rows=rows,
        difference=diff,
        tolerance=tolerance,
        same_ap=abs(diff) <= tolerance,
        p_value=p_value,
    )


def render(result: dict[str, Any]) -> str:
    seeds = result["seeds"]
    lines = [
        "## Multi-process trials (`benchmarks/bench_ranks.py`)",
        "",
        f"### One proxy trial in two layouts of 2 cores ({result['machine']})",
        "",
        f"RetinaNet proxy, preset {result['preset']}, 1 epoch, AP on D_eval; seeds "
        f"0-{seeds - 1} in both layouts (paired). Wall: one trial from the warm runner's request "
        "to its result; train: the training loop alone.",
        "",
    ]
    lines += markdown_table(
        ["layout", "AP per seed", "mean AP", "seed std", "wall s", "train s"],
        [
            [
                r["layout"],
                " / ".join(f"{ap:.3f}" for ap in r["aps"]),
                f"{r['mean']:.3f}",
                f"{r['std']:.3f}",
                f"{r['wall']:.1f}",
                f"{r['train']:.1f}",
            ]
            for r in result["rows"]
        ],
    )
    verdict = "within" if result["same_ap"] else "**outside**"
    lines += [
        "",
        f"2 ranks minus 1 process: {result['difference']:+.3f} AP, {verdict} the larger seed std "
        f"({result['tolerance']:.3f}); two-sided paired t-test p = {result['p_value']:.2f}.",
        "",
        f"Command: `{result['command']}` (trainings cached under `~/.cache/paploss/bench_proxy`).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="linear")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=bench_proxy.CACHE)
    parser.add_argument("--results-md", type=Path, default=None, help="default: RESULTS.md")
    parser.add_argument("--results-json", type=Path, default=None, help="default: ranks.json")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a check that the script runs: 2 seeds on a tiny proxy (8 images at 64 px), "
        "results in a temporary folder unless --results-md/--results-json are given",
    )
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    from paploss.params import PRESETS

    if args.preset not in PRESETS:
        parser.error(f"--preset must be one of {', '.join(sorted(PRESETS))}")
    if args.smoke:
        with tempfile.TemporaryDirectory(prefix="bench_ranks_smoke_") as tmp:
            from paploss.proxy import generate_proxy_dataset

            data = Path(tmp) / "tiny"
            generate_proxy_dataset(data, seed=0, num_train=8, num_eval=4, num_val=4, image_size=64)
            return run(
                args,
                cache=Path(tmp) / "cache",
                data=[str(data)],
                cfg_options=bench_proxy.SMOKE_OPTIONS,
                seeds=2,
                results_json=args.results_json or Path(tmp) / "ranks.json",
                results_md=args.results_md or Path(tmp) / "RESULTS.md",
            )
    return run(
        args,
        cache=args.cache,
        data=None,
        cfg_options={},
        seeds=args.seeds,
        results_json=args.results_json or RESULTS_JSON,
        results_md=args.results_md or RESULTS_MD,
    )


def run(
    args: argparse.Namespace,
    *,
    cache: Path,
    data: list[str] | None,
    cfg_options: dict[str, Any],
    seeds: int,
    results_json: Path,
    results_md: Path,
) -> int:
    from paploss.study.config.mmcfg import legacy_config_digest, load_config

    # the cache keys of bench_proxy's trainings (its main() sets the same)
    bench_proxy.CONFIG_DIGEST = legacy_config_digest(load_config(bench_proxy.CONFIG, cfg_options))
    trainer = bench_proxy.Trainer(cache, 1, data=data, cfg_options=cfg_options)
    result = measure(trainer, args.preset, seeds) | {
        "machine": machine_summary(),
        "command": command_line(
            "benchmarks/bench_ranks.py",
            sys.argv[1:],
            drop=("--cache", "--results-md", "--results-json"),
        ),
    }
    write_json(results_json, result)
    replace_section(results_md, SECTION, render(result))
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
