"""The search space of a study: one LossParams per loss head of the detector config.

A RetinaNet or Deformable DETR config has one head trained by the Parameterized AP Loss, so the
search space is ``LossParams.search_space()`` with its plain names (``f1_x1`` .. ``f5_y4``,
``lambda``). A Faster R-CNN searches "the losses for both the RPN and R-CNN heads simultaneously"
(paper Sec. 4): two sets, each name prefixed by its slot (``rpn/f1_x1`` .. ``rpn/lambda``,
``roi/f1_x1`` .. ``roi/lambda``), sampled jointly as one vector.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from paploss.params import LossParams, search_space_names

SLOT_SEPARATOR = "/"


@dataclass(frozen=True)
class LossSlot:
    """One config location that takes ``loss_params``.

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
        num_segments: M of every piecewise-linear function (the paper's 5).
    """

    def __init__(self, slots: list[LossSlot], num_segments: int = 5) -> None:
        if not slots:
            raise ValueError("a search space needs at least one loss slot")
        names = [s.name for s in slots]
        if len(slots) == 1 and names[0]:
            raise ValueError(f"a single loss slot has no name, got {names[0]!r}")
        if len(slots) > 1 and (len(set(names)) != len(names) or "" in names):
            raise ValueError(f"loss slots need distinct non-empty names, got {names}")
        self.slots = list(slots)
        self.num_segments = num_segments

    def distributions(self) -> dict[str, Any]:
        """``{parameter name: FloatDistribution(0, 1)}`` over all slots."""
        base = LossParams.search_space(self.num_segments)
        return {s.prefix + n: d for s in self.slots for n, d in base.items()}

    def names(self) -> list[str]:
        """All parameter names in slot order."""
        return [s.prefix + n for s in self.slots for n in search_space_names(self.num_segments)]

    def init_mean(self) -> dict[str, float]:
        """The search's initialization (paper Sec. 4.1): f(x) = x everywhere, lambda = 1."""
        linear = LossParams.preset("linear", self.num_segments).to_search_params()
        return {s.prefix + n: v for s in self.slots for n, v in linear.items()}

    def suggest(self, trial: Any) -> dict[str, LossParams]:
        """Suggest every parameter from an Optuna trial -> ``{slot name: LossParams}``."""
        if len(self.slots) == 1:
            return {self.slots[0].name: LossParams.from_trial(trial, self.num_segments)}
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
            result[slot.name] = LossParams.from_search_params(own, self.num_segments)
        return result

    def to_json(self) -> list[dict[str, str]]:
        """``[{"name": ..., "key": ...}]``, stored with the study."""
        return [{"name": s.name, "key": s.key} for s in self.slots]

    @classmethod
    def from_json(cls, data: list[Mapping[str, str]], num_segments: int = 5) -> SearchSpace:
        return cls([LossSlot(d["name"], d["key"]) for d in data], num_segments)


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
