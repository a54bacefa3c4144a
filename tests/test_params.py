"""PiecewiseLinear and LossParams: constructors, round trips, presets, search space."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from paploss import LossParams, PiecewiseLinear
from paploss.functions import RATIO_EPS
from paploss.params import (
    GRADIENT_SCALE_MAX,
    HANDCRAFTED_EXACT,
    PRESETS,
    scale_to_theta_lambda,
    search_space_names,
    theta_lambda_to_scale,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "published_params.json"


def test_identity_is_f_x_equals_x() -> None:
    for m in (1, 3, 5, 7):
        f = PiecewiseLinear.identity(m)
        x = torch.rand(1000, dtype=torch.float64)
        assert torch.allclose(f(x), x, atol=1e-15)
        assert torch.allclose(f.xs, torch.arange(m + 1, dtype=torch.float64) / m, atol=1e-15)
        rx, ry = f.ratios()
        assert rx == pytest.approx([1.0 / (m - k + 1) for k in range(1, m)])


def test_ratio_control_point_round_trip_and_eq8() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        rx = rng.uniform(RATIO_EPS, 1 - RATIO_EPS, 4)
        ry = rng.uniform(RATIO_EPS, 1 - RATIO_EPS, 4)
        f = PiecewiseLinear.from_ratios(rx, ry)
        # Eq. (8) read directly off the control points.
        xs, ys = f.xs.numpy(), f.ys.numpy()
        for k in range(1, 5):
            assert (xs[k] - xs[k - 1]) / (1 - xs[k - 1]) == pytest.approx(rx[k - 1], rel=1e-9)
            assert (ys[k] - ys[k - 1]) / (1 - ys[k - 1]) == pytest.approx(ry[k - 1], rel=1e-9)
        back_rx, back_ry = f.ratios()
        np.testing.assert_allclose(back_rx, rx, rtol=1e-9)
        np.testing.assert_allclose(back_ry, ry, rtol=1e-9)
        g = PiecewiseLinear.from_control_points(f.xs.tolist(), f.ys.tolist())
        assert g == f


@pytest.mark.parametrize("extreme", [0.0, 1.0])
def test_random_ratios_incl_0_and_1_give_monotone_endpoint_exact_functions(extreme: float) -> None:
    rng = np.random.default_rng(1)
    for _ in range(100):
        rx = rng.uniform(0, 1, 4)
        ry = rng.uniform(0, 1, 4)
        rx[rng.integers(0, 4)] = extreme
        ry[rng.integers(0, 4)] = extreme
        f = PiecewiseLinear.from_ratios(rx, ry)
        assert f.xs[0] == 0 and f.ys[0] == 0 and f.xs[-1] == 1 and f.ys[-1] == 1
        assert bool((f.xs[1:] > f.xs[:-1]).all()), "zero-width segment"
        assert bool((f.ys[1:] >= f.ys[:-1]).all())
        assert torch.isfinite(f.slopes()).all()
        x = torch.linspace(0, 1, 1001, dtype=torch.float64)
        y = f(x)
        assert bool((y[1:] >= y[:-1] - 1e-15).all())
        assert f(torch.tensor([0.0, 1.0], dtype=torch.float64)).tolist() == [0.0, 1.0]


def test_evaluation_matches_numpy_interp_and_clamps() -> None:
    f = LossParams.preset("paper-retinanet").functions[1]
    x = torch.rand(5000, dtype=torch.float64) * 1.4 - 0.2
    expected = np.interp(x.clamp(0, 1).numpy(), f.xs.numpy(), f.ys.numpy())
    np.testing.assert_allclose(f(x).numpy(), expected, atol=1e-14)
    # any shape, any float dtype
    x3 = torch.rand(2, 3, 4)
    assert f(x3).shape == (2, 3, 4) and f(x3).dtype == torch.float32


def test_derivative_at_breakpoint_is_right_slope() -> None:
    f = PiecewiseLinear.from_control_points([0, 0.5, 1], [0, 0.1, 1])
    x = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
    f(x).sum().backward()
    assert x.grad.item() == pytest.approx(0.9 / 0.5)


INVALID_POINTS = [
    ([0, 0.5, 1], [0, 0.5], "same length"),
    ([0.1, 0.5, 1], [0, 0.5, 1], "end-point"),
    ([0, 0.5, 1], [0, 0.5, 0.9], "end-point"),
    ([0, 0.5, 0.5, 1], [0, 0.2, 0.4, 1], "strictly increasing"),
    ([0, 0.6, 0.5, 1], [0, 0.2, 0.4, 1], "strictly increasing"),
    ([0, 0.3, 0.6, 1], [0, 0.5, 0.4, 1], "non-decreasing"),
    ([0, float("nan"), 1], [0, 0.5, 1], "finite"),
    ([0, float("inf"), 1], [0, 0.5, 1], "finite"),
    ([0], [0], "at least 2"),
    ([[0, 1]], [[0, 1]], "1-D"),
]


@pytest.mark.parametrize(("xs", "ys", "match"), INVALID_POINTS)
@pytest.mark.parametrize("build", ["from_control_points", "constructor"])
def test_invalid_control_points_raise(xs: list, ys: list, match: str, build: str) -> None:
    """Both ways of building validate (PiecewiseLinear(xs, ys) did not: a repeated x made the
    loss NaN); the message is one line."""
    with pytest.raises(ValueError, match=match) as info:
        if build == "constructor":
            PiecewiseLinear(
                torch.tensor(xs, dtype=torch.float64), torch.tensor(ys, dtype=torch.float64)
            )
        else:
            PiecewiseLinear.from_control_points(xs, ys)
    assert "\n" not in str(info.value)


def test_constructor_accepts_the_narrowest_clamped_segments() -> None:
    """Ratios at the clamp give segments down to RATIO_EPS**4 = 1e-12 wide: still valid."""
    params = LossParams.from_vector([1.0, 0.0] * 20 + [1.0])
    f = params.functions[0]
    widths = f.xs[1:] - f.xs[:-1]
    assert widths.min().item() == pytest.approx(RATIO_EPS**4 * (1 - RATIO_EPS), rel=1e-3)
    assert PiecewiseLinear(f.xs, f.ys) == f
    assert PiecewiseLinear([0.0, 1e-12, 1.0], [0.0, 1.0, 1.0]).num_segments == 2


def test_invalid_ratios_raise() -> None:
    with pytest.raises(ValueError, match=r"rx ratios must lie in \[0, 1\].*1.5"):
        PiecewiseLinear.from_ratios([0.5, 1.5], [0.5, 0.5])
    with pytest.raises(ValueError, match="same length"):
        PiecewiseLinear.from_ratios([0.5], [0.5, 0.5])


def test_theta_lambda_round_trip() -> None:
    for theta in np.linspace(0, 1, 11):
        lam = theta_lambda_to_scale(theta)
        assert scale_to_theta_lambda(lam) == pytest.approx(theta, abs=1e-12)
        assert lam == pytest.approx(10 ** (2 * theta - 1))
    assert theta_lambda_to_scale(0) == pytest.approx(0.1)
    assert theta_lambda_to_scale(1) == pytest.approx(10.0)
    assert LossParams.preset("linear").theta_lambda == pytest.approx(0.5)


def test_search_space_vector_and_names() -> None:
    names = search_space_names()
    assert len(names) == 41 and names[:4] == ["f1_x1", "f1_y1", "f1_x2", "f1_y2"]
    assert names[-1] == "lambda" and len(set(names)) == 41
    space = LossParams.search_space()
    assert list(space) == names
    assert all(d.low == 0.0 and d.high == 1.0 and not d.log for d in space.values())
    rng = np.random.default_rng(2)
    vec = rng.uniform(0.01, 0.99, 41).tolist()
    params = LossParams.from_vector(vec)
    np.testing.assert_allclose(params.to_vector(), vec, rtol=1e-12)
    assert params.gradient_scale == pytest.approx(10 ** (2 * vec[-1] - 1))
    assert LossParams.from_search_params(params.to_search_params()) == params
    with pytest.raises(ValueError, match="41 entries"):
        LossParams.from_vector(vec[:-1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        LossParams.from_vector(vec[:-1] + [1.5])


def test_from_trial_uses_search_space_names() -> None:
    optuna = pytest.importorskip("optuna")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask(LossParams.search_space())
        params = LossParams.from_trial(trial)
        assert trial.params.keys() == set(search_space_names())
        # Ratios are clamped into [RATIO_EPS, 1 - RATIO_EPS]; the lambda coordinate is not.
        expected = [
            trial.params[n]
            if n == "lambda"
            else min(max(trial.params[n], RATIO_EPS), 1 - RATIO_EPS)
            for n in search_space_names()
        ]
        assert params.to_vector() == pytest.approx(expected)


def test_dict_json_file_and_config_round_trip(tmp_path: Path) -> None:
    params = LossParams.preset("paper-faster-rcnn-roi")
    data = json.loads(json.dumps(params.to_dict()))
    assert LossParams.from_dict(data) == params
    path = tmp_path / "best.json"
    params.save(path)
    assert LossParams.load(path) == params
    assert LossParams.from_config({"file": str(path)}) == params
    assert LossParams.from_config({"preset": "paper-faster-rcnn-roi"}) == params
    assert LossParams.from_config(params.to_search_params()).to_vector() == pytest.approx(
        params.to_vector()
    )
    assert LossParams.from_config(None) == LossParams.preset("linear")
    scaled = LossParams.from_config({"preset": "linear", "gradient_scale": 2.0})
    assert scaled.gradient_scale == 2.0
    with pytest.raises(ValueError, match="does not exist"):
        LossParams.from_config({"file": str(tmp_path / "missing.json")})
    with pytest.raises(ValueError, match="unknown preset"):
        LossParams.preset("cosine")
    with pytest.raises(ValueError, match="needs one of"):
        LossParams.from_config({"colour": 1})
    with pytest.raises(ValueError, match="unknown loss_params keys"):
        LossParams.from_config({"preset": "linear", "colour": 1})


def test_shared_and_with_gradient_scale() -> None:
    f = PiecewiseLinear.from_ratios([0.3, 0.4, 0.5, 0.6], [0.2, 0.2, 0.2, 0.2])
    params = LossParams.shared(f, 3.0)
    assert all(g == f for g in params.functions) and params.gradient_scale == 3.0
    assert params.with_gradient_scale(0.5).gradient_scale == 0.5
    with pytest.raises(ValueError, match="gradient_scale"):
        params.with_gradient_scale(0.0)
    with pytest.raises(ValueError, match="exactly 5"):
        LossParams([f] * 4)


@pytest.mark.parametrize(
    "bad", [1e300, 1e40, GRADIENT_SCALE_MAX * 1.001, math.inf, math.nan, 0.0, -1.0]
)
def test_gradient_scale_outside_its_range_raises(bad: float, tmp_path: Path) -> None:
    """lambda in (0, GRADIENT_SCALE_MAX]; 1e40 gave a finite loss and a NaN float32 gradient."""
    match = r"gradient_scale \(lambda\) must lie in \(0, 10000\], got .*; set it within"
    linear = LossParams.preset("linear")
    with pytest.raises(ValueError, match=match) as info:
        LossParams(linear.functions, bad)
    assert "\n" not in str(info.value) and repr(bad) in str(info.value)
    with pytest.raises(ValueError, match=match):
        LossParams.from_config({"preset": "linear", "gradient_scale": bad})
    data = {**linear.to_dict(), "gradient_scale": bad}
    path = tmp_path / "params.json"
    path.write_text(json.dumps(data))  # json writes inf/nan as Infinity/NaN and reads them back
    with pytest.raises(ValueError, match=match):
        LossParams.load(path)
    with pytest.raises(ValueError, match=match):
        LossParams.from_config({"file": str(path)})


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["f32", "f16"])
def test_largest_gradient_scale_gives_finite_gradients(dtype: torch.dtype) -> None:
    from paploss import parameterized_ap_loss

    gen = torch.Generator().manual_seed(3)
    logits = (torch.randn(60, generator=gen) * 1.5).to(dtype).requires_grad_()
    labels = (torch.rand(60, generator=gen) < 0.3).long()
    locs = (torch.rand(60, generator=gen) * 0.9 + 0.05).to(dtype).requires_grad_()
    params = LossParams.preset("paper-retinanet").with_gradient_scale(GRADIENT_SCALE_MAX)
    loss = parameterized_ap_loss(logits, labels, locs, params, backend="sorted")
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert torch.isfinite(locs.grad).all() and locs.grad.abs().max() > 0


def test_published_presets_reproduce_the_release() -> None:
    reference = json.loads(SHARED.read_text()) if SHARED.exists() else None
    if reference is None:
        pytest.skip(f"{SHARED} not present")
    for preset, key in [
        ("paper-retinanet", "retinanet_r50_fpn"),
        ("paper-faster-rcnn-rpn", "faster_rcnn_r50_fpn_rpn"),
        ("paper-faster-rcnn-roi", "faster_rcnn_r50_fpn_roi"),
    ]:
        params = LossParams.preset(preset)
        entry = reference[key]
        assert params.gradient_scale == entry["gradient_scale"]
        for f, ref in zip(params.functions, entry["functions"]):
            assert f.xs.tolist() == ref["x"] and f.ys.tolist() == ref["y"]
        # Eq. (6) order vs the release's order [f2, f3, f5, f1, f4] (see the json's 'about').
        order = [1, 2, 4, 0, 3]
        for f_index, flat in zip(order, entry["release_order"]):
            f = params.functions[f_index]
            assert flat[0::2] == f.xs.tolist() and flat[1::2] == f.ys.tolist()


@pytest.mark.parametrize("name", ["sigmoid", "sqrt", "square"])
def test_handcrafted_presets_approximate_their_functions(name: str) -> None:
    bounds = {"sqrt": 3.91e-3, "square": 6.11e-5, "sigmoid": 2.98e-4}
    params = LossParams.preset(name)
    f = params.functions[0]
    assert f.num_segments >= 32 and all(g == f for g in params.functions)
    x = torch.linspace(0, 1, 200001, dtype=torch.float64)
    exact = torch.tensor([HANDCRAFTED_EXACT[name](v) for v in x.tolist()], dtype=torch.float64)
    err = (f(x) - exact).abs().max().item()
    assert err <= bounds[name]
    assert f(torch.tensor([0.0, 1.0], dtype=torch.float64)).tolist() == [0.0, 1.0]
    if name == "sigmoid":
        # symmetric around (0.5, 0.5)
        assert f(torch.tensor([0.5], dtype=torch.float64)).item() == pytest.approx(0.5, abs=1e-12)


def test_every_preset_loads() -> None:
    for name in PRESETS:
        params = LossParams.preset(name)
        assert len(params.functions) == 5 and math.isfinite(params.gradient_scale)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (None, "must be an object"),
        ([1, 2], "must be an object"),
        ({"functions": 5}, "'functions' must be a list"),
        ({"functions": [{"x": [0, 1]}]}, "function 1 must be an object with 'x' and 'y'"),
        ({"functions": [{"x": [0, "a", 1], "y": [0, 0.5, 1]}]}, "function 1: "),
        ("linear-gradient", "must be an object"),
    ],
)
def test_from_dict_rejects_malformed_json_with_one_line(data: object, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        LossParams.from_dict(data)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_from_dict_rejects_a_non_number_gradient_scale() -> None:
    data = LossParams.preset("linear").to_dict()
    for bad in (None, "1", True):
        with pytest.raises(ValueError, match="'gradient_scale' must be a number"):
            LossParams.from_dict({**data, "gradient_scale": bad})
