"""Benchmark of the bundled proxy task: is one proxy training a reward the search can follow?

Parts (``--part``, default all):

- ``presets``: AP on D_eval after the proxy training (one epoch, the search's reward) of the
  presets linear, square, sqrt, sigmoid, paper-retinanet and linear with lambda 0.1 and 10, each
  with ``--seeds`` training seeds. Discrimination = spread of the preset means (max - min) divided
  by the largest (and by the median) per-preset standard deviation over seeds.
- ``rank``: rank fidelity, the proxy's premise (paper Sec. 3.3). Over the presets plus ``--draws``
  parameter sets drawn from the search's initial truncated normal (sigma 0.2 around linear), the
  Spearman correlation between the proxy reward (seed 0) and the val AP of a ``--long-epochs``
  times longer training (seed 0, cosine schedule stretched to the longer run).
- ``draws``: the same over the search's own samples: ``--initial-draws`` of its first round
  (sigma 0.2 around linear) and ``--searched-draws`` around a searched mean (sigma 0.1 around
  paper-retinanet); also checks that no draw reaching 0.30 after the long training scores < 0.05
  after one epoch. (The early stop of collapsed trials is measured on the searches' own trials:
  ``benchmarks/bench_collapse.py``.)
- ``iteration``: training time per iteration of the PAPLoss head against the Focal+GIoU and
  Focal+L1 heads on the same proxy; ``detectors``: one trial of the Faster R-CNN and Deformable
  DETR proxies. Both time trainings: run them on a quiet machine.
- ``baselines``: the val AP per seed of the Faster R-CNN and Deformable DETR baseline rows of
  Tab. 1 (hand-set and tuned), read from a reproduction's storage (``--reproduction-storage``,
  default the ``full`` budget's); it trains nothing. With it, the section ends in one table of
  every target of those two proxies (:mod:`_detector_targets`), each value from the part that
  measured it.
- ``timing``: a real 3-trial search (``studies/search.py``, PPO2, warm runner) on a temporary
  SQLite storage; per trial the wall time from the sampler's suggestion to the reported reward
  (Optuna's trial start/complete) split into start-up (fork to training), build, training and
  evaluation. Run it on a quiet machine: it is the only part whose numbers depend on load.

``--detector faster_rcnn`` / ``deformable_detr`` runs ``presets``, ``rank`` and ``draws`` on that
detector's PAPLoss proxy config instead of RetinaNet's (every loss head of the config gets the same
parameter set: Faster R-CNN's RPN and R-CNN heads both train with the preset or draw; the searched
draws stay around the published RetinaNet parameters); their results are kept beside RetinaNet's
(``presets/<detector>``, ``rank/<detector>``, ``draws/<detector>``).

Every training is cached (``--cache``, default ``~/.cache/paploss/bench_proxy``) under a key of
its settings, so an interrupted run resumes without repeating finished trainings. The AP parts run
``--workers`` trainings at once (one torch thread each); the reward of a parameter set is a
deterministic function of the settings on a given machine and thread count.

Output: ``benchmarks/results/proxy.json`` (every number) and the Markdown section between the
``bench_proxy`` markers of ``benchmarks/RESULTS.md``.

    .venv/bin/python benchmarks/bench_proxy.py --part presets --part rank   # AP parts, ~50 min
    .venv/bin/python benchmarks/bench_proxy.py --part timing --part iteration --part detectors
                                                     # quiet machine, ~8 min
    .venv/bin/python benchmarks/bench_proxy.py --part draws   # ~2 h
    .venv/bin/python benchmarks/bench_proxy.py --detector faster_rcnn --part presets --part rank
    .venv/bin/python benchmarks/bench_proxy.py --detector deformable_detr --part draws \
        --initial-draws 12 --searched-draws 4   # ~35 min
    .venv/bin/python benchmarks/bench_proxy.py --part baselines   # after paploss-reproduce tab1
    .venv/bin/python benchmarks/bench_proxy.py --smoke   # a check that it runs, ~1 min

Trainings run with ``prepare_config(search=True, early_stop=False)``: to the end, so that the
measurements see every draw's full training (``Run(early_stop=True)`` applies the config's rule).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
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

from _common import (
    RESULTS_DIR,
    RESULTS_MD,
    machine_summary,
    markdown_table,
    replace_section,
    write_json,
)
from _detector_targets import BaselinesNotFound, read_baselines, render_targets

from paploss.reproduce.children import default_storage_url
from paploss.reproduce.experiments import BUDGETS
from paploss.study.cli import CONFIG_DIR

CONFIG = CONFIG_DIR / "proxy_retinanet_paploss.py"
DETECTORS = {
    "retinanet": ("RetinaNet", CONFIG),
    "faster_rcnn": ("Faster R-CNN", CONFIG_DIR / "proxy_faster_rcnn_paploss.py"),
    "deformable_detr": ("Deformable DETR", CONFIG_DIR / "proxy_deformable_detr_paploss.py"),
}
"""``--detector``: its label and PAPLoss proxy config (the DETECTOR_PARTS run on it)."""
DETECTOR_PARTS = ("presets", "rank", "draws")
"""The parts ``--detector`` applies to (the others measure the RetinaNet proxy only)."""
RESULTS_JSON = RESULTS_DIR / "proxy.json"
CACHE = Path("~/.cache/paploss/bench_proxy").expanduser()
"""Where the trainings are cached (``--cache``; ``bench_collapse.py`` and ``bench_ranks.py`` too)."""
SECTION = "bench_proxy"
REPRODUCTION_STORAGE = default_storage_url(BUDGETS["full"])
"""Where ``--part baselines`` reads the detectors' baseline rows: the storage ``paploss-reproduce
all --budget full`` writes by default."""
SMOKE_OPTIONS = {
    # The tiny proxy at its own 64 px: 4 iterations of 2 images; the collapse rule checks at 3.
    "train_dataloader.batch_size": 2,
    "val_dataloader.batch_size": 4,
    "test_dataloader.batch_size": 4,
    "train_dataloader.dataset.pipeline.2.scale": (64, 64),
    "val_dataloader.dataset.pipeline.1.scale": (64, 64),
    "test_dataloader.dataset.pipeline.1.scale": (64, 64),
    "collapse_rule.check_at": 3,
    "collapse_rule.window": 3,
}
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
COLLAPSE_RULE: dict[str, Any] = {}
"""The proxy config's ``collapse_rule`` (set in main; part of the key of an early-stopped run)."""
DRAW_SIGMA = 0.2
DRAW_SEED = 2021
SEARCHED_MU = "paper-retinanet"
SEARCHED_SIGMA = 0.1
SLOW_START = (0.30, 0.05)
"""A draw reaching >= 0.30 val AP after the long training must score >= 0.05 after one epoch."""


