"""What the command-line entry points share: argument value types, the options common to
``paploss-search`` and ``paploss-train``, the config path check, and the exit-code
convention. The parsers themselves are in :mod:`paploss.study.parsers`.

Bad input raises :class:`UsageError` or another :class:`paploss.errors.InputError` (or makes
argparse exit); the scripts print ``error: <problem and fix>`` and exit with code 2 before
anything is written to a storage.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paploss
from paploss.errors import InputError

CONFIG_DIR = Path(paploss.__file__).resolve().parent / "configs"
"""The bundled MMDetection configs (package data of the installed paploss; in a checkout
``studies/configs`` links to it)."""
DEFAULT_CONFIG = CONFIG_DIR / "proxy_retinanet_paploss.py"
DEFAULT_STORAGE = "sqlite:///paploss.db"
DEFAULT_STUDY = "paploss-search"
DEVICES_HELP = "auto (CUDA if available, else CPU), cpu, cuda, or cuda:N"
EXIT_USAGE = 2


class UsageError(InputError):
    """Bad command-line input: the message names the problem and the fix (exit code 2)."""


# ------------------------------------------------------------------------------ value types
def _int_at_least(minimum: int) -> Callable[[str], int]:
    """argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value

    return parse


positive_int = _int_at_least(1)
non_negative_int = _int_at_least(0)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def check_study_name(name: str) -> str:
    """A study name whose run folder ``<work dir>/<name>`` stays inside the work dir: relative
    ``/``-separated parts (``search/tab1`` is a folder in a folder), none empty, ``.`` or ``..``,
    no backslash or control character. Returns ``name``.

    Raises:
        UsageError: ``--study-name NAME: ...; choose a name such as my-search``.
    """
    problem = None
    if not name:
        problem = "is empty"
    elif name.startswith("/") or name.startswith("~"):
        problem = "is an absolute path (its run folder would lie outside --work-dir)"
    elif "\\" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        problem = "holds a backslash or a control character"
    elif any(part in ("", ".", "..") for part in name.split("/")):
        problem = "has an empty, '.' or '..' part (its run folder would lie outside --work-dir)"
    if problem is not None:
        raise UsageError(
            f"--study-name {name!r} {problem}; the trials' run folders are "
            "<work dir>/<study name>: choose a name such as my-search or search/tab1"
        )
    return name


def study_dir(work_dir: Path, name: str) -> Path:
    """``work_dir / name`` for a name :func:`check_study_name` accepts, checked to lie inside
    ``work_dir`` (after resolving links already there)."""
    base = Path(work_dir).resolve()
    folder = (base / check_study_name(name)).resolve()
    if not folder.is_relative_to(base):
        raise UsageError(
            f"--study-name {name!r}: its run folder {folder} lies outside --work-dir {base} "
            "(a link in the way); choose another name"
        )
    return folder


def device_type(text: str) -> str:
    """argparse type: auto, cpu, cuda or cuda:N."""
    if text in ("auto", "cpu", "cuda"):
        return text
    if text.startswith("cuda:") and text[5:].isdigit():
        return text
    raise argparse.ArgumentTypeError(f"must be {DEVICES_HELP}; got {text!r}")


