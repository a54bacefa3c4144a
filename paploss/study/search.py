"""``studies/search.py``: the loss-parameter search as an Optuna study (paper Alg. 1).

Order of work, so that bad input never leaves a half-created study: parse and check the arguments,
build the sampler, load the config and find its loss heads, check and prepare ``--data`` (the proxy
is generated, a COCO json split); only then open the storage (errors: exit 2) and create or resume
the study (a study created with other settings: exit 2). Then this process runs trials until the
study has ``rounds x samples_per_round`` complete trials (or ``--n-trials`` / ``--timeout`` end
this worker).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paploss.study import keys
from paploss.study.cli import (
    EXIT_USAGE,
    UsageError,
    check_config_path,
    normalize_storage_url,
    search_parser,
)
from paploss.study.storage import open_storage

FUNCTIONS_PNG = "functions.png"


# ------------------------------------------------------------------------------ storage
def dashboard_url(url: str) -> str:
    """The storage URL for optuna-dashboard: a relative SQLite path made absolute, the installed
    PostgreSQL driver named."""
    url = normalize_storage_url(url)
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:
        return url
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database)
        if not path.is_absolute():
            parsed = parsed.set(database=str(path.resolve()))
        return parsed.render_as_string(hide_password=False)
    return url


def dashboard_command(url: str, artifact_dir: Path) -> str:
    """The exact optuna-dashboard command line for a study's storage and artifacts."""
    exe = Path(sys.executable).parent / "optuna-dashboard"
    if exe.exists():
        try:
            program = str(exe.relative_to(Path.cwd()))
        except ValueError:
            program = str(exe)
    else:
        program = "optuna-dashboard"
    return f"{program} {dashboard_url(url)} --artifact-dir {Path(artifact_dir).resolve()}"


# ------------------------------------------------------------------------------ settings
def space_options(args: Any) -> Any:
    """The SpaceOptions of ``--segments``, ``--shared-params``, ``--fixed-lambda``."""
    from paploss.study.space import SpaceOptions

    try:
        return SpaceOptions(
            num_segments=args.segments, shared=args.shared_params, fixed_lambda=args.fixed_lambda
        )
    except ValueError as exc:
        raise UsageError(f"--segments/--fixed-lambda: {exc}") from exc


def loss_variant(args: Any) -> Any:
    """The LossVariant of ``--loc-score`` and ``--no-block-grad``."""
    from paploss.study.space import LossVariant

    return LossVariant(loc_score=args.loc_score, block_grad=not args.no_block_grad)


def study_settings(args: Any, *, config_sha: str, data_identity: dict, space: Any) -> dict:
    """What all workers of a study must agree on (compared when a study is resumed/joined);
    ``--cfg-options`` of machine-local keys (``mmcfg.LOCATION_KEYS``) may differ.

    The search-space options and loss options are entries only when they differ from the
    defaults, so studies of the default search keep the settings they were created with."""
    from paploss.study.mmcfg import is_machine_local

    settings = {
        "config_sha256": config_sha,
        "cfg_options": {
            k: v for k, v in sorted(args.cfg_options.items()) if not is_machine_local(k)
        },
        "data": data_identity,
        "epochs": args.epochs,
        "train_seed": args.train_seed,
        "sampler": args.sampler,
        "rounds": args.rounds,
        "samples_per_round": args.samples_per_round,
        "sigma_init": args.sigma_init,
        "loss_slots": space.to_json(),
    }
    if not space.options.is_default:
        settings[keys.SPACE_OPTIONS] = space.options.to_json()
    options = loss_variant(args).loss_options()
    if options:
        settings[keys.LOSS_OPTIONS] = options
    return settings


def _json_roundtrip(value: Any) -> Any:
    return json.loads(json.dumps(value))


def settings_conflicts(stored: dict, mine: dict) -> list[str]:
    """Keys whose values differ (after a JSON round trip, as stored)."""
    mine = _json_roundtrip(mine)
    return sorted(k for k in set(stored) | set(mine) if stored.get(k) != mine.get(k))


