"""A baseline config's own hyperparameters as a search space (equal-budget tuning of baselines).

The Parameterized AP Loss heads are searched over Theta (:mod:`paploss.study.config.space`); a
baseline (Focal + GIoU, CE + L1, ...) has no Theta, but its hand-set hyperparameters (learning
rate, box coding, Focal's alpha and gamma, the box loss weight) were tuned less than the AP loss
was. A config declares which of them a search may tune in a ``search_space`` entry::

    search_space = dict(
        lr=dict(key="optim_wrapper.optimizer.lr", low=0.003, high=0.3, log=True),
        stds_xy=dict(
            key=["model.bbox_head.bbox_coder.target_stds.0",
                 "model.bbox_head.bbox_coder.target_stds.1"],
            low=0.05, high=1.0, log=True,
        ),
        gamma=dict(key="model.bbox_head.loss_cls.gamma", low=1.0, high=3.0),
    )

Each entry is one float parameter of the study, named by its entry: ``key`` is the dotted config
key it sets (a list of keys: all set to the same value; an integer part indexes a list), ``low`` /
``high`` its range, ``log`` a log-uniform distribution. The config's own value (at the first key)
must lie in the range: it is the hand-set baseline, which a search trains first
(:meth:`HyperSpace.init_values`), so the tuned row can only match or beat it on D_eval.

``paploss-search --config <baseline>.py`` then samples these values (TPE by default) with the same
data, epochs and trial budget as a PAPLoss search, and ``paploss-train --study-name`` retrains the
best ones (:meth:`HyperSpace.cfg_options` gives them as ``--cfg-options``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from paploss.errors import ConfigError

CONFIG_KEY = "search_space"
"""The config entry that declares a baseline's search space."""
ENTRY_KEYS = frozenset({"key", "low", "high", "log"})


@dataclass(frozen=True)
class HyperParam:
    """One float hyperparameter: ``keys`` of the config set to a value in [``low``, ``high``]."""

    name: str
    keys: tuple[str, ...]
    low: float
    high: float
    log: bool = False

    def distribution(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=self.log)

    def to_json(self) -> dict[str, Any]:
        return {"key": list(self.keys), "low": self.low, "high": self.high, "log": self.log}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _parse_entry(name: Any, entry: Any) -> HyperParam:
    """A HyperParam from one ``search_space`` entry; ConfigError naming what is wrong."""
    where = f"{CONFIG_KEY}[{name!r}]"
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"{where}: a parameter name must be an identifier (e.g. lr, gamma)")
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a dict(key=..., low=..., high=..., log=False)")
    unknown = sorted(set(entry) - ENTRY_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {unknown}; the fields are {sorted(ENTRY_KEYS)}"
        )
    key = entry.get("key")
    keys = (key,) if isinstance(key, str) else tuple(key) if isinstance(key, (list, tuple)) else ()
    if not keys or not all(isinstance(k, str) and k for k in keys):
        raise ConfigError(f"{where}: key must be a dotted config key or a list of them")
    low, high, log = entry.get("low"), entry.get("high"), entry.get("log", False)
    if not (_number(low) and _number(high) and low < high):
        raise ConfigError(f"{where}: low and high must be finite numbers with low < high")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be True or False")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log-uniform range needs low > 0")
    return HyperParam(name, keys, float(low), float(high), log)


def _parts(key: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in key.split(".")]


def get_key(cfg: Any, key: str) -> Any:
    """The value at a dotted ``key`` of ``cfg`` (integer parts index lists); KeyError if absent."""
    node = cfg
    for part in _parts(key):
        if isinstance(part, int):
            if not isinstance(node, (list, tuple)) or part >= len(node):
                raise KeyError(key)
            node = node[part]
        else:
            # a dict, a ConfigDict or the mmengine Config itself (not a Mapping)
            if not hasattr(node, "keys") or part not in node:
                raise KeyError(key)
            node = node[part]
    return node


def set_key(cfg: Any, key: str, value: Any) -> None:
    """Set the dotted ``key`` of ``cfg`` (which must exist) to ``value``; a tuple on the way to an
    indexed element becomes a list."""
    *parents, last = _parts(key)
    node = cfg
    for part in parents:
        child = node[part]
        if isinstance(child, tuple):
            node[part] = list(child)
            child = node[part]  # a ConfigDict stores a copy of what it is given
        node = child
    node[last] = value


