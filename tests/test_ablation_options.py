"""Search-space options and loss variants of the paper's ablations (Tab. 2-7), and the closed-form
hand-crafted substitutions of Tab. 2, checked against independent computations."""

from __future__ import annotations

import math

import pytest
import torch

from paploss import LossParams
from paploss.kernels.reference import pairwise_sums_of_differences
from paploss.loss import ParameterizedAPLoss, parameterized_ap_loss
from paploss.params import search_space_names, theta_lambda_to_scale
from paploss.study import parsers
from paploss.study.config.space import LossVariant, SearchSpace, SpaceOptions, make_slots
from paploss.study.search.setup import loss_variant, space_options, study_settings
from paploss.substitutions import SUBSTITUTIONS, substitution


# ------------------------------------------------------------------------------ space options
def test_default_options_are_the_papers_space() -> None:
    space = SearchSpace(make_slots(["model.bbox_head"]))
    assert space.options.is_default and space.names() == search_space_names(5)
    assert len(space.names()) == 41


@pytest.mark.parametrize("m", [1, 3, 7])
def test_segments_change_the_dimension_and_keep_the_identity_init(m: int) -> None:
    space = SearchSpace(make_slots(["model.bbox_head"]), SpaceOptions(num_segments=m))
    assert len(space.names()) == 5 * 2 * (m - 1) + 1
    params = space.from_params(space.init_mean())[""]
    assert params.num_segments == m and params.gradient_scale == pytest.approx(1.0)
    x = torch.linspace(0, 1, 11, dtype=torch.float64)
    for f in params.functions:
        assert torch.allclose(f(x), x)


def test_shared_params_use_one_function_for_all_five_roles() -> None:
    space = SearchSpace(make_slots(["model.bbox_head"]), SpaceOptions(shared=True))
    assert space.names() == [
        "f_x1",
        "f_y1",
        "f_x2",
        "f_y2",
        "f_x3",
        "f_y3",
        "f_x4",
        "f_y4",
        "lambda",
    ]
    values = {n: 0.3 + 0.05 * k for k, n in enumerate(space.names())}
    params = space.from_params(values)[""]
    assert all(f == params.functions[0] for f in params.functions)
    # independent: Eq. (8) ratios -> control points of the shared function
    xs, prev = [0.0], 0.0
    for j in range(1, 5):
        prev = values[f"f_x{j}"] * (1 - prev) + prev
        xs.append(prev)
    assert params.functions[0].xs.tolist()[:5] == pytest.approx(xs)
    assert params.gradient_scale == pytest.approx(10 ** (2 * values["lambda"] - 1))


def test_fixed_lambda_is_not_searched() -> None:
    space = SearchSpace(make_slots(["model.bbox_head"]), SpaceOptions(fixed_lambda=1.0))
    assert "lambda" not in space.names() and len(space.names()) == 40
    values = dict.fromkeys(space.names(), 0.5)
    params = space.from_params(values)[""]
    assert params.gradient_scale == 1.0
    full = LossParams.from_search_params({**values, "lambda": 0.9})
    assert params.functions == full.functions


def test_two_heads_with_shared_fixed_options_are_prefixed() -> None:
    slots = make_slots(["model.rpn_head", "model.roi_head.bbox_head"])
    space = SearchSpace(slots, SpaceOptions(num_segments=3, shared=True, fixed_lambda=2.0))
    assert space.names() == [f"{s}/f_{a}{j}" for s in ("rpn", "roi") for j in (1, 2) for a in "xy"]
    params = space.from_params(space.init_mean())
    assert set(params) == {"rpn", "roi"} and params["rpn"].gradient_scale == 2.0


