"""Data of a search (D_train / D_eval) and of a final training (train / val).

``--data`` takes one of three forms:

- omitted or ``proxy``: the bundled proxy digits (``paploss.proxy``), generated on first use
  into ``$PAPLOSS_DATA`` (default ``~/.cache/paploss/proxy``);
- ``DIR``: a folder in the proxy layout, ``DIR/train/annotations.json`` + ``DIR/train/images/``,
  the same for ``eval`` and optionally ``val`` (``python -m paploss.proxy --out DIR``);
- ``ANN.json IMG_DIR``: a COCO detection json and its image folder (e.g. COCO's
  ``instances_train2017.json`` and ``train2017/``), split by image into D_train / D_eval with
  :func:`~paploss.study.data.coco.split_coco` (seeded; by default 5,000 images, at most 20 %, go to
  D_eval as in the paper's 113k / 5k split of train2017). The two split jsons are written once under
  ``<work dir>/data/`` and reused; the images are read from ``IMG_DIR``.

Every COCO json that enters (``--data``, ``--val-data``, ``studies/split_coco.py``) is checked by
:func:`~paploss.study.data.coco.validate_coco` first; an output folder by :func:`check_writable_dir`
before any work.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paploss._files import writable_dir_problem, write_json_atomic
from paploss.errors import DataError
from paploss.study.data.coco import (
    check_coco_file,
    check_coco_files,
    check_image_files,
    count_images,
    load_coco,
    one_line,
    split_coco,
)

PROXY = "proxy"
DEFAULT_EVAL_IMAGES = 5000
MAX_EVAL_FRACTION = 0.2
ANN_FILE = "annotations.json"
IMG_DIR = "images"


@dataclass(frozen=True)
class DataSplit:
    """A COCO json and the folder its ``file_name`` entries are relative to."""

    ann_file: Path
    img_dir: Path

    def to_json(self) -> dict[str, str]:
        return {"ann_file": str(self.ann_file), "img_dir": str(self.img_dir)}

    @classmethod
    def from_json(cls, data: Mapping[str, str]) -> DataSplit:
        return cls(Path(data["ann_file"]), Path(data["img_dir"]))


@dataclass
class SearchData:
    """The splits of a dataset: ``train`` and ``eval`` always, ``val`` when there is one.

    Attributes:
        kind: "proxy", "folder" or "coco".
        splits: ``{"train": DataSplit, "eval": DataSplit, "val": DataSplit?}``.
        source: what the user gave (for the study's record).
        details: e.g. the split settings of a COCO json.
    """

    kind: str
    splits: dict[str, DataSplit]
    source: list[str]
    details: dict[str, Any] = field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        """Content digests of D_train and D_eval: workers of one study must train on the same data,
        wherever their copies lie."""
        return {
            "train_sha256": file_sha256(self.splits["train"].ann_file),
            "eval_sha256": file_sha256(self.splits["eval"].ann_file),
        }

    def record(self) -> dict[str, Any]:
        """What the study stores as its ``data`` user attr."""
        return {
            "kind": self.kind,
            "source": self.source,
            "splits": {k: v.to_json() for k, v in self.splits.items()},
            **self.details,
            "num_images": {k: count_images(v.ann_file) for k, v in self.splits.items()},
        }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------ validation
def check_data_arg(data: Sequence[str] | None) -> None:
    """Cheap checks of ``--data`` (paths exist, the right files are there); no data is written.

    Raises:
        DataError: with the problem and how to fix it.
    """
    if not data or list(data) == [PROXY]:
        return
    if len(data) == 1:
        root = Path(data[0]).expanduser()
        if root.suffix == ".json":
            raise DataError(
                f"--data {data[0]}: a COCO json needs its image folder too: --data ANN.json IMG_DIR"
            )
        if not root.is_dir():
            raise DataError(
                f"--data {data[0]}: no such folder; give 'proxy', a folder with train/ and eval/ "
                "splits (python -m paploss.proxy --out DIR), or ANN.json IMG_DIR"
            )
        for split in ("train", "eval"):
            if not (root / split / ANN_FILE).is_file():
                raise DataError(
                    f"--data {data[0]}: missing {root / split / ANN_FILE}; a data folder needs "
                    f"train/{ANN_FILE} and eval/{ANN_FILE} (each with an {IMG_DIR}/ folder)"
                )
        return
    if len(data) == 2:
        ann, img = Path(data[0]).expanduser(), Path(data[1]).expanduser()
        if not ann.is_file():
            raise DataError(f"--data: COCO json {data[0]} does not exist")
        if not img.is_dir():
            raise DataError(f"--data: image folder {data[1]} does not exist")
        return
    raise DataError(
        f"--data takes 'proxy', DIR, or ANN.json IMG_DIR (got {len(data)} values: {list(data)})"
    )


def check_writable_dir(path: str | os.PathLike[str], flag: str) -> Path:
    """Check that ``path`` is a writable folder or can be created as one; creates nothing.

    Args:
        path: the output folder.
        flag: how the user gave it (e.g. ``--work-dir``), for the message.

    Returns:
        ``path`` made absolute.

    Raises:
        DataError: ``"<flag> <path>: <problem>; choose a writable folder"``.
    """
    path = Path(path).expanduser().absolute()
    problem = writable_dir_problem(path)
    if problem is not None:
        raise DataError(f"{flag} {path}: {problem}; choose a writable folder")
    return path


def ensure_writable_dir(path: str | os.PathLike[str], flag: str) -> Path:
    """:func:`check_writable_dir`, then create the folder (and its parents).

    Raises:
        DataError: the folder is not writable or cannot be created.
    """
    path = check_writable_dir(path, flag)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"{flag} {path}: cannot create it ({exc.strerror}); choose a writable folder"
        ) from exc
    return path


def check_writable_file(path: str | os.PathLike[str], flag: str) -> Path:
    """Check that the file ``path`` can be written (it is no folder, its folder is or can be
    created writable); creates nothing. Returns ``path`` made absolute.

    Raises:
        DataError: ``"<flag> <path>: <problem>; choose ..."``.
    """
    path = Path(path).expanduser().absolute()
    if path.is_dir():
        raise DataError(f"{flag} {path}: is a folder; give a file path")
    if path.exists() and not os.access(path, os.W_OK):
        raise DataError(f"{flag} {path}: the file is not writable; choose another path")
    problem = writable_dir_problem(path.parent)
    if problem is not None:
        raise DataError(f"{flag} {path}: {problem}; choose a path in a writable folder")
    return path


def check_training_data(data: Sequence[str] | None, val_data: Sequence[str] | None) -> None:
    """The checks of ``studies/train.py``'s ``--data`` and ``--val-data`` that need no data to be
    built: the paths exist and every COCO json given (``ANN.json IMG_DIR``) passes
    :func:`~paploss.study.data.coco.validate_coco` (all jsons before any of their image files are
    opened). Creates nothing; a json accepted once is not read again.

    Raises:
        DataError: with the problem and the fix.
    """
    check_data_arg(data)
    if val_data is not None:
        ann, img = (Path(p).expanduser() for p in val_data)
        if not ann.is_file():
            raise DataError(f"--val-data: COCO json {ann} does not exist")
        if not img.is_dir():
            raise DataError(f"--val-data: image folder {img} does not exist")
    coco = [("--data", data)] if data and len(data) == 2 else []
    if coco and val_data is None:
        raise DataError("a COCO --data needs --val-data ANN.json IMG_DIR for the evaluation")
    if val_data is not None:
        coco.append(("--val-data", val_data))
    check_coco_files([(ann, what, img) for what, (ann, img) in coco])


# ------------------------------------------------------------------------------ resolution
def resolve_data(
    data: Sequence[str] | None,
    *,
    work_dir: Path,
    eval_images: int | None = None,
    split_seed: int = 0,
) -> SearchData:
    """Turn ``--data`` into split paths, generating the proxy or splitting a COCO json if needed."""
    check_data_arg(data)
    if not data or list(data) == [PROXY]:
        from paploss.proxy import generate_proxy_dataset

        try:
            paths = generate_proxy_dataset()
        except ValueError as exc:  # a damaged cache that cannot be rebuilt, an unwritable one
            raise DataError(str(exc)) from exc
        except OSError as exc:
            raise DataError(
                f"cannot generate the proxy data: {one_line(exc)}; free disk space or set "
                "$PAPLOSS_DATA to a writable folder"
            ) from exc
        splits = {k: DataSplit(v / ANN_FILE, v / IMG_DIR) for k, v in paths.items()}
        return SearchData(PROXY, splits, [PROXY], {"root": str(Path(paths["train"]).parent)})
    if len(data) == 1:
        root = Path(data[0]).expanduser().resolve()
        splits = {}
        for split in ("train", "eval", "val"):
            if (root / split / ANN_FILE).is_file():
                part = DataSplit(root / split / ANN_FILE, root / split / IMG_DIR)
                check_coco_file(part.ann_file, "--data", img_dir=part.img_dir)
                splits[split] = part
        return SearchData("folder", splits, [str(root)])
    ann = Path(data[0]).expanduser().resolve()
    img = Path(data[1]).expanduser().resolve()
    source = load_coco(ann, "--data")
    check_image_files(source, img, "--data")
    n_eval = default_eval_images(len(source["images"]), eval_images)
    digest = hashlib.sha256(f"{file_sha256(ann)}:{n_eval}:{split_seed}".encode()).hexdigest()[:12]
    out = Path(work_dir).resolve() / "data" / f"{ann.stem}-{digest}"
    train_json, eval_json = split_paths(out)
    if not (train_json.is_file() and eval_json.is_file()):
        check_writable_dir(work_dir, "--work-dir")
        write_split(source, out, eval_images=n_eval, seed=split_seed, flag="--work-dir")
    splits = {"train": DataSplit(train_json, img), "eval": DataSplit(eval_json, img)}
    details = {"split": {"eval_images": n_eval, "seed": split_seed, "source_json": str(ann)}}
    return SearchData("coco", splits, [str(ann), str(img)], details)


def split_paths(out_dir: Path) -> tuple[Path, Path]:
    """The D_train and D_eval jsons of a split written to ``out_dir``."""
    return out_dir / "train.json", out_dir / "eval.json"


def write_split(
    source: Mapping[str, Any], out_dir: Path, *, eval_images: int, seed: int, flag: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a COCO dict with :func:`~paploss.study.data.coco.split_coco` and write D_train /
    D_eval atomically to :func:`split_paths` of ``out_dir`` (created if missing). The one writer of
    a split: ``--data ANN.json IMG_DIR`` and ``studies/split_coco.py`` both use it.

    Args:
        source: the validated COCO dict.
        out_dir: the folder of ``train.json`` and ``eval.json``.
        eval_images, seed: D_eval's size and the split's seed.
        flag: the option that named the folder (``--work-dir``, ``--out-dir``), for the message.

    Returns:
        ``(d_train, d_eval)``, the dicts written.

    Raises:
        DataError: a bad split size, a split that leaves a part without annotations, or a folder
            that cannot be written.
    """
    d_train, d_eval = split_coco(source, eval_images=eval_images, seed=seed)
    ensure_writable_dir(out_dir, flag)
    try:
        for path, part in zip(split_paths(out_dir), (d_train, d_eval), strict=True):
            write_json_atomic(path, part)
    except OSError as exc:
        raise DataError(
            f"{flag} {out_dir}: cannot write the D_train / D_eval split ({one_line(exc)}); "
            "choose a writable folder with free space"
        ) from exc
    return d_train, d_eval


def default_eval_images(num_images: int, eval_images: int | None) -> int:
    """D_eval's size: ``eval_images``, or min(5000, 20 % of the images) (COCO: 5000 of 118k)."""
    if num_images < 2:
        raise DataError(f"a COCO json needs at least 2 images to split, it has {num_images}")
    if eval_images is None:
        eval_images = min(DEFAULT_EVAL_IMAGES, max(1, round(num_images * MAX_EVAL_FRACTION)))
    if not 1 <= eval_images < num_images:
        raise DataError(
            f"--eval-images must be in [1, {num_images - 1}] for a json with {num_images} images, "
            f"got {eval_images}"
        )
    return eval_images


def merge_coco(splits: Sequence[DataSplit], out: Path) -> DataSplit:
    """Concatenate COCO jsons whose images lie in different folders into one json with absolute
    ``file_name`` paths (image and annotation ids renumbered); returns it as a split with an empty
    image prefix. Used to train on D_train + D_eval of the proxy."""
    merged: dict[str, Any] = {"images": [], "annotations": []}
    next_img, next_ann = 1, 1
    categories = None
    for split in splits:
        data = load_coco(split.ann_file)
        if categories is None:
            categories = data["categories"]
            merged.update({k: v for k, v in data.items() if k not in ("images", "annotations")})
        elif data["categories"] != categories:
            raise DataError(f"{split.ann_file} has other categories than {splits[0].ann_file}")
        id_map = {}
        for im in data["images"]:
            new = dict(im, id=next_img, file_name=str(split.img_dir / im["file_name"]))
            id_map[im["id"]] = next_img
            next_img += 1
            merged["images"].append(new)
        for ann in data["annotations"]:
            merged["annotations"].append(dict(ann, id=next_ann, image_id=id_map[ann["image_id"]]))
            next_ann += 1
    write_json_atomic(out, merged)
    return DataSplit(out, Path("/"))