@dataclass(frozen=True, eq=False)
class Run:
    """One training: a named parameter set, a training seed, epochs and the evaluation split."""

    name: str
    params: dict[str, Any]  # LossParams.to_dict()
    seed: int
    epochs: int
    split: str  # "eval" (D_eval, the reward) or "val"
    early_stop: bool = False  # apply the config's collapse_rule (as a search trial does)
    repeat: int = 0  # > 0: the same training again (a timing taken beside another one)
    nproc: int = 1  # torch.distributed ranks of the training (bench_ranks.py)
    threads: int = 0  # > 0: torch threads of each process, part of the key (bench_ranks.py)
    loss_options: dict[str, Any] | None = None  # set on every loss head (e.g. loc_score)

    def key(self) -> str:
        """Cache key: the settings of the training and the proxy config's digest."""
        settings = [self.params, self.seed, self.epochs, self.split, CONFIG_DIGEST]
        if self.early_stop:
            settings.append(dict(collapse_rule=COLLAPSE_RULE))
        if self.repeat:
            settings.append(dict(repeat=self.repeat))
        if self.nproc != 1 or self.threads:
            settings.append(dict(nproc=self.nproc, threads=self.threads))
        if self.loss_options:
            settings.append(dict(loss_options=self.loss_options))
        text = json.dumps(settings, sort_keys=True)
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


def drawn_params(
    count: int,
    *,
    around: str = "linear",
    sigma: float = DRAW_SIGMA,
    seed: int = DRAW_SEED,
    label: str = "draw",
) -> list[tuple[str, dict[str, Any]]]:
    """``count`` draws ``N_trunc[0,1](mu, sigma^2 I)`` per component around the preset ``around``:
    the search's first round with the defaults (linear, sigma 0.2)."""
    import numpy as np
    from scipy.stats import truncnorm

    from paploss.params import LossParams

    mu = np.asarray(LossParams.preset(around).to_vector(), dtype=np.float64)
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        lo, hi = (0.0 - mu) / sigma, (1.0 - mu) / sigma
        vector = truncnorm.rvs(lo, hi, loc=mu, scale=sigma, random_state=rng)
        out.append((f"{label} {k}", LossParams.from_vector(vector.tolist()).to_dict()))
    return out


