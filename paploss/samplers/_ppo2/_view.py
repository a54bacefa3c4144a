"""Reading the rounds of a PPO2 search out of storage: :class:`RoundsView`.

One read of a study's trials, sorted into rounds by the membership, slot and "done" rules that
:mod:`._rounds` specifies.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from optuna.trial import FrozenTrial, TrialState

from . import _compat
from ._keys import CLAIM_KEY, SAMPLE_KEY

__all__ = ["RoundsView"]


def _is_counted(trial: FrozenTrial) -> bool:
    """A trial whose reward can enter an update: COMPLETE with a finite value."""
    return (
        trial.state == TrialState.COMPLETE
        and trial.value is not None
        and math.isfinite(trial.value)
    )


@dataclass
class RoundsView:
    """Snapshot of all rounds, built from one read of the study's trials."""

    samples_per_round: int
    rounds: int
    #: members that hold a slot: RUNNING, WAITING (a retry), or COMPLETE with a finite value.
    live: dict[int, list[FrozenTrial]] = field(default_factory=lambda: defaultdict(list))
    #: WAITING retries of failed members (also in ``live``).
    retries: dict[int, list[FrozenTrial]] = field(default_factory=lambda: defaultdict(list))
    #: members COMPLETE with a finite value, by trial number.
    counted: dict[int, list[FrozenTrial]] = field(default_factory=lambda: defaultdict(list))
    #: RUNNING trials that claim a round but are not admitted (yet).
    pending: dict[int, list[FrozenTrial]] = field(default_factory=lambda: defaultdict(list))
    #: first round that is not done (``rounds`` when the search is finished).
    current: int = 0

    @classmethod
    def from_trials(
        cls, trials: Sequence[FrozenTrial], samples_per_round: int, rounds: int
    ) -> RoundsView:
        """Sort ``trials`` into rounds by their ``ppo2:sample`` and ``ppo2:claim`` attrs."""
        view = cls(samples_per_round, rounds)
        for trial in sorted(trials, key=lambda t: t.number):
            sample = trial.system_attrs.get(SAMPLE_KEY)
            if sample is not None:
                t = int(sample["round"])
                if trial.state == TrialState.RUNNING:
                    view.live[t].append(trial)
                elif trial.state == TrialState.WAITING:
                    view.live[t].append(trial)
                    view.retries[t].append(trial)
                elif _is_counted(trial):
                    view.live[t].append(trial)
                    view.counted[t].append(trial)
                # FAIL / PRUNED / non-finite COMPLETE trials free their slot.
                continue
            claim = trial.system_attrs.get(CLAIM_KEY)
            if claim is not None and trial.state == TrialState.RUNNING:
                view.pending[int(claim)].append(trial)
        while view.current < rounds and view.is_done(view.current):
            view.current += 1
        return view

    def used_trials(self, round_index: int) -> list[FrozenTrial]:
        """The first ``S`` COMPLETE trials of the round by trial number (those of the update)."""
        return self.counted[round_index][: self.samples_per_round]

    def is_done(self, round_index: int) -> bool:
        """``S`` COMPLETE trials, and no unfinished member that could still precede the S-th one.

        Once true it stays true: the round has ``S`` slots taken, so nobody can join it any more,
        and the set of the first ``S`` COMPLETE trials by number can no longer change.
        """
        counted = self.counted[round_index]
        if len(counted) < self.samples_per_round:
            return False
        last = counted[self.samples_per_round - 1].number
        return not any(
            t.state in (TrialState.RUNNING, TrialState.WAITING) and t.number < last
            for t in self.live[round_index]
        )

    def taken(self, round_index: int, exclude_trial_id: int | None = None) -> int:
        """Slots of the round taken by admitted or claiming trials other than the excluded one."""
        members = self.live[round_index] + self.pending[round_index]
        return sum(1 for t in members if _compat.trial_id(t) != exclude_trial_id)
