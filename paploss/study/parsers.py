"""The argument parsers of the command-line entry points: ``paploss-search``
(:func:`search_parser`), ``paploss-train`` (:func:`train_parser`) and ``paploss-split-coco``
(:func:`split_parser`); ``studies/search.py``, ``studies/train.py`` and ``studies/split_coco.py``
run the same. :func:`parse_search`, :func:`parse_train` and :func:`parse_split` turn a command
line into the command's typed options (:mod:`paploss.study.options`). The value types, shared
options and exit-code convention are in :mod:`paploss.study.cli`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from paploss.samplers import SAMPLER_NAMES
from paploss.study.cli import (
    DEFAULT_STORAGE,
    DEFAULT_STUDY,
    Formatter,
    add_common,
    add_loss_variant,
    fixed_lambda_type,
    non_negative_int,
    positive_float,
    positive_int,
    wrap,
)
from paploss.study.options import SearchOptions, SplitOptions, TrainOptions, from_namespace


def search_parser() -> argparse.ArgumentParser:
    """Parser of ``paploss-search`` (``studies/search.py``)."""
    parser = argparse.ArgumentParser(
        prog="paploss-search",
        formatter_class=Formatter,
        description=wrap(
            "Search the Parameterized AP Loss parameters (paper Alg. 1) as an Optuna study: each "
            "trial samples Theta, trains the detector on D_train for --epochs in a child process "
            "and returns bbox mAP on D_eval (maximized). A diverged training counts as AP 0 "
            "(user attr diverged=True); a crashed one is a FAILED trial. Run the same command on "
            "any number of machines with one --storage/--study-name to add workers; run it again "
            "to resume until rounds x samples-per-round trials are complete."
        ),
        epilog=(
            "Inspect a study: optuna-dashboard STORAGE --artifact-dir WORK_DIR/artifacts\n"
            "Retrain with the best params: paploss-train --storage STORAGE --study-name NAME"
        ),
    )
    add_common(parser, work_dir="work_dirs/search", search=True)
    _add_search_data(parser)
    _add_sampler(parser)
    _add_search_space(parser)
    _add_worker_limits(parser)
    add_nproc(parser)
    return parser


def _add_search_data(parser: argparse.ArgumentParser) -> None:
    """D_train / D_eval and the study's storage."""
    parser.add_argument(
        "--data",
        nargs="+",
        default=["proxy"],
        metavar="DATA",
        help="'proxy' (the bundled digits proxy, generated on first use), a folder with train/ "
        "and eval/ splits (annotations.json + images/), or a COCO train json and its image "
        "folder (ANN.json IMG_DIR), split by image into D_train / D_eval",
    )
    parser.add_argument(
        "--eval-images",
        type=positive_int,
        default=None,
        help="D_eval size when --data is a COCO json (default: min(5000, 20%% of the images); "
        "the paper used 5k of train2017's 118k)",
    )
    parser.add_argument(
        "--split-seed", type=non_negative_int, default=0, help="seed of the D_train/D_eval split"
    )
    parser.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        help="Optuna storage: an RDB (SQLAlchemy URL): the default SQLite file for one machine, "
        "or e.g. postgresql://user:pass@host/db (pip install psycopg2-binary) or "
        "mysql+pymysql://... for many workers on many machines; or a journal file "
        "journal:PATH (journal:search.log, journal:///abs/search.log: Optuna's JournalStorage, "
        "for many workers on one host without a database server; it has no heartbeats, so a "
        "killed worker's trial stays RUNNING and is not retried)",
    )
    parser.add_argument(
        "--study-name",
        default=DEFAULT_STUDY,
        help="study to create or resume; its trials run in WORK_DIR/STUDY_NAME, so the name is a "
        "relative path without '..' (e.g. my-search or search/tab1)",
    )


def _add_sampler(parser: argparse.ArgumentParser) -> None:
    """The sampler, its rounds and seeds, and the inner training."""
    parser.add_argument(
        "--sampler",
        choices=SAMPLER_NAMES,
        default=None,
        help="ppo2: the paper's PPO2 over truncated normals (rounds of S samples); random / tpe / "
        "cmaes: Optuna's samplers for comparison, stopped after rounds x S complete trials "
        "(default: ppo2 for a config with a PAPLoss head, tpe for a baseline config's "
        "search_space)",
    )
    parser.add_argument("--rounds", type=positive_int, default=40, help="T rounds (paper: 40)")
    parser.add_argument(
        "--samples-per-round", type=positive_int, default=8, help="S samples per round (paper: 8)"
    )
    parser.add_argument(
        "--sigma-init",
        type=positive_float,
        default=0.2,
        help="PPO2: initial standard deviation, decayed linearly over the rounds (paper: 0.2)",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="sampler seed (PPO2 workers with the same seed still draw different samples; give "
        "random/tpe/cmaes workers different seeds)",
    )
    parser.add_argument(
        "--train-seed",
        type=non_negative_int,
        default=0,
        help="seed of every inner training (the same initial weights w0 for all trials, Alg. 1)",
    )
    parser.add_argument(
        "--epochs", type=positive_int, default=1, help="inner training epochs per trial (paper: 1)"
    )
    parser.add_argument(
        "--no-early-stop",
        action="store_true",
        help="train every trial to its end: ignore the config's collapse_rule, which otherwise "
        "stops a trial whose loss has not dropped enough at its check (reward 0, user attr "
        "collapsed=True; it still counts as its round's sample). The bundled proxy RetinaNet "
        "declares one (benchmarks/RESULTS.md); a study records whether its trials apply it",
    )


