"""The search space of a study: one LossParams per loss head of the detector config.

A RetinaNet or Deformable DETR config has one head trained by the Parameterized AP Loss, so the
search space is ``LossParams.search_space()`` with its plain names (``f1_x1`` .. ``f5_y4``,
``lambda``). A Faster R-CNN searches "the losses for both the RPN and R-CNN heads simultaneously"
(paper Sec. 4): two sets, each name prefixed by its slot (``rpn/f1_x1`` .. ``rpn/lambda``,
``roi/f1_x1`` .. ``roi/lambda``), sampled jointly as one vector.

:class:`SpaceOptions` varies the space for the paper's ablations: the number of segments M
(Tab. 6), one shared function for all five roles (Tab. 3: names ``f_x1`` .. ``f_y{M-1}``), and a
fixed gradient scale lambda instead of a searched one (Tab. 4: no ``lambda`` parameter).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from paploss.functions import PiecewiseLinear
from paploss.params import (
    GRADIENT_SCALE_MAX,
    LAMBDA_NAME,
    LossParams,
    search_space_names,
    theta_lambda_to_scale,
)

SLOT_SEPARATOR = "/"
MAX_SEGMENTS = 16
"""Largest M the search accepts (the paper's Tab. 6 goes to 7; each extra segment adds 2 x 5
dimensions)."""


@dataclass(frozen=True)
class SpaceOptions:
    """How Theta is searched (the defaults are the paper's main setting).

    Attributes:
        num_segments: M of every piecewise-linear function (paper: 5; Tab. 6 compares 3, 5, 7).
        shared: one function for all five roles of Eq. (6) (Tab. 3's "shared").
        fixed_lambda: a gradient scale that is not searched (Tab. 4's "w/o" is 1.0); None: lambda
            is searched in [0.1, 10].
    """

    num_segments: int = 5
    shared: bool = False
    fixed_lambda: float | None = None

    def __post_init__(self) -> None:
        m = self.num_segments
        if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= MAX_SEGMENTS:
            raise ValueError(
                f"the number of segments must be an integer in [1, {MAX_SEGMENTS}], got {m!r}"
            )
        lam = self.fixed_lambda
        if lam is not None and not (
            isinstance(lam, (int, float))
            and not isinstance(lam, bool)
            and math.isfinite(lam)
            and 0.0 < lam <= GRADIENT_SCALE_MAX
        ):
            raise ValueError(
                f"a fixed lambda must be a number in (0, {GRADIENT_SCALE_MAX:g}], got {lam!r}"
            )

    @property
    def is_default(self) -> bool:
        return self == SpaceOptions()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> SpaceOptions:
        """Inverse of to_json; None (a study without the record) is the default space."""
        if data is None:
            return cls()
        lam = data.get("fixed_lambda")
        return cls(
            num_segments=int(data.get("num_segments", 5)),
            shared=bool(data.get("shared", False)),
            fixed_lambda=None if lam is None else float(lam),
        )

    def describe(self) -> str:
        """e.g. "M=5, separate functions, lambda searched"."""
        lam = "lambda searched" if self.fixed_lambda is None else f"lambda={self.fixed_lambda:g}"
        shape = "one shared function" if self.shared else "separate functions"
        return f"M={self.num_segments}, {shape}, {lam}"

    def names(self) -> list[str]:
        """Parameter names of one slot in this space."""
        m = self.num_segments
        if self.shared:
            names = [f"f_{a}{j}" for j in range(1, m) for a in ("x", "y")]
            names.append(LAMBDA_NAME)
        else:
            names = search_space_names(m)
        if self.fixed_lambda is not None:
            names.remove(LAMBDA_NAME)
        return names

    def params_from(self, values: Mapping[str, float]) -> LossParams:
        """One slot's LossParams from its (unprefixed) search values."""
        missing = [n for n in self.names() if n not in values]
        if missing:
            raise ValueError(f"search parameters are missing {missing[:4]}")
        if not self.shared and self.fixed_lambda is None:
            return LossParams.from_search_params(values, self.num_segments)
        if self.shared:
            m = self.num_segments
            function = PiecewiseLinear.from_ratios(
                [float(values[f"f_x{j}"]) for j in range(1, m)],
                [float(values[f"f_y{j}"]) for j in range(1, m)],
            )
            functions = [function] * 5
        else:
            vector = [float(values[n]) for n in self.names()]
            functions = list(LossParams.from_vector([*vector, 0.5], self.num_segments).functions)
        if self.fixed_lambda is not None:
            scale = self.fixed_lambda
        else:
            scale = theta_lambda_to_scale(float(values[LAMBDA_NAME]))
        return LossParams(functions, scale)

    def init_values(self) -> dict[str, float]:
        """The search's initialization (paper Sec. 4.1): f(x) = x, lambda = 1."""
        linear = LossParams.preset("linear", self.num_segments).to_search_params()
        if self.shared:
            linear = {n.replace("f1_", "f_"): v for n, v in linear.items() if n.startswith("f1_")}
            linear[LAMBDA_NAME] = LossParams.preset("linear").to_search_params()[LAMBDA_NAME]
        return {n: linear[n] for n in self.names()}


@dataclass(frozen=True)
class LossVariant:
    """Loss options set on every PAPLoss head of a config (they merge into its ``loss_cls``).

    Attributes:
        loc_score: localization score kind ("giou", "iou", "l1"; paper Tab. 5); None keeps the
            config's.
        block_grad: block the gradient of the denominator f4 (paper default; Tab. 7 turns it off).
        substitution: a closed-form hand-crafted substitution (paper Tab. 2, see
            paploss.substitutions) instead of the piecewise-linear functions; None: the params'.
    """

    loc_score: str | None = None
    block_grad: bool = True
    substitution: str | None = None

    def loss_options(self) -> dict[str, Any]:
        """The ``loss_options`` entries that differ from the defaults ({} for the default)."""
        options: dict[str, Any] = {}
        if self.loc_score is not None:
            options["loc_score"] = self.loc_score
        if not self.block_grad:
            options["block_denominator_grad"] = False
        if self.substitution is not None:
            options["substitution"] = self.substitution
        return options

    def describe(self) -> str:
        parts = [f"loc score {self.loc_score or 'of the config'}"]
        parts.append("denominator gradient " + ("blocked" if self.block_grad else "NOT blocked"))
        if self.substitution:
            parts.append(f"closed-form {self.substitution} substitution")
        return ", ".join(parts)


@dataclass(frozen=True)
class LossSlot:
    """One loss head of a config (its ``loss_cls`` is a ``ParameterizedAPLoss``).

    Attributes:
        name: short name used as the prefix of its search parameters ("" for a single slot).
        key: dotted config key of the head, e.g. ``model.roi_head.bbox_head``.
    """

    name: str
    key: str

    @property
    def prefix(self) -> str:
        """``"<name>/"``, or ``""`` for the unnamed single slot."""
        return f"{self.name}{SLOT_SEPARATOR}" if self.name else ""

    @property
    def label(self) -> str:
        """Human-readable name: the slot name, or the head key for the single slot."""
        return self.name or self.key.rsplit(".", 1)[-1]


class SearchSpace:
    """The joint search space of all loss slots of a config.

    Args:
        slots: the loss slots, in config order; a single slot must have the name "".
        options: M, shared functions, fixed lambda (see SpaceOptions); default: the paper's.
    """

    def __init__(self, slots: list[LossSlot], options: SpaceOptions | None = None) -> None:
        if not slots:
            raise ValueError("a search space needs at least one loss slot")
        names = [s.name for s in slots]
        if len(slots) == 1 and names[0]:
            raise ValueError(f"a single loss slot has no name, got {names[0]!r}")
        if len(slots) > 1 and (len(set(names)) != len(names) or "" in names):
            raise ValueError(f"loss slots need distinct non-empty names, got {names}")
        self.slots = list(slots)
        self.options = options if options is not None else SpaceOptions()

    @property
    def num_segments(self) -> int:
        return self.options.num_segments

    def distributions(self) -> dict[str, Any]:
        """``{parameter name: FloatDistribution(0, 1)}`` over all slots."""
        from optuna.distributions import FloatDistribution

        return {n: FloatDistribution(0.0, 1.0) for n in self.names()}

    def names(self) -> list[str]:
        """All parameter names in slot order."""
        own = self.options.names()
        return [s.prefix + n for s in self.slots for n in own]

    def init_mean(self) -> dict[str, float]:
        """The search's initialization (paper Sec. 4.1): f(x) = x everywhere, lambda = 1."""
        init = self.options.init_values()
        return {s.prefix + n: v for s in self.slots for n, v in init.items()}

    def suggest(self, trial: Any) -> dict[str, LossParams]:
        """Suggest every parameter from an Optuna trial -> ``{slot name: LossParams}``."""
        values = {n: trial.suggest_float(n, 0.0, 1.0) for n in self.names()}
        return self.from_params(values)

    def from_params(self, params: Mapping[str, float]) -> dict[str, LossParams]:
        """``{slot name: LossParams}`` from flat search values (``trial.params``, best params)."""
        missing = [n for n in self.names() if n not in params]
        if missing:
            raise ValueError(
                f"the parameters do not match this config's loss slots "
                f"{[s.key for s in self.slots]}: missing {missing[:4]}{'...' if len(missing) > 4 else ''}"
            )
        result = {}
        for slot in self.slots:
            own = {
                n[len(slot.prefix) :]: float(v)
                for n, v in params.items()
                if n.startswith(slot.prefix)
            }
            if slot.prefix == "":
                own = {n: v for n, v in own.items() if SLOT_SEPARATOR not in n}
            result[slot.name] = self.options.params_from(own)
        return result

    def to_json(self) -> list[dict[str, str]]:
        """``[{"name": ..., "key": ...}]``, stored with the study."""
        return [{"name": s.name, "key": s.key} for s in self.slots]

    @classmethod
    def from_json(
        cls, data: list[Mapping[str, str]], options: SpaceOptions | None = None
    ) -> SearchSpace:
        return cls([LossSlot(d["name"], d["key"]) for d in data], options)


def slot_name_for_key(key: str) -> str:
    """``model.rpn_head`` -> ``rpn``; ``model.roi_head.bbox_head`` -> ``roi``."""
    parts = key.split(".")
    if parts and parts[0] == "model":
        parts = parts[1:]
    first = parts[0] if parts else key
    return first[: -len("_head")] if first.endswith("_head") and first != "_head" else first


def make_slots(keys: list[str]) -> list[LossSlot]:
    """Name the slots of the given head keys: unnamed if one, short names if several."""
    if len(keys) == 1:
        return [LossSlot("", keys[0])]
    names = [slot_name_for_key(k) for k in keys]
    if len(set(names)) != len(names):
        names = [k.removeprefix("model.").replace(".", "_") for k in keys]
    return [LossSlot(n, k) for n, k in zip(names, keys)]