def searched_draws(count: int) -> list[tuple[str, dict[str, Any]]]:
    """Draws around a searched mean: the published RetinaNet parameters with sigma 0.1, the
    PPO2 schedule's sigma half-way through a search (``sigma_t = 0.2 (T - t) / T``)."""
    return drawn_params(
        count, around=SEARCHED_MU, sigma=SEARCHED_SIGMA, seed=DRAW_SEED + 1, label="searched"
    )


# ------------------------------------------------------------------------------ trainings
class Trainer:
    """Runs ``Run``s through warm runners (one per worker), caching every result."""

    def __init__(
        self,
        cache: Path,
        workers: int,
        *,
        data: list[str] | None = None,
        cfg_options: dict[str, Any] | None = None,
        config: Path = CONFIG,
    ) -> None:
        from paploss.study.config.mmcfg import ensure_backbones, load_config
        from paploss.study.data.sources import resolve_data

        self.cache = cache
        self.cache.mkdir(parents=True, exist_ok=True)
        self.results_file = cache / "runs.jsonl"
        self.cfg_options = dict(cfg_options or {})
        self.config = config  # the config of the Runs (their key holds its digest)
        self.cfg = load_config(config, self.cfg_options)
        self.data = resolve_data(data, work_dir=cache)
        self.data_source = list(data or ["proxy"])  # as a study records its --data
        ensure_backbones(self.cfg, log=lambda m: print(f"[bench] {m}", flush=True))
        self.workers = workers
        self.lock = threading.Lock()
        self.done: dict[str, dict[str, Any]] = {}
        if self.results_file.is_file():
            for line in self.results_file.read_text().splitlines():
                if line.strip():
                    record = json.loads(line)
                    self.done[record["key"]] = record

    def run_all(
        self, runs: list[Run], *, workers: int | None = None, nproc: int = 1, threads: int = 0
    ) -> dict[str, dict[str, Any]]:
        """Train the runs not cached yet, ``workers`` (default: the Trainer's) at once, each as
        ``nproc`` ranks with ``threads`` torch threads per process (0: one thread per process
        with several workers, torch's default else)."""
        from paploss.study.runner.warm import WarmRunner

        workers = self.workers if workers is None else workers
        todo = list({r.key(): r for r in runs if r.key() not in self.done}.values())
        print(f"[bench] {len(runs)} trainings, {len(todo)} to run", flush=True)
        if todo:
            if threads:
                os.environ["OMP_NUM_THREADS"] = str(threads)  # inherited by the runners' children
            elif workers > 1:
                os.environ["OMP_NUM_THREADS"] = "1"
            local = threading.local()
            runners: list[Any] = []

            def work(run: Run) -> None:
                if not hasattr(local, "runner"):
                    local.runner = WarmRunner(device="cpu", nproc_per_trial=nproc)
                    with self.lock:
                        runners.append(local.runner)
                self._train(local.runner, run)

            try:
                with ThreadPoolExecutor(workers) as pool:
                    for future in [pool.submit(work, r) for r in todo]:
                        future.result()
            finally:
                for runner in runners:
                    runner.close()
        return {r.key(): self.done[r.key()] for r in runs}

    def _train(
        self, runner: Any, run: Run, *, config: Path | None = None, record: bool = True
    ) -> dict:
        from paploss.params import LossParams
        from paploss.study.config.loss_slots import (
            find_loss_slots,
            set_loss_options,
            set_loss_params,
        )
        from paploss.study.config.mmcfg import load_config, prepare_config

        config = self.config if config is None else config
        run_dir = self.cache / "runs" / (run.key() if record else f"{config.stem}-{run.seed}")
        base = self.cfg if config == self.config else load_config(config, self.cfg_options)
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
            loss_options=run.loss_options,
            early_stop=run.early_stop,
        )
        for slot in find_loss_slots(cfg):  # every AP-loss head trains with the Run's params
            if run.params:
                set_loss_params(cfg, slot, LossParams.from_dict(run.params))
            if run.loss_options:
                set_loss_options(cfg, slot, run.loss_options)
        run_dir.mkdir(parents=True, exist_ok=True)
        config = run_dir / "config.py"
        cfg.dump(str(config))
        started = time.perf_counter()
        result = runner.run(run_dir, config=config)
        entry = dict(
            key=run.key(),
            name=run.name,
            seed=run.seed,
            epochs=run.epochs,
            split=run.split,
            status=result.status,
            metrics=result.metrics,
            train_seconds=result.train_seconds,
            eval_seconds=result.eval_seconds,
            iterations=result.iterations,
            collapsed_at=result.collapsed_at,
            wall_seconds=time.perf_counter() - started,
            trial_seconds=result.wall_seconds,
            threads=os.environ.get("OMP_NUM_THREADS", "default"),
            nproc=run.nproc,
            loss_curve=[v for _, v in result.loss_curve] if run.epochs == 1 else [],
        )
        if not record:
            return entry
        with self.lock:
            self.done[run.key()] = entry
            with open(self.results_file, "a") as f:
                f.write(json.dumps(entry) + "\n")
        print(
            f"[bench] {run.name:22s} seed {run.seed} {run.epochs} ep {run.split:4s} "
            f"AP {result.metrics['AP']:.4f} (train {result.train_seconds:.0f} s)",
            flush=True,
        )
        return entry


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