def _describe_conflict(name: str, keys: list[str], stored: dict, mine: dict) -> str:
    mine = _json_roundtrip(mine)
    parts = [f"{k}: study has {stored.get(k)!r}, this command {mine.get(k)!r}" for k in keys]
    return (
        f"study {name!r} was created with other settings ({'; '.join(parts)}). Run this command "
        "with the study's settings to resume or join it, or choose a new --study-name"
    )


# ------------------------------------------------------------------------------ the search
class Search:
    """One worker of a search: the objective, the per-trial records and the progress lines."""

    def __init__(self, args: Any) -> None:
        self.args = args
        self.work_dir = Path(args.work_dir).resolve()
        self.started = time.monotonic()
        self.consecutive_failures = 0
        self.stopped_for_failures = False
        self.total = args.rounds * args.samples_per_round

    # ---- set-up ----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Everything that can fail on bad input, in the order that writes nothing first."""
        from paploss.study.data import check_data_arg, check_writable_dir
        from paploss.study.mmcfg import (
            check_model_builds,
            config_digest,
            epochs_of,
            load_config,
            search_space_of,
        )

        args = self.args
        if args.sampler == "ppo2" and args.samples_per_round < 2:
            raise UsageError(
                "--samples-per-round must be >= 2 with --sampler ppo2 (its update needs at least "
                "two rewards per round)"
            )
        self.config_path = check_config_path(args.config)
        check_data_arg(args.data)
        self.work_dir = check_writable_dir(args.work_dir, "--work-dir").resolve()
        self.cfg = load_config(self.config_path, args.cfg_options)
        self.space = search_space_of(self.cfg, self.config_path, space_options(args))
        self.loss_options = loss_variant(args).loss_options()
        epochs_of(self.cfg)
        check_model_builds(self.cfg, args.cfg_options)
        self.config_sha = config_digest(self.cfg)
        self.sampler = self._make_sampler()

    def _make_sampler(self) -> Any:
        from paploss.samplers import make_sampler

        args = self.args
        try:
            return make_sampler(
                args.sampler,
                search_space=self.space.distributions(),
                init_mean=self.space.init_mean(),
                seed=args.seed,
                samples_per_round=args.samples_per_round,
                rounds=args.rounds,
                sigma_init=args.sigma_init,
                round_timeout=args.round_timeout,
            )
        except (ValueError, ImportError) as exc:
            raise UsageError(f"--sampler {args.sampler}: {exc}") from exc

    def open(self) -> None:
        """Prepare the data, open the storage, create or join the study."""
        import optuna
        from optuna.artifacts import FileSystemArtifactStore
        from optuna.exceptions import ExperimentalWarning

        from paploss.study.data import ensure_writable_dir, resolve_data
        from paploss.study.mmcfg import ensure_backbones

        args = self.args
        ensure_writable_dir(self.work_dir, "--work-dir")
        # The data first: a bad COCO json must not leave even an empty database behind.
        self.data = resolve_data(
            args.data,
            work_dir=self.work_dir,
            eval_images=args.eval_images,
            split_seed=args.split_seed,
        )
        ensure_backbones(self.cfg, log=lambda msg: print(f"[search] {msg}", flush=True))
        self.storage = open_storage(
            args.storage,
            heartbeat_interval=args.heartbeat_interval,
            grace_period=args.grace_period,
            max_retry=args.max_retry,
        )
        settings = study_settings(
            args, config_sha=self.config_sha, data_identity=self.data.identity(), space=self.space
        )
        exists = True
        try:
            self.storage.get_study_id_from_name(args.study_name)
        except KeyError:
            exists = False
        if exists:
            study = optuna.load_study(
                study_name=args.study_name,
                storage=self.storage,
                sampler=self.sampler,
                pruner=optuna.pruners.NopPruner(),
            )
            self._check_existing(study, settings)
        else:
            study = optuna.create_study(
                study_name=args.study_name,
                storage=self.storage,
                sampler=self.sampler,
                pruner=optuna.pruners.NopPruner(),
                direction="maximize",
                load_if_exists=True,
            )
            with warnings.catch_warnings():  # experimental in Optuna
                warnings.simplefilter("ignore", ExperimentalWarning)
                study.set_metric_names(["AP"])  # the objective's name in optuna-dashboard
        self.study = study
        self.artifact_dir = self.work_dir / "artifacts"
        self.artifact_dir.mkdir(parents=True, exist_ok=True)
        self.artifact_store = FileSystemArtifactStore(str(self.artifact_dir))
        self.study_dir = self.work_dir / args.study_name
        self.study_dir.mkdir(parents=True, exist_ok=True)
        if keys.SETTINGS not in study.user_attrs:
            self._record_study(settings)
        # Another worker may have created it concurrently with different settings.
        self._check_existing(study, settings)

    def _check_existing(self, study: Any, settings: dict) -> None:
        from optuna.study import StudyDirection

        if study.directions != [StudyDirection.MAXIMIZE]:
            raise UsageError(
                f"study {study.study_name!r} is not a single-objective maximization study; "
                "choose a new --study-name"
            )
        stored = study.user_attrs.get(keys.SETTINGS)
        if stored is None:
            return
        conflicts = settings_conflicts(stored, settings)
        if conflicts:
            raise UsageError(_describe_conflict(study.study_name, conflicts, stored, settings))

    def _record_study(self, settings: dict) -> None:
        from optuna_dashboard import save_note

        args, study = self.args, self.study
        study.set_user_attr(keys.CONFIG, str(self.config_path))
        study.set_user_attr(keys.CFG_OPTIONS, args.cfg_options)
        study.set_user_attr(keys.DATA, self.data.record())
        study.set_user_attr(
            keys.SAMPLER,
            {
                "name": args.sampler,
                "rounds": args.rounds,
                "samples_per_round": args.samples_per_round,
                "sigma_init": args.sigma_init,
                "seed": args.seed,
            },
        )
        study.set_user_attr(keys.EPOCHS, args.epochs)
        study.set_user_attr(keys.TRAIN_SEED, args.train_seed)
        study.set_user_attr(keys.LOSS_SLOTS, self.space.to_json())
        study.set_user_attr(keys.SPACE_OPTIONS, self.space.options.to_json())
        study.set_user_attr(keys.LOSS_OPTIONS, self.loss_options)
        study.set_user_attr(keys.ARTIFACT_DIR, str(self.artifact_dir))
        study.set_user_attr(keys.COMMAND, " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]))
        # Written last: its presence marks a fully recorded study.
        study.set_user_attr(keys.SETTINGS, _json_roundtrip(settings))
        # The resolved config (base files merged, --cfg-options applied) as the study's record.
        config_copy = self.study_dir / "search_config.py"
        self.cfg.dump(str(config_copy))
        from optuna.artifacts import upload_artifact

        upload_artifact(
            artifact_store=self.artifact_store, file_path=str(config_copy), study_or_trial=study
        )
        slots = ", ".join(
            f"`{s.key}`" + (f" (`{s.prefix}*`)" if s.name else "") for s in self.space.slots
        )
        save_note(
            study,
            "\n".join(
                [
                    f"## Parameterized AP Loss search `{study.study_name}`",
                    "",
                    f"- config: `{self.config_path}` (resolved: artifact {config_copy.name})",
                    f"- cfg-options: `{args.cfg_options}`",
                    f"- data: {self.data.kind} `{' '.join(self.data.source)}`; D_train "
                    f"`{self.data.splits['train'].ann_file}`, D_eval "
                    f"`{self.data.splits['eval'].ann_file}`",
                    f"- sampler: {args.sampler}, {args.rounds} rounds x {args.samples_per_round} "
                    f"samples, sigma_init {args.sigma_init}, seed {args.seed}",
                    f"- inner training: {args.epochs} epoch(s), seed {args.train_seed}",
                    f"- loss heads: {slots}",
                    f"- search space: {self.space.options.describe()} "
                    f"({len(self.space.names())} parameters)",
                    f"- loss options on every head: `{self.loss_options or 'config defaults'}`",
                    "- trial value: bbox mAP on D_eval (maximized); diverged trainings count as 0",
                    "- plot: artifact `best_so_far.png` (best AP so far per round, paper Fig. 3) "
                    "and the plotly figure below",
                ]
            ),
        )

    # ---- state -----------------------------------------------------------------------------
    def complete_trials(self) -> list[Any]:
        from optuna.trial import TrialState

        return self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))

    def is_finished(self) -> bool:
        from paploss.samplers import PPO2Sampler

        if isinstance(self.sampler, PPO2Sampler):
            return self.sampler.is_finished(self.study)
        return len(self.complete_trials()) >= self.total

    # ---- the objective ---------------------------------------------------------------------
    def objective(self, trial: Any) -> float:
        from optuna_dashboard import save_note

        from paploss.study.mmcfg import prepare_config, save_loss_params
        from paploss.study.records import lambda_attrs, params_note, plot_functions
        from paploss.study.trial import METRICS, TrialCrashed, loss_buckets

        args = self.args
        self.current_trial = trial.number
        params = self.space.suggest(trial)  # may wait for a PPO2 round, or end the search
        run_dir = self.study_dir / f"trial_{trial.number:05d}"
        run_dir.mkdir(parents=True, exist_ok=True)
        system_attrs = trial.storage.get_trial_system_attrs(trial._trial_id)
        retry_of = system_attrs.get(keys.FAILED_TRIAL)
        trial.set_user_attr(keys.WORKER, f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr(keys.WORK_DIR, str(run_dir))
        if retry_of is not None:
            trial.set_user_attr(keys.RETRY_OF, int(retry_of))
        for key, value in lambda_attrs(params).items():
            trial.set_user_attr(key, value)
        save_note(trial, params_note(params, f"Trial {trial.number}: loss parameters"))
        png = plot_functions(
            params, run_dir / FUNCTIONS_PNG, f"{self.study.study_name}, trial {trial.number}"
        )
        inherited = [
            v
            for k, v in system_attrs.items()
            if k.startswith("artifacts:") and FUNCTIONS_PNG in str(v)
        ]
        if not inherited:  # a retried trial keeps the picture of its original
            from optuna.artifacts import upload_artifact

            upload_artifact(
                artifact_store=self.artifact_store, file_path=str(png), study_or_trial=trial
            )
        save_loss_params(params, run_dir)
        cfg = prepare_config(
            self.cfg,
            space=self.space,
            loss_params=params,
            train=self.data.splits["train"],
            evaluate=self.data.splits["eval"],
            work_dir=run_dir,
            epochs=args.epochs,
            seed=args.train_seed,
            search=True,
            loss_options=self.loss_options,
        )
        config_file = run_dir / "config.py"
        cfg.dump(str(config_file))
        try:
            result = self.runner.run(run_dir, config=config_file, timeout=args.trial_timeout)
        except TrialCrashed as exc:
            trial.set_user_attr(keys.ERROR, str(exc)[-4000:])
            raise
        for step, value in loss_buckets(result.loss_curve):
            trial.report(value, step)
        for name in METRICS:
            trial.set_user_attr(name, float(result.metrics[name]))
        trial.set_user_attr(keys.DIVERGED, result.diverged)
        if result.diverged_at is not None:
            trial.set_user_attr(keys.DIVERGED_AT, int(result.diverged_at))
        trial.set_user_attr(keys.TRAIN_SECONDS, round(result.train_seconds, 3))
        trial.set_user_attr(keys.EVAL_SECONDS, round(result.eval_seconds, 3))
        if result.startup_seconds is not None:
            trial.set_user_attr(keys.STARTUP_SECONDS, round(result.startup_seconds, 3))
        trial.set_user_attr(keys.ITERATIONS, result.iterations)
        if result.loss_curve:
            trial.set_user_attr(keys.FINAL_LOSS, result.loss_curve[-1][1])
        return float(result.metrics["AP"])

    # ---- callbacks -------------------------------------------------------------------------
    def after_trial(self, study: Any, frozen: Any) -> None:
        from optuna.trial import TrialState

        from paploss.study.records import progress_line

        if frozen.state == TrialState.COMPLETE:
            self.consecutive_failures = 0
            complete = self.complete_trials()
            n = len(complete)
            best = max(complete, key=lambda t: t.value)
            elapsed = time.monotonic() - self.started
            done_here = n - self.complete_at_start
            remaining = max(0, self.total - n)
            eta = elapsed / done_here * remaining if done_here > 0 else None
            round_index = frozen.user_attrs.get(keys.ROUND)
            if round_index is None:
                round_index = (n - 1) // self.args.samples_per_round
            print(
                progress_line(
                    trial_number=frozen.number,
                    round_index=int(round_index),
                    rounds=self.args.rounds,
                    ap=float(frozen.value),
                    diverged=bool(frozen.user_attrs.get(keys.DIVERGED)),
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
            self.current_trial = None
            self.print_round_summary(complete, int(round_index))
            self.update_study_plot()
            if self.is_finished():  # no surplus trial is asked for once the study is complete
                study.stop()
        elif frozen.state == TrialState.PRUNED and keys.YIELDED in frozen.user_attrs:
            yielded = frozen.user_attrs[keys.YIELDED]
            print(
                f"[search] trial {frozen.number} gave way to the retries {yielded['retries']} "
                f"of round {yielded['round']} (pruned; it trained nothing)",
                flush=True,
            )
        elif frozen.state == TrialState.FAIL:
            self.current_trial = None
            self.consecutive_failures += 1
            reason = str(frozen.user_attrs.get(keys.ERROR, "see the log above")).splitlines()[0]
            print(
                f"[search] trial {frozen.number} FAILED: {reason} "
                f"(work dir {frozen.user_attrs.get(keys.WORK_DIR, '?')})",
                flush=True,
            )
            if self.consecutive_failures >= self.args.max_failures:
                self.stopped_for_failures = True
                study.stop()

    def round_rewards(self, complete: list[Any]) -> dict[int, list[float]]:
        """``{round index: [AP, ...]}`` of the complete trials (PPO2's round attr, else by order)."""
        rounds: dict[int, list[float]] = {}
        for k, t in enumerate(sorted(complete, key=lambda t: t.number)):
            r = t.user_attrs.get(keys.ROUND)
            r = k // self.args.samples_per_round if r is None else int(r)
            rounds.setdefault(r, []).append(float(t.value))
        return rounds

    def mean_shift(self, round_index: int) -> float | None:
        """L2 distance (in the sampler's unit space) between PPO2's mean of ``round_index`` and
        that of the round before (None when not PPO2 or not stored)."""
        import numpy as np

        if not self._is_ppo2() or round_index < 1:
            return None
        now = self.sampler.stored_round_mean(self.study, round_index)
        before = self.sampler.stored_round_mean(self.study, round_index - 1)
        if now is None or before is None:
            return None
        names = self.sampler.param_names
        return float(np.linalg.norm([now[n] - before[n] for n in names]))

    def print_round_summary(self, complete: list[Any], round_index: int) -> None:
        """When ``round_index`` has all its samples: its best and mean reward, how many collapsed
        to AP < 0.001, and how far the sampling mean moved to draw them."""
        rewards = self.round_rewards(complete).get(round_index, [])
        if len(rewards) != self.args.samples_per_round:
            return
        shift = self.mean_shift(round_index)
        moved = "" if shift is None else f" | mean moved {shift:.3f} (L2, unit space)"
        collapsed = sum(1 for v in rewards if v < 1e-3)
        print(
            f"[search] == round {round_index + 1}/{self.args.rounds} done: best "
            f"{max(rewards):.4f} | mean {sum(rewards) / len(rewards):.4f} | "
            f"{collapsed}/{len(rewards)} at AP < 0.001{moved}",
            flush=True,
        )

    def _is_ppo2(self) -> bool:
        from paploss.samplers import PPO2Sampler

        return isinstance(self.sampler, PPO2Sampler)

    def update_study_plot(self) -> None:
        """Best AP so far per round: PNG artifact + plotly figure of the study."""
        from optuna_dashboard import save_plotly_graph_object

        from paploss.study.records import (
            BEST_PLOT_ID,
            BEST_PLOT_NAME,
            best_so_far,
            best_so_far_figure,
            plot_best_so_far,
            update_study_artifact,
        )

        rows = best_so_far(self.study.get_trials(deepcopy=False), self.args.samples_per_round)
        title = f"{self.study.study_name}: best AP so far per round ({self.args.sampler})"
        png = plot_best_so_far(rows, self.study_dir / BEST_PLOT_NAME, title)
        update_study_artifact(self.study, self.artifact_store, png)
        save_plotly_graph_object(
            self.study, best_so_far_figure(rows, title), graph_object_id=BEST_PLOT_ID
        )

    # ---- run -------------------------------------------------------------------------------
    def run(self) -> int:
        from paploss.study.trial import TrialCrashed

        args = self.args
        self.complete_at_start = len(self.complete_trials())
        if self.is_finished():
            print(
                f"[search] study {args.study_name!r} is already complete "
                f"({self.complete_at_start} complete trials)",
                flush=True,
            )
        else:
            print(
                f"[search] study {args.study_name!r}: {self.complete_at_start}/{self.total} "
                f"trials complete; {args.sampler}, {args.rounds} rounds x "
                f"{args.samples_per_round} samples, {args.epochs} epoch(s) per trial; "
                f"work dir {self.study_dir}",
                flush=True,
            )
            from paploss.study.warm import WarmRunner

            # One pre-imported process forks every trial's training (no imports per trial).
            with WarmRunner(device=args.device) as self.runner:
                self.runner.start()  # imports while the first trial is being suggested
                try:
                    self.study.optimize(
                        self.objective,
                        n_trials=args.n_trials,
                        timeout=args.timeout,
                        catch=(TrialCrashed,),
                        callbacks=[self.after_trial],
                        gc_after_trial=False,
                    )
                except KeyboardInterrupt:
                    self.retry_interrupted()
                    raise
        self.print_summary()
        if self.stopped_for_failures:
            print(
                f"error: {self.consecutive_failures} consecutive trials failed; fix the setup "
                "(see the trials' child.log) and run the command again",
                file=sys.stderr,
            )
            return 1
        if self.consecutive_failures:
            print(
                f"error: the last {self.consecutive_failures} trial(s) of this worker failed (see "
                "the FAILED lines above and the trials' child.log); fix the cause and run the "
                "command again",
                file=sys.stderr,
            )
            return 1
        return 0

    def retry_interrupted(self) -> None:
        """Give the trial that an interrupt (Ctrl-C, SIGINT) stopped a WAITING retry with the same
        sample in the same round, as a killed worker's trial gets one from the heartbeat check;
        the next run of the command trains it first."""
        from optuna.storages import RetryHeartbeatStaleTrialCallback
        from optuna.trial import TrialState

        number = getattr(self, "current_trial", None)
        if number is None:
            return
        storage = self.study._storage
        trial_id = storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)
        frozen = storage.get_trial(trial_id)
        if frozen.state == TrialState.RUNNING:
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
            frozen = storage.get_trial(trial_id)
        if frozen.state != TrialState.FAIL or not frozen.params:
            return  # finished, or stopped before it had a sample
        RetryHeartbeatStaleTrialCallback(max_retry=self.args.max_retry)(self.study, frozen)
        print(
            f"[search] trial {number} was interrupted; its sample is queued to be trained first "
            "when the command runs again",
            file=sys.stderr,
            flush=True,
        )

    def print_summary(self) -> None:
        from paploss.study.records import params_note

        complete = self.complete_trials()
        finished = self.is_finished()
        state = "complete" if finished else "not complete yet (run the command again to resume)"
        print(f"[search] study {self.args.study_name!r}: {len(complete)} complete trials, {state}")
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
            print(params_note(self.space.from_params(best.params), "Best loss parameters"))
            print("Search values (study.best_params):")
            print(json.dumps({k: round(v, 6) for k, v in sorted(best.params.items())}))
            export = self.work_dir / f"{self.args.study_name}.best.json"
            print(
                "\nExport them for loss_params=dict(file=...) / retrain:\n  "
                f"{python_command()} studies/train.py --storage "
                f"{dashboard_url(self.args.storage)} --study-name {self.args.study_name} "
                f"--config {self.config_path} --export {export}"
            )
        print("\nInspect the study in optuna-dashboard:")
        print(f"  {dashboard_command(self.args.storage, self.artifact_dir)}", flush=True)


def python_command() -> str:
    """The running interpreter, relative to the current folder when inside it."""
    exe = Path(sys.executable)
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return str(exe)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``studies/search.py``; returns the exit code."""
    args = search_parser().parse_args(argv)
    search = Search(args)
    try:
        search.prepare()
        search.open()
        return search.run()
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to resume the study", file=sys.stderr)
        return 130
