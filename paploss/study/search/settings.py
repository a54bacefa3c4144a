"""A search study's settings: what all workers of a study must agree on, recorded once in the
study's user attrs (``keys.SETTINGS``) by the worker that creates the study and compared by every
worker that joins or resumes it (:func:`paploss.study.search.setup.check_existing`, which compares
the records as stored, so that the settings of every earlier version compare as they did).
:class:`StudySettings` is the record's one writer (:meth:`StudySettings.to_json`) and
``check_existing`` its one reader; it reads the record as JSON, not as a StudySettings, because
records of earlier versions lack entries that this class requires."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from paploss.study import keys

OPTIONAL = (keys.SPACE_OPTIONS, keys.COLLAPSE_RULE, keys.LOSS_OPTIONS, keys.HYPER_SPACE)
"""The entries recorded only when they differ from the defaults, so that studies of the default
search keep the settings they were created with."""


@dataclass(frozen=True, kw_only=True)
class StudySettings:
    """A search study's settings (``--cfg-options`` of machine-local keys left out).

    Attributes:
        config_sha256: the config's digest (:func:`paploss.study.config.mmcfg.config_digest`).
        cfg_options: the ``--cfg-options`` that are not machine-local, sorted by key.
        data: the data's identity (:meth:`paploss.study.data.sources.SearchData.identity`).
        epochs, train_seed: every trial's training.
        sampler, rounds, samples_per_round, sigma_init: the search.
        loss_slots: the search space's loss heads (``SearchSpace.to_json``).
        space_options: the search-space options; None for the defaults.
        collapse_rule: the CollapseRule the trials apply; None when there is none.
        loss_options: the loss options set on every head; None for the defaults.
        hyper_space: a baseline's searched hyperparameters (``HyperSpace.to_json``; its
            ``loss_slots`` are then empty); None for a search of the loss.
    """

    config_sha256: str
    cfg_options: Mapping[str, Any]
    data: Mapping[str, Any]
    epochs: int
    train_seed: int
    sampler: str
    rounds: int
    samples_per_round: int
    sigma_init: float
    loss_slots: Any
    space_options: Mapping[str, Any] | None = None
    collapse_rule: Mapping[str, Any] | None = None
    loss_options: Mapping[str, Any] | None = None
    hyper_space: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The record: every entry, the :data:`OPTIONAL` ones only where they are set."""
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {k: v for k, v in record.items() if v is not None or k not in OPTIONAL}
