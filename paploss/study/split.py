"""``paploss-split-coco`` (``studies/split_coco.py``): split a COCO json by image into D_train /
D_eval (seeded)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from paploss.errors import InputError
from paploss.study.cli import EXIT_USAGE, UsageError
from paploss.study.data.coco import load_coco
from paploss.study.data.sources import (
    check_writable_dir,
    default_eval_images,
    split_paths,
    write_split,
)
from paploss.study.parsers import parse_split


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 on bad input, before anything is written)."""
    options = parse_split(argv)
    try:
        if not options.ann_file.is_file():
            raise UsageError(f"{options.ann_file}: no such COCO json")
        out_dir = check_writable_dir(options.out_dir, "--out-dir")
        out_train, out_eval = split_paths(out_dir)
        existing = [str(p) for p in (out_train, out_eval) if p.exists()]
        if existing and not options.force:
            raise UsageError(f"{', '.join(existing)} exist; pass --force to overwrite them")
        data = load_coco(options.ann_file)
        n_eval = default_eval_images(len(data["images"]), options.eval_images)
        d_train, d_eval = write_split(
            data, out_dir, eval_images=n_eval, seed=options.seed, flag="--out-dir"
        )
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for name, part, path in (("D_train", d_train, out_train), ("D_eval", d_eval, out_eval)):
        print(
            f"{name}: {len(part['images'])} images, {len(part['annotations'])} annotations "
            f"-> {path}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
