"""Exceptions that callers tell apart by type.

Every user mistake is an :class:`InputError` (a ``ValueError``) whose message is one line naming
the problem and the fix. Domain modules raise its subclasses; only the command-line entry points
(``paploss.study.search``, ``train``, ``reproduce``, ``split``) turn them into exit code 2.
"""

from __future__ import annotations


class InputError(ValueError):
    """A user's input cannot be used; the message names the problem and the fix."""


class ConfigError(InputError):
    """An mmengine config (or its ``--cfg-options``) that cannot be loaded, built or searched."""


class DataError(InputError):
    """A dataset, COCO json or output folder that cannot be used."""


class StorageError(InputError):
    """An Optuna storage that cannot be opened, or a study whose stored settings disagree."""


class NonFiniteError(ValueError):
    """NaN or inf in the loss's inputs (logits, localization scores, pairwise weights).

    In a training this means the network has diverged; ``paploss.study.runner.child`` records such a run
    as diverged (AP 0), not as a crash."""
