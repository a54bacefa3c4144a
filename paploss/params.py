"""The parameter set Theta of the Parameterized AP Loss (paper Sec. 3.2): five piecewise-linear
functions theta_1..theta_5 in Eq. (6) order and the gradient scale lambda of the localization branch.

The search sees Theta as a vector in [0, 1]^D: for each function k = 1..5 the Eq. (8) ratios
``f{k}_x{j}``, ``f{k}_y{j}`` (j = 1..M-1), then ``lambda`` = theta_lambda = (log10(lambda) + 1) / 2,
so lambda = 10 ** (2 * theta_lambda - 1) in [0.1, 10]. With M = 5 that is 5 * 8 + 1 = 41 numbers.

Outside the search (configs, JSON files) lambda may take any value in (0, GRADIENT_SCALE_MAX].
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from paploss._params_checks import ParamsError, check_keys, count, number, numbers, short
from paploss.functions import PiecewiseLinear

NUM_FUNCTIONS = 5
FUNCTION_ROLES = (
    "f1: f(l_i; theta_1), localization score of the positive i (first term)",
    "f2: f(s_j - s_i; theta_2), ranking step in the numerator",
    "f3: f(l_j; theta_3), localization score of j in the numerator",
    "f4: f(s_j - s_i; theta_4), ranking step in the denominator (gradient blocked)",
    "f5: f(l_i; theta_5), localization score of i multiplying the fraction",
)
LAMBDA_NAME = "lambda"
DICT_FORMAT = "paploss.LossParams/1"

GRADIENT_SCALE_MAX = 1e4
"""Upper end of the valid range (0, GRADIENT_SCALE_MAX] of lambda: 1000 times the search's largest
value (10). lambda multiplies the localization gradient, which the loss computes in float32 or
float64 and hands back in the input's dtype; a lambda of 1e40 is inf in float32 and turned that
gradient into NaN. Up to 1e4 the scaled gradient stays finite in float32 for any unscaled gradient
below 3e34, and in float16 (max 65504) for the O(1) unscaled gradients of ordinary functions."""

HANDCRAFTED_SEGMENTS = 64
SIGMOID_TEMPERATURE = 0.1
"""The "sigmoid" preset is g(x) = logistic((x - 0.5) / SIGMOID_TEMPERATURE) rescaled to
(g(x) - g(0)) / (g(1) - g(0)) so that it passes through (0, 0) and (1, 1). In score-difference
units (x = (d + 1) / 2) that is logistic(d / 0.2)."""

_PUBLISHED = {
    "paper-retinanet": "retinanet_r50_fpn",
    "paper-faster-rcnn-rpn": "faster_rcnn_r50_fpn_rpn",
    "paper-faster-rcnn-roi": "faster_rcnn_r50_fpn_roi",
}
PRESETS = ("linear", *_PUBLISHED, "sigmoid", "sqrt", "square")
DICT_KEYS = ("format", "functions", "gradient_scale")
"""The keys of a ``to_dict()`` dict (a params JSON file); ``format`` is optional."""
FUNCTION_KEYS = ("x", "y")


def theta_lambda_to_scale(theta_lambda: float) -> float:
    """lambda = 10 ** (2 * theta_lambda - 1) (paper Sec. 3.2)."""
    return 10.0 ** (2.0 * float(theta_lambda) - 1.0)


def scale_to_theta_lambda(gradient_scale: float) -> float:
    """theta_lambda = (log10(lambda) + 1) / 2."""
    return (math.log10(float(gradient_scale)) + 1.0) / 2.0


def _handcrafted(name: str) -> PiecewiseLinear:
    m = HANDCRAFTED_SEGMENTS
    if name == "sqrt":
        # Knots (k/M)^2 put the knot values of sqrt on a uniform grid, following its steep start.
        knots = [(k / m) ** 2 for k in range(m + 1)]
        return PiecewiseLinear.from_callable(math.sqrt, knots)
    knots = [k / m for k in range(m + 1)]
    if name == "square":
        return PiecewiseLinear.from_callable(lambda x: x * x, knots)
    if name == "sigmoid":
        return PiecewiseLinear.from_callable(_rescaled_sigmoid, knots)
    raise ValueError(f"unknown hand-crafted function {name!r}")


def _rescaled_sigmoid(x: float) -> float:
    def g(v: float) -> float:
        return 1.0 / (1.0 + math.exp(-(v - 0.5) / SIGMOID_TEMPERATURE))

    return (g(x) - g(0.0)) / (g(1.0) - g(0.0))


HANDCRAFTED_EXACT = {"sqrt": math.sqrt, "square": lambda x: x * x, "sigmoid": _rescaled_sigmoid}
"""The exact functions behind the hand-crafted presets. Max |pl(x) - exact(x)| over [0, 1] of the
64-segment approximations, measured on a 200001-point grid (tests/test_params.py checks these
bounds): sqrt 3.91e-3 (in its first segment, where the slope is unbounded), square 6.11e-5,
sigmoid 2.98e-4."""


def published_params() -> dict[str, Any]:
    """The searched parameters published with the authors' code release (package data)."""
    text = resources.files("paploss").joinpath("data/published_params.json").read_text()
    return json.loads(text)