@pytest.mark.parametrize(
    "kwargs", [dict(num_segments=0), dict(num_segments=17), dict(fixed_lambda=0.0),
               dict(fixed_lambda=2e4), dict(fixed_lambda=math.nan)]
)  # fmt: skip
def test_invalid_options_are_value_errors(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SpaceOptions(**kwargs)


def test_options_json_round_trip() -> None:
    options = SpaceOptions(num_segments=7, shared=True, fixed_lambda=1.0)
    assert SpaceOptions.from_json(options.to_json()) == options
    assert SpaceOptions.from_json(None) == SpaceOptions()


def test_loss_variant_loss_options() -> None:
    assert LossVariant().loss_options() == {}
    assert LossVariant(loc_score="l1", block_grad=False, substitution="sigmoid").loss_options() == {
        "loc_score": "l1",
        "block_denominator_grad": False,
        "substitution": "sigmoid",
    }


def test_settings_record_only_non_default_options() -> None:
    args = parsers.parse_search([])
    space = SearchSpace(make_slots(["model.bbox_head"]), space_options(args))
    base = study_settings(args, config_sha="x", data_identity={}, space=space).to_json()
    assert "space_options" not in base and "loss_options" not in base
    args = parsers.parse_search(
        ["--segments", "3", "--shared-params", "--fixed-lambda", "--loc-score", "iou",
         "--no-block-grad"]
    )  # fmt: skip
    space = SearchSpace(make_slots(["model.bbox_head"]), space_options(args))
    other = study_settings(args, config_sha="x", data_identity={}, space=space).to_json()
    assert other["space_options"] == {"num_segments": 3, "shared": True, "fixed_lambda": 1.0}
    assert other["loss_options"] == loss_variant(args).loss_options()
    assert other["loss_options"] == {"loc_score": "iou", "block_denominator_grad": False}


# ------------------------------------------------------------------------------ closed forms
def _brute_force(name: str, logits: list[float], labels: list[int], locs: list[float]) -> float:
    """Eq. (6) with the release's definitions, one pair at a time in float64 Python."""

    def x(d: float) -> float:
        return min(max(d / 2 + 0.5, 0.0), 1.0)

    rank = {
        "sigmoid": lambda d: 1 / (1 + math.exp(-d)),
        "linear": x,
        "square": lambda d: x(d) ** 2,
        "sqrt": lambda d: math.sqrt(x(d)),
    }[name]
    loc = {
        "sigmoid": lambda v: 1 / (1 + math.exp(-(2 * v - 1))),
        "linear": lambda v: v,
        "square": lambda v: v * v,
        "sqrt": math.sqrt,
    }[name]
    n = len(logits)
    lv = [locs[i] if labels[i] == 1 else 0.0 for i in range(n)]
    pos = [i for i in range(n) if labels[i] == 1]
    total = 0.0
    for i in pos:
        num = sum(rank(logits[j] - logits[i]) * (1 - loc(lv[j])) for j in range(n) if j != i)
        den = sum(rank(logits[j] - logits[i]) for j in range(n) if j != i)
        total += loc(lv[i]) - num / (1 + den) * loc(lv[i])
    return -total / len(pos)


@pytest.mark.parametrize("name", SUBSTITUTIONS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_closed_form_substitutions_match_a_brute_force(name: str, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(3)
    logits = (torch.randn(120, generator=g, dtype=torch.float64) * 2).to(dtype)
    labels = (torch.rand(120, generator=g) < 0.15).long()
    labels[0], labels[1] = 1, -1
    locs = torch.rand(120, generator=g, dtype=torch.float64).to(dtype)
    got = parameterized_ap_loss(
        logits, labels, locs, LossParams.preset("linear"), substitution=name
    )
    keep = labels >= 0
    want = _brute_force(
        name, logits[keep].double().tolist(), labels[keep].tolist(), locs[keep].double().tolist()
    )
    assert got.item() == pytest.approx(want, rel=1e-4 if dtype == torch.float32 else 1e-10)


def test_linear_substitution_equals_the_identity_pwl() -> None:
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(80, generator=g, dtype=torch.float64)
    labels = (torch.rand(80, generator=g) < 0.2).long()
    labels[0] = 1
    locs = torch.rand(80, generator=g, dtype=torch.float64)
    params = LossParams.preset("linear")
    closed = parameterized_ap_loss(logits, labels, locs, params, substitution="linear")
    assert closed.item() == pytest.approx(
        parameterized_ap_loss(logits, labels, locs, params).item()
    )


@pytest.mark.parametrize("name", SUBSTITUTIONS)
@pytest.mark.parametrize("den_grad", [True, False])
def test_difference_sums_gradients(name: str, den_grad: bool) -> None:
    g = torch.Generator().manual_seed(5)
    s = (torch.randn(25, generator=g, dtype=torch.float64) * 1.5).requires_grad_()
    w = torch.rand(25, generator=g, dtype=torch.float64).requires_grad_()
    positives = torch.tensor([0, 4, 9, 20])
    rank = substitution(name).rank

    def sums(s: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, ...]:
        num, den = pairwise_sums_of_differences(
            s, w, positives, rank, den_grad=den_grad, chunk_elements=40
        )
        return (num, den) if den_grad else (num,)

    assert torch.autograd.gradcheck(sums, (s, w))


def test_substitution_gradients_are_finite_at_the_clamp_and_zero_locs() -> None:
    logits = torch.tensor([0.0, 1.0, -1.0, 3.0, -3.0], dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([1, 1, 0, 0, 1])
    locs = torch.tensor([0.0, 1.0, 0.5, 0.2, 0.7], dtype=torch.float64, requires_grad=True)
    for name in SUBSTITUTIONS:
        loss = parameterized_ap_loss(
            logits, labels, locs, LossParams.preset("linear"), substitution=name
        )
        gl, gs = torch.autograd.grad(loss, (logits, locs))
        assert torch.isfinite(gl).all() and torch.isfinite(gs).all(), name


def test_substitution_keeps_lambda_and_rejects_pwl_backends() -> None:
    logits = torch.randn(30, dtype=torch.float64)
    labels = torch.zeros(30, dtype=torch.long)
    labels[:4] = 1
    locs = torch.rand(30, dtype=torch.float64, requires_grad=True)
    grads = []
    for scale in (1.0, 3.0):
        params = LossParams.preset("linear").with_gradient_scale(scale)
        loss = parameterized_ap_loss(logits, labels, locs, params, substitution="square")
        grads.append(torch.autograd.grad(loss, locs)[0])
    assert torch.allclose(grads[1], 3.0 * grads[0])
    for backend in ("sorted", "triton"):
        with pytest.raises(ValueError, match="evaluates piecewise-linear functions only"):
            ParameterizedAPLoss(substitution="sigmoid", backend=backend)
    with pytest.raises(ValueError, match="unknown substitution"):
        ParameterizedAPLoss(substitution="tanh")


def test_theta_lambda_scale_unchanged() -> None:  # the fixed-lambda map relies on it
    assert theta_lambda_to_scale(0.5) == pytest.approx(1.0)


# ------------------------------------------------------------------------------ command lines
COMMANDS = {
    "search": "paploss.study.search.command",
    "train": "paploss.study.train",
    "split": "paploss.study.split",
}
"""The module of each command's ``main``."""


def _main(module: str, argv: list[str], capsys) -> tuple[int, str]:
    import importlib

    try:
        code = importlib.import_module(COMMANDS[module]).main(argv)
    except SystemExit as exc:  # argparse errors
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--segments", "0"], "must be an integer >= 1"),
        (["--segments", "17"], "number of segments must be an integer in [1, 16]"),
        (["--fixed-lambda", "0"], "must be a finite number > 0"),
        (["--fixed-lambda", "1e5"], "must be a number in (0, 10000]"),
        (["--loc-score", "dice"], "invalid choice: 'dice'"),
    ],
)
def test_search_ablation_flags_reject_bad_values(tmp_path, capsys, argv, message) -> None:
    db = tmp_path / "s.db"
    code, err = _main("search", ["--storage", f"sqlite:///{db}", *argv], capsys)
    assert code == 2 and message in err and not db.exists()
    assert [line for line in err.splitlines() if line.startswith(("error", "paploss-search"))]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--substitution", "sigmoid", "--preset", "linear"], "replaces the loss functions"),
        (["--substitution", "tanh"], "invalid choice: 'tanh'"),
        (["--fixed-lambda", "-1"], "must be a finite number > 0"),
        (["--fixed-lambda", "2"], "--fixed-lambda needs params"),
        (["--config", "studies/configs/proxy_retinanet_focal_giou.py", "--loc-score", "iou"],
         "--loc-score cannot apply"),
        (["--config", "studies/configs/proxy_retinanet_focal_giou.py", "--substitution", "sqrt"],
         "--substitution cannot apply"),
    ],
)  # fmt: skip
def test_train_ablation_flags_reject_bad_values(tmp_path, capsys, argv, message) -> None:
    work = tmp_path / "w"
    code, err = _main("train", ["--work-dir", str(work), *argv], capsys)
    assert code == 2 and message in err, err
    assert not work.exists()


def test_train_reads_the_space_and_loss_options_of_a_study(tmp_path) -> None:
    import optuna

    from paploss.study import keys
    from paploss.study.train_params import params_from_study

    url = f"sqlite:///{tmp_path / 's.db'}"
    options = SpaceOptions(num_segments=3, shared=True, fixed_lambda=2.0)
    study = optuna.create_study(study_name="ablation", storage=url, direction="maximize")
    study.set_user_attr(keys.SPACE_OPTIONS, options.to_json())
    study.set_user_attr(keys.LOSS_OPTIONS, {"loc_score": "l1"})
    space = SearchSpace(make_slots(["model.bbox_head"]), options)
    values = {n: 0.25 for n in space.names()}
    study.add_trial(
        optuna.trial.create_trial(params=values, distributions=space.distributions(), value=0.3)
    )
    default_space = SearchSpace(make_slots(["model.bbox_head"]))
    params, trial, loss_options = params_from_study(url, "ablation", None, default_space)
    assert trial.number == 0 and loss_options == {"loc_score": "l1"}
    assert params[""] == space.from_params(values)[""]
    assert params[""].num_segments == 3 and params[""].gradient_scale == 2.0