def _add_search_space(parser: argparse.ArgumentParser) -> None:
    """The search space and loss options (paper Tab. 3-7)."""
    parser.add_argument(
        "--segments",
        type=positive_int,
        default=5,
        metavar="M",
        help="segments of every piecewise-linear function (paper Tab. 6: 3, 5, 7)",
    )
    parser.add_argument(
        "--shared-params",
        action="store_true",
        help="search one function shared by all five roles of Eq. (6) (paper Tab. 3; default: "
        "five separate functions)",
    )
    parser.add_argument(
        "--fixed-lambda",
        type=fixed_lambda_type,
        nargs="?",
        const=1.0,
        default=None,
        metavar="VALUE",
        help="do not search the gradient scale lambda, fix it (paper Tab. 4 'w/o': 1; the flag "
        "alone means 1) (default: searched in [0.1, 10])",
    )
    add_loss_variant(parser)


def _add_worker_limits(parser: argparse.ArgumentParser) -> None:
    """When this worker stops, and how dead workers' trials are retried."""
    parser.add_argument(
        "--workers", type=positive_int, default=1, metavar="N",
        help="N workers on this machine: this process and N - 1 copies of the command on the study "
        "(logs: <study work dir>/worker<k>.log), cores // N torch threads each unless "
        "OMP_NUM_THREADS is set; Ctrl-C stops them all",
    )  # fmt: skip
    parser.add_argument(
        "--n-trials",
        type=positive_int,
        default=None,
        help="stop this worker after this many trials (default: none, until the study is complete)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=None,
        help="stop this worker from starting trials after this many seconds (default: none)",
    )
    parser.add_argument(
        "--trial-timeout",
        type=positive_float,
        default=None,
        help="kill a trial's training after this many seconds, the trial FAILS (default: none)",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=positive_int,
        default=60,
        help="seconds between heartbeats of a running trial (RDB storage only: a journal "
        "storage has no heartbeats)",
    )
    parser.add_argument(
        "--grace-period",
        type=positive_int,
        default=None,
        help="a trial without heartbeat for this long is failed and retried with the same params "
        "(default: 2 x heartbeat interval; RDB storage only, ignored with a warning on a "
        "journal storage)",
    )
    parser.add_argument(
        "--max-retry",
        type=non_negative_int,
        default=3,
        help="retries of a trial whose worker died (RetryHeartbeatStaleTrialCallback)",
    )
    parser.add_argument(
        "--max-failures",
        type=positive_int,
        default=3,
        help="stop this worker after this many consecutive FAILED trials (a broken setup)",
    )
    parser.add_argument(
        "--round-timeout",
        type=positive_float,
        default=86400.0,
        help="PPO2: seconds a worker waits for the other workers to finish a round",
    )


def train_parser() -> argparse.ArgumentParser:
    """Parser of ``paploss-train`` (``studies/train.py``)."""
    parser = argparse.ArgumentParser(
        prog="paploss-train",
        formatter_class=Formatter,
        description=wrap(
            "Train a detector with searched or given loss parameters for a full schedule and "
            "evaluate it on val (paper Sec. 4.1, 'Training Settings'). The params come from the "
            "best trial of a study (--storage/--study-name), a preset (--preset) or a JSON file "
            "(--params); heads without any get their config's loss_cls.params."
        ),
    )
    add_common(parser, work_dir="work_dirs/train")
    _add_train_params(parser)
    _add_train_data(parser)
    add_nproc(parser)
    return parser


