"""The typed options of the study commands: one frozen dataclass per command, built from its parsed
command line (:mod:`paploss.study.parsers`: ``parse_search``, ``parse_train``, ``parse_split``)
and passed inward. Each field is the parser's option of the same name (``--samples-per-round`` ->
``samples_per_round``) with the parser's default; ``tests/test_options.py`` checks that the fields
and the defaults match the parsers.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from paploss.study.cli import DEFAULT_CONFIG, DEFAULT_STORAGE, DEFAULT_STUDY

T = TypeVar("T")


def from_namespace(cls: type[T], namespace: argparse.Namespace) -> T:
    """``cls`` built from the parsed ``namespace``, which must hold exactly its fields.

    Raises:
        TypeError: a field the namespace lacks or an option the dataclass lacks (a parser and its
            options class that disagree: a programming error, not a user's).
    """
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    given = set(vars(namespace))
    if names != given:
        raise TypeError(
            f"{cls.__name__}: the parser's options {sorted(given - names)} are no fields, the "
            f"fields {sorted(names - given)} no options"
        )
    return cls(**vars(namespace))


def _proxy() -> list[str]:
    return ["proxy"]


@dataclass(frozen=True, kw_only=True)
class SearchOptions:
    """``paploss-search``'s options (``paploss-search --help`` describes each)."""

    config: Path = DEFAULT_CONFIG
    cfg_options: dict[str, Any] = field(default_factory=dict)
    work_dir: Path = Path("work_dirs/search")
    device: str = "auto"
    data: list[str] = field(default_factory=_proxy)
    eval_images: int | None = None
    split_seed: int = 0
    storage: str = DEFAULT_STORAGE
    study_name: str = DEFAULT_STUDY
    sampler: str | None = None  # None: ppo2 for a loss search, tpe for a baseline's hyperparameters
    rounds: int = 40
    samples_per_round: int = 8
    sigma_init: float = 0.2
    seed: int = 0
    train_seed: int = 0
    epochs: int = 1
    no_early_stop: bool = False
    segments: int = 5
    shared_params: bool = False
    fixed_lambda: float | None = None
    loc_score: str | None = None
    no_block_grad: bool = False
    n_trials: int | None = None
    timeout: float | None = None
    trial_timeout: float | None = None
    heartbeat_interval: int = 60
    grace_period: int | None = None
    max_retry: int = 3
    max_failures: int = 3
    round_timeout: float = 86400.0
    nproc_per_trial: int = 1
    workers: int = 1


@dataclass(frozen=True, kw_only=True)
class TrainOptions:
    """``paploss-train``'s options (``paploss-train --help`` describes each)."""

    config: Path = DEFAULT_CONFIG
    cfg_options: dict[str, Any] = field(default_factory=dict)
    work_dir: Path = Path("work_dirs/train")
    device: str = "auto"
    storage: str | None = None
    study_name: str | None = None
    trial: int | None = None
    preset: list[str] = field(default_factory=list)
    params: list[str] = field(default_factory=list)
    loc_score: str | None = None
    no_block_grad: bool = False
    substitution: str | None = None
    fixed_lambda: float | None = None
    export: Path | None = None
    export_only: bool = False
    data: list[str] = field(default_factory=_proxy)
    val_data: list[str] | None = None
    epochs: int | None = None
    seed: int = 0
    nproc_per_trial: int = 1


@dataclass(frozen=True, kw_only=True)
class SplitOptions:
    """``paploss-split-coco``'s options (``paploss-split-coco --help`` describes each)."""

    ann_file: Path
    out_dir: Path
    eval_images: int | None = None
    seed: int = 0
    force: bool = False
