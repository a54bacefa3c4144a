"""The proxy dataset's command line: ``python -m paploss.proxy [--out DIR] [--check]``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from paploss.proxy.dataset import dataset_state, default_root, generate_proxy_dataset
from paploss.proxy.settings import (
    ANN_FILE,
    DEFAULT_CACHE,
    ENV_CACHE,
    MAX_IMAGE_SIZE,
    MAX_IMAGES,
    ProxySettings,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m paploss.proxy``: generate (or repair) the dataset and print
    its folder; ``--check`` only reports its state. Bad input: one ``error:`` line, exit code 2;
    ``--check`` of a missing or damaged dataset: one ``error:`` line, exit code 1."""
    defaults = ProxySettings()
    parser = argparse.ArgumentParser(
        prog="python -m paploss.proxy",
        description="Generate the bundled proxy detection dataset (COCO json + PNG).",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"output folder (default: ${ENV_CACHE} or {DEFAULT_CACHE}, then the settings hash)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="only check the dataset of these settings (every json and image file); exit code 1 "
        "when it is missing or damaged (a run without --check rebuilds it)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--num-train", type=int, default=defaults.num_train, help=f"1 to {MAX_IMAGES}"
    )
    parser.add_argument(
        "--num-eval", type=int, default=defaults.num_eval, help=f"1 to {MAX_IMAGES}"
    )
    parser.add_argument("--num-val", type=int, default=defaults.num_val, help=f"1 to {MAX_IMAGES}")
    parser.add_argument(
        "--image-size", type=int, default=defaults.image_size, help=f"64 to {MAX_IMAGE_SIZE} px"
    )
    parser.add_argument("--min-objects", type=int, default=defaults.min_objects)
    parser.add_argument("--max-objects", type=int, default=defaults.max_objects)
    args = parser.parse_args(argv)
    settings = dict(
        seed=args.seed,
        num_train=args.num_train,
        num_eval=args.num_eval,
        num_val=args.num_val,
        image_size=args.image_size,
        min_objects=args.min_objects,
        max_objects=args.max_objects,
    )
    try:
        if args.check:
            return _check_command(args.out, ProxySettings(**settings))
        paths = generate_proxy_dataset(args.out, **settings)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: cannot generate the proxy dataset: {err}", file=sys.stderr)
        return 1
    root = paths["train"].parent
    print(root)
    for split, path in paths.items():
        info = json.loads((path / ANN_FILE).read_text())
        print(
            f"  {split}: {len(info['images'])} images, {len(info['annotations'])} objects "
            f"({path / ANN_FILE})",
            file=sys.stderr,
        )
    return 0


def _check_command(out: Path | None, settings: ProxySettings) -> int:
    """``--check``: print the root of a complete dataset (exit 0), or one error line (exit 1)."""
    root = Path(out).expanduser().absolute() if out is not None else default_root(settings)
    problem = dataset_state(root, settings.to_dict(), own_cache=out is None)
    if problem is None:
        print(root)
        return 0
    if problem:
        print(
            f"error: the proxy dataset {root} is damaged ({problem}); run the same command "
            "without --check to rebuild it",
            file=sys.stderr,
        )
    else:
        print(
            f"error: no proxy dataset of these settings in {root}; run the same command "
            "without --check to generate it",
            file=sys.stderr,
        )
    return 1