def part_draws(trainer: Trainer, initial: int, searched: int, long_epochs: int) -> dict[str, Any]:
    """Rank fidelity over the search's own samples: ``initial`` draws of its first round (sigma
    0.2 around linear) and ``searched`` draws around a searched mean (sigma 0.1 around
    paper-retinanet); per draw the proxy reward (1 epoch, D_eval, seed 0, loss curve kept) and
    the val AP of a ``long_epochs`` training (seed 0)."""
    from scipy.stats import spearmanr

    groups = [("initial", drawn_params(initial)), ("searched", searched_draws(searched))]
    sets = [(group, n, p) for group, drawn in groups for n, p in drawn]
    short = [Run(n, p, 0, 1, "eval") for _, n, p in sets]
    long = [Run(n, p, 0, long_epochs, "val") for _, n, p in sets]
    done = trainer.run_all(short + long)
    rows = [
        dict(
            group=group,
            name=n,
            proxy=done[s.key()]["metrics"]["AP"],
            long=done[lg.key()]["metrics"]["AP"],
            status=done[s.key()]["status"],
        )
        for (group, n, _), s, lg in zip(sets, short, long)
    ]

    def rho(selected: list[dict[str, Any]]) -> float:
        return float(
            spearmanr([r["proxy"] for r in selected], [r["long"] for r in selected]).statistic
        )

    good_long, low_proxy = SLOW_START
    return dict(
        rows=rows,
        rho_initial=rho([r for r in rows if r["group"] == "initial"]),
        rho_searched=rho([r for r in rows if r["group"] == "searched"]),
        rho_all=rho(rows),
        slow_starters=[
            r["name"] for r in rows if r["long"] >= good_long and r["proxy"] < low_proxy
        ],
        long_epochs=long_epochs,
    )


def _one_epoch_each(trainer: Trainer, configs: dict[str, Path]) -> list[dict[str, Any]]:
    """One training (seed 0, the config's own loss parameters) per config, one after the other
    with the default thread count (run it on a quiet machine)."""
    from paploss.study.runner.warm import WarmRunner

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
                    # the run in the trial's child (build + train + eval), without the wait for
                    # the warm runner's imports that the first run of a runner pays
                    trial=record["trial_seconds"],
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
                "-m",
                "paploss.study.search",
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
def _section(
    title: str, part: dict[str, Any], intro: str, header: Sequence[str], rows: list[list[str]]
) -> list[str]:
    """A Markdown section: heading with the machine, an intro paragraph and a table."""
    lines = [f"### {title} ({part['machine']})", ""]
    if intro:
        lines += [intro, ""]
    lines += markdown_table(header, rows)
    return lines + [""]


def result_key(part: str, detector: str) -> str:
    """Where ``part`` of ``detector`` lives in the results: ``presets`` / ``rank`` for RetinaNet,
    ``presets/faster_rcnn`` etc. for the others."""
    return part if detector == "retinanet" else f"{part}/{detector}"


