"""The pairwise-sum backends against a float64 brute force, plus dispatch and memory checks.

Without a CUDA device the Triton backend runs under TRITON_INTERPRET=1 (set by conftest.py) on tiny
shapes; tests marked ``gpu`` run only where CUDA is available.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from paploss import LossParams
from paploss.functions import PiecewiseLinear
from paploss.kernels import BACKENDS, pairwise_sums, resolve_backend
from paploss.kernels.dispatch import TRITON_MAX_PAIRS, triton_available

ROOT = Path(__file__).resolve().parents[1]
HAS_CUDA = torch.cuda.is_available()
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
needs_triton = pytest.mark.skipif(not triton_available(), reason="triton is not installed")
gpu = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")

# Breakpoints away from 0, 1/4, 1/2, 3/4 and 1 (the x values of the tie cases below).
IRREGULAR_NUM = PiecewiseLinear.from_control_points(
    [0, 0.13, 0.37, 0.61, 0.83, 1], [0, 0.05, 0.3, 0.62, 0.9, 1]
)
IRREGULAR_DEN = PiecewiseLinear.from_control_points([0, 0.21, 0.44, 0.7, 1], [0, 0.2, 0.25, 0.8, 1])
_PUBLISHED = LossParams.preset("paper-retinanet").functions
PUBLISHED_NUM, PUBLISHED_DEN = _PUBLISHED[1], _PUBLISHED[3]  # f(s_j - s_i; theta_2), theta_4
HALF_BREAK = PiecewiseLinear.from_control_points([0, 0.5, 1], [0, 0.2, 1])  # 0.5 is a breakpoint
STEEP = PiecewiseLinear.from_control_points([0, 0.4, 0.4 + 1e-3, 1], [0, 0.1, 0.9, 1])

FUNCTION_PAIRS = {
    "irregular": (IRREGULAR_NUM, IRREGULAR_DEN),
    "published": (PUBLISHED_NUM, PUBLISHED_DEN),
}


def device_for(backend: str) -> str:
    """Where a backend's test inputs live: compiled Triton needs CUDA, the rest run on the CPU."""
    return "cuda" if backend == "triton" and not INTERPRET else "cpu"


def _backends() -> list:
    return [
        pytest.param(b, marks=needs_triton) if b == "triton" else pytest.param(b) for b in BACKENDS
    ]


# ------------------------------------------------------------------------------------ oracles
def brute_force(scores, weights, positives, num_fn, den_fn, g_num, g_den, *, den_grad=True):
    """float64 [P, N] brute force straight from the definition: (num, den, d/ds, d/dw).

    The upstream gradients g_num, g_den [P] define the scalar sum(g_num num + g_den den) whose
    gradient is returned (g_den is ignored if den_grad is False).
    """
    s = scores.detach().to(torch.float64).requires_grad_()
    w = weights.detach().to(torch.float64).requires_grad_()
    p, n = positives.numel(), s.numel()
    x = ((s[None, :] - s[positives][:, None]).clamp(-1.0, 1.0) + 1.0) / 2.0
    not_self = torch.ones(p, n, dtype=torch.bool)
    not_self[torch.arange(p), positives] = False
    num = torch.where(not_self, num_fn(x) * w[None, :], 0.0).sum(1)
    den = torch.where(not_self, den_fn(x), 0.0).sum(1)
    total = (num * g_num.double()).sum()
    if den_grad:
        total = total + (den * g_den.double()).sum()
    gs, gw = torch.autograd.grad(total, [s, w], allow_unused=True)
    return num.detach(), den.detach(), gs, gw


