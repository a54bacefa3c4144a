"""Benchmark the outer-level search methods: PPO2 vs random search vs TPE vs CMA-ES.

Synthetic stand-ins for the loss search (paper Sec. 3.3 / Fig. 3): every method maximizes a
reward over [0, 1]^D (D = 41 = 5 functions x 8 parameters + the gradient scale, named like
``paploss.params.search_space_names()``), starting from the linear-loss initialization
(``LossParams.preset("linear").to_vector()``: 1/5, 1/4, 1/3, 1/2 for every function, 0.5 for the
gradient scale), with T rounds of S samples:

* ``sphere``: shifted sphere, ``-mean_d (theta_d - c_d)^2``;
* ``narrow``: narrow noisy optimum, ``exp(-mean_d (theta_d - c_d)^2 / (2 * 0.08^2))`` plus
  Gaussian noise (sd 0.02) on the reported value;
* ``plateau``: ``max(0, 1 - mean_d (theta_d - c_d)^2 / 0.03)``, a flat zero reward (like a
  training run that diverges) everywhere farther than an RMS distance of 0.17 from the optimum.

The optimum ``c`` of each objective is fixed (the initialization plus a uniform shift in
[-0.25, 0.25] per component, clipped to [0.05, 0.95], from a fixed seed); the seeds vary the
samplers and the noise. The curve of a run is the best-so-far per round as in the paper's Fig. 3:
after round r (the first r * S trials by number), the noise-free reward of the trial with the best
*reported* reward so far (for the noise-free objectives that is simply the best reward).

A second part measures the sampler overhead per trial on an SQLite study of T * S trials (time
spent inside the sampler's methods, and the wall time per trial including storage).

Outputs (``--out``, default ``benchmarks/results``): ``samplers_runs.csv`` (every run and round),
``samplers_summary.csv`` (mean and std over seeds), ``samplers_overhead.csv``,
``samplers_best_so_far.png``; and a Markdown section (``--markdown``, default
``<out>/samplers.md``). ``--results-md FILE`` also puts that section between the
``bench_samplers`` markers of FILE (e.g. ``benchmarks/RESULTS.md``), ``--results-json FILE``
writes the summary, the overhead and the environment as JSON.

Usage: ``python benchmarks/bench_samplers.py`` (defaults: T=40, S=8, 5 seeds, D=41, all four
samplers and objectives, overhead at 320 trials). ``--rounds/--samples-per-round/--seeds/--dims``
shrink it; ``--smoke`` runs everything at T=2, S=2, 2 seeds, D=4 (seconds; the test of the
script), writing into a temporary folder unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from _common import (
    RESULTS_DIR,
    command_line,
    cpu_name,
    markdown_table,
    package_versions,
    replace_section,
    write_json,
)
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from paploss.samplers import SAMPLER_NAMES, make_sampler, ppo2_update

OBJECTIVE_NAMES = ("sphere", "narrow", "plateau")
_OPTIMUM_SEED = 2021
_NARROW_WIDTH = 0.08
_NARROW_NOISE = 0.02
_PLATEAU_RADIUS_SQ = 0.03
_TABLE_ROUNDS = (1, 5, 10, 20, 30, 40)
SECTION = "bench_samplers"
"""The name of the section (``<!-- bench_samplers:begin -->``) ``--results-md`` writes."""
SMOKE = dict(rounds=2, samples_per_round=2, seeds=2, dims=4)
"""``--smoke``: every sampler and objective and the overhead part, at a tiny size."""


# --------------------------------------------------------------------------------------------
# Problem definition
# --------------------------------------------------------------------------------------------


def parameter_names(dims: int) -> list[str]:
    """``f{k}_x{j}, f{k}_y{j}`` (k = 1..5, j = 1..4) then ``lambda`` for D = 41, else ``t{i}``."""
    if dims == 41:
        names = [f"f{k}_{axis}{j}" for k in range(1, 6) for j in range(1, 5) for axis in "xy"]
        return [*names, "lambda"]
    return [f"t{i:02d}" for i in range(dims)]


def linear_init(dims: int) -> np.ndarray:
    """The linear-loss initialization: ratios 1/5, 1/4, 1/3, 1/2 for x and y, tiled; last 0.5."""
    pattern = [1 / 5, 1 / 5, 1 / 4, 1 / 4, 1 / 3, 1 / 3, 1 / 2, 1 / 2]
    values = [pattern[i % len(pattern)] for i in range(dims - 1)] + [0.5]
    return np.array(values[:dims], dtype=np.float64)


@dataclass(frozen=True)
class Objective:
    """A synthetic reward over [0, 1]^D to maximize."""

    name: str
    optimum: np.ndarray
    noise_sd: float

    def true_value(self, theta: np.ndarray) -> float:
        """Noise-free reward at ``theta``."""
        msd = float(np.mean((theta - self.optimum) ** 2))
        if self.name == "sphere":
            return -msd
        if self.name == "narrow":
            return math.exp(-msd / (2 * _NARROW_WIDTH**2))
        if self.name == "plateau":
            return max(0.0, 1.0 - msd / _PLATEAU_RADIUS_SQ)
        raise ValueError(f"unknown objective {self.name!r}")


def make_objective(name: str, dims: int) -> Objective:
    """The objective ``name`` on [0, 1]^dims with its fixed optimum."""
    if name not in OBJECTIVE_NAMES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVE_NAMES)}; got {name!r}.")
    rng = np.random.default_rng([_OPTIMUM_SEED, OBJECTIVE_NAMES.index(name)])
    optimum = np.clip(linear_init(dims) + rng.uniform(-0.25, 0.25, size=dims), 0.05, 0.95)
    return Objective(name, optimum, _NARROW_NOISE if name == "narrow" else 0.0)


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


def _study_objective(
    objective: Objective, names: Sequence[str], seed: int
) -> Callable[[optuna.Trial], float]:
    def evaluate(trial: optuna.Trial) -> float:
        theta = np.array([trial.suggest_float(n, 0.0, 1.0) for n in names])
        true = objective.true_value(theta)
        trial.set_user_attr("true_value", true)
        if objective.noise_sd > 0:
            noise_rng = np.random.default_rng([seed, trial.number, 7])
            return true + float(noise_rng.normal(0.0, objective.noise_sd))
        return true

    return evaluate


def best_so_far(trials: Sequence[FrozenTrial], rounds: int, samples_per_round: int) -> list[float]:
    """Noise-free reward of the incumbent (best reported value) after each round."""
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.number)
    curve = []
    best_value = -math.inf
    best_true = math.nan
    for r in range(1, rounds + 1):
        for trial in complete[(r - 1) * samples_per_round : r * samples_per_round]:
            assert trial.value is not None
            if trial.value > best_value:
                best_value = trial.value
                best_true = float(trial.user_attrs["true_value"])
        curve.append(best_true)
    return curve


def run_search(
    sampler_name: str,
    objective: Objective,
    seed: int,
    *,
    rounds: int,
    samples_per_round: int,
    storage: Any = None,
    timer: _TimedSampler | None = None,
) -> optuna.Study:
    """One search of ``rounds * samples_per_round`` trials; returns the finished study."""
    dims = objective.optimum.size
    names = parameter_names(dims)
    space: dict[str, BaseDistribution] = {n: FloatDistribution(0.0, 1.0) for n in names}
    sampler = make_sampler(
        sampler_name,
        search_space=space,
        init_mean=dict(zip(names, linear_init(dims).tolist())),
        seed=seed,
        samples_per_round=samples_per_round,
        rounds=rounds,
        sigma_init=0.2,
    )
    if timer is not None:
        timer.inner = sampler
        sampler = timer
    study = optuna.create_study(direction="maximize", sampler=sampler, storage=storage)
    study.optimize(_study_objective(objective, names, seed), n_trials=rounds * samples_per_round)
    return study


class _TimedSampler(BaseSampler):
    """Delegates to ``inner`` and adds up the time spent in its methods."""

    def __init__(self) -> None:
        self.inner: BaseSampler | None = None
        self.seconds = 0.0

    def _call(self, method: str, *args: Any) -> Any:
        assert self.inner is not None
        start = time.perf_counter()
        try:
            return getattr(self.inner, method)(*args)
        finally:
            self.seconds += time.perf_counter() - start

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._call("infer_relative_search_space", study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._call("sample_relative", study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._call("sample_independent", study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._call("before_trial", study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._call("after_trial", study, trial, state, values)

    def reseed_rng(self) -> None:
        self._call("reseed_rng")


def measure_overhead(
    sampler_name: str, *, rounds: int, samples_per_round: int, dims: int, workdir: Path
) -> dict[str, float]:
    """ms per trial inside the sampler and wall ms per trial, SQLite, ``rounds * S`` trials."""
    objective = make_objective("sphere", dims)
    storage = f"sqlite:///{workdir / f'overhead_{sampler_name}.db'}"
    timer = _TimedSampler()
    start = time.perf_counter()
    study = run_search(
        sampler_name,
        objective,
        0,
        rounds=rounds,
        samples_per_round=samples_per_round,
        storage=storage,
        timer=timer,
    )
    wall = time.perf_counter() - start
    n = len(study.trials)
    return {"trials": n, "sampler_ms": 1000 * timer.seconds / n, "wall_ms": 1000 * wall / n}


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def summarize(
    curves: dict[tuple[str, str], list[list[float]]],
) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """(objective, sampler) -> (mean, std over seeds) per round (std with ddof=0)."""
    return {
        key: (np.mean(np.array(runs), axis=0), np.std(np.array(runs), axis=0))
        for key, runs in curves.items()
    }


def plot(
    summary: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]],
    objectives: Sequence[str],
    samplers: Sequence[str],
    seeds: int,
    path: Path,
) -> None:
    """Fig. 3 style: best-so-far reward per round, mean line and +-std band per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(objectives), figsize=(4.6 * len(objectives), 3.6))
    axes = np.atleast_1d(axes)
    colors = {"ppo2": "tab:red", "random": "tab:blue", "tpe": "tab:green", "cmaes": "tab:purple"}
    labels = {"ppo2": "PPO2", "random": "Random search", "tpe": "TPE", "cmaes": "CMA-ES"}
    for ax, obj in zip(axes, objectives):
        for name in samplers:
            mean, std = summary[(obj, name)]
            x = np.arange(1, mean.size + 1)
            ax.plot(x, mean, color=colors.get(name), label=labels.get(name, name), lw=1.6)
            ax.fill_between(x, mean - std, mean + std, color=colors.get(name), alpha=0.15, lw=0)
        ax.set_title(obj)
        ax.set_xlabel("round t")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"best reward up to round t (mean ± std, {seeds} seeds)")
    axes[-1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, dpi=130, format="png")
    plt.close(fig)
    os.replace(tmp, path)


