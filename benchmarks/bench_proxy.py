"""Benchmark of the bundled proxy task: is one proxy training a reward the search can follow?

Parts (``--part``, default all):

- ``presets``: AP on D_eval after the proxy training (one epoch, the search's reward) of the
  presets linear, square, sqrt, sigmoid, paper-retinanet and linear with lambda 0.1 and 10, each
  with ``--seeds`` training seeds. Discrimination = spread of the preset means (max - min) divided
  by the largest per-preset standard deviation over seeds.
- ``rank``: rank fidelity, the proxy's premise (paper Sec. 3.3). Over the presets plus ``--draws``
  parameter sets drawn from the search's initial truncated normal (sigma 0.2 around linear), the
  Spearman correlation between the proxy reward (seed 0) and the val AP of a ``--long-epochs``
  times longer training (seed 0, cosine schedule stretched to the longer run).
- ``iteration``: training time per iteration of the PAPLoss head against the Focal+GIoU and
  Focal+L1 heads on the same proxy; ``detectors``: one trial of the Faster R-CNN and Deformable
  DETR proxies. Both time trainings: run them on a quiet machine.
- ``timing``: a real 3-trial search (``studies/search.py``, PPO2, warm runner) on a temporary
  SQLite storage; per trial the wall time from the sampler's suggestion to the reported reward
  (Optuna's trial start/complete) split into start-up (fork to training), build, training and
  evaluation. Run it on a quiet machine: it is the only part whose numbers depend on load.

Every training is cached (``--cache``, default ``~/.cache/paploss/bench_proxy``) under a key of
its settings, so an interrupted run resumes without repeating finished trainings. The AP parts run
``--workers`` trainings at once (one torch thread each); the reward of a parameter set is a
deterministic function of the settings on a given machine and thread count.

Output: ``benchmarks/results/proxy.json`` (every number) and the Markdown section between the
``bench_proxy`` markers of ``benchmarks/RESULTS.md``.

    .venv/bin/python benchmarks/bench_proxy.py --part presets --part rank   # AP parts, ~50 min
    .venv/bin/python benchmarks/bench_proxy.py --part timing --part iteration --part detectors
                                                     # quiet machine, ~8 min
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "studies" / "configs" / "proxy_retinanet_paploss.py"
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
RESULTS_JSON = ROOT / "benchmarks" / "results" / "proxy.json"
BEGIN, END = "<!-- bench_proxy:begin -->", "<!-- bench_proxy:end -->"
PRESET_ROWS = (
    ("linear", "linear", None),
    ("square", "square", None),
    ("sqrt", "sqrt", None),
    ("sigmoid", "sigmoid", None),
    ("paper-retinanet", "paper-retinanet", None),
    ("linear, lambda 0.1", "linear", 0.1),
    ("linear, lambda 10", "linear", 10.0),
)
CONFIG_DIGEST = ""
"""``config_digest`` of the proxy config (set in main; part of every cache key)."""
DRAW_SIGMA = 0.2
DRAW_SEED = 2021


@dataclass(frozen=True, eq=False)
class Run:
    """One training: a named parameter set, a training seed, epochs and the evaluation split."""

    name: str
    params: dict[str, Any]  # LossParams.to_dict()
    seed: int
    epochs: int
    split: str  # "eval" (D_eval, the reward) or "val"

    def key(self) -> str:
        """Cache key: the settings of the training and the proxy config's digest."""
        text = json.dumps(
            [self.params, self.seed, self.epochs, self.split, CONFIG_DIGEST], sort_keys=True
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------ parameter sets
def preset_params() -> list[tuple[str, dict[str, Any]]]:
    from paploss.params import LossParams

    out = []
    for label, preset, scale in PRESET_ROWS:
        params = LossParams.preset(preset)
        if scale is not None:
            params = params.with_gradient_scale(scale)
        out.append((label, params.to_dict()))
    return out


def drawn_params(count: int) -> list[tuple[str, dict[str, Any]]]:
    """``count`` draws of the search's first round: N_trunc[0,1](linear, 0.2^2 I) per component."""
    import numpy as np
    from scipy.stats import truncnorm

    from paploss.params import LossParams

    mu = np.asarray(LossParams.preset("linear").to_vector(), dtype=np.float64)
    rng = np.random.default_rng(DRAW_SEED)
    out = []
    for k in range(count):
        lo, hi = (0.0 - mu) / DRAW_SIGMA, (1.0 - mu) / DRAW_SIGMA
        vector = truncnorm.rvs(lo, hi, loc=mu, scale=DRAW_SIGMA, random_state=rng)
        out.append((f"draw {k}", LossParams.from_vector(vector.tolist()).to_dict()))
    return out


# ------------------------------------------------------------------------------ trainings
class Trainer:
    """Runs ``Run``s through warm runners (one per worker), caching every result."""

    def __init__(self, cache: Path, workers: int) -> None:
        from paploss.study.data import resolve_data
        from paploss.study.mmcfg import ensure_backbones, load_config

        self.cache = cache
        self.cache.mkdir(parents=True, exist_ok=True)
        self.results_file = cache / "runs.jsonl"
        self.cfg = load_config(CONFIG)
        self.data = resolve_data(None, work_dir=cache)
        ensure_backbones(self.cfg, log=lambda m: print(f"[bench] {m}", flush=True))
        self.workers = workers
        self.lock = threading.Lock()
        self.done: dict[str, dict[str, Any]] = {}
        if self.results_file.is_file():
            for line in self.results_file.read_text().splitlines():
                if line.strip():
                    record = json.loads(line)
                    self.done[record["key"]] = record

    def run_all(self, runs: list[Run]) -> dict[str, dict[str, Any]]:
        from paploss.study.warm import WarmRunner

        todo = list({r.key(): r for r in runs if r.key() not in self.done}.values())
        print(f"[bench] {len(runs)} trainings, {len(todo)} to run", flush=True)
        if todo:
            if self.workers > 1:
                os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the warm runners' children
            local = threading.local()
            runners: list[Any] = []

            def work(run: Run) -> None:
                if not hasattr(local, "runner"):
                    local.runner = WarmRunner(device="cpu")
                    with self.lock:
                        runners.append(local.runner)
                self._train(local.runner, run)

            try:
                with ThreadPoolExecutor(self.workers) as pool:
                    for future in [pool.submit(work, r) for r in todo]:
                        future.result()
            finally:
                for runner in runners:
                    runner.close()
        return {r.key(): self.done[r.key()] for r in runs}

    def _train(self, runner: Any, run: Run, *, config: Path = CONFIG, record: bool = True) -> dict:
        from paploss.params import LossParams
        from paploss.study.mmcfg import load_config, prepare_config

        run_dir = self.cache / "runs" / (run.key() if record else f"{config.stem}-{run.seed}")
        base = self.cfg if config == CONFIG else load_config(config)
        cfg = prepare_config(
            base,
            space=None,
            loss_params={},
            train=self.data.splits["train"],
            evaluate=self.data.splits[run.split],
            work_dir=run_dir,
            epochs=run.epochs,
            seed=run.seed,
            search=True,
        )
        if run.params:
            cfg.model.bbox_head.loss_cls.params = LossParams.from_dict(run.params).to_dict()
        run_dir.mkdir(parents=True, exist_ok=True)
        config = run_dir / "config.py"
        cfg.dump(str(config))
        started = time.perf_counter()
        result = runner.run(run_dir, config=config)
        record = dict(
            key=run.key(),
            name=run.name,
            seed=run.seed,
            epochs=run.epochs,
            split=run.split,
            status=result["status"],
            metrics=result["metrics"],
            train_seconds=result["train_seconds"],
            eval_seconds=result["eval_seconds"],
            iterations=result["iterations"],
            wall_seconds=time.perf_counter() - started,
            threads=os.environ.get("OMP_NUM_THREADS", "default"),
        )
        if not record:
            return record
        with self.lock:
            self.done[run.key()] = record
            with open(self.results_file, "a") as f:
                f.write(json.dumps(record) + "\n")
        print(
            f"[bench] {run.name:22s} seed {run.seed} {run.epochs} ep {run.split:4s} "
            f"AP {result['metrics']['AP']:.4f} (train {result['train_seconds']:.0f} s)",
            flush=True,
        )
        return record


# ------------------------------------------------------------------------------ parts
def part_presets(trainer: Trainer, seeds: int) -> dict[str, Any]:
    runs = [
        Run(label, params, seed, 1, "eval")
        for label, params in preset_params()
        for seed in range(seeds)
    ]
    done = trainer.run_all(runs)
    rows = []
    for label, params in preset_params():
        aps = [done[Run(label, params, s, 1, "eval").key()]["metrics"]["AP"] for s in range(seeds)]
        rows.append(
            dict(
                name=label,
                aps=aps,
                mean=statistics.fmean(aps),
                std=statistics.stdev(aps) if len(aps) > 1 else 0.0,
            )
        )
    means = [r["mean"] for r in rows]
    spread = max(means) - min(means)
    worst_std = max(r["std"] for r in rows)
    return dict(
        rows=rows,
        spread=spread,
        max_std=worst_std,
        ratio=spread / worst_std if worst_std > 0 else float("inf"),
    )


def part_rank(trainer: Trainer, draws: int, long_epochs: int) -> dict[str, Any]:
    from scipy.stats import spearmanr

    sets = preset_params() + drawn_params(draws)
    short = [Run(n, p, 0, 1, "eval") for n, p in sets]
    long = [Run(n, p, 0, long_epochs, "val") for n, p in sets]
    done = trainer.run_all(short + long)
    rows = [
        dict(
            name=n,
            proxy=done[s.key()]["metrics"]["AP"],
            long=done[lg.key()]["metrics"]["AP"],
        )
        for (n, _), s, lg in zip(sets, short, long)
    ]
    rho = spearmanr([r["proxy"] for r in rows], [r["long"] for r in rows]).statistic
    return dict(rows=rows, rho=float(rho), long_epochs=long_epochs)


def _one_epoch_each(trainer: Trainer, configs: dict[str, Path]) -> list[dict[str, Any]]:
    """One training (seed 0, the config's own loss parameters) per config, one after the other
    with the default thread count (run it on a quiet machine)."""
    from paploss.study.warm import WarmRunner

    rows = []
    with WarmRunner(device="cpu") as runner:
        for name, config in configs.items():
            record = trainer._train(
                runner, Run(name, {}, 0, 1, "eval"), config=config, record=False
            )
            rows.append(
                dict(
                    name=name,
                    config=config.name,
                    train=record["train_seconds"],
                    eval=record["eval_seconds"],
                    wall=record["wall_seconds"],
                    iterations=record["iterations"],
                    AP=record["metrics"]["AP"],
                )
            )
    return rows


def part_iteration(trainer: Trainer) -> dict[str, Any]:
    """Training seconds per iteration of the PAPLoss head (preset linear) and of the Focal+GIoU
    and Focal+L1 heads on the same proxy model, data and schedule."""
    rows = _one_epoch_each(
        trainer,
        {
            "PAPLoss (linear)": CONFIG,
            "Focal + GIoU": CONFIG.parent / "proxy_retinanet_focal_giou.py",
            "Focal + L1": CONFIG.parent / "proxy_retinanet_focal_l1.py",
        },
    )
    base = next(r for r in rows if r["name"] == "Focal + GIoU")["train"]
    for r in rows:
        r["ratio"] = r["train"] / base
    return dict(rows=rows)


def part_detectors(trainer: Trainer) -> dict[str, Any]:
    """The Faster R-CNN and Deformable DETR proxies (preset linear): one trial each."""
    return dict(
        rows=_one_epoch_each(
            trainer,
            {
                "Faster R-CNN": CONFIG.parent / "proxy_faster_rcnn_paploss.py",
                "Deformable DETR": CONFIG.parent / "proxy_deformable_detr_paploss.py",
            },
        )
    )


def part_timing(trials: int) -> dict[str, Any]:
    """A real search of ``trials`` trials; the trial records of its storage."""
    import optuna

    with tempfile.TemporaryDirectory(prefix="bench_proxy_") as tmp:
        storage = f"sqlite:///{tmp}/timing.db"
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "studies" / "search.py"),
                "--rounds",
                "1",
                "--samples-per-round",
                str(trials),
                "--study-name",
                "timing",
                "--storage",
                storage,
                "--work-dir",
                f"{tmp}/work",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        total = time.perf_counter() - started
        study = optuna.load_study(study_name="timing", storage=storage)
        rows = []
        for t in study.get_trials(deepcopy=False):
            if t.state != optuna.trial.TrialState.COMPLETE:
                continue
            wall = (t.datetime_complete - t.datetime_start).total_seconds()
            a = t.user_attrs
            train, evaluate = a["train_seconds"], a["eval_seconds"]
            startup = a.get("startup_seconds") or 0.0
            rows.append(
                dict(
                    trial=t.number,
                    wall=wall,
                    startup=startup,
                    train=train,
                    eval=evaluate,
                    other=wall - startup - train - evaluate,
                    AP=t.value,
                )
            )
    return dict(rows=rows, search_seconds=total)


