"""Benchmark of the pairwise sums: release-dense vs reference vs sorted vs triton.

Workload: N entries with scores ~ N(0, 1.5^2) (the positives are drawn among them, so almost every
entry lies within +-1 of some positive: the band split drops little; a hard case for every
provider), weights ~ U(0, 1), P positives, the published RetinaNet functions theta_2 (numerator)
and theta_4 (denominator), den_grad=False as in the loss (Eq. (6) blocks the denominator's
gradient). Upstream gradient: random g_num. One measured repetition runs the forward, then the
backward; ``forward``, ``backward`` and ``full`` (= forward + backward) are timed within it.

Providers:
  release-dense  the authors' release's formulation, written here from its formula: per positive i,
                 j over the top-k (k = 100000) highest-scoring entries including i, dense [P, K]
                 tensors of x_ij, per-segment masks and values of f2 and f4, w_j products, summed
                 (the self pair is included, as in the release). Equal to the others for N <= k.
  reference      paploss.kernels backend "reference" (chunked PyTorch, autograd).
  sorted         backend "sorted".
  triton         backend "triton" (CUDA only); "triton:BPxBN[xW]" sets both kernels' tiles/warps.
  compile        torch.compile of the reference (optional; slow to compile on CPU).

Peak memory: CUDA, torch.cuda.max_memory_allocated above the inputs; CPU, the process's peak RSS
(VmHWM, reset through /proc/self/clear_refs) above the RSS before the run.

Usage:
  python benchmarks/bench_pairwise.py                       # CPU sizes, all CPU providers
  python benchmarks/bench_pairwise.py --device cuda --gpu-sizes
  python benchmarks/bench_pairwise.py --device cuda --crossover
  python benchmarks/bench_pairwise.py --smoke --results-md /tmp/r.md   # seconds: the script's test
Rows are appended to benchmarks/results/pairwise_<device>.csv (--smoke: only with --csv);
--markdown prints a Markdown table; --results-md FILE puts it between the bench_pairwise markers
of FILE (e.g. benchmarks/RESULTS.md), --results-json FILE writes every row as JSON.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _common import (
    RESULTS_DIR,
    command_line,
    cpu_name,
    git_commit,
    load_average,
    markdown_table,
    package_versions,
    replace_section,
    text_table,
    write_json,
)

from paploss import LossParams
from paploss.functions import PiecewiseLinear
from paploss.kernels import pairwise_sums

CPU_SIZES = [(300, 100_000), (1000, 100_000), (1000, 1_000_000), (2000, 4_000_000)]
GPU_EXTRA_SIZES = [(2000, 10_000_000), (2000, 64_000_000)]
SMOKE_SIZES = [(8, 300), (32, 2000)]
"""``--smoke``: two tiny sizes, enough to run every provider's forward and backward."""
RELEASE_TOPK = 100_000
SECTION = "bench_pairwise"
"""The name of the section (``<!-- bench_pairwise:begin -->``) ``--results-md`` writes."""

# Models used only to skip runs that would not fit (peak bytes and CPU seconds per (P, N) pair of
# a forward + backward), from runs on the 2-core CPU: release-dense ~53 B/pair (5.3 GB at
# P K = 1e8), reference ~44 B/pair (autograd keeps every chunk's intermediates for the backward).
RELEASE_BYTES_PER_PAIR = 64.0
REFERENCE_BYTES_PER_PAIR = 48.0
CPU_SECONDS_PER_PAIR = {"reference": 3e-7, "release-dense": 4e-7, "compile": 2e-7}


# ------------------------------------------------------------------------------ providers
def _dense_piecewise(x: torch.Tensor, fn: PiecewiseLinear) -> torch.Tensor:
    """f(x) as the release evaluates it: one dense mask and one dense value tensor per segment."""
    xs = fn.xs.tolist()
    ys = fn.ys.tolist()
    out = torch.zeros_like(x)
    m = len(xs) - 1
    for k in range(m):
        slope = (ys[k + 1] - ys[k]) / (xs[k + 1] - xs[k])
        upper = x <= xs[k + 1] if k == m - 1 else x < xs[k + 1]
        mask = (x >= xs[k]) & upper
        out = out + mask * (slope * (x - xs[k]) + ys[k])
    return out


