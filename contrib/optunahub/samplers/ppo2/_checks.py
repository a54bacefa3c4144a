"""Validation of the numeric settings of the PPO2 search (numpy only).

Each check raises :class:`ValueError` naming the argument, and returns the value converted to a
plain Python number.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["check_clip_eps", "check_int", "check_positive", "check_update_settings"]


def check_positive(name: str, value: Any) -> float:
    """``value`` as a float; it must be a finite real number > 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number > 0, got {value!r}.")
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
    return float(value)


def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int; it must be an integer (not a bool) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_clip_eps(clip_eps: Any) -> float:
    """``clip_eps`` as a float; it must lie in (0, 1)."""
    if isinstance(clip_eps, bool) or not isinstance(clip_eps, (int, float)):
        raise ValueError(f"clip_eps must be a number in (0, 1), got {clip_eps!r}.")
    if not 0.0 < clip_eps < 1.0:
        raise ValueError(f"clip_eps must be in (0, 1), got {clip_eps!r}.")
    return float(clip_eps)


def check_update_settings(*, clip_eps: Any, steps: Any, lr: Any, warmup_steps: Any) -> None:
    """Settings of one update: ``clip_eps`` in (0, 1), ``steps >= 1`` (``update_steps``),
    ``lr > 0`` and ``0 <= warmup_steps <= steps``."""
    check_clip_eps(clip_eps)
    check_int("update_steps", steps, 1)
    check_positive("lr", lr)
    check_int("warmup_steps", warmup_steps, 0)
    if warmup_steps > steps:
        raise ValueError(f"warmup_steps must be <= update_steps ({steps}), got {warmup_steps!r}.")