def run_backend(backend, scores, weights, positives, num_fn, den_fn, g_num, g_den, **kw):
    """One backend: outputs and the gradient of sum(g_num num + g_den den)."""
    den_grad = kw.pop("den_grad", True)
    dev = device_for(backend) if scores.device.type == "cpu" else scores.device
    s = scores.detach().to(dev).requires_grad_()
    w = weights.detach().to(dev).requires_grad_()
    positives, g_num, g_den = positives.to(dev), g_num.to(dev), g_den.to(dev)
    if kw:  # explicit Triton launch configurations
        from paploss.kernels.triton_pairwise import pairwise_sums_triton

        num, den = pairwise_sums_triton(s, w, positives, num_fn, den_fn, den_grad=den_grad, **kw)
    else:
        num, den = pairwise_sums(
            s, w, positives, num_fn, den_fn, backend=backend, den_grad=den_grad
        )
    assert num.shape == den.shape == positives.shape
    assert num.dtype == den.dtype == scores.dtype
    assert den.requires_grad == den_grad
    total = (num * g_num.to(num.dtype)).sum()
    if den_grad:
        total = total + (den * g_den.to(den.dtype)).sum()
    gs, gw = torch.autograd.grad(total, [s, w], allow_unused=True)
    back = scores.device
    return tuple(None if t is None else t.detach().to(back) for t in (num, den, gs, gw))


def make_case(name: str, dtype: torch.dtype, seed: int = 0):
    """(scores [N], weights [N], positives [P]) for a named situation."""
    gen = torch.Generator().manual_seed(seed)
    sizes = {
        "n1": (1, 1),
        "n2_p_eq_n": (2, 2),
        "p_eq_n": (23, 23),
        "odd": (97, 13),
        "ties": (61, 11),
        "all_equal": (40, 7),
        "far_apart": (83, 9),
        "weights_0_1": (71, 10),
        "duplicate_positives": (45, 8),
        "offset_1e3": (66, 12),
    }
    n, p = sizes[name]
    scores = torch.randn(n, generator=gen, dtype=torch.float64) * 1.3
    weights = torch.rand(n, generator=gen, dtype=torch.float64)
    positives = torch.randperm(n, generator=gen)[:p]
    if name == "ties":  # many equal scores, differences in {0, +-1/2, +-1, ...}
        scores = torch.randint(-4, 5, (n,), generator=gen).double() / 2
    elif name == "all_equal":
        scores = torch.full((n,), 0.3, dtype=torch.float64)
    elif name == "far_apart":  # most pairs beyond +-1: both constant regions, band split
        scores = scores * 60
    elif name == "weights_0_1":
        weights = (torch.rand(n, generator=gen) < 0.5).double()
        weights[positives[:2]] = torch.tensor([0.0, 1.0], dtype=torch.float64)
    elif name == "duplicate_positives":
        positives = torch.cat([positives, positives[:3]])
    elif name == "offset_1e3":
        scores = scores + 1000.0
    return scores.to(dtype), weights.to(dtype), positives


CASES = [
    "n1",
    "n2_p_eq_n",
    "p_eq_n",
    "odd",
    "ties",
    "all_equal",
    "far_apart",
    "weights_0_1",
    "duplicate_positives",
    "offset_1e3",
]
TOL = {torch.float64: dict(rtol=1e-9, atol=1e-9), torch.float32: dict(rtol=2e-5, atol=2e-5)}


