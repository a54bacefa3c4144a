"""Exceptions of the loss that callers tell apart by type."""

from __future__ import annotations


class NonFiniteError(ValueError):
    """NaN or inf in the loss's inputs (logits, localization scores, pairwise weights).

    In a training this means the network has diverged; ``paploss.study.trial`` records such a run
    as diverged (AP 0), not as a crash."""
