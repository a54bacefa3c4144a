"""What a search worker reports: a line per finished trial and per finished round, the study's
best-so-far plot, and the summary at the end (best trial, its parameters, the export and
optuna-dashboard commands)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from paploss.study import keys
from paploss.study.config.early_stop import COLLAPSED_AP
from paploss.study.options import SearchOptions
from paploss.study.storage import command_url, dashboard_url


def script_command(name: str) -> str:
    """The console script ``name`` beside the running interpreter (relative to the current folder
    when inside it), or ``name`` alone when it is not there."""
    exe = Path(sys.executable).parent / name
    if not exe.exists():
        return name
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return str(exe)


def dashboard_command(url: str, artifact_dir: Path) -> str:
    """The exact optuna-dashboard command line for a study's storage and artifacts."""
    program = script_command("optuna-dashboard")
    return f"{program} {dashboard_url(url)} --artifact-dir {Path(artifact_dir).resolve()}"


class Progress:
    """The ``study.optimize`` callback of a search worker and its printed lines.

    Args:
        study: the study.
        sampler: its sampler (PPO2 rounds are read from it).
        options: the search's parsed arguments (rounds, samples_per_round, sampler, max_failures).
        study_dir: the study's folder (the best-so-far PNG goes there).
        artifact_store: the study's artifact store.
    """

    def __init__(
        self,
        *,
        study: Any,
        sampler: Any,
        options: SearchOptions,
        study_dir: Path,
        artifact_store: Any,
    ) -> None:
        self.study = study
        self.sampler = sampler
        self.options = options
        self.study_dir = study_dir
        self.artifact_store = artifact_store
        self.total = options.rounds * options.samples_per_round
        self.started = time.monotonic()
        at_start = self.complete_trials()
        self.complete_at_start = len(at_start)
        # Rounds whose line has been printed (by this worker, or before it started): a round that
        # another worker completes is printed with this worker's next finished trial.
        self.printed_rounds = set(self._full_rounds(at_start))
        self.printed_trials = {t.number for t in at_start}  # the same for the trials' lines
        self.consecutive_failures = 0
        self.stopped_for_failures = False

    # ---- state -----------------------------------------------------------------------------
    def complete_trials(self) -> list[Any]:
        from optuna.trial import TrialState

        return self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))

    def is_ppo2(self) -> bool:
        from paploss.samplers import PPO2Sampler

        return isinstance(self.sampler, PPO2Sampler)

    def is_finished(self) -> bool:
        if self.is_ppo2():
            return self.sampler.is_finished(self.study)
        return len(self.complete_trials()) >= self.total

    # ---- the callbacks ---------------------------------------------------------------------
    def callbacks(self) -> list[Any]:
        """The callbacks of ``study.optimize``: this one, and for samplers without rounds Optuna's
        ``MaxTrialsCallback`` counting running trials too, so that a worker does not start a
        surplus trial while another one trains the last (a crashed trial no longer counts; heartbeats
        fail a dead worker's)."""
        if self.is_ppo2():
            return [self]  # PPO2Sampler.is_finished knows the rounds and their retries
        from optuna.study import MaxTrialsCallback
        from optuna.trial import TrialState

        return [
            self,
            MaxTrialsCallback(self.total, states=(TrialState.COMPLETE, TrialState.RUNNING)),
        ]

    def __call__(self, study: Any, frozen: Any) -> None:
        from optuna.trial import TrialState

        if frozen.state == TrialState.COMPLETE:
            self.consecutive_failures = 0
            complete = self.complete_trials()
            self.print_new(complete)
            self.update_study_plot()
            if self.is_ppo2() and self.is_finished():  # no surplus trial after the last round
                study.stop()
        elif frozen.state == TrialState.PRUNED and keys.YIELDED in frozen.user_attrs:
            yielded = frozen.user_attrs[keys.YIELDED]
            print(
                f"[search] trial {frozen.number} gave way to the retries {yielded['retries']} "
                f"of round {yielded['round']} (pruned; it trained nothing)",
                flush=True,
            )
        elif frozen.state == TrialState.FAIL:
            self.consecutive_failures += 1
            reason = str(frozen.user_attrs.get(keys.ERROR, "see the log above")).splitlines()[0]
            print(
                f"[search] trial {frozen.number} FAILED: {reason} "
                f"(work dir {frozen.user_attrs.get(keys.WORK_DIR, '?')})",
                flush=True,
            )
            if self.consecutive_failures >= self.options.max_failures:
                self.stopped_for_failures = True
                study.stop()

    def _print_trial_line(self, frozen: Any, complete: list[Any]) -> None:
        """Print the finished trial's progress line."""
        from paploss.study.search.records import progress_line

        n = len(complete)
        best = max(complete, key=lambda t: t.value)
        elapsed = time.monotonic() - self.started
        done_here = n - self.complete_at_start
        remaining = max(0, self.total - n)
        eta = elapsed / done_here * remaining if done_here > 0 else None
        round_index = frozen.user_attrs.get(keys.ROUND)
        if round_index is None:
            round_index = (n - 1) // self.options.samples_per_round
        print(
            progress_line(
                trial_number=frozen.number,
                round_index=int(round_index),
                rounds=self.options.rounds,
                ap=float(frozen.value),
                diverged=bool(frozen.user_attrs.get(keys.DIVERGED)),
                collapsed_at=frozen.user_attrs.get(keys.COLLAPSED_AT),
                best=float(best.value),
                best_trial=best.number,
                complete=n,
                total=self.total,
                elapsed=elapsed,
                eta=eta,
                retry_of=frozen.user_attrs.get(keys.RETRY_OF),
            ),
            flush=True,
        )

    # ---- rounds ----------------------------------------------------------------------------
    def round_trials(self, complete: list[Any]) -> dict[int, list[Any]]:
        """``{round index: [trial, ...]}`` of the complete trials (PPO2's round attr, else by
        order)."""
        rounds: dict[int, list[Any]] = {}
        for k, t in enumerate(sorted(complete, key=lambda t: t.number)):
            r = t.user_attrs.get(keys.ROUND)
            r = k // self.options.samples_per_round if r is None else int(r)
            rounds.setdefault(r, []).append(t)
        return rounds

    def round_rewards(self, complete: list[Any]) -> dict[int, list[float]]:
        """``{round index: [AP, ...]}`` of the complete trials (PPO2's round attr, else by order)."""
        return {
            r: [float(t.value) for t in trials] for r, trials in self.round_trials(complete).items()
        }

    def mean_shift(self, round_index: int) -> float | None:
        """L2 distance (in the sampler's unit space) between PPO2's mean of ``round_index`` and
        that of the round before (None when not PPO2 or not stored)."""
        import numpy as np

        if not self.is_ppo2() or round_index < 1:
            return None
        now = self.sampler.stored_round_mean(self.study, round_index)
        before = self.sampler.stored_round_mean(self.study, round_index - 1)
        if now is None or before is None:
            return None
        names = self.sampler.param_names
        return float(np.linalg.norm([now[n] - before[n] for n in names]))

    def _full_rounds(self, complete: list[Any]) -> list[int]:
        """The round indices that have all their samples among ``complete``, in order."""
        return sorted(
            r
            for r, rewards in self.round_rewards(complete).items()
            if len(rewards) == self.options.samples_per_round
        )

    def print_new(self, complete: list[Any] | None = None) -> None:
        """Print the line of every complete trial not printed yet, in trial order, each followed by
        the line of a round it completes: this worker's trials and the other workers' (local
        copies of ``--workers``, other hosts), whose lines come with this worker's next finished
        trial."""
        complete = self.complete_trials() if complete is None else complete
        shown = [t for t in complete if t.number in self.printed_trials]
        for trial in sorted(complete, key=lambda t: t.number):
            if trial.number not in self.printed_trials:
                self.printed_trials.add(trial.number)
                shown.append(trial)
                self._print_trial_line(trial, complete)
                self._print_full_rounds(shown)

    def _print_full_rounds(self, shown: list[Any]) -> None:
        """The line of every round whose samples are all among ``shown`` and not printed yet."""
        for round_index in self._full_rounds(shown):
            if round_index not in self.printed_rounds:
                self.printed_rounds.add(round_index)
                self.print_round_summary(shown, round_index)

    def print_round_summary(self, complete: list[Any], round_index: int) -> None:
        """When ``round_index`` has all its samples: its best and mean reward, how many collapsed
        to AP < 0.001 (and how many of those the CollapseRule stopped early), and how far the
        sampling mean moved to draw them."""
        rewards = self.round_rewards(complete).get(round_index, [])
        if len(rewards) != self.options.samples_per_round:
            return
        shift = self.mean_shift(round_index)
        moved = "" if shift is None else f" | mean moved {shift:.3f} (L2, unit space)"
        collapsed = sum(1 for v in rewards if v < COLLAPSED_AP)
        stopped = sum(
            1
            for t in self.round_trials(complete).get(round_index, [])
            if t.user_attrs.get(keys.COLLAPSED)
        )
        print(
            f"[search] == round {round_index + 1}/{self.options.rounds} done: best "
            f"{max(rewards):.4f} | mean {sum(rewards) / len(rewards):.4f} | "
            f"{collapsed}/{len(rewards)} at AP < {COLLAPSED_AP:g} ({stopped} stopped early){moved}",
            flush=True,
        )

    def update_study_plot(self) -> None:
        """Best AP so far per round: the study's PNG artifact."""
        from paploss.study.search.records import (
            BEST_PLOT_NAME,
            best_so_far,
            plot_best_so_far,
            update_study_artifact,
        )

        rows = best_so_far(self.study.get_trials(deepcopy=False), self.options.samples_per_round)
        title = f"{self.study.study_name}: best AP so far per round ({self.options.sampler})"
        png = plot_best_so_far(rows, self.study_dir / BEST_PLOT_NAME, title)
        update_study_artifact(self.study, self.artifact_store, png)

    # ---- the end ---------------------------------------------------------------------------
    def print_summary(self, *, space: Any, config_path: Path, work_dir: Path) -> None:
        """Best trial against round 1, its parameters, the export and dashboard commands."""
        from paploss.study.config.hyper_space import HyperSpace

        options = self.options
        complete = self.complete_trials()
        state = (
            "complete"
            if self.is_finished()
            else "not complete yet (run the command again to resume)"
        )
        print(f"[search] study {options.study_name!r}: {len(complete)} complete trials, {state}")
        if complete:
            best = self.study.best_trial
            round_index = best.user_attrs.get(keys.ROUND)
            where = f", round {int(round_index) + 1}" if round_index is not None else ""
            print(f"\nBest trial {best.number}{where}: AP {best.value:.4f} on D_eval")
            first = self.round_rewards(complete).get(0)
            if first:
                first_mean = sum(first) / len(first)
                print(
                    f"Best vs round 1: AP {best.value:.4f} vs the round-1 mean {first_mean:.4f} "
                    f"({best.value - first_mean:+.4f}); round 1's best {max(first):.4f}"
                )
            if isinstance(space, HyperSpace):
                self._print_best_hyper(space, best, config_path)
            else:
                self._print_best_loss(space, best, config_path, work_dir)
        print("\nInspect the study in optuna-dashboard:")
        print(f"  {dashboard_command(options.storage, work_dir / 'artifacts')}", flush=True)

    def _print_best_hyper(self, space: Any, best: Any, config_path: Path) -> None:
        """A baseline's best hyperparameters against its hand-set trial, and the retraining."""
        from paploss.study.config.hyper_space import format_values

        options = self.options
        values = space.from_params(best.params)
        print(f"Best hyperparameters: {format_values(values)}")
        hand = [
            t
            for t in self.complete_trials()
            if t.user_attrs.get(keys.HAND_SET) and t.value is not None
        ]
        if hand:
            print(
                f"Hand-set values (trial {hand[0].number}): AP {hand[0].value:.4f} on D_eval "
                f"({best.value - hand[0].value:+.4f} for the best)"
            )
        print(f"As --cfg-options: {space.cfg_options_text(values)}")
        print(
            "\nRetrain them:\n  "
            f"{script_command('paploss-train')} --storage {command_url(options.storage)} "
            f"--study-name {options.study_name} --config {config_path}"
        )

    def _print_best_loss(self, space: Any, best: Any, config_path: Path, work_dir: Path) -> None:
        """The best loss parameters and the export / retraining command."""
        from paploss.study.search.records import params_note

        options = self.options
        print(params_note(space.from_params(best.params), "Best loss parameters"))
        print("Search values (study.best_params):")
        print(json.dumps({k: round(v, 6) for k, v in sorted(best.params.items())}))
        export = work_dir / f"{options.study_name}.best.json"
        print(
            "\nExport them for loss_cls=dict(type='ParameterizedAPLoss', "
            "params=dict(file=...)) / retrain:\n  "
            f"{script_command('paploss-train')} --storage "
            f"{command_url(options.storage)} --study-name {options.study_name} "
            f"--config {config_path} --export {export}"
        )
