"""Strict reading of loss parameters (a params JSON file, a config's ``params``): numbers that
are numbers, counts that are ints, known keys only, and one-line :class:`ParamsError` messages
that name the entry at fault (:mod:`paploss.params` reads through these)."""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from typing import Any

from paploss.errors import InputError


class ParamsError(InputError):
    """Loss parameters (a JSON file, a config's ``params``) that cannot be read: an unknown key,
    a value of the wrong type, a number too large for a float. The message is one line."""


def number(value: Any, where: str) -> float:
    """``value`` as a float: an int or a float (no bool, no string); ParamsError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParamsError(f"{where} must be a number, got {short(value)}")
    try:
        return float(value)
    except OverflowError:  # an int written out with hundreds of digits
        raise ParamsError(
            f"{where} is an integer too large for a float (about "
            f"{int(value.bit_length() * math.log10(2)) + 1} digits)"
        ) from None


def numbers(values: Any, where: str) -> list[float]:
    """A list (or tuple) of numbers as floats; ParamsError naming the first bad entry."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ParamsError(f"{where} must be a list of numbers, got {short(values)}")
    return [number(v, f"{where}[{i}]") for i, v in enumerate(values)]


def count(value: Any, where: str) -> int:
    """A positive int (no bool, no float such as 1.9); ParamsError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParamsError(f"{where} must be an int >= 1, got {short(value)}")
    return value


def short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (an int too long to print: its size)."""
    try:
        text = repr(value)
    except ValueError:  # an int beyond Python's digit limit for str()
        return "an integer with more than 4300 digits"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_keys(
    given: Any, allowed: Sequence[str], where: str, described: str | None = None
) -> None:
    """ParamsError naming the keys of ``given`` outside ``allowed``, with the closest allowed
    key of each, and what the keys are (``described``, else ``allowed`` listed)."""
    unknown = sorted(str(k) for k in given if k not in allowed)
    if not unknown:
        return
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, allowed, n=1)
        if close:
            hints.append(f"{close[0]!r} for {key!r}")
    hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
    raise ParamsError(
        f"unknown {where} keys {unknown}{hint}; the keys are {described or sorted(allowed)}"
    )