def _upstream(p: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(p, generator=gen, dtype=torch.float64), torch.randn(
        p, generator=gen, dtype=torch.float64
    )


def _assert_matches(got, want, dtype, *, scale: float = 1.0) -> None:
    tol = {k: v * scale for k, v in TOL[dtype].items()}
    names = ("num", "den", "d/ds", "d/dw")
    for name, g, w in zip(names, got, want):
        assert g is not None, name
        torch.testing.assert_close(g.double(), w, **tol, msg=lambda m, name=name: f"{name}: {m}")


# ------------------------------------------------------------------------------------ accuracy
@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("fns", ["irregular", "published"])
def test_backend_matches_float64_brute_force(backend, dtype, case, fns) -> None:
    num_fn, den_fn = FUNCTION_PAIRS[fns]
    scores, weights, positives = make_case(case, dtype)
    g_num, g_den = _upstream(positives.numel())
    want = brute_force(scores, weights, positives, num_fn, den_fn, g_num, g_den)
    got = run_backend(backend, scores, weights, positives, num_fn, den_fn, g_num, g_den)
    # float32 sums of ~100 terms of size <= 1 (and 1e3-sized scores): relative 2e-5 of the scale.
    scale = 1.0 if case != "offset_1e3" or dtype == torch.float64 else 50.0
    _assert_matches(got, want, dtype, scale=scale)


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("case", ["ties", "all_equal"])
def test_ties_with_a_breakpoint_at_one_half(backend, case) -> None:
    """x = 1/2 exactly on a breakpoint: value continuous, derivative of the right segment."""
    scores, weights, positives = make_case(case, torch.float64)
    g_num, g_den = _upstream(positives.numel())
    want = brute_force(scores, weights, positives, HALF_BREAK, HALF_BREAK, g_num, g_den)
    got = run_backend(backend, scores, weights, positives, HALF_BREAK, HALF_BREAK, g_num, g_den)
    _assert_matches(got, want, torch.float64)


@pytest.mark.parametrize("backend", _backends())
def test_steep_segment(backend) -> None:
    scores, weights, positives = make_case("odd", torch.float64, seed=3)
    g_num, g_den = _upstream(positives.numel())
    want = brute_force(scores, weights, positives, STEEP, IRREGULAR_DEN, g_num, g_den)
    got = run_backend(backend, scores, weights, positives, STEEP, IRREGULAR_DEN, g_num, g_den)
    _assert_matches(got, want, torch.float64, scale=100.0)


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_den_grad_false_blocks_the_denominator(backend, dtype) -> None:
    scores, weights, positives = make_case("odd", dtype, seed=5)
    g_num, g_den = _upstream(positives.numel())
    want = brute_force(
        scores, weights, positives, *FUNCTION_PAIRS["published"], g_num, g_den, den_grad=False
    )
    got = run_backend(
        backend,
        scores,
        weights,
        positives,
        *FUNCTION_PAIRS["published"],
        g_num,
        g_den,
        den_grad=False,
    )
    _assert_matches(got, want, dtype)


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("which", ["scores", "weights"])
def test_gradient_with_respect_to_one_input_only(backend, which) -> None:
    scores, weights, positives = make_case("far_apart", torch.float64, seed=7)
    g_num, g_den = _upstream(positives.numel())
    _, _, want_s, want_w = brute_force(
        scores, weights, positives, *FUNCTION_PAIRS["irregular"], g_num, g_den
    )
    dev = device_for(backend)
    s = scores.to(dev).requires_grad_(which == "scores")
    w = weights.to(dev).requires_grad_(which == "weights")
    fns = FUNCTION_PAIRS["irregular"]
    num, den = pairwise_sums(s, w, positives.to(dev), *fns, backend=backend)
    total = (num * g_num.to(dev)).sum() + (den * g_den.to(dev)).sum()
    (grad,) = torch.autograd.grad(total, [s if which == "scores" else w])
    want = want_s if which == "scores" else want_w
    torch.testing.assert_close(grad.cpu(), want, **TOL[torch.float64])


@pytest.mark.parametrize("backend", _backends())
def test_no_positives(backend) -> None:
    dev = device_for(backend)
    s = torch.randn(5, device=dev, requires_grad=True)
    w = torch.rand(5, device=dev, requires_grad=True)
    none = torch.zeros(0, dtype=torch.long, device=dev)
    num, den = pairwise_sums(s, w, none, *FUNCTION_PAIRS["irregular"], backend=backend)
    assert num.shape == den.shape == (0,)
    (num.sum() + den.sum()).backward()
    assert not s.grad.any() and not w.grad.any()


@pytest.mark.parametrize("backend", ["sorted", pytest.param("triton", marks=needs_triton)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "f16"])
def test_half_precision_inputs(backend, dtype) -> None:
    """Computed in float32/64 internally; outputs rounded once to the input dtype."""
    scores, weights, positives = make_case("odd", dtype, seed=11)
    g_num, g_den = _upstream(positives.numel())
    want = brute_force(scores, weights, positives, *FUNCTION_PAIRS["published"], g_num, g_den)
    got = run_backend(
        backend, scores, weights, positives, *FUNCTION_PAIRS["published"], g_num, g_den
    )
    for g, w in zip(got, want):
        assert g.dtype == dtype
        torch.testing.assert_close(g.double(), w, rtol=1e-2, atol=2e-2)


@pytest.mark.parametrize("backend", ["sorted", pytest.param("triton", marks=needs_triton)])
@pytest.mark.parametrize("which", ["scores", "weights"])
@pytest.mark.parametrize("case", ["odd", "far_apart"])  # without and with band compaction
def test_in_place_modification_after_forward_is_detected(backend, which, case) -> None:
    """The custom autograd Functions save their inputs with save_for_backward: changing them in
    place before backward is an error (as for PyTorch's own ops), not a gradient silently
    computed from other values."""
    scores, weights, positives = make_case(case, torch.float32, seed=37)
    dev = device_for(backend)
    s = scores.to(dev).requires_grad_()
    w = weights.to(dev).requires_grad_()
    s_used, w_used = s * 1.0, w * 1.0  # non-leaf tensors may be modified in place
    num, den = pairwise_sums(
        s_used, w_used, positives.to(dev), *FUNCTION_PAIRS["irregular"], backend=backend
    )
    (s_used if which == "scores" else w_used).add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        (num.sum() + den.sum()).backward()


# ------------------------------------------------------------------------------------ precision
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("spread", ["offset", "wide"])
def test_sorted_precision_large_n(dtype, spread) -> None:
    """N = 1e5 scores around 1e3 (or spread over +-1e3): float64 prefix sums stay accurate."""
    gen = torch.Generator().manual_seed(17)
    n, p = 100_000, 12
    if spread == "offset":
        scores = 1000.0 + 1.5 * torch.randn(n, generator=gen, dtype=torch.float64)
    else:
        scores = 1000.0 * (2 * torch.rand(n, generator=gen, dtype=torch.float64) - 1)
        scores[: n // 2] = 1000.0 + 2 * torch.rand(n // 2, generator=gen, dtype=torch.float64)
    weights = torch.rand(n, generator=gen, dtype=torch.float64)
    positives = torch.randperm(n, generator=gen)[:p]
    scores, weights = scores.to(dtype), weights.to(dtype)
    g_num, g_den = _upstream(p)
    num_fn, den_fn = FUNCTION_PAIRS["published"]
    want = brute_force(scores, weights, positives, num_fn, den_fn, g_num, g_den)
    got = run_backend("sorted", scores, weights, positives, num_fn, den_fn, g_num, g_den)
    if dtype == torch.float64:
        _assert_matches(got, want, dtype, scale=10.0)  # sums of up to 1e5 terms: rtol 1e-8
    else:  # one float32 rounding of the output; entries' gradients are O(|g| P)
        for g, w in zip(got, want):
            torch.testing.assert_close(g.double(), w, rtol=1e-6, atol=1e-5)


def test_sorted_needs_no_p_by_n_memory() -> None:
    """N = 1e6, P = 4e4: a P x N float32 buffer would be 160 GB; sorted runs in O(N + P M)."""
    gen = torch.Generator().manual_seed(23)
    n, p = 1_000_000, 40_000
    scores = torch.randn(n, generator=gen).requires_grad_()
    weights = torch.rand(n, generator=gen).requires_grad_()
    positives = torch.randperm(n, generator=gen)[:p]
    rss_before = _rss_bytes()
    _reset_peak_rss()
    num, den = pairwise_sums(
        scores, weights, positives, *FUNCTION_PAIRS["published"], backend="sorted"
    )
    (num.sum() + den.sum()).backward()
    peak = _peak_rss_bytes()
    assert torch.isfinite(num).all() and torch.isfinite(scores.grad).all()
    if peak is not None and rss_before is not None:
        assert peak - rss_before < 1.5e9, f"peak RSS grew by {(peak - rss_before) / 1e9:.2f} GB"
    # spot-check 3 positives against the brute force on the full N
    sub = positives[:3]
    want_num, want_den, _, _ = brute_force(
        scores, weights, sub, *FUNCTION_PAIRS["published"], torch.zeros(3), torch.zeros(3)
    )
    torch.testing.assert_close(num[:3].double(), want_num, rtol=1e-5, atol=1e-2)
    torch.testing.assert_close(den[:3].double(), want_den, rtol=1e-5, atol=1e-2)


def _status_bytes(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _rss_bytes() -> int | None:
    return _status_bytes("VmRSS")


def _reset_peak_rss() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux >= 4.0)
    except OSError:
        pass


def _peak_rss_bytes() -> int | None:
    return _status_bytes("VmHWM")


# ------------------------------------------------------------------------------------ triton
@needs_triton
@pytest.mark.parametrize(
    ("block_p", "block_n", "split"), [(16, 16, 1), (16, 16, 3), (32, 64, 2), (16, 128, 0)]
)
@pytest.mark.parametrize("case", ["odd", "far_apart", "duplicate_positives"])
def test_triton_launch_configurations(block_p, block_n, split, case) -> None:
    """Several tiles per program, split streamed dimensions, partial last tiles."""
    from paploss.kernels.triton_pairwise import LaunchConfig

    scores, weights, positives = make_case(case, torch.float32, seed=13)
    positives = torch.cat([positives, torch.randperm(scores.numel())[:20]])  # > 1 block of P
    g_num, g_den = _upstream(positives.numel())
    cfg = LaunchConfig(block_p=block_p, block_n=block_n, split=split)
    want = brute_force(scores, weights, positives, *FUNCTION_PAIRS["published"], g_num, g_den)
    got = run_backend(
        "triton",
        scores,
        weights,
        positives,
        *FUNCTION_PAIRS["published"],
        g_num,
        g_den,
        forward_config=cfg,
        backward_config=cfg,
    )
    _assert_matches(got, want, torch.float32, scale=5.0)


AOT_COMPILE = r"""
import triton, triton.language as tl
from triton.backends.compiler import GPUTarget
from paploss.kernels import triton_pairwise as tp

common = {"tab_num_ptr": "*fp32", "tab_den_ptr": "*fp32", "N": "i32", "P": "i32"}
fwd = {"s_ptr": "*fp32", "w_ptr": "*fp32", "pidx_ptr": "*i64", "num_ptr": "*fp32",
       "den_ptr": "*fp32", "rnum_ptr": "*fp32", "rden_ptr": "*fp32", "tiles_per_split": "i32"}
bwd = {"s_ptr": "*fp32", "w_ptr": "*fp32", "pidx_ptr": "*i64", "gnum_ptr": "*fp32",
       "gden_ptr": "*fp32", "ds_ptr": "*fp32", "dw_ptr": "*fp32", "pblocks_per_split": "i32"}
for kernel, sig, flags, cfg in (
    (tp._pairwise_fwd_kernel, fwd, {"ROW_NUM": True, "ROW_DEN": True}, tp.DEFAULT_FORWARD),
    (tp._pairwise_bwd_col_kernel, bwd, {"NEED_DS": True, "NEED_DW": True, "DEN_GRAD": True},
     tp.DEFAULT_BACKWARD),
):
    names = kernel.arg_names
    signature = {n: {**sig, **common}.get(n, "constexpr") for n in names}
    consts = {"M_NUM": 5, "M_DEN": 4, "CDT": tl.float32, "BLOCK_P": cfg.block_p,
              "BLOCK_N": cfg.block_n, **flags}
    src = triton.compiler.ASTSource(fn=kernel, signature=signature, constexprs=consts)
    out = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": cfg.num_warps})
    assert out.asm["cubin"][:4] == b"\x7fELF"
print("compiled")
"""


@needs_triton
def test_triton_kernels_compile_for_sm90_without_a_gpu() -> None:
    """The interpreter does not type-check like the compiler: compile both kernels for an H100
    (sm_90, Triton's bundled ptxas) ahead of time, in a process without TRITON_INTERPRET."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", AOT_COMPILE], capture_output=True, text=True, env=env, timeout=300
    )
    if out.returncode != 0 and "No module named 'triton.backends" in out.stderr:
        pytest.skip("this Triton has no ahead-of-time CUDA backend")
    assert out.returncode == 0 and out.stdout.strip() == "compiled", out.stderr[-3000:]


@needs_triton
def test_launch_config_validation() -> None:
    from paploss.kernels.triton_pairwise import LaunchConfig

    with pytest.raises(ValueError, match="block_n must be a power of 2, got 48"):
        LaunchConfig(block_n=48)
    with pytest.raises(ValueError, match="split must be >= 0"):
        LaunchConfig(split=-1)


# ------------------------------------------------------------------------------------ dispatch
def test_auto_picks_sorted_on_cpu(monkeypatch) -> None:
    monkeypatch.delenv("PAPLOSS_BACKEND", raising=False)
    assert resolve_backend("auto", torch.zeros(10), 3) == "sorted"


def test_environment_overrides_auto_only(monkeypatch) -> None:
    monkeypatch.setenv("PAPLOSS_BACKEND", "reference")
    assert resolve_backend("auto", torch.zeros(10), 3) == "reference"
    assert resolve_backend("sorted", torch.zeros(10), 3) == "sorted"
    monkeypatch.setenv("PAPLOSS_BACKEND", "fastest")
    with pytest.raises(ValueError, match="'fastest' in \\$PAPLOSS_BACKEND"):
        resolve_backend("auto", torch.zeros(10), 3)


def test_unknown_backend() -> None:
    with pytest.raises(ValueError, match="unknown backend 'cuda-magic'"):
        pairwise_sums(
            torch.zeros(3),
            torch.zeros(3),
            torch.tensor([0]),
            *FUNCTION_PAIRS["irregular"],
            backend="cuda-magic",
        )


@needs_triton
def test_triton_on_cpu_needs_the_interpreter(monkeypatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="Triton needs CUDA tensors"):
        resolve_backend("triton", torch.zeros(3), 1)


@pytest.mark.parametrize(
    ("scores", "weights", "positives", "match"),
    [
        (torch.zeros(4), torch.zeros(4), torch.tensor([4]), "positives must index into scores"),
        (torch.zeros(4), torch.zeros(4), torch.tensor([-1]), "got range \\[-1, -1\\]"),
        (torch.zeros(4), torch.zeros(4), torch.tensor([0], dtype=torch.int32), "dtype torch.int32"),
        (torch.zeros(4), torch.zeros(3), torch.tensor([0]), "got \\(4,\\) and \\(3,\\)"),
        (torch.zeros(2, 2), torch.zeros(2, 2), torch.tensor([0]), "must be 1-D"),
        (
            torch.tensor([0.0, float("nan")]),
            torch.zeros(2),
            torch.tensor([0]),
            "scores must be fin",
        ),
        (torch.zeros(2), torch.tensor([0.0, float("inf")]), torch.tensor([0]), "weights must be f"),
        (torch.zeros(2, dtype=torch.long), torch.zeros(2), torch.tensor([0]), "floating point"),
    ],
)
def test_bad_input_raises(scores, weights, positives, match) -> None:
    with pytest.raises(ValueError, match=match):
        pairwise_sums(scores, weights, positives, *FUNCTION_PAIRS["irregular"], backend="sorted")


def test_bad_function_raises() -> None:
    with pytest.raises(ValueError, match="den_fn must be a paploss.functions.PiecewiseLinear"):
        pairwise_sums(torch.zeros(2), torch.zeros(2), torch.tensor([0]), IRREGULAR_NUM, "x")


def test_import_and_run_without_triton() -> None:
    """Triton stays optional: paploss.kernels imports and the sorted/auto backends run without it."""
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import torch\n"
        "from paploss.functions import PiecewiseLinear\n"
        "from paploss.kernels import pairwise_sums\n"
        "f = PiecewiseLinear.identity(3)\n"
        "s, w, p = torch.randn(9), torch.rand(9), torch.tensor([1, 4])\n"
        "a = pairwise_sums(s, w, p, f, f, backend='auto')\n"
        "b = pairwise_sums(s, w, p, f, f, backend='reference')\n"
        "assert torch.allclose(a[0], b[0], atol=1e-5) and torch.allclose(a[1], b[1], atol=1e-5)\n"
        "try:\n"
        "    pairwise_sums(s, w, p, f, f, backend='triton')\n"
        "except ValueError as e:\n"
        "    assert 'not installed' in str(e), e\n"
        "else:\n"
        "    raise SystemExit('triton backend did not refuse')\n"
        "assert 'paploss.kernels.triton_pairwise' not in sys.modules\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PAPLOSS_BACKEND": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_crossover_constant_is_sane() -> None:
    assert 1e6 <= TRITON_MAX_PAIRS <= 1e10


# ------------------------------------------------------------------------------------ GPU
@gpu
@needs_cuda
@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("case", ["odd", "ties", "far_apart", "offset_1e3", "duplicate_positives"])
def test_cuda_backend_matches_brute_force(backend, case) -> None:
    scores, weights, positives = make_case(case, torch.float32, seed=29)
    g_num, g_den = _upstream(positives.numel())
    want = brute_force(scores, weights, positives, *FUNCTION_PAIRS["published"], g_num, g_den)
    got = run_backend(
        backend,
        scores.cuda(),
        weights.cuda(),
        positives.cuda(),
        *FUNCTION_PAIRS["published"],
        g_num.cuda(),
        g_den.cuda(),
    )
    got = tuple(t.cpu() for t in got)
    _assert_matches(got, want, torch.float32, scale=50.0 if case == "offset_1e3" else 1.0)


@gpu
@needs_cuda
@pytest.mark.parametrize("backend", ["sorted", pytest.param("triton", marks=needs_triton)])
def test_cuda_larger_sizes_against_reference(backend) -> None:
    gen = torch.Generator().manual_seed(31)
    n, p = 300_001, 517
    scores = (torch.randn(n, generator=gen) * 2).cuda()
    weights = torch.rand(n, generator=gen).cuda()
    positives = torch.randperm(n, generator=gen)[:p].cuda()
    g_num, g_den = _upstream(p)
    fns = FUNCTION_PAIRS["published"]
    want = run_backend(
        "reference", scores.double(), weights.double(), positives, *fns, g_num.cuda(), g_den.cuda()
    )
    got = run_backend(backend, scores, weights, positives, *fns, g_num.cuda(), g_den.cuda())
    for g, w in zip(got, want):
        torch.testing.assert_close(g.double(), w, rtol=1e-4, atol=1e-3)


@gpu
@needs_cuda
@pytest.mark.parametrize("backend", ["sorted", pytest.param("triton", marks=needs_triton)])
def test_cuda_no_p_by_n_memory(backend) -> None:
    """N = 1e6, P = 1e4: P x N float32 would be 40 GB; both backends stay far below 1 GB."""
    n, p = 1_000_000, 10_000
    scores = torch.randn(n, device="cuda", requires_grad=True)
    weights = torch.rand(n, device="cuda", requires_grad=True)
    positives = torch.randperm(n, device="cuda")[:p]
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    num, den = pairwise_sums(
        scores, weights, positives, *FUNCTION_PAIRS["published"], backend=backend
    )
    (num.sum() + den.sum()).backward()
    torch.cuda.synchronize()
    assert torch.cuda.max_memory_allocated() - base < 1e9


@gpu
@needs_cuda
def test_cuda_auto_crossover(monkeypatch) -> None:
    monkeypatch.delenv("PAPLOSS_BACKEND", raising=False)
    small = torch.zeros(1000, device="cuda")
    big = torch.zeros(10_000_000, device="cuda")
    for scores, p in ((small, 100), (big, 2000)):
        fits = p * scores.numel() <= TRITON_MAX_PAIRS and triton_available()
        assert resolve_backend("auto", scores, p) == ("triton" if fits else "sorted")