class CfgOptionsAction(argparse.Action):
    """``KEY=VALUE ...`` overrides of the mmengine config, parsed like mmdet's tools/train.py
    (mmengine's DictAction: ints, floats, bools, None, lists ``a,b`` or ``[a,b]``)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        from mmengine.config import DictAction

        options = dict(getattr(namespace, self.dest, None) or {})
        for item in values:
            key, sep, val = item.partition("=")
            if not sep or not key:
                parser.error(f"{option_string}: expected KEY=VALUE, got {item!r}")
            try:
                options[key] = DictAction._parse_iterable(val)
            except (AssertionError, ValueError) as exc:
                parser.error(f"{option_string}: cannot parse {item!r}: {exc}")
        setattr(namespace, self.dest, options)


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every default (unless the help text states it) and keeps the epilog's lines."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "(default" in text:
            return text
        return super()._get_help_string(action)


def wrap(text: str) -> str:
    import textwrap

    return textwrap.fill(text, width=96)


def add_common(parser: argparse.ArgumentParser, *, work_dir: str, search: bool = False) -> None:
    """``--config``, ``--cfg-options``, ``--work-dir``, ``--device``; ``search``: the help of
    ``paploss-search`` (a PAPLoss head, or a baseline's search_space) instead of ``paploss-train``'s."""
    if search:
        without = (
            "A config without such a head (the Focal/CE baselines, *_focal_*.py, *_ce_*.py) "
            "searches the hyperparameters its search_space declares (the bundled baselines "
            "declare lr, box coding, Focal's alpha/gamma, box loss weights; TPE by default, trial "
            "0 = the config's own values); without a search_space it has nothing to search and "
            "is refused (exit 2)."
        )
    else:
        without = (
            "A config without such heads (the Focal/CE baselines, *_focal_*.py, *_ce_*.py) trains "
            "with its own losses on the same data, for Tab. 1-style comparisons; with "
            "--storage/--study-name, with the best hyperparameters a search of its search_space "
            "found."
        )
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help="MMDetection config of the detector; its heads with loss_cls=dict(type="
        "'ParameterizedAPLoss', ...) get the loss params (RetinaNet/DETR: bbox_head; Faster "
        f"R-CNN: rpn_head and roi_head.bbox_head). {without} Other configs in {CONFIG_DIR}",
    )
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=CfgOptionsAction,
        default={},
        metavar="KEY=VALUE",
        help="override config entries like mmdet's tools/train.py, e.g. "
        "train_dataloader.batch_size=16 optim_wrapper.optimizer.lr=0.02. A KEY the config does "
        "not have (e.g. a misspelled optim_wrapper.optimizer.lrr) is an error (exit 2); write "
        "+KEY=VALUE to add a new key on purpose (e.g. +optim_wrapper.optimizer.nesterov=true)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path(work_dir),
        help="output folder: per-trial/run mmengine work dirs, logs, artifacts",
    )
    parser.add_argument(
        "--device",
        type=device_type,
        default="auto",
        help=f"{DEVICES_HELP}; a CUDA device that is not there is an error (exit 2), no "
        "fallback to the CPU",
    )


def fixed_lambda_type(text: str) -> float:
    """argparse type: lambda in (0, 1e4]."""
    from paploss.params import GRADIENT_SCALE_MAX

    value = positive_float(text)
    if value > GRADIENT_SCALE_MAX:
        raise argparse.ArgumentTypeError(
            f"must be a number in (0, {GRADIENT_SCALE_MAX:g}], got {text!r}"
        )
    return value


def add_loss_variant(parser: argparse.ArgumentParser) -> None:
    """Loss options that apply to every PAPLoss head of the config (paper Tab. 5 and Tab. 7)."""
    from paploss.localization import LOC_SCORE_KINDS

    parser.add_argument(
        "--loc-score",
        choices=LOC_SCORE_KINDS,
        default=None,
        help="localization score l(b_i) of every PAPLoss head (paper Tab. 5) (default: the "
        "config's, giou in the bundled configs)",
    )
    parser.add_argument(
        "--no-block-grad",
        action="store_true",
        help="let the gradient flow through the denominator f(s_j - s_i; theta_4) (paper Tab. 7; "
        "blocked by default)",
    )


def check_config_path(path: Path) -> Path:
    """The config file must exist and be a Python/YAML/JSON mmengine config."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UsageError(
            f"--config {path}: no such file; give an MMDetection config, e.g. one of "
            f"{sorted(p.name for p in CONFIG_DIR.glob('*.py')) if CONFIG_DIR.is_dir() else []}"
        )
    if path.suffix not in (".py", ".yml", ".yaml", ".json"):
        raise UsageError(f"--config {path}: an mmengine config ends in .py, .yml or .json")
    return path.resolve()