# ------------------------------------------------------------------------------ report
def machine() -> str:
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    cpu = platform.processor() or platform.machine()
    return f"{os.cpu_count()} cores ({cpu}), load average {load:.2f} at the end"


def _section(
    title: str, part: dict[str, Any], intro: str, header: Sequence[str], rows: list[list[str]]
) -> list[str]:
    """A Markdown section: heading with the machine, an intro paragraph and a table."""
    lines = [f"### {title} ({part['machine']})", ""]
    if intro:
        lines += [intro, ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def render(results: dict[str, Any]) -> str:
    out = [BEGIN, "## Proxy task (`benchmarks/bench_proxy.py`)", ""]
    out.append(
        "RetinaNet proxy (`studies/configs/proxy_retinanet_paploss.py`): 64 px scenes, frozen "
        "digit-pretrained ResNet-18 (16 channels), one epoch of 6,000 images, SGD lr 0.1 with a "
        "cosine decay, reward = COCO AP on D_eval (500 images)."
    )
    out.append("")
    if timing := results.get("timing"):
        out += _section(
            "Trial time",
            timing,
            "Wall time from the sampler's suggestion to the reported reward, from a 3-trial "
            "search with the warm runner; the first trial also waits for the runner's imports.",
            ["trial", "wall s", "start-up s", "build + records s", "train s", "eval s", "AP"],
            [
                [
                    str(r["trial"]),
                    f"{r['wall']:.1f}",
                    f"{r['startup']:.2f}",
                    f"{r['other']:.1f}",
                    f"{r['train']:.1f}",
                    f"{r['eval']:.1f}",
                    f"{r['AP']:.4f}",
                ]
                for r in timing["rows"]
            ],
        )
    if iteration := results.get("iteration"):
        out += _section(
            "Loss share of an iteration",
            iteration,
            "One proxy epoch (iterations of 32 images) per head, same model, data and "
            "schedule; ratio to Focal+GIoU (target for PAPLoss <= 1.2).",
            ["head", "train s", "ms / iteration", "ratio", "AP (D_eval)"],
            [
                [
                    r["name"],
                    f"{r['train']:.1f}",
                    f"{1000 * r['train'] / r['iterations']:.0f}",
                    f"{r['ratio']:.2f}",
                    f"{r['AP']:.4f}",
                ]
                for r in iteration["rows"]
            ],
        )
    if detectors := results.get("detectors"):
        out += _section(
            "Faster R-CNN and Deformable DETR proxies",
            detectors,
            "One trial each (preset linear, one epoch, D_eval); target AP >= 0.15 in <= 90 s.",
            ["detector", "trial s (build + train + eval)", "train s", "eval s", "AP"],
            [
                [
                    r["name"],
                    f"{r['wall']:.1f}",
                    f"{r['train']:.1f}",
                    f"{r['eval']:.1f}",
                    f"{r['AP']:.4f}",
                ]
                for r in detectors["rows"]
            ],
        )
    if presets := results.get("presets"):
        out += _section(
            "Reward per preset",
            presets,
            "",
            ["preset", "AP per seed", "mean", "std"],
            [
                [
                    r["name"],
                    " / ".join(f"{a:.3f}" for a in r["aps"]),
                    f"{r['mean']:.3f}",
                    f"{r['std']:.3f}",
                ]
                for r in presets["rows"]
            ],
        )
        median_std = statistics.median(r["std"] for r in presets["rows"])
        out += [
            f"Discrimination (target >= 10): spread of the means {presets['spread']:.3f} is "
            f"**{presets['ratio']:.1f}x** the largest seed std ({presets['max_std']:.3f}) and "
            f"**{presets['spread'] / median_std:.1f}x** the median one ({median_std:.3f}).",
            "",
        ]
    if rank := results.get("rank"):
        out += _section(
            "Rank fidelity",
            rank,
            f"Proxy reward (1 epoch, D_eval) against the val AP of a {rank['long_epochs']}-epoch "
            "training, seed 0 both.",
            ["parameter set", "proxy AP", "long AP"],
            [[r["name"], f"{r['proxy']:.4f}", f"{r['long']:.4f}"] for r in rank["rows"]],
        )
        out += [f"Spearman rho = **{rank['rho']:.2f}** (target >= 0.7).", ""]
    out.append(END)
    return "\n".join(out)


def write_results(results: dict[str, Any]) -> None:
    RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_JSON.write_text(json.dumps(results, indent=1) + "\n")
    text = RESULTS_MD.read_text() if RESULTS_MD.is_file() else "# Benchmark results\n"
    section = render(results)
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS_MD.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--part",
        action="append",
        choices=("presets", "rank", "timing", "iteration", "detectors"),
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--long-epochs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timing-trials", type=int, default=3)
    parser.add_argument(
        "--cache", type=Path, default=Path("~/.cache/paploss/bench_proxy").expanduser()
    )
    args = parser.parse_args(argv)
    for name in ("seeds", "draws", "long_epochs", "workers", "timing_trials"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    parts = args.part or ["presets", "rank", "timing", "iteration", "detectors"]
    results: dict[str, Any] = {}
    if RESULTS_JSON.is_file():
        results = json.loads(RESULTS_JSON.read_text())
    global CONFIG_DIGEST
    from paploss.study.mmcfg import config_digest, load_config

    CONFIG_DIGEST = config_digest(load_config(CONFIG))
    if {"presets", "rank", "iteration", "detectors"} & set(parts):
        trainer = Trainer(args.cache, args.workers)
        if "presets" in parts:
            results["presets"] = part_presets(trainer, args.seeds) | {"machine": machine()}
            write_results(results)
        if "rank" in parts:
            results["rank"] = part_rank(trainer, args.draws, args.long_epochs) | {
                "machine": machine()
            }
            write_results(results)
    if "iteration" in parts:
        results["iteration"] = part_iteration(trainer) | {"machine": machine()}
        write_results(results)
    if "detectors" in parts:
        results["detectors"] = part_detectors(trainer) | {"machine": machine()}
        write_results(results)
    if "timing" in parts:
        results["timing"] = part_timing(args.timing_trials) | {"machine": machine()}
        write_results(results)
    print(render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