def _render_detector_parts(results: dict[str, Any], detector: str) -> list[str]:
    """The ``presets``, ``rank`` and ``draws`` sections of one detector (those it has run)."""
    label, config = DETECTORS[detector]
    suffix = "" if detector == "retinanet" else f": {label} (`{config.name}`)"
    out: list[str] = []
    if presets := results.get(result_key("presets", detector)):
        out += _section(
            f"Reward per preset{suffix}",
            presets,
            ""
            if detector == "retinanet"
            else "The same presets and seeds as RetinaNet's, every loss head of the config with "
            "the preset; one epoch of D_train, AP on D_eval.",
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
        median_ratio = presets["spread"] / median_std if median_std > 0 else float("inf")
        out += [
            f"Discrimination (target >= 10): spread of the means {presets['spread']:.3f} is "
            f"**{presets['ratio']:.1f}x** the largest seed std ({presets['max_std']:.3f}) and "
            f"**{median_ratio:.1f}x** the median one ({median_std:.3f}).",
            "",
        ]
    if rank := results.get(result_key("rank", detector)):
        out += _section(
            f"Rank fidelity{suffix}",
            rank,
            f"Proxy reward (1 epoch, D_eval) against the val AP of a {rank['long_epochs']}-epoch "
            "training, seed 0 both.",
            ["parameter set", "proxy AP", "long AP"],
            [[r["name"], f"{r['proxy']:.4f}", f"{r['long']:.4f}"] for r in rank["rows"]],
        )
        out += [f"Spearman rho = **{rank['rho']:.2f}** (target >= 0.7).", ""]
    if draws := results.get(result_key("draws", detector)):
        good_long, low_proxy = SLOW_START
        out += _section(
            f"Rank fidelity over the search's own samples{suffix}",
            draws,
            "Draws of the search's first round (initial: sigma 0.2 around linear) and around a "
            f"searched mean (searched: sigma {SEARCHED_SIGMA} around {SEARCHED_MU}"
            + ("" if detector == "retinanet" else ", the published RetinaNet parameters")
            + f"); proxy reward (1 epoch, D_eval) against the val AP of a "
            f"{draws['long_epochs']}-epoch training, seed 0 both.",
            ["draw", "group", "proxy AP", "long AP"],
            [
                [r["name"], r["group"], f"{r['proxy']:.4f}", f"{r['long']:.4f}"]
                for r in draws["rows"]
            ],
        )
        slow = ", ".join(draws["slow_starters"]) or "none"
        out += [
            f"Spearman rho: initial draws **{draws['rho_initial']:.2f}**, searched draws "
            f"**{draws['rho_searched']:.2f}**, all **{draws['rho_all']:.2f}** (target >= 0.7 "
            f"over all). Draws with long AP >= {good_long} but proxy AP < {low_proxy} "
            f"(slow starters, target none): {slow}.",
            "",
        ]
    return out


def render(results: dict[str, Any]) -> str:
    out = ["## Proxy task (`benchmarks/bench_proxy.py`)", ""]
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
            "One trial each (preset linear, one epoch, D_eval, torch's default threads); trial s "
            "is the run in the warm runner's child (build + train + eval, as in a search), "
            "without the runner's one-time imports; targets: Faster R-CNN AP >= 0.25, "
            "Deformable DETR AP >= 0.20, each in <= 60 s.",
            ["detector", "trial s (build + train + eval)", "train s", "eval s", "AP"],
            [
                [
                    r["name"],
                    f"{r.get('trial', r['wall']):.1f}",
                    f"{r['train']:.1f}",
                    f"{r['eval']:.1f}",
                    f"{r['AP']:.4f}",
                ]
                for r in detectors["rows"]
            ],
        )
    out += _render_detector_parts(results, "retinanet")
    for detector in DETECTORS:  # the other detectors' sections after RetinaNet's
        if detector != "retinanet":
            out += _render_detector_parts(results, detector)
    if "baselines" in results:
        out += render_targets(results)
    return "\n".join(out)