class LossParams:
    """Theta = (theta_1..theta_5, theta_lambda).

    Attributes:
        functions: five PiecewiseLinear in Eq. (6) order (see FUNCTION_ROLES).
        gradient_scale: lambda in (0, GRADIENT_SCALE_MAX], the gradient scale of the localization
            branch (the search covers [0.1, 10]).
    """

    def __init__(self, functions: Sequence[PiecewiseLinear], gradient_scale: float = 1.0) -> None:
        functions = tuple(functions)
        if len(functions) != NUM_FUNCTIONS:
            raise ValueError(f"need exactly 5 functions (Eq. (6)), got {len(functions)}")
        if not all(isinstance(f, PiecewiseLinear) for f in functions):
            raise ValueError(
                f"functions must be PiecewiseLinear, got {[type(f) for f in functions]}"
            )
        gradient_scale = float(gradient_scale)
        if not 0.0 < gradient_scale <= GRADIENT_SCALE_MAX:  # False for NaN as well
            raise ValueError(
                f"gradient_scale (lambda) must lie in (0, {GRADIENT_SCALE_MAX:g}], got "
                f"{gradient_scale!r}; set it within that range (the search covers [0.1, 10])"
            )
        self.functions: tuple[PiecewiseLinear, ...] = functions
        self.gradient_scale = gradient_scale

    # --------------------------------------------------------------------------- constructors
    @classmethod
    def shared(cls, function: PiecewiseLinear, gradient_scale: float = 1.0) -> LossParams:
        """One theta for all five functions (paper Tab. 3)."""
        return cls([function] * NUM_FUNCTIONS, gradient_scale)

    @classmethod
    def preset(cls, name: str, num_segments: int | None = None) -> LossParams:
        """Named parameter sets; see PRESETS.

        - "linear": f(x) = x for all five (the search's initialization), lambda = 1.
        - "paper-retinanet", "paper-faster-rcnn-rpn", "paper-faster-rcnn-roi": the searched
          parameters published with the authors' code release (Tao et al., NeurIPS 2021,
          repository fundamentalvision/Parameterized-AP-Loss), shipped as package data.
        - "sigmoid", "sqrt", "square": the hand-crafted substitutions of Tab. 2, one function for
          all five roles, as 64-segment approximations (errors in HANDCRAFTED_EXACT), lambda = 1.

        ``num_segments`` (default 5) applies to "linear" only; the other presets have their own.
        """
        if not isinstance(name, str):
            raise ParamsError(f"a preset is named by a string, got {short(name)}")
        if name == "linear":
            m = 5 if num_segments is None else count(num_segments, "'num_segments'")
            return cls.shared(PiecewiseLinear.identity(m))
        if num_segments is not None and name in PRESETS:
            raise ParamsError(
                f"'num_segments' applies to the preset 'linear' only; the preset {name!r} has "
                "its own segments: remove 'num_segments'"
            )
        if name in _PUBLISHED:
            entry = published_params()[_PUBLISHED[name]]
            return cls(
                [PiecewiseLinear.from_control_points(f["x"], f["y"]) for f in entry["functions"]],
                entry["gradient_scale"],
            )
        if name in HANDCRAFTED_EXACT:
            return cls.shared(_handcrafted(name))
        raise ParamsError(f"unknown preset {name!r}; choose one of {PRESETS}")

    @classmethod
    def from_search_params(cls, values: Mapping[str, float], num_segments: int = 5) -> LossParams:
        """From a flat dict of search-space values (e.g. ``trial.params``, ``study.best_params``)."""
        names = search_space_names(num_segments)
        missing = [n for n in names if n not in values]
        if missing:
            raise ParamsError(f"search parameters are missing {missing}")
        return cls.from_vector([number(values[n], repr(n)) for n in names], num_segments)

    @classmethod
    def from_trial(cls, trial: Any, num_segments: int = 5) -> LossParams:
        """Suggest every search-space parameter from an Optuna trial and build Theta."""
        return cls.from_search_params(
            {n: trial.suggest_float(n, 0.0, 1.0) for n in search_space_names(num_segments)},
            num_segments,
        )

    @classmethod
    def from_vector(cls, vector: Sequence[float], num_segments: int = 5) -> LossParams:
        """Inverse of to_vector: ratios of each function (x_j, y_j interleaved), then theta_lambda."""
        values = [float(v) for v in vector]
        expected = search_space_size(num_segments)
        if len(values) != expected:
            raise ValueError(
                f"vector must have {expected} entries for M={num_segments}, got {len(values)}"
            )
        bad = [v for v in values if not (math.isfinite(v) and 0.0 <= v <= 1.0)]
        if bad:
            raise ValueError(f"search-space values must lie in [0, 1], got {bad}")
        per = 2 * (num_segments - 1)
        functions = []
        for k in range(NUM_FUNCTIONS):
            chunk = values[k * per : (k + 1) * per]
            functions.append(PiecewiseLinear.from_ratios(chunk[0::2], chunk[1::2]))
        return cls(functions, theta_lambda_to_scale(values[-1]))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LossParams:
        """Inverse of to_dict (control points + gradient scale), read strictly: keys other than
        DICT_KEYS (or 'x', 'y' in a function), values that are not numbers (strings, bools,
        integers too large for a float) and an unknown 'format' are a one-line
        :class:`ParamsError` naming the problem (as is a JSON file holding null or numbers)."""
        shape = "{'functions': [{'x': [...], 'y': [...]}, ...], 'gradient_scale': number}"
        if not isinstance(data, Mapping):
            raise ParamsError(f"loss params must be an object {shape}, got {short(data)}")
        if "functions" not in data:
            raise ParamsError(f"a LossParams dict needs 'functions', got keys {sorted(data)}")
        check_keys(data, DICT_KEYS, "LossParams dict")
        if "format" in data and data["format"] != DICT_FORMAT:
            raise ParamsError(
                f"'format' must be {DICT_FORMAT!r} (or absent), got {short(data['format'])}"
            )
        entries = data["functions"]
        if not isinstance(entries, (list, tuple)):
            raise ParamsError(
                f"'functions' must be a list of {{'x', 'y'}} objects, got {short(entries)}"
            )
        functions = []
        for k, entry in enumerate(entries, start=1):
            if not isinstance(entry, Mapping) or "x" not in entry or "y" not in entry:
                raise ParamsError(
                    f"function {k} must be an object with 'x' and 'y' control points, got "
                    f"{short(entry)}"
                )
            check_keys(entry, FUNCTION_KEYS, f"function {k}")
            xs = numbers(entry["x"], f"function {k}: 'x'")
            ys = numbers(entry["y"], f"function {k}: 'y'")
            try:
                functions.append(PiecewiseLinear.from_control_points(xs, ys))
            except ValueError as exc:
                raise ParamsError(f"function {k}: {str(exc).splitlines()[0]}") from exc
        return cls(functions, number(data.get("gradient_scale", 1.0), "'gradient_scale'"))

    @classmethod
    def load(cls, path: str | Path) -> LossParams:
        """Read a JSON file written by ``save`` (or by ``studies/train.py --export``)."""
        path = Path(path)
        if not path.is_file():
            raise ParamsError(f"loss params file {str(path)!r} does not exist")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:  # JSONDecodeError, UnicodeDecodeError, digit limit
            raise ParamsError(
                f"cannot read loss params file {str(path)!r}: {' '.join(str(exc).split())}"
            ) from exc
        return cls.from_dict(data)

    @classmethod
    def from_config(cls, cfg: LossParams | Mapping[str, Any] | str | None) -> LossParams:
        """From a config value: None (linear), a preset name, ``dict(preset=...)`` (with
        ``num_segments`` for 'linear'), ``dict(file=...)``, a ``to_dict()`` dict, a flat
        search-space dict (``f1_x1``, ..., ``lambda``, optionally ``num_segments``), or a
        LossParams; every dict form takes an optional ``gradient_scale``.

        Read as strictly as :meth:`from_dict`: a key the form does not take (e.g. a misspelled
        ``gradient_scal``) or a value of the wrong type (``gradient_scale: "3"``,
        ``num_segments: 1.9``) is a one-line :class:`ParamsError`."""
        if cfg is None:
            return cls.preset("linear")
        if isinstance(cfg, LossParams):
            return cfg
        if isinstance(cfg, str):
            return cls.preset(cfg)
        if not isinstance(cfg, Mapping):
            raise ParamsError(
                f"loss_params must be a dict, a preset name or LossParams, got {short(cfg)}"
            )
        cfg = dict(cfg)
        forms = [k for k in ("preset", "file", "functions", LAMBDA_NAME) if k in cfg]
        if len(forms) != 1:
            given = f"both {forms[0]!r} and {forms[1]!r}" if forms else f"keys {sorted(cfg)}"
            raise ParamsError(
                "loss_params needs one of 'preset', 'file', 'functions' or the search-space "
                f"values ('f1_x1', ..., 'lambda'), not several; got {given}"
            )
        if forms == ["functions"]:
            return cls.from_dict(cfg)
        scale = cfg.get("gradient_scale")
        if forms == ["preset"]:
            check_keys(cfg, ("preset", "num_segments", "gradient_scale"), "loss_params")
            params = cls.preset(cfg["preset"], cfg.get("num_segments"))
        elif forms == ["file"]:
            check_keys(cfg, ("file", "gradient_scale"), "loss_params")
            if not isinstance(cfg["file"], (str, os.PathLike)):
                raise ParamsError(f"'file' must be a path, got {short(cfg['file'])}")
            params = cls.load(cfg["file"])
        else:
            m = count(cfg.get("num_segments", 5), "'num_segments'")
            names = search_space_names(m)
            check_keys(
                cfg,
                (*names, "num_segments", "gradient_scale"),
                "loss_params",
                f"the search-space values f1_x1, ..., lambda of M={m} segments, "
                "'num_segments', 'gradient_scale'",
            )
            params = cls.from_search_params(cfg, m)
        if scale is None:
            return params
        return params.with_gradient_scale(number(scale, "'gradient_scale'"))

    # --------------------------------------------------------------------------- views
    @property
    def num_segments(self) -> int:
        counts = {f.num_segments for f in self.functions}
        if len(counts) != 1:
            raise ValueError(f"functions have different numbers of segments {sorted(counts)}")
        return counts.pop()

    @property
    def theta_lambda(self) -> float:
        return scale_to_theta_lambda(self.gradient_scale)

    def with_gradient_scale(self, gradient_scale: float) -> LossParams:
        return LossParams(self.functions, gradient_scale)

    def to_vector(self) -> list[float]:
        """[0, 1]^D in search-space order (see search_space_names); theta_lambda clipped to [0, 1]."""
        values: list[float] = []
        for f in self.functions:
            rx, ry = f.ratios()
            for x, y in zip(rx, ry):
                values.extend((x, y))
        values.append(min(max(self.theta_lambda, 0.0), 1.0))
        return values

    def to_search_params(self) -> dict[str, float]:
        """Flat dict name -> value, e.g. for ``study.enqueue_trial``."""
        return dict(zip(search_space_names(self.num_segments), self.to_vector()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": DICT_FORMAT,
            "functions": [f.to_dict() for f in self.functions],
            "gradient_scale": self.gradient_scale,
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @staticmethod
    def search_space(num_segments: int = 5) -> dict[str, Any]:
        """Optuna FloatDistribution(0, 1) per search-space name (see search_space_names)."""
        return search_space(num_segments)

    def __repr__(self) -> str:
        return f"LossParams({list(self.functions)}, gradient_scale={self.gradient_scale:.4g})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LossParams):
            return NotImplemented
        return self.functions == other.functions and self.gradient_scale == other.gradient_scale

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict()))


def search_space_names(num_segments: int = 5) -> list[str]:
    """Stable parameter names: f{k}_x{j}, f{k}_y{j} for k = 1..5, j = 1..M-1, then 'lambda'."""
    if num_segments < 1:
        raise ValueError(f"num_segments must be >= 1, got {num_segments}")
    names = []
    for k in range(1, NUM_FUNCTIONS + 1):
        for j in range(1, num_segments):
            names.extend((f"f{k}_x{j}", f"f{k}_y{j}"))
    names.append(LAMBDA_NAME)
    return names


def search_space_size(num_segments: int = 5) -> int:
    return NUM_FUNCTIONS * 2 * (num_segments - 1) + 1


def search_space(num_segments: int = 5) -> dict[str, Any]:
    """Optuna FloatDistribution(0, 1) for every search-space name."""
    from optuna.distributions import FloatDistribution

    return {name: FloatDistribution(0.0, 1.0) for name in search_space_names(num_segments)}