def environment() -> dict[str, str]:
    """Machine and library versions for the report."""
    return {
        "machine": f"{os.cpu_count()}-core {cpu_name()}, no GPU used (CPU only)",
        "python": platform.python_version(),
        **package_versions(["optuna", "torch", "numpy", "scipy", "cmaes"]),
    }


def _overhead_place(folder: Path | None) -> str:
    """Where the overhead study's file was, in words (no path of this machine)."""
    if folder is None:
        return "a temp dir"
    if folder == Path("/dev/shm"):
        return "/dev/shm, a tmpfs"
    return "the --overhead-dir folder"


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.4f} ± {std:.4f}"


def markdown(
    args: argparse.Namespace,
    summary: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]],
    overhead: dict[str, dict[str, float]],
    env: dict[str, str],
    png: Path,
    seconds: float,
) -> str:
    """The "Samplers" section of the benchmark results."""
    rounds = [r for r in _TABLE_ROUNDS if r <= args.rounds]
    if args.rounds not in rounds:
        rounds.append(args.rounds)
    lines = [
        "## Samplers",
        "",
        "Outer-level search methods on synthetic rewards over "
        f"[0, 1]^{args.dims}, T = {args.rounds} rounds × S = {args.samples_per_round} samples, "
        f"{args.seeds} seeds (0..{args.seeds - 1}), all starting from the linear-loss "
        f"initialization (`{args.command}`).",
        "Objectives (maximized): `sphere` = −mean_d (θ_d − c_d)²; `narrow` = "
        f"exp(−mean_d (θ_d − c_d)² / (2·{_NARROW_WIDTH}²)) + N(0, {_NARROW_NOISE}²) noise; "
        f"`plateau` = max(0, 1 − mean_d (θ_d − c_d)² / {_PLATEAU_RADIUS_SQ}) (flat 0 beyond an "
        "RMS distance of 0.17). Each optimum c is the initialization shifted by U(−0.25, 0.25) "
        "per component (fixed seed). Samplers come from `paploss.samplers.make_sampler` "
        "(PPO2: σ_init 0.2, ε 0.1, Adam 100 steps lr 0.01 warm-up 30; Optuna's RandomSampler; "
        "TPESampler defaults; CmaEsSampler with x0 = initialization, sigma0 = 0.2).",
        "",
        "Best-so-far reward after round t (noise-free reward of the best reported trial), "
        "mean ± std over seeds:",
        "",
    ]
    for obj in args.objectives:
        lines.append(f"**{obj}**")
        lines.append("")
        rows = []
        for name in args.samplers:
            mean, std = summary[(obj, name)]
            rows.append([name, *(_fmt(mean[r - 1], std[r - 1]) for r in rounds)])
        lines += markdown_table(["sampler", *(f"t = {r}" for r in rounds)], rows)
        lines.append("")
    lines.append(f"![best-so-far per round]({os.path.relpath(png, Path(args.markdown).parent)})")
    lines.append("")
    if overhead:
        n = next(iter(overhead.values()))["trials"]
        lines += [
            f"Sampler overhead on an SQLite study (file in {_overhead_place(args.overhead_dir)}), "
            f"{int(n)} trials of the "
            f"`sphere` objective in {args.dims} dims, one process: time inside the sampler's "
            "methods (including the storage reads/writes they make) and wall time per trial "
            "(including Optuna's own storage traffic):",
            "",
            *markdown_table(
                ["sampler", "in sampler (ms/trial)", "wall (ms/trial)"],
                [
                    [name, f"{row['sampler_ms']:.1f}", f"{row['wall_ms']:.1f}"]
                    for name, row in overhead.items()
                ],
            ),
            "",
        ]
    lines.append(
        "Machine: "
        + env["machine"]
        + "; "
        + ", ".join(f"{k} {v}" for k, v in env.items() if k != "machine")
        + f". Total benchmark time {seconds / 60:.1f} min (the machine was shared with other "
        "jobs, so timings are indicative)."
    )
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def _csv_list(choices: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(value: str) -> list[str]:
        items = [v.strip() for v in value.split(",") if v.strip()]
        bad = [v for v in items if v not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(
                f"choose from {', '.join(choices)} (comma-separated); got {value!r}"
            )
        return items

    return parse


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Command-line options (defaults are the issue's full-size benchmark)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--samples-per-round", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--dims", type=int, default=41)
    parser.add_argument("--samplers", type=_csv_list(SAMPLER_NAMES), default=list(SAMPLER_NAMES))
    parser.add_argument(
        "--objectives", type=_csv_list(OBJECTIVE_NAMES), default=list(OBJECTIVE_NAMES)
    )
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument(
        "--overhead-dir",
        type=Path,
        default=Path("/dev/shm") if Path("/dev/shm").is_dir() else None,
        help="where the SQLite file of the overhead runs goes (default /dev/shm, a tmpfs, so "
        "that the numbers are the samplers' CPU cost rather than the disk's fsync latency)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="CSV and PNG folder (default benchmarks/results)"
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=None,
        help="the Markdown section's file (default <out>/samplers.md)",
    )
    parser.add_argument(
        "--results-md",
        type=Path,
        default=None,
        help=f"also write the section between the {SECTION} markers of this Markdown file",
    )
    parser.add_argument(
        "--results-json",
        type=Path,
        default=None,
        help="also write the summary, overhead and environment to this JSON file",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes (T = 2, S = 2, 2 seeds, D = 4); --out defaults to a new temporary folder",
    )
    args = parser.parse_args(list(argv))
    if args.smoke:
        for name, value in SMOKE.items():
            setattr(args, name, value)
        if args.out is None:
            args.out = Path(tempfile.mkdtemp(prefix="bench_samplers-"))
    if args.out is None:
        args.out = RESULTS_DIR
    if args.markdown is None:
        args.markdown = args.out / "samplers.md"
    for name in ("rounds", "seeds", "dims"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.samples_per_round < 2:
        parser.error(f"--samples-per-round must be >= 2, got {args.samples_per_round}")
    args.command = command_line(
        "benchmarks/bench_samplers.py",
        argv,
        drop=("--out", "--markdown", "--results-md", "--results-json", "--overhead-dir"),
    )
    return args


def main(argv: Sequence[str]) -> None:
    """Run the benchmark and write CSVs, the PNG and the Markdown section."""
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # Warm up torch (the first Adam construction imports torch._dynamo, ~3 s) outside timings.
    ppo2_update(np.full((2, 1), 0.5), [0.0, 1.0], [0.5], 0.2, 0.2, steps=2, warmup_steps=1)

    curves: dict[tuple[str, str], list[list[float]]] = {}
    runs_path = args.out / "samplers_runs.csv"
    with runs_path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["objective", "sampler", "seed", "round", "best_so_far", "seconds"])
        for obj_name in args.objectives:
            objective = make_objective(obj_name, args.dims)
            for name in args.samplers:
                for seed in range(args.seeds):
                    t0 = time.perf_counter()
                    study = run_search(
                        name,
                        objective,
                        seed,
                        rounds=args.rounds,
                        samples_per_round=args.samples_per_round,
                    )
                    seconds = time.perf_counter() - t0
                    curve = best_so_far(study.trials, args.rounds, args.samples_per_round)
                    curves.setdefault((obj_name, name), []).append(curve)
                    for r, value in enumerate(curve, start=1):
                        writer.writerow([obj_name, name, seed, r, f"{value:.6g}", f"{seconds:.2f}"])
                    print(
                        f"{obj_name:8s} {name:7s} seed {seed}: final {curve[-1]:.4f} "
                        f"({seconds:.1f} s)",
                        flush=True,
                    )
    summary = summarize(curves)
    with (args.out / "samplers_summary.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["objective", "sampler", "round", "mean", "std", "seeds"])
        for (obj_name, name), (mean, std) in summary.items():
            for r in range(args.rounds):
                writer.writerow(
                    [obj_name, name, r + 1, f"{mean[r]:.6g}", f"{std[r]:.6g}", args.seeds]
                )
    png = args.out / "samplers_best_so_far.png"
    plot(summary, args.objectives, args.samplers, args.seeds, png)

    overhead: dict[str, dict[str, float]] = {}
    if not args.skip_overhead:
        with tempfile.TemporaryDirectory(dir=args.overhead_dir) as tmp:
            for name in args.samplers:
                overhead[name] = measure_overhead(
                    name,
                    rounds=args.rounds,
                    samples_per_round=args.samples_per_round,
                    dims=args.dims,
                    workdir=Path(tmp),
                )
                print(f"overhead {name}: {overhead[name]}", flush=True)
        with (args.out / "samplers_overhead.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["sampler", "trials", "sampler_ms_per_trial", "wall_ms_per_trial"])
            for name, row in overhead.items():
                writer.writerow(
                    [name, int(row["trials"]), f"{row['sampler_ms']:.2f}", f"{row['wall_ms']:.2f}"]
                )
    env = environment()
    text = markdown(args, summary, overhead, env, png, time.perf_counter() - started)
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(text)
    if args.results_md is not None:
        replace_section(args.results_md, SECTION, text)
    if args.results_json is not None:
        write_json(
            args.results_json,
            dict(
                command=args.command,
                environment=env,
                summary=[
                    dict(objective=obj, sampler=name, mean=mean.tolist(), std=std.tolist())
                    for (obj, name), (mean, std) in summary.items()
                ],
                overhead=overhead,
            ),
        )
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
