"""``paploss-search`` (``studies/search.py``): the loss-parameter search as an Optuna study
(paper Alg. 1).

Order of work, so that bad input never leaves a half-created study
(:mod:`paploss.study.search.setup`): parse and check the arguments, load the config and find its
loss heads, build the sampler (:func:`~paploss.study.search.setup.prepare`); check and prepare
``--data`` (the proxy is generated, a COCO json split), and only then open the storage and create
or join the study (:func:`~paploss.study.search.setup.open_study`; a study created with other
settings: exit 2). Then :func:`run` trains trials until the study has
``rounds x samples_per_round`` complete trials (or ``--n-trials`` / ``--timeout`` end this worker),
with ``--workers N`` beside N - 1 local copies of the command (:mod:`paploss.study.search.workers`).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from typing import Any

from paploss.errors import InputError
from paploss.study.cli import EXIT_USAGE
from paploss.study.parsers import parse_search
from paploss.study.search.setup import OpenStudy, SearchPlan, open_study, prepare


def run(plan: SearchPlan, opened: OpenStudy, *, argv: Sequence[str] = ()) -> int:
    """Run trials until the study is complete (or this worker's limits end it); exit code.
    ``argv`` (the command's arguments) starts the local copies of ``--workers N``."""
    from paploss.study.runner.trial import TrialCrashed
    from paploss.study.runner.warm import WarmRunner
    from paploss.study.search.objective import Objective, TrialSetup
    from paploss.study.search.progress import Progress
    from paploss.study.search.workers import LocalWorkers, is_helper

    options, study = plan.options, opened.study
    copies_failed = False
    progress = Progress(
        study=study,
        sampler=plan.sampler,
        options=options,
        study_dir=opened.study_dir,
        artifact_store=opened.artifact_store,
    )
    if progress.is_finished():
        print(
            f"[search] study {options.study_name!r} is already complete "
            f"({progress.complete_at_start} complete trials)",
            flush=True,
        )
    else:
        print(
            f"[search] study {options.study_name!r}: {progress.complete_at_start}/"
            f"{progress.total} trials complete; {options.sampler}, {options.rounds} rounds x "
            f"{options.samples_per_round} samples, {options.epochs} epoch(s) per trial; "
            f"work dir {opened.study_dir}",
            flush=True,
        )
        setup = TrialSetup(
            cfg=plan.cfg,
            space=plan.space,
            data=opened.data,
            loss_options=plan.loss_options,
            epochs=options.epochs,
            train_seed=options.train_seed,
            trial_timeout=options.trial_timeout,
            study_dir=opened.study_dir,
            artifact_store=opened.artifact_store,
            early_stop=plan.collapse_rule is not None,
        )
        workers = 1 if is_helper() else options.workers
        with LocalWorkers(argv, count=workers, log_dir=opened.study_dir) as copies:
            # One pre-imported process forks every trial's training (no imports per trial).
            with WarmRunner(
                device=options.device, nproc_per_trial=options.nproc_per_trial
            ) as runner:
                runner.start()  # imports while the first trial is being suggested
                objective = Objective(setup, runner)
                try:
                    study.optimize(
                        objective,
                        n_trials=options.n_trials,
                        timeout=options.timeout,
                        catch=(TrialCrashed,),
                        callbacks=progress.callbacks(),
                        gc_after_trial=False,
                    )
                except KeyboardInterrupt:
                    retry_interrupted(study, objective.current_trial, max_retry=options.max_retry)
                    raise
            copies_failed = copies.wait() != 0  # the summary waits for the copies' trials
        progress.print_new()  # what the copies completed after this worker's last trial
    progress.print_summary(space=plan.space, config_path=plan.config_path, work_dir=plan.work_dir)
    return _exit_code(progress) or int(copies_failed)


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


def retry_interrupted(study: Any, number: int | None, *, max_retry: int) -> None:
    """Give the trial that an interrupt (Ctrl-C, SIGINT, SIGTERM) stopped a WAITING retry with the same
    sample in the same round, as a killed worker's trial gets one from the heartbeat check; the
    next run of the command trains it first."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    if number is None:
        return
    frozen = study.get_trials(deepcopy=False)[number]
    if frozen.state == TrialState.RUNNING:
        study.tell(number, state=TrialState.FAIL)
        frozen = study.get_trials(deepcopy=False)[number]
    if frozen.state != TrialState.FAIL or not frozen.params:
        return  # finished, or stopped before it had a sample
    RetryHeartbeatStaleTrialCallback(max_retry=max_retry)(study, frozen)
    print(
        f"[search] trial {number} was interrupted; its sample is queued to be trained first "
        "when the command runs again",
        file=sys.stderr,
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``paploss-search`` (``studies/search.py``); returns the exit code."""
    options = parse_search(argv)
    # Ctrl-C / SIGINT and SIGTERM (kill, a job scheduler's stop) interrupt the worker alike: the
    # running trial is failed and its sample queued again at once, also when this process was
    # started in the background, which inherits SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        plan = prepare(options)
        return run(plan, open_study(plan), argv=sys.argv[1:] if argv is None else argv)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to resume the study", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
