"""Early stop of collapsed search trials: the rule a config declares, and its decision.

A search trial whose training has collapsed (AP 0 after its epoch) costs a full trial unless it is
stopped. The authors' release stops a training whose loss stays at its start value (or is not
finite) for 50 iterations and gives it reward 0. On the proxy a collapsed Parameterized AP Loss
training does not stay at its start value: its loss falls within a few dozen iterations to a
constant near 0 while the gradient vanishes (the functions' flat parts hold every score), whereas a
training that learns keeps a loss that moves from iteration to iteration (different images, a
ranking that changes). So the rule asks whether the loss has stopped moving. A config declares
the rule measured for its detector as a top-level entry::

    collapse_rule = dict(check_at=40, window=20, min_motion=0.003)

At iteration ``check_at`` of the training the loss's motion, the mean absolute change from one
iteration to the next over the last ``window`` iterations, is compared with ``min_motion``; less
motion means the training has collapsed: it ends there, reports AP 0 and is recorded as collapsed (``status = "collapsed"``). It
still counts as its round's sample. Only search trials apply the rule
(``prepare_config(search=True)``; ``paploss-search --no-early-stop`` turns it off); final trainings
never stop early. The evidence behind the proxy RetinaNet's rule (the loss curves of recorded
search trials, false stops, the candidate checks, the cost of a stopped trial) is in
benchmarks/RESULTS.md (``benchmarks/bench_collapse.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from paploss.errors import ConfigError

COLLAPSED_AP = 1e-3
"""A trial whose reward (AP) is below this has collapsed, whether the rule stopped it or it
trained to the end (the search's trial and round lines, benchmarks/bench_collapse.py)."""

CONFIG_KEY = "collapse_rule"
"""The config's top-level entry that declares the rule (not part of the config digest: the
study's settings record it instead)."""


@dataclass(frozen=True)
class CollapseRule:
    """Stop a training whose loss has stopped moving by iteration ``check_at``.

    Attributes:
        check_at: the (1-based) training iteration at which the rule decides, once.
        window: the iterations up to ``check_at`` (inclusive) whose losses are compared.
        min_motion: a training whose loss moves less than this per iteration (mean absolute
            change over the window) has collapsed.
    """

    check_at: int
    window: int
    min_motion: float

    def __post_init__(self) -> None:
        for name in ("check_at", "window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{CONFIG_KEY}.{name} must be an integer >= 1, got {value!r}")
        if self.window < 2 or self.window > self.check_at:
            raise ConfigError(
                f"{CONFIG_KEY}: window ({self.window}) must be at least 2 and at most check_at "
                f"({self.check_at})"
            )
        motion = self.min_motion
        if (
            isinstance(motion, bool)
            or not isinstance(motion, (int, float))
            or not math.isfinite(motion)
            or motion <= 0
        ):
            raise ConfigError(
                f"{CONFIG_KEY}.min_motion must be a finite number > 0, got {motion!r}"
            )

    @classmethod
    def from_config(cls, value: Any) -> CollapseRule | None:
        """The rule of a config entry (None when the config declares none); ConfigError for a
        malformed entry."""
        if value is None:
            return None
        names = ("check_at", "window", "min_motion")
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"{CONFIG_KEY} must be dict(check_at=..., window=..., min_motion=...), "
                f"got {value!r}"
            )
        unknown, missing = set(value) - set(names), set(names) - set(value)
        if unknown or missing:
            raise ConfigError(
                f"{CONFIG_KEY} needs exactly the keys {', '.join(names)} "
                f"(unknown: {sorted(unknown)}, missing: {sorted(missing)})"
            )
        return cls(**{name: value[name] for name in names})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def motion(self, losses: Sequence[float]) -> float | None:
        """The mean of ``|losses[k] - losses[k - 1]|`` over the ``window - 1`` steps within
        ``losses[check_at - window : check_at]``, or None while fewer than ``check_at`` losses
        exist. ``losses[k]`` is iteration ``k + 1``'s."""
        if len(losses) < self.check_at:
            return None
        window = losses[self.check_at - self.window : self.check_at]
        steps = [abs(b - a) for a, b in zip(window, window[1:])]
        return math.fsum(steps) / len(steps)

    def collapsed(self, losses: Sequence[float]) -> bool:
        """Whether the training of ``losses`` has collapsed (False before ``check_at``)."""
        motion = self.motion(losses)
        return motion is not None and motion < self.min_motion


class TrainingCollapsed(RuntimeError):
    """Raised by the trial monitor when the CollapseRule decides that a training collapsed."""

    def __init__(self, iteration: int, motion: float, rule: CollapseRule) -> None:
        super().__init__(
            f"collapsed: the loss moved {motion:.2g} per iteration over iterations "
            f"{iteration - rule.window + 1}-{iteration} (the rule goes on from {rule.min_motion:g})"
        )
        self.iteration = iteration
        self.motion = motion