def _add_train_params(parser: argparse.ArgumentParser) -> None:
    """Where the loss params come from, loss options, and their export."""
    parser.add_argument(
        "--storage",
        default=None,
        help="storage of the study to take params from (an RDB URL or journal:PATH, as the "
        "search's --storage)",
    )
    parser.add_argument("--study-name", default=None, help="study whose best trial is used")
    parser.add_argument(
        "--trial",
        type=non_negative_int,
        default=None,
        help="use this trial number instead of the best trial",
    )
    parser.add_argument(
        "--preset",
        action="append",
        default=[],
        metavar="[SLOT=]NAME",
        help="LossParams preset (linear, paper-retinanet, paper-faster-rcnn-rpn, "
        "paper-faster-rcnn-roi, sigmoid, sqrt, square) for every head, or SLOT=NAME for one head "
        "(slots of Faster R-CNN: rpn, roi); repeatable",
    )
    parser.add_argument(
        "--params",
        action="append",
        default=[],
        metavar="[SLOT=]FILE",
        help="LossParams JSON (from --export or LossParams.save) for every head, or SLOT=FILE; "
        "repeatable",
    )
    from paploss.substitutions import SUBSTITUTIONS

    add_loss_variant(parser)
    parser.add_argument(
        "--substitution",
        choices=SUBSTITUTIONS,
        default=None,
        help="train with a closed-form hand-crafted substitution for all five functions instead "
        "of piecewise-linear params (paper Tab. 2, definitions of the authors' release; lambda 1 "
        "unless --fixed-lambda). Evaluated pairwise: slower than the PWL presets",
    )
    parser.add_argument(
        "--fixed-lambda",
        type=fixed_lambda_type,
        default=None,
        metavar="VALUE",
        help="set the gradient scale lambda of every head to VALUE (default: the params' own)",
    )
    parser.add_argument(
        "--export",
        type=Path,
        default=None,
        help="write the chosen params as JSON loadable by loss_cls params=dict(file=...) (with "
        "several heads: one file per head, named <stem>.<slot>.json)",
    )
    parser.add_argument(
        "--export-only", action="store_true", help="only write --export, do not train"
    )


def _add_train_data(parser: argparse.ArgumentParser) -> None:
    """Training and evaluation data, schedule and seed."""
    parser.add_argument(
        "--data",
        nargs="+",
        default=["proxy"],
        metavar="DATA",
        help="training data: 'proxy' (D_train + D_eval of the bundled proxy, as the paper "
        "retrains on all of train2017), a proxy-layout folder (its train + eval splits), or a "
        "COCO json and image folder (ANN.json IMG_DIR)",
    )
    parser.add_argument(
        "--val-data",
        nargs=2,
        default=None,
        metavar=("ANN.json", "IMG_DIR"),
        help="evaluation data (default: the val split of the proxy / data folder)",
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help="training epochs (default: the config's schedule, train_cfg.max_epochs)",
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="training seed (randomness.seed)"
    )


def split_parser() -> argparse.ArgumentParser:
    """Parser of ``paploss-split-coco`` (``studies/split_coco.py``)."""
    parser = argparse.ArgumentParser(
        prog="paploss-split-coco",
        formatter_class=Formatter,
        description=wrap(
            "Split a COCO detection json by image into D_train and D_eval for the search (paper "
            "Sec. 4.1: train2017's 118k images into 113k / 5k). Seeded and deterministic; every "
            "annotation follows its image; categories and other keys are copied to both."
        ),
    )
    parser.add_argument("ann_file", type=Path, help="COCO json, e.g. instances_train2017.json")
    parser.add_argument(
        "--out-dir",
        type=Path,
        required=True,
        help="writes OUT_DIR/train.json (D_train) and OUT_DIR/eval.json (D_eval)",
    )
    parser.add_argument(
        "--eval-images",
        type=positive_int,
        default=None,
        help="D_eval size (default: min(5000, 20%% of the images))",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="split seed")
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")
    return parser


def add_nproc(parser: argparse.ArgumentParser) -> None:
    """``--nproc-per-trial``: the ranks of every training (paploss.study.runner.distributed)."""
    parser.add_argument(
        "--nproc-per-trial",
        type=positive_int,
        default=1,
        metavar="N",
        help="run every training as N processes with torch.distributed (mmengine's "
        "launcher='pytorch', torchrun's RANK/LOCAL_RANK/WORLD_SIZE): N GPUs of this machine "
        "with --device cuda (CUDA_VISIBLE_DEVICES lists them; nccl), or N CPU processes with "
        "gloo. The total batch is kept: each rank trains train_dataloader.batch_size / N images "
        "per iteration (batch_size must be divisible by N) and the lr is unchanged (linear "
        "scaling rule at a constant total batch). Only rank 0 reports; a crashed rank fails the "
        "trial and the other ranks are killed",
    )


def parse_search(argv: Sequence[str] | None = None) -> SearchOptions:
    """``paploss-search``'s command line (``sys.argv[1:]`` when None) as its options."""
    return from_namespace(SearchOptions, search_parser().parse_args(argv))


def parse_train(argv: Sequence[str] | None = None) -> TrainOptions:
    """``paploss-train``'s command line (``sys.argv[1:]`` when None) as its options."""
    return from_namespace(TrainOptions, train_parser().parse_args(argv))


def parse_split(argv: Sequence[str] | None = None) -> SplitOptions:
    """``paploss-split-coco``'s command line (``sys.argv[1:]`` when None) as its options."""
    return from_namespace(SplitOptions, split_parser().parse_args(argv))
