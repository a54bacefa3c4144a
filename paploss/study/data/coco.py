"""COCO detection jsons: the check every json that enters passes (:func:`validate_coco`), reading
one (:func:`load_coco`, :func:`check_coco_file`), counting its images, and the seeded split by
image into D_train / D_eval (:func:`split_coco`)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from paploss.errors import DataError


def count_images(ann_file: Path) -> int:
    with open(ann_file) as f:
        return len(json.load(f).get("images", []))


_NUMBER = (int, float)
_FIX = "fix or remove the bad entries"
IMAGE_SAMPLE = 8
"""How many image files of a json (spread evenly over its images) are opened before a study
starts: a wrong image folder or files that are not images fail there, not in every trial."""


def _short(entry: Any, limit: int = 80) -> str:
    """``repr(entry)`` cut to ``limit`` characters."""
    text = repr(entry)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(value: Any) -> bool:
    return type(value) is int  # bool is an int subclass, but no id


def _is_finite(value: Any) -> bool:
    """An int, or a float that is neither inf nor nan (bool is no number here)."""
    return type(value) is int or (type(value) is float and math.isfinite(value))


def _box_ok(x: Any, y: Any, w: Any, h: Any) -> bool:
    """4 finite numbers (no bools) with w, h >= 0."""
    return (
        type(x) in _NUMBER
        and type(y) in _NUMBER
        and type(w) in _NUMBER
        and type(h) in _NUMBER
        and w >= 0
        and h >= 0
        and -math.inf < x + y + w + h < math.inf  # False for inf and nan
    )


def _category_problem(cat: Any) -> str:
    if not isinstance(cat, dict):
        return "is not an object"
    if not _is_int(cat.get("id")):
        return "needs an int 'id'"
    return f"repeats the category id {cat['id']}"


def _image_problem(image: Any, seen: set[int]) -> str:
    if not isinstance(image, dict):
        return "is not an object"
    if not _is_int(image.get("id")):
        return "needs an int 'id'"
    if image["id"] in seen:
        return f"repeats the image id {image['id']}"
    if not isinstance(image.get("file_name"), str):
        return "needs a str 'file_name' (relative to the image folder)"
    return "needs numbers 'width' and 'height' > 0 (the image size in pixels)"


def _annotation_problem(
    ann: Any, image_ids: set[int], category_ids: set[int], seen: set[int]
) -> str:
    if not isinstance(ann, dict):
        return "is not an object"
    if not _is_int(ann.get("id")):
        return "needs an int 'id'"
    if ann["id"] in seen:
        return f"repeats the annotation id {ann['id']}"
    image_id = ann.get("image_id")
    if not _is_int(image_id):
        return "needs an int 'image_id'"
    if image_id not in image_ids:
        return f"has the image_id {image_id}, which no image has"
    category_id = ann.get("category_id")
    if not _is_int(category_id):
        return "needs an int 'category_id'"
    if category_id not in category_ids:
        return f"has the category_id {category_id}, which is not among the categories' ids"
    bbox = ann.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(map(_is_finite, bbox)):
        return "needs a 'bbox' [x, y, width, height] of 4 finite numbers"
    if bbox[2] < 0 or bbox[3] < 0:
        return "has a negative bbox width or height"
    return "has a bbox whose coordinates are too large"


def validate_coco(data: Any, path: str | os.PathLike[str], what: str = "COCO json") -> None:
    """Check that ``data`` (the parsed ``path``) is a COCO detection dict this project can train on.

    Requires ``categories``: objects with unique int ``id``; ``images``: objects with unique int
    ``id``, a str ``file_name`` and numbers ``width``, ``height`` > 0; ``annotations``: objects
    with a unique int ``id``, an int ``image_id`` of an image, an int ``category_id`` of a
    category and a ``bbox`` [x, y, w, h] of 4 finite numbers with w, h >= 0. Boxes of zero width or
    height pass (instances_train2017.json holds two; MMDetection drops boxes under 1 px). At least
    one annotation: MMDetection drops the images without any (``filter_empty_gt``), so a json
    without annotations is an empty dataset. One pass over each list and no exception on valid entries: instances_train2017.json (118k images, 860k
    annotations) takes about a second.

    Raises:
        DataError: naming ``path``, the first bad entry (index and repr), how many entries of its
            list are bad, and the fix.
    """
    _check_top_level(data, path, what)

    def fail(key: str, bad: list[int], problem: str) -> DataError:
        entries = data[key]
        first = bad[0]
        return DataError(
            f"{what} {path}: {key}[{first}] {_short(entries[first])} {problem} "
            f"({len(bad)} of {len(entries)} {key} are bad); {_FIX}"
        )

    category_ids, bad = _valid_category_ids(data["categories"])
    if bad:
        raise fail("categories", bad, _category_problem(data["categories"][bad[0]]))
    image_ids, bad = _valid_image_ids(data["images"])
    if bad:
        seen = {im["id"] for im in data["images"][: bad[0]]}
        raise fail("images", bad, _image_problem(data["images"][bad[0]], seen))
    bad = _bad_annotations(data["annotations"], image_ids, category_ids)
    if bad:
        first = data["annotations"][bad[0]]
        seen = {a["id"] for a in data["annotations"][: bad[0]]}
        raise fail("annotations", bad, _annotation_problem(first, image_ids, category_ids, seen))
    if not data["annotations"]:
        raise DataError(
            f"{what} {path}: none of its {len(data['images'])} images has an annotation; "
            "MMDetection trains and evaluates on annotated images only (every trial would fail), "
            "so give a json with boxes in 'annotations'"
        )


def _check_top_level(data: Any, path: str | os.PathLike[str], what: str) -> None:
    """A dict with the three lists of a detection json."""
    if not isinstance(data, dict):
        raise DataError(
            f"{what} {path} is not a COCO detection json: the top level is not an object"
        )
    missing = [k for k in ("images", "annotations", "categories") if k not in data]
    if missing:
        raise DataError(
            f"{what} {path} is not a COCO detection json: missing {missing}; a detection json "
            "has the lists 'images', 'annotations' and 'categories'"
        )
    for key in ("categories", "images", "annotations"):
        if not isinstance(data[key], list):
            raise DataError(
                f"{what} {path}: '{key}' must be a list of objects, got "
                f"{type(data[key]).__name__} {_short(data[key], 40)}"
            )


# The three scans below are the fast path (no exception, no message on a valid entry); the
# ``_*_problem`` functions above explain the first bad entry once a scan has found one.


def _valid_category_ids(categories: list[Any]) -> tuple[set[int], list[int]]:
    """(the ids of the valid categories, the indices of the bad ones)."""
    ids: set[int] = set()
    bad: list[int] = []
    for i, cat in enumerate(categories):
        cid = cat.get("id") if type(cat) is dict else None
        if type(cid) is int and cid not in ids:
            ids.add(cid)
        else:
            bad.append(i)
    return ids, bad


def _valid_image_ids(images: list[Any]) -> tuple[set[int], list[int]]:
    """(the ids of the valid images, the indices of the bad ones)."""
    ids: set[int] = set()
    bad: list[int] = []
    for i, image in enumerate(images):
        if type(image) is dict:
            iid, width, height = image.get("id"), image.get("width"), image.get("height")
            if (
                type(iid) is int
                and iid not in ids
                and type(image.get("file_name")) is str
                and type(width) in _NUMBER
                and type(height) in _NUMBER
                and width > 0
                and height > 0
            ):
                ids.add(iid)
                continue
        bad.append(i)
    return ids, bad


def _bad_annotations(
    annotations: list[Any], image_ids: set[int], category_ids: set[int]
) -> list[int]:
    """The indices of the bad annotations."""
    ids: set[int] = set()
    bad: list[int] = []
    for i, ann in enumerate(annotations):
        if type(ann) is dict:
            aid, bbox = ann.get("id"), ann.get("bbox")
            if (
                type(aid) is int
                and aid not in ids
                and type(ann.get("image_id")) is int
                and ann["image_id"] in image_ids
                and type(ann.get("category_id")) is int
                and ann["category_id"] in category_ids
                and type(bbox) is list
                and len(bbox) == 4
                and _box_ok(*bbox)
            ):
                ids.add(aid)
                continue
        bad.append(i)
    return bad


def load_coco(path: str | os.PathLike[str], what: str = "COCO json") -> dict[str, Any]:
    """Read a COCO detection json and check it with :func:`validate_coco`.

    Raises:
        DataError: the file cannot be read or parsed, or :func:`validate_coco` rejects it.
    """
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:  # ValueError: JSONDecodeError, UnicodeDecodeError
        raise DataError(
            f"cannot read {what} {path}: {one_line(exc)}; give a complete COCO detection json"
        ) from exc
    validate_coco(data, path, what)
    return data


_VALIDATED: dict[tuple[Path, str | None], tuple[int, int]] = {}
"""Files :func:`check_coco_file` accepted (with their image folder), with their (size, mtime)."""


def check_coco_file(
    path: str | os.PathLike[str],
    what: str = "COCO json",
    img_dir: str | os.PathLike[str] | None = None,
) -> None:
    """:func:`load_coco` without keeping the data, and with ``img_dir`` a sample of its image
    files opened (:func:`check_image_files`); a file already accepted in this process and
    unchanged since (size and mtime) is not read again."""
    check_coco_files([(path, what, img_dir)])


def check_coco_files(
    files: Sequence[tuple[str | os.PathLike[str], str, str | os.PathLike[str] | None]],
) -> None:
    """:func:`check_coco_file` of every ``(path, what, img_dir)``, every json read once and all
    of them validated before any image file is opened, so a malformed json is named first."""
    pending = []
    for path, what, img_dir in files:
        resolved = Path(path).expanduser().resolve()
        try:
            info = resolved.stat()
        except OSError as exc:
            raise DataError(f"cannot read {what} {path}: {one_line(exc)}") from exc
        img = None if img_dir is None else str(Path(img_dir).expanduser().resolve())
        key = (info.st_size, info.st_mtime_ns)
        if _VALIDATED.get((resolved, img)) != key:
            data = load_coco(Path(path).expanduser(), what)
            pending.append(((resolved, img), key, data, what, img_dir))
    for cache_key, key, data, what, img_dir in pending:
        if img_dir is not None:
            check_image_files(data, img_dir, what)
        _VALIDATED[cache_key] = key


def check_image_files(
    data: Mapping[str, Any],
    img_dir: str | os.PathLike[str],
    what: str = "COCO json",
    *,
    sample: int = IMAGE_SAMPLE,
) -> None:
    """Open ``sample`` image files of a validated json (spread evenly over its images, the first
    and the last among them) under ``img_dir``: each must exist and decode as an image.

    Raises:
        DataError: naming the file, what is wrong and the fix.
    """
    from PIL import Image, UnidentifiedImageError

    images = list(data["images"])
    if not images:
        return
    count = min(sample, len(images))
    picks = sorted({round(i * (len(images) - 1) / max(count - 1, 1)) for i in range(count)})
    folder = Path(img_dir).expanduser()
    for index in picks:
        image = images[index]
        path = folder / image["file_name"]
        try:
            with Image.open(path) as opened:
                opened.verify()
            continue
        except FileNotFoundError:
            problem = "does not exist"
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            problem = f"is not a readable image ({one_line(exc)})"
        raise DataError(
            f"{what} image folder {folder}: {path} (images[{index}], id {image['id']}) "
            f"{problem}; give the folder the json's file_name entries are relative to, with "
            "intact image files"
        )


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (its type name when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def split_coco(
    data: Mapping[str, Any], *, eval_images: int, seed: int = 0
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a COCO detection dict by image into (D_train, D_eval).

    The images are ordered by id, permuted with ``numpy.random.default_rng(seed)``, and the first
    ``eval_images`` go to D_eval; every annotation follows its image; all other top-level keys
    (info, licenses, categories, ...) are copied to both. Images keep their order of the source.

    Returns:
        ``(train, eval)`` dicts; their images partition the source's.
    """
    images = list(data["images"])
    ids = [int(im["id"]) for im in images]
    if len(set(ids)) != len(ids):
        raise DataError("the COCO json has duplicate image ids")
    if not 1 <= eval_images < len(images):
        raise DataError(
            f"eval_images must be in [1, {len(images) - 1}] for {len(images)} images, "
            f"got {eval_images}"
        )
    order = np.random.default_rng(seed).permutation(np.array(sorted(ids), dtype=np.int64))
    eval_ids = {int(i) for i in order[:eval_images]}
    parts: list[dict[str, Any]] = []
    for in_eval in (False, True):
        part = {k: v for k, v in data.items() if k not in ("images", "annotations")}
        part["images"] = [im for im in images if (int(im["id"]) in eval_ids) == in_eval]
        part["annotations"] = [
            a for a in data["annotations"] if (int(a["image_id"]) in eval_ids) == in_eval
        ]
        parts.append(part)
    for name, part in (("D_train", parts[0]), ("D_eval", parts[1])):
        if not part["annotations"]:
            annotated = len({int(a["image_id"]) for a in data["annotations"]})
            raise DataError(
                f"the split (seed {seed}, {eval_images} D_eval images) leaves {name} without "
                f"annotations: only {annotated} of the {len(images)} images have any; give a "
                "json with more annotated images, or another split seed or D_eval size"
            )
    return parts[0], parts[1]
