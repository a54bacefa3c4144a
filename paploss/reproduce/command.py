"""``paploss-reproduce`` (``studies/reproduce.py``): the paper's ablations (Tab. 1-9, Fig. 3-4) on
the proxy, resumable.

This module holds the command line (:func:`parser`, :func:`main`): it runs the jobs of the chosen
experiments with :class:`paploss.reproduce.runner.Reproduction` and then, also with
``--report-only``, writes the report (:mod:`paploss.reproduce.report`).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from paploss.errors import InputError
from paploss.reproduce.experiments import BUDGETS
from paploss.reproduce.lock import GRACE_PERIOD, LOCK_STUDY, ReproductionLock
from paploss.reproduce.options import ReproduceOptions
from paploss.reproduce.plan import ALL_ORDER, EXPERIMENTS
from paploss.reproduce.report import write_report
from paploss.reproduce.runner import Reproduction
from paploss.study.cli import EXIT_USAGE, device_type, positive_int
from paploss.study.options import from_namespace

DEFAULT_REPORT = Path("docs") / "reproduction.md"
"""Relative to the current folder: a checkout's root holds the committed report."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="paploss-reproduce",
        description="Reproduce the paper's comparisons (Tab. 1-9, Fig. 3-4) on the proxy as "
        "Optuna studies in one storage; run the same command again to continue a stopped run. "
        "Writes the report with the paper's numbers beside the proxy's. One reproduction at a "
        "time trains on a storage: a second one on the same storage exits with code 2 while the "
        f"first runs (a lock trial in the study {LOCK_STUDY!r} with a heartbeat; the lock of a "
        f"killed run expires {GRACE_PERIOD} s after its last heartbeat; journal:PATH storages: "
        "a file lock beside the journal). --report-only takes no lock.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "experiments",
        nargs="+",
        choices=(*EXPERIMENTS, "all"),
        metavar="EXPERIMENT",
        help=f"any of {', '.join(EXPERIMENTS)}, or all (order: {' '.join(ALL_ORDER)})",
    )
    p.add_argument(
        "--budget",
        choices=tuple(BUDGETS),
        default="full",
        help="quick: 2 rounds x 2 samples, 2 Fig. 3 repeats, 3 seeds per row (a test); full: 4 "
        "rounds x 4 samples, 6 Fig. 3 repeats per sampler (PPO2, random), 5 seeds for a row in a "
        "stated ordering and 3 for the others; extended: full plus TPE and CMA-ES in Fig. 3 "
        "(6 repeats each), in full's default storage and work dir, so it continues a full run; "
        "all 1 epoch per training",
    )
    p.add_argument(
        "--data",
        nargs="+",
        default=["proxy"],
        metavar="DATA",
        help="'proxy' or a proxy-layout folder with train/, eval/ and val/ splits",
    )
    p.add_argument(
        "--storage",
        default=None,
        help="Optuna storage of all the studies (default: sqlite file "
        "CACHE/reproduce/<budget>.db, extended: full's, CACHE = $PAPLOSS_CACHE or "
        "~/.cache/paploss)",
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="runs and logs (default: CACHE/reproduce/<budget>/, extended: full's)",
    )
    p.add_argument(
        "--report",
        type=Path,
        default=DEFAULT_REPORT,
        help="the report (markdown), relative to the current folder (a checkout's root: the "
        "committed docs/reproduction.md)",
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="write the report from what has run; train nothing",
    )
    p.add_argument("--device", type=device_type, default="auto", help="device of every training")
    p.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="trainings at once: searches run side by side (one worker each) and row seeds start "
        "as slots free up, in the plan's order; a free slot with nothing else to start joins a "
        "running search as one more worker on its study. Each training gets cores // N torch "
        "threads (unless OMP_NUM_THREADS is set)",
    )
    return p


def parse(argv: Sequence[str] | None = None) -> ReproduceOptions:
    """``paploss-reproduce``'s command line (``sys.argv[1:]`` when None) as its options."""
    return from_namespace(ReproduceOptions, parser().parse_args(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``paploss-reproduce`` (``studies/reproduce.py``); returns the exit code."""
    options = parse(argv)
    # Ctrl-C and SIGTERM stop the run the same way (children stopped, a message, exit 130), also
    # when this process was started in the background, which inherits SIGINT ignored; the
    # children exec with the default action again.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    repro = Reproduction(options)
    try:
        repro.check()
        repro.open()
        if options.report_only:
            rc = 0
        else:
            with ReproductionLock(repro.storage_url):
                rc = repro.run()
        path = write_report(repro, options.report)
        print(f"[reproduce] report: {path}", flush=True)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to continue", file=sys.stderr)
        return 130
    if repro.failures:
        print("error: some jobs did not finish: " + "; ".join(repro.failures), file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