def write_results(results: dict[str, Any], results_json: Path, results_md: Path) -> None:
    write_json(results_json, results)
    replace_section(results_md, SECTION, render(results))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--part",
        action="append",
        choices=("presets", "rank", "draws", "timing", "iteration", "detectors", "baselines"),
    )
    parser.add_argument(
        "--detector",
        choices=tuple(DETECTORS),
        default="retinanet",
        help="the proxy config of the presets, rank and draws parts (the only parts it applies to)",
    )
    parser.add_argument("--initial-draws", type=int, default=20)
    parser.add_argument("--searched-draws", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--long-epochs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timing-trials", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument(
        "--reproduction-storage",
        default=REPRODUCTION_STORAGE,
        help="the storage --part baselines reads Tab. 1's rows from (default: %(default)s)",
    )
    parser.add_argument("--results-md", type=Path, default=None, help="default: RESULTS.md")
    parser.add_argument("--results-json", type=Path, default=None, help="default: proxy.json")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a check that the script runs: the draws part on a tiny proxy (8 "
        "images at 64 px, 2 + 1 draws, 2 long epochs), results in a temporary folder unless "
        "--results-md/--results-json are given",
    )
    args = parser.parse_args(argv)
    for name in (
        "seeds",
        "draws",
        "initial_draws",
        "searched_draws",
        "long_epochs",
        "workers",
        "timing_trials",
    ):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.detector != "retinanet":
        other = sorted(set(args.part or ["presets"]) - set(DETECTOR_PARTS))
        if not args.part or other:
            parser.error(
                f"--detector {args.detector} measures only --part {' / '.join(DETECTOR_PARTS)}; "
                + (f"drop --part {' '.join(other)}" if other else "name the parts")
            )
    if args.smoke:
        with tempfile.TemporaryDirectory(prefix="bench_proxy_smoke_") as tmp:
            return _smoke(args, Path(tmp))
    return run_parts(
        args,
        args.part or ["presets", "rank", "timing", "iteration", "detectors"],
        results_json=args.results_json or RESULTS_JSON,
        results_md=args.results_md or RESULTS_MD,
    )


def _smoke(args: argparse.Namespace, tmp: Path) -> int:
    from paploss.proxy import generate_proxy_dataset

    data = tmp / "tiny"
    generate_proxy_dataset(data, seed=0, num_train=8, num_eval=4, num_val=4, image_size=64)
    options = dict(SMOKE_OPTIONS)
    if args.detector != "retinanet":  # only the RetinaNet proxy declares a collapse_rule
        options = {k: v for k, v in options.items() if not k.startswith("collapse_rule.")}
    args.cache, args.data, args.cfg_options = tmp / "cache", [str(data)], options
    args.initial_draws, args.searched_draws, args.long_epochs, args.workers = 2, 1, 2, 1
    return run_parts(
        args,
        args.part or ["draws"],
        results_json=args.results_json or tmp / "proxy.json",
        results_md=args.results_md or tmp / "RESULTS.md",
    )


def configure(cfg: Any) -> None:
    """Key the cached trainings of this run to the loaded proxy config ``cfg``: its digest and
    its ``collapse_rule`` (for the trainings that apply it)."""
    from paploss.study.config.mmcfg import legacy_config_digest

    global CONFIG_DIGEST, COLLAPSE_RULE
    # The 0.1 form of the digest: cache keys stay valid across the 0.2 config spelling.
    CONFIG_DIGEST = legacy_config_digest(cfg)
    COLLAPSE_RULE = dict(cfg.get("collapse_rule") or {})


def run_parts(
    args: argparse.Namespace, parts: list[str], *, results_json: Path, results_md: Path
) -> int:
    """Run ``parts``, writing every finished part into ``results_json`` and ``results_md``."""

    from paploss.study.config.mmcfg import load_config

    results: dict[str, Any] = {}
    if results_json.is_file():
        results = json.loads(results_json.read_text())
    cfg_options = getattr(args, "cfg_options", None) or {}
    detector = getattr(args, "detector", "retinanet")
    config = DETECTORS[detector][1]
    cfg = load_config(config, cfg_options)
    configure(cfg)

    def finish(name: str, part: dict[str, Any]) -> None:
        results[name] = part | {"machine": machine_summary()}
        write_results(results, results_json, results_md)

    if {"presets", "rank", "draws", "iteration", "detectors"} & set(parts):
        trainer = Trainer(
            args.cache,
            args.workers,
            data=getattr(args, "data", None),
            cfg_options=cfg_options,
            config=config,
        )
        if "presets" in parts:
            finish(result_key("presets", detector), part_presets(trainer, args.seeds))
        if "rank" in parts:
            finish(result_key("rank", detector), part_rank(trainer, args.draws, args.long_epochs))
        if "draws" in parts:
            draws = part_draws(trainer, args.initial_draws, args.searched_draws, args.long_epochs)
            finish(result_key("draws", detector), draws)
        if "iteration" in parts:
            finish("iteration", part_iteration(trainer))
        if "detectors" in parts:
            finish("detectors", part_detectors(trainer))
    if "timing" in parts:
        finish("timing", part_timing(args.timing_trials))
    if "baselines" in parts:
        try:
            finish("baselines", read_baselines(args.reproduction_storage))
        except BaselinesNotFound as exc:
            print(f"bench_proxy.py: error: {exc}", file=sys.stderr)
            return 2
    print(render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