def release_dense(
    scores: torch.Tensor,
    weights: torch.Tensor,
    positives: torch.Tensor,
    num_fn: PiecewiseLinear,
    den_fn: PiecewiseLinear,
    *,
    topk: int = RELEASE_TOPK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The release's dense formulation; returns (num, den) [P] WITH the self pair included."""
    k = min(topk, scores.numel())
    top_scores, top_idx = scores.topk(k)
    top_w = weights[top_idx]
    s_i = scores[positives]
    x = ((top_scores[None, :] - s_i[:, None]).clamp(-1.0, 1.0) + 1.0) / 2.0  # [P, K]
    num = (_dense_piecewise(x, num_fn) * top_w[None, :]).sum(1)
    den = _dense_piecewise(x.detach(), den_fn).sum(1)  # gradient blocked, as in the release
    return num, den


def make_provider(name: str, num_fn, den_fn, den_grad: bool) -> Callable:
    if name == "release-dense":

        def run(s, w, p):
            num, den = release_dense(s, w, p, num_fn, den_fn)
            return num, den

        return run
    if name == "compile":
        from paploss.kernels.reference import pairwise_sums_reference

        compiled = torch.compile(pairwise_sums_reference, dynamic=False)
        return lambda s, w, p: compiled(s, w, p, num_fn, den_fn, den_grad=den_grad)
    if name.startswith("triton:"):
        from paploss.kernels.triton_pairwise import LaunchConfig, pairwise_sums_triton

        parts = [int(v) for v in name.split(":", 1)[1].split("x")]
        cfg = LaunchConfig(
            block_p=parts[0], block_n=parts[1], num_warps=parts[2] if len(parts) > 2 else 4
        )
        return lambda s, w, p: pairwise_sums_triton(
            s, w, p, num_fn, den_fn, den_grad=den_grad, forward_config=cfg, backward_config=cfg
        )
    return lambda s, w, p: pairwise_sums(s, w, p, num_fn, den_fn, backend=name, den_grad=den_grad)


# ------------------------------------------------------------------------------ measurement
def _status_bytes(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _trim_heap() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak memory above the current level during a block (CUDA allocator or CPU RSS)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak: int | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        else:
            _trim_heap()  # give cached free memory back, so that the RSS counts live memory only
            self.base = _status_bytes("VmRSS")
            try:
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                self.base = None
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        elif self.base is not None:
            hwm = _status_bytes("VmHWM")
            self.peak = None if hwm is None else max(0, hwm - self.base)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_inputs(p: int, n: int, device: torch.device, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    scores = (torch.randn(n, generator=gen) * 1.5).to(device)
    weights = torch.rand(n, generator=gen).to(device)
    positives = torch.randperm(n, generator=gen)[:p].to(device)
    g_num = torch.randn(p, generator=gen).to(device)
    return scores, weights, positives, g_num


def measure(fn: Callable, inputs, device: torch.device, repeats: int, warmup: int) -> dict:
    scores, weights, positives, g_num = inputs
    times = {"forward": [], "backward": [], "full": []}
    peak = 0
    out_num = None
    for rep in range(warmup + repeats):
        s = scores.detach().clone().requires_grad_()
        w = weights.detach().clone().requires_grad_()
        with PeakMemory(device) as mem:
            _sync(device)
            t0 = time.perf_counter()
            num, den = fn(s, w, positives)
            _sync(device)
            t1 = time.perf_counter()
            (num * g_num).sum().backward()
            _sync(device)
            t2 = time.perf_counter()
        if rep >= warmup:
            times["forward"].append(t1 - t0)
            times["backward"].append(t2 - t1)
            times["full"].append(t2 - t0)
            if mem.peak is not None:
                peak = max(peak, mem.peak)
        out_num = num.detach()
        del num, den, s, w
    return {"times": times, "peak": peak, "num": out_num}


def _percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _skip_reason(provider: str, p: int, n: int, device: torch.device, args) -> str | None:
    base = provider.split(":")[0]
    if base == "triton" and device.type != "cuda":
        return "needs CUDA"
    if base == "release-dense":
        pairs = p * min(n, RELEASE_TOPK)
        need = pairs * RELEASE_BYTES_PER_PAIR
    elif base in ("reference", "compile"):
        pairs = p * n
        need = pairs * REFERENCE_BYTES_PER_PAIR
    else:
        return None
    if need > args.max_mem_gb * 2**30:
        return f"~{need / 2**30:.0f} GB > {args.max_mem_gb:g} GB limit"
    if device.type == "cpu":
        secs = pairs * CPU_SECONDS_PER_PAIR[base]
        if secs > args.max_seconds:
            return f"~{secs:.0f} s per run > {args.max_seconds:g} s limit"
    return None


def _repeats_for(provider: str, p: int, n: int, device: torch.device, args) -> tuple[int, int]:
    base = provider.split(":")[0]
    if device.type == "cpu" and base in ("release-dense", "reference", "compile"):
        pairs = p * (min(n, RELEASE_TOPK) if base == "release-dense" else n)
        if pairs * CPU_SECONDS_PER_PAIR[base] > 2.0:
            return 1, 0  # expensive: one measured run, no warm-up
    return args.repeats, args.warmup


# ------------------------------------------------------------------------------ reporting
def environment(device: torch.device) -> dict[str, str]:
    """The CSV's machine and version columns for a run on ``device``."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{cpu_name()} ({torch.get_num_threads()} threads)"
    return {
        "device_name": name,
        "torch": torch.__version__,
        "triton": package_versions(["triton"])["triton"],
        "python": platform.python_version(),
        "commit": git_commit(),
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "load1": f"{load_average():.1f}",
    }


FIELDS = [
    "timestamp",
    "device",
    "device_name",
    "torch",
    "triton",
    "python",
    "commit",
    "load1",
    "provider",
    "P",
    "N",
    "mode",
    "repeats",
    "median_ms",
    "p20_ms",
    "p80_ms",
    "peak_mb",
    "max_rel_diff",
    "note",
]


def append_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in FIELDS})


def _fmt_ms(v) -> str:
    if v == "" or v is None:
        return "-"
    v = float(v)
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


TABLE_HEADER = (
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
)


def table_rows(rows: list[dict]) -> list[list[str]]:
    """One row of ``TABLE_HEADER`` per (P, N, provider): forward / backward / full medians,
    p20-p80 of full, memory."""
    groups: dict[tuple, dict] = {}
    for r in rows:
        key = (r["P"], r["N"], r["provider"])
        groups.setdefault(key, {})[r["mode"]] = r
    lines = []
    for (p, n, prov), modes in groups.items():
        full = modes.get("full", {})
        note = full.get("note", "") or modes.get("skip", {}).get("note", "")
        if not full or full.get("median_ms", "") == "":
            lines.append([str(p), f"{n:.0e}", prov, "-", "-", "skipped", "-", "-", "-", note])
            continue
        spread = (
            f"{_fmt_ms(full['median_ms'])} ({_fmt_ms(full['p20_ms'])}-{_fmt_ms(full['p80_ms'])})"
        )
        lines.append(
            [
                str(p),
                f"{n:.0e}",
                prov,
                _fmt_ms(modes["forward"]["median_ms"]),
                _fmt_ms(modes["backward"]["median_ms"]),
                spread,
                f"{float(full['peak_mb']):.0f}" if full["peak_mb"] != "" else "-",
                str(full["repeats"]),
                full.get("max_rel_diff", "") or "-",
                note,
            ]
        )
    return lines


def print_table(rows: list[dict], markdown: bool) -> None:
    """The table of :func:`table_rows`, as Markdown or as aligned text."""
    lines = table_rows(rows)
    table = markdown_table if markdown else text_table
    print("\n".join(table(TABLE_HEADER, lines)))


def results_section(rows: list[dict], env: dict[str, str], command: str) -> str:
    """The ``bench_pairwise`` section of a results file: the machine, the command, the table."""
    return "\n".join(
        [
            "## Pairwise sums (`benchmarks/bench_pairwise.py`)",
            "",
            f"{env['device_name']}, torch {env['torch']}, triton {env['triton']}, commit "
            f"{env['commit']}, load {env['load1']}: `{command}`.",
            "",
            *markdown_table(TABLE_HEADER, table_rows(rows)),
        ]
    )


# ------------------------------------------------------------------------------ main
def run_sweep(sizes, providers, device, args, env) -> list[dict]:
    params = LossParams.preset("paper-retinanet").functions
    num_fn, den_fn = params[1], params[3]
    den_grad = args.den_grad
    rows: list[dict] = []
    for p, n in sizes:
        inputs = make_inputs(p, n, device)
        check_num = None
        for provider in providers:
            base = {**env, "device": device.type, "provider": provider, "P": p, "N": n}
            reason = _skip_reason(provider, p, n, device, args)
            if reason is not None:
                rows.append({**base, "mode": "full", "note": f"skipped: {reason}"})
                print(f"[{provider} P={p} N={n:.0e}] skipped: {reason}", flush=True)
                continue
            repeats, warmup = _repeats_for(provider, p, n, device, args)
            fn = make_provider(provider, num_fn, den_fn, den_grad)
            try:
                res = measure(fn, inputs, device, repeats, warmup)
            except (RuntimeError, MemoryError) as exc:  # e.g. out of memory
                msg = str(exc).splitlines()[0][:120]
                rows.append({**base, "mode": "full", "note": f"failed: {msg}"})
                print(f"[{provider} P={p} N={n:.0e}] failed: {msg}", flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            num = res["num"].double()
            note = ""
            if provider == "release-dense":
                # the release includes the self pair; remove it to compare
                s, w, pos, _ = inputs
                half = num_fn(torch.tensor([0.5], dtype=torch.float64)).item()
                num = num - half * w[pos].double()
                if n > RELEASE_TOPK:
                    note = f"top-{RELEASE_TOPK} only: a different (truncated) sum"
            if provider == "sorted":
                check_num = num
            rel = ""
            if check_num is not None and provider != "sorted" and not note:
                rel = f"{((num - check_num).abs().max() / check_num.abs().max().clamp_min(1e-30)).item():.1e}"
            for mode, values in res["times"].items():
                ms = [v * 1e3 for v in values]
                rows.append(
                    {
                        **base,
                        "mode": mode,
                        "repeats": len(ms),
                        "median_ms": f"{statistics.median(ms):.4f}",
                        "p20_ms": f"{_percentile(ms, 20):.4f}",
                        "p80_ms": f"{_percentile(ms, 80):.4f}",
                        "peak_mb": f"{res['peak'] / 2**20:.1f}" if res["peak"] else "",
                        "max_rel_diff": rel,
                        "note": note,
                    }
                )
            full_ms = statistics.median(res["times"]["full"]) * 1e3
            print(
                f"[{provider} P={p} N={n:.0e}] full {full_ms:.1f} ms, peak "
                f"{res['peak'] / 2**20:.0f} MB {('rel diff ' + rel) if rel else ''} {note}",
                flush=True,
            )
            del fn, res
        del inputs
    return rows


def crossover(device, args, env) -> list[dict]:
    """sorted vs triton (full) over a grid of (P, N): prints the winner per cell."""
    sizes = [
        (p, n) for n in (10_000, 100_000, 1_000_000, 10_000_000) for p in (16, 64, 256, 1024, 4096)
    ]
    rows = run_sweep(sizes, ["sorted", "triton"], device, args, env)
    med = {
        (r["P"], r["N"], r["provider"]): float(r["median_ms"])
        for r in rows
        if r.get("mode") == "full" and r.get("median_ms")
    }
    print("\ncrossover (full fwd+bwd ms: sorted / triton, winner, P*N):")
    for p, n in sizes:
        a, b = med.get((p, n, "sorted")), med.get((p, n, "triton"))
        if a is None or b is None:
            continue
        print(
            f"  P={p:5d} N={n:9d}  {a:8.3f} / {b:8.3f}  {'triton' if b < a else 'sorted':6s}  {p * n:.1e}"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--providers", default=None, help="comma list (default: all for the device)")
    ap.add_argument("--sizes", default=None, help="comma list of PxN, e.g. 1000x1e5,2000x4e6")
    ap.add_argument("--gpu-sizes", action="store_true", help="add (2000, 1e7) and (2000, 6.4e7)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--max-mem-gb", type=float, default=12.0)
    ap.add_argument("--max-seconds", type=float, default=60.0, help="CPU: skip longer runs")
    ap.add_argument("--den-grad", action="store_true", help="also differentiate den")
    ap.add_argument("--crossover", action="store_true", help="sorted vs triton grid (CUDA)")
    ap.add_argument(
        "--csv", default=None, help="CSV to append to (default results/pairwise_<dev>.csv)"
    )
    ap.add_argument("--no-csv", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument(
        "--results-md",
        type=Path,
        default=None,
        help=f"also write the table as the {SECTION} section of this Markdown file",
    )
    ap.add_argument(
        "--results-json", type=Path, default=None, help="also write every row to this JSON file"
    )
    ap.add_argument(
        "--smoke",
        action="store_true",
        help=f"tiny sizes {SMOKE_SIZES}, 2 repeats, no warm-up; no CSV unless --csv is given",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.smoke:
        args.repeats, args.warmup = 2, 0
        args.no_csv = args.no_csv or args.csv is None

    device = torch.device(args.device)
    env = environment(device)
    print(
        f"# {env['device_name']} | torch {env['torch']} | triton {env['triton']} | {env['timestamp']}"
    )
    if args.crossover:
        rows = crossover(device, args, env)
    else:
        if args.sizes:
            sizes = []
            for item in args.sizes.split(","):
                p_str, n_str = item.lower().split("x")
                sizes.append((int(float(p_str)), int(float(n_str))))
        elif args.smoke:
            sizes = list(SMOKE_SIZES)
        else:
            sizes = list(CPU_SIZES) + (GPU_EXTRA_SIZES if args.gpu_sizes else [])
        if args.providers:
            providers = [v.strip() for v in args.providers.split(",") if v.strip()]
        elif device.type == "cuda":
            providers = ["sorted", "triton", "reference", "release-dense"]
        else:
            providers = ["sorted", "reference", "release-dense"]
        rows = run_sweep(sizes, providers, device, args, env)
    print()
    print_table(rows, args.markdown)
    if not args.no_csv:
        path = Path(args.csv) if args.csv else RESULTS_DIR / f"pairwise_{device.type}.csv"
        append_csv(path, rows)
        print(f"\nappended {len(rows)} rows to {path}")
    command = command_line(
        "benchmarks/bench_pairwise.py", argv, drop=("--csv", "--results-md", "--results-json")
    )
    if args.results_md is not None:
        replace_section(args.results_md, SECTION, results_section(rows, env, command))
        print(f"wrote the {SECTION} section of {args.results_md}")
    if args.results_json is not None:
        write_json(args.results_json, dict(command=command, environment=env, rows=rows))
        print(f"wrote {len(rows)} rows to {args.results_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
