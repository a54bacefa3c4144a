"""Where ``paploss-train`` takes the parameters of its training from: ``--preset`` / ``--params``
per loss head, the best (or ``--trial``) trial of a study (loss parameters, or a baseline's
hyperparameters), and the files ``--export`` writes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paploss.params import LossParams
from paploss.study import keys
from paploss.study.cli import UsageError
from paploss.study.config.hyper_space import HyperSpace
from paploss.study.storage import render_url


def _split_spec(text: str, slot_names: Sequence[str]) -> tuple[str | None, str]:
    """``"rpn=paper-faster-rcnn-rpn"`` -> ("rpn", ...); ``"x.json"`` -> (None, "x.json")."""
    head, sep, rest = text.partition("=")
    if sep and head in slot_names and head:
        return head, rest
    if sep and "/" not in head and not head.endswith(".json") and head not in slot_names:
        raise UsageError(
            f"{text!r}: unknown loss head {head!r}; this config's heads are "
            f"{[s for s in slot_names if s] or ['(one head: give the value without SLOT=)']}"
        )
    return None, text


def explicit_params(
    presets: Sequence[str], files: Sequence[str], slot_names: Sequence[str]
) -> dict[str, LossParams]:
    """``{slot: LossParams}`` from ``--preset`` and ``--params`` (UsageError on conflicts)."""
    out: dict[str, LossParams] = {}
    source: dict[str, str] = {}
    items = [("--preset", p) for p in presets] + [("--params", f) for f in files]
    for flag, text in items:
        slot, value = _split_spec(text, slot_names)
        try:
            if flag == "--preset":
                params = LossParams.preset(value)
            else:
                params = LossParams.load(Path(value).expanduser())
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            # LossParams.preset's own message already lists the presets
            raise UsageError(f"{flag} {text}: {exc}") from exc
        targets = [slot] if slot is not None else list(slot_names)
        for target in targets:
            if target in out:
                raise UsageError(
                    f"loss head {target or 'of the config'} gets two parameter sets "
                    f"({source[target]} and {flag} {text}); give one per head"
                )
            out[target] = params
            source[target] = f"{flag} {text}"
    return out


def params_from_study(
    storage_url: str, study_name: str, trial_number: int | None, space: Any
) -> tuple[dict[str, LossParams], Any, dict[str, Any]]:
    """``({slot: LossParams}, trial, loss options)`` of the study's best (or given) trial, read in
    the study's search space (its ``--segments``/``--shared-params``/``--fixed-lambda``); the
    loss options are those the study searched with (``--loc-score``, ``--no-block-grad``), for
    the retraining to use."""
    from paploss.study.config.space import SearchSpace

    study, trial = load_trial(storage_url, study_name, trial_number)
    stored = study.user_attrs.get(keys.LOSS_SLOTS)
    if study.user_attrs.get(keys.HYPER_SPACE) is not None:
        raise UsageError(
            f"study {study_name!r} searched a baseline's hyperparameters, not loss parameters; "
            "give the baseline --config it was searched with"
        )
    if stored is not None:
        names = [s.name for s in SearchSpace.from_json(stored).slots]
        mine = [s.name for s in space.slots]
        if names != mine:
            raise UsageError(
                f"study {study_name!r} searched the loss heads {stored}, but the config has "
                f"{space.to_json()}; give the --config the study was searched with"
            )
    from paploss.study.config.space import SpaceOptions

    space = SearchSpace(
        space.slots, SpaceOptions.from_json(study.user_attrs.get(keys.SPACE_OPTIONS))
    )
    options = dict(study.user_attrs.get(keys.LOSS_OPTIONS) or {})
    try:
        return space.from_params(trial.params), trial, options
    except ValueError as exc:
        raise UsageError(f"trial {trial.number} of {study_name!r}: {exc}") from exc


def hyper_values_from_study(
    storage_url: str, study_name: str, trial_number: int | None, space: HyperSpace
) -> tuple[dict[str, float], Any]:
    """``({name: value}, trial)`` of the best (or given) trial of a baseline's hyperparameter
    search, checked against the config's own ``search_space``."""
    study, trial = load_trial(storage_url, study_name, trial_number)
    stored = study.user_attrs.get(keys.HYPER_SPACE)
    if stored is None:
        raise UsageError(
            f"study {study_name!r} searched loss parameters, not a baseline's hyperparameters; "
            "give the *_paploss.py --config it was searched with"
        )
    if stored != space.to_json():
        raise UsageError(
            f"study {study_name!r} searched {sorted(stored)} with other keys or ranges than this "
            f"config's search_space ({space.describe()}); give the --config it was searched with"
        )
    try:
        return space.from_params(trial.params), trial
    except ValueError as exc:
        raise UsageError(f"trial {trial.number} of {study_name!r}: {exc}") from exc


def load_trial(storage_url: str, study_name: str, trial_number: int | None) -> tuple[Any, Any]:
    """``(study, trial)``: the study's best trial, or its trial ``trial_number``."""
    import optuna

    from paploss.study.storage import open_storage

    storage = open_storage(storage_url, must_exist=True)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise UsageError(
            f"storage {render_url(storage_url)} has no study {study_name!r}; studies: {names}"
        ) from None
    if trial_number is None:
        try:
            trial = study.best_trial
        except ValueError:
            raise UsageError(f"study {study_name!r} has no complete trial yet") from None
    else:
        matching = [t for t in study.get_trials(deepcopy=False) if t.number == trial_number]
        if not matching:
            raise UsageError(f"study {study_name!r} has no trial {trial_number}")
        trial = matching[0]
    return study, trial


def export_paths(path: Path, slots: Sequence[str]) -> dict[str, Path]:
    """One file for a single head, ``<stem>.<slot><suffix>`` per head otherwise."""
    if len(slots) == 1:
        return {slots[0]: path}
    suffix = path.suffix or ".json"
    return {s: path.with_name(f"{path.stem}.{s}{suffix}") for s in slots}
