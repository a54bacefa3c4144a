"""``paploss-split-coco`` (``studies/split_coco.py``): split a COCO json by image into D_train /
D_eval (seeded)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from paploss.errors import InputError
from paploss.study.cli import EXIT_USAGE, UsageError
from paploss.study.coco import load_coco, split_coco
from paploss.study.data import (
    check_writable_dir,
    default_eval_images,
    ensure_writable_dir,
    write_json_atomic,
)
from paploss.study.parsers import split_parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 on bad input, before anything is written)."""
    args = split_parser().parse_args(argv)
    try:
        if not args.ann_file.is_file():
            raise UsageError(f"{args.ann_file}: no such COCO json")
        out_dir = check_writable_dir(args.out_dir, "--out-dir")
        out_train, out_eval = out_dir / "train.json", out_dir / "eval.json"
        existing = [str(p) for p in (out_train, out_eval) if p.exists()]
        if existing and not args.force:
            raise UsageError(f"{', '.join(existing)} exist; pass --force to overwrite them")
        data = load_coco(args.ann_file)
        n_eval = default_eval_images(len(data["images"]), args.eval_images)
        d_train, d_eval = split_coco(data, eval_images=n_eval, seed=args.seed)
        ensure_writable_dir(out_dir, "--out-dir")
        try:
            write_json_atomic(out_train, d_train)
            write_json_atomic(out_eval, d_eval)
        except OSError as exc:
            raise UsageError(
                f"--out-dir {out_dir}: cannot write the split ({exc.strerror or exc}); choose a "
                "writable folder with free space"
            ) from exc
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
