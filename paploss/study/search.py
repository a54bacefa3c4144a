"""``studies/search.py``: the loss-parameter search as an Optuna study (paper Alg. 1).

Order of work, so that bad input never leaves a half-created study: parse and check the arguments,
build the sampler, load the config and find its loss heads, check and prepare ``--data`` (the proxy
is generated, a COCO json split); only then open the storage (errors: exit 2) and create or resume
the study (a study created with other settings: exit 2). Then this process runs trials until the
study has ``rounds x samples_per_round`` complete trials (or ``--n-trials`` / ``--timeout`` end
this worker).
"""

from __future__ import annotations

import signal
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paploss.errors import InputError
from paploss.study import keys
from paploss.study.cli import EXIT_USAGE, UsageError, check_config_path
from paploss.study.parsers import search_parser
from paploss.study.storage import (
    describe_conflict,
    json_roundtrip,
    open_storage,
    settings_conflicts,
)


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


# ------------------------------------------------------------------------------ the search
class Search:
    """One worker of a search: checks its input, opens (or joins) the study, records the study's
    settings, then runs trials (:mod:`paploss.study.objective`) with the progress lines of
    :mod:`paploss.study.progress`."""

    def __init__(self, args: Any) -> None:
        self.args = args
        self.work_dir = Path(args.work_dir).resolve()

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
        # The data first: a bad COCO json must not leave a database or a work dir behind.
        self.data = resolve_data(
            args.data,
            work_dir=self.work_dir,
            eval_images=args.eval_images,
            split_seed=args.split_seed,
        )
        ensure_writable_dir(self.work_dir, "--work-dir")
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
            raise UsageError(describe_conflict(study.study_name, conflicts, stored, settings))

    def _record_study(self, settings: dict) -> None:
        from paploss.study.records import dashboard_note

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
        study.set_user_attr(keys.SETTINGS, json_roundtrip(settings))
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
        dashboard_note(
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
                    "- plot: artifact `best_so_far.png` (best AP so far per round, paper Fig. 3)",
                ]
            ),
        )

    # ---- run -------------------------------------------------------------------------------
    def run(self) -> int:
        """Run trials until the study is complete (or this worker's limits end it); exit code."""
        from paploss.study.objective import Objective, TrialSetup
        from paploss.study.progress import Progress
        from paploss.study.trial import TrialCrashed
        from paploss.study.warm import WarmRunner

        args = self.args
        progress = Progress(
            study=self.study,
            sampler=self.sampler,
            args=args,
            study_dir=self.study_dir,
            artifact_store=self.artifact_store,
        )
        if progress.is_finished():
            print(
                f"[search] study {args.study_name!r} is already complete "
                f"({progress.complete_at_start} complete trials)",
                flush=True,
            )
        else:
            print(
                f"[search] study {args.study_name!r}: {progress.complete_at_start}/"
                f"{progress.total} trials complete; {args.sampler}, {args.rounds} rounds x "
                f"{args.samples_per_round} samples, {args.epochs} epoch(s) per trial; "
                f"work dir {self.study_dir}",
                flush=True,
            )
            setup = TrialSetup(
                cfg=self.cfg,
                space=self.space,
                data=self.data,
                loss_options=self.loss_options,
                epochs=args.epochs,
                train_seed=args.train_seed,
                trial_timeout=args.trial_timeout,
                study_dir=self.study_dir,
                artifact_store=self.artifact_store,
            )
            # One pre-imported process forks every trial's training (no imports per trial).
            with WarmRunner(device=args.device) as runner:
                runner.start()  # imports while the first trial is being suggested
                objective = Objective(setup, runner)
                try:
                    self.study.optimize(
                        objective,
                        n_trials=args.n_trials,
                        timeout=args.timeout,
                        catch=(TrialCrashed,),
                        callbacks=progress.callbacks(),
                        gc_after_trial=False,
                    )
                except KeyboardInterrupt:
                    self.retry_interrupted(objective.current_trial)
                    raise
        progress.print_summary(
            space=self.space, config_path=self.config_path, work_dir=self.work_dir
        )
        return self._exit_code(progress)

    @staticmethod
    def _exit_code(progress: Any) -> int:
        """1 when this worker stopped for failures or its last trial failed, else 0."""
        if progress.stopped_for_failures:
            print(
                f"error: {progress.consecutive_failures} consecutive trials failed; fix the setup "
                "(see the trials' child.log) and run the command again",
                file=sys.stderr,
            )
            return 1
        if progress.consecutive_failures:
            print(
                f"error: the last {progress.consecutive_failures} trial(s) of this worker failed "
                "(see the FAILED lines above and the trials' child.log); fix the cause and run "
                "the command again",
                file=sys.stderr,
            )
            return 1
        return 0

    def retry_interrupted(self, number: int | None) -> None:
        """Give the trial that an interrupt (Ctrl-C, SIGINT) stopped a WAITING retry with the same
        sample in the same round, as a killed worker's trial gets one from the heartbeat check;
        the next run of the command trains it first."""
        from optuna.storages import RetryHeartbeatStaleTrialCallback
        from optuna.trial import TrialState

        if number is None:
            return
        frozen = self.study.get_trials(deepcopy=False)[number]
        if frozen.state == TrialState.RUNNING:
            self.study.tell(number, state=TrialState.FAIL)
            frozen = self.study.get_trials(deepcopy=False)[number]
        if frozen.state != TrialState.FAIL or not frozen.params:
            return  # finished, or stopped before it had a sample
        RetryHeartbeatStaleTrialCallback(max_retry=self.args.max_retry)(self.study, frozen)
        print(
            f"[search] trial {number} was interrupted; its sample is queued to be trained first "
            "when the command runs again",
            file=sys.stderr,
            flush=True,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``studies/search.py``; returns the exit code."""
    args = search_parser().parse_args(argv)
    # Ctrl-C / SIGINT interrupts the worker (the running trial is queued again) also when this
    # process was started in the background, which inherits SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    search = Search(args)
    try:
        search.prepare()
        search.open()
        return search.run()
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to resume the study", file=sys.stderr)
        return 130
