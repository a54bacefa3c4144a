"""The continuous search space of the PPO2 sampler and its map to the unit cube.

:class:`UnitSpace` validates a ``{name: FloatDistribution}`` search space, fixes the order of the
normalized vectors (sorted by name) and maps parameters to ``[0, 1]^D`` and back with Optuna's
search-space transform (linear, or linear in log space for log-scale distributions), through
:mod:`._compat`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from optuna.distributions import FloatDistribution

from . import _compat

__all__ = ["UnitSpace", "check_search_space"]


def check_search_space(search_space: Any) -> dict[str, FloatDistribution]:
    """``search_space`` sorted by name; every entry a continuous ``FloatDistribution`` with
    ``low < high`` (``ValueError`` naming ``search_space`` otherwise)."""
    if not isinstance(search_space, Mapping) or len(search_space) == 0:
        raise ValueError(
            "search_space must be a non-empty dict {name: FloatDistribution}, "
            f"got {search_space!r}."
        )
    space: dict[str, FloatDistribution] = {}
    for name in sorted(search_space):
        dist = search_space[name]
        if not isinstance(name, str):
            raise ValueError(f"search_space names must be strings, got {name!r}.")
        if not isinstance(dist, FloatDistribution):
            raise ValueError(
                f"search_space[{name!r}] must be a FloatDistribution (PPO2Sampler samples "
                f"continuous parameters only), got {dist!r}."
            )
        if dist.step is not None:
            raise ValueError(
                f"search_space[{name!r}] must be continuous (step=None), got {dist!r}."
            )
        if not dist.low < dist.high:
            raise ValueError(f"search_space[{name!r}] must have low < high, got {dist!r}.")
        space[name] = dist
    return space


class UnitSpace:
    """A validated continuous search space and its map to ``[0, 1]^D``.

    Args:
        search_space: ``{name: FloatDistribution}`` (see :func:`check_search_space`).
    """

    def __init__(self, search_space: Any) -> None:
        self._space = check_search_space(search_space)
        self._names = tuple(self._space)
        self._transform = _compat.unit_transform(self._space)

    @property
    def distributions(self) -> dict[str, FloatDistribution]:
        """The distributions, sorted by name (a copy)."""
        return dict(self._space)

    @property
    def names(self) -> tuple[str, ...]:
        """The parameter names in the order of the normalized vectors."""
        return self._names

    def from_unit(self, unit: np.ndarray) -> dict[str, float]:
        """The parameter values of the normalized vector ``unit`` (within every range)."""
        return _compat.from_unit(self._transform, unit)

    def init_unit(self, init_mean: Mapping[str, float] | None) -> np.ndarray:
        """``init_mean`` (parameter units) normalized; names it lacks get the centre, 0.5.

        Raises:
            ValueError: ``init_mean`` is not a dict of numbers within the ranges of known names.
        """
        unit = np.full(len(self._names), 0.5, dtype=np.float64)
        if init_mean is None:
            return unit
        if not isinstance(init_mean, Mapping):
            raise ValueError(
                f"init_mean must be a dict {{name: value}} or None, got {init_mean!r}."
            )
        unknown = sorted(set(init_mean) - set(self._space))
        if unknown:
            raise ValueError(f"init_mean has names outside search_space: {unknown!r}.")
        for name, dist in self._space.items():
            if name not in init_mean:
                continue
            value = init_mean[name]
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
                raise ValueError(f"init_mean[{name!r}] must be a number, got {value!r}.")
            if not (math.isfinite(value) and dist.low <= value <= dist.high):
                raise ValueError(
                    f"init_mean[{name!r}]={float(value)!r} is outside search_space[{name!r}] "
                    f"[{dist.low}, {dist.high}]."
                )
        # The transform needs a value for every name; the missing ones keep 0.5 below.
        full = {n: float(init_mean.get(n, d.low)) for n, d in self._space.items()}
        given = np.array([n in init_mean for n in self._names])
        unit[given] = np.clip(_compat.to_unit(self._transform, full), 0.0, 1.0)[given]
        return unit