class HyperSpace:
    """The hyperparameters a baseline config declares in its ``search_space``.

    Args:
        params: the parameters, in the config's order.
    """

    def __init__(self, params: list[HyperParam]) -> None:
        if not params:
            raise ConfigError(f"{CONFIG_KEY} declares no parameter")
        self.params = list(params)

    @classmethod
    def from_config(cls, cfg: Any, config_path: Any) -> HyperSpace | None:
        """The config's declared space (None if it declares none), checked against its keys."""
        declared = cfg.get(CONFIG_KEY)
        if declared is None:
            return None
        if not isinstance(declared, Mapping):
            raise ConfigError(
                f"{config_path}: {CONFIG_KEY} must be a dict of name=dict(key=..., low=..., "
                "high=...)"
            )
        space = cls([_parse_entry(n, e) for n, e in declared.items()])
        for p in space.params:
            for key in p.keys:
                try:
                    value = get_key(cfg, key)
                except KeyError:
                    raise ConfigError(
                        f"{config_path}: {CONFIG_KEY}[{p.name!r}] sets {key}, which the config "
                        "does not have; fix the key"
                    ) from None
                if not _number(value):
                    raise ConfigError(
                        f"{config_path}: {CONFIG_KEY}[{p.name!r}]: {key} is {value!r}, not a number"
                    )
            start = get_key(cfg, p.keys[0])
            if not p.low <= start <= p.high:
                raise ConfigError(
                    f"{config_path}: {CONFIG_KEY}[{p.name!r}]: the config's value {start!r} is "
                    f"outside [{p.low:g}, {p.high:g}]; widen the range so that it holds the "
                    "hand-set baseline"
                )
        return space

    # ---- the space -------------------------------------------------------------------------
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def distributions(self) -> dict[str, Any]:
        """``{name: FloatDistribution(low, high, log)}``."""
        return {p.name: p.distribution() for p in self.params}

    def init_values(self, cfg: Any) -> dict[str, float]:
        """The config's own (hand-set) values: the search's first trial."""
        return {p.name: float(get_key(cfg, p.keys[0])) for p in self.params}

    def suggest(self, trial: Any) -> dict[str, float]:
        """Suggest every parameter from an Optuna trial -> ``{name: value}``."""
        return {p.name: trial.suggest_float(p.name, p.low, p.high, log=p.log) for p in self.params}

    def from_params(self, params: Mapping[str, float]) -> dict[str, float]:
        """``{name: value}`` of this space from flat values (``trial.params``); ConfigError if
        one is missing."""
        missing = [n for n in self.names() if n not in params]
        if missing:
            raise ConfigError(
                f"the parameters do not match this config's {CONFIG_KEY}: missing {missing}; "
                "give the --config the study was searched with"
            )
        return {n: float(params[n]) for n in self.names()}

    # ---- applying values -------------------------------------------------------------------
    def cfg_options(self, values: Mapping[str, float]) -> dict[str, float]:
        """``{config key: value}`` for ``values`` (what ``--cfg-options`` would set)."""
        values = self.from_params(values)
        return {key: values[p.name] for p in self.params for key in p.keys}

    def cfg_options_text(self, values: Mapping[str, float]) -> str:
        """``KEY=VALUE ...``: ``values`` as ``--cfg-options`` arguments."""
        return " ".join(f"{k}={v!r}" for k, v in self.cfg_options(values).items())

    def apply(self, cfg: Any, values: Mapping[str, float]) -> None:
        """Set ``values`` into ``cfg`` (in place)."""
        for key, value in self.cfg_options(values).items():
            set_key(cfg, key, value)

    def to_json(self) -> dict[str, dict[str, Any]]:
        """``{name: {"key": [...], "low", "high", "log"}}``, stored with the study."""
        return {p.name: p.to_json() for p in self.params}

    def describe(self) -> str:
        """e.g. ``lr in [0.003, 0.3] (log), gamma in [1, 3]``."""
        return ", ".join(
            f"{p.name} in [{p.low:g}, {p.high:g}]" + (" (log)" if p.log else "")
            for p in self.params
        )


def format_values(values: Mapping[str, float]) -> str:
    """``lr=0.0312, gamma=1.87``."""
    return ", ".join(f"{n}={v:.4g}" for n, v in values.items())
