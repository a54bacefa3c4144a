"""Bundled proxy detection data: scenes composed from scikit-learn's handwritten digits.

The search of paper Sec. 3.3 trains a detector for one epoch on D_train and evaluates AP on D_eval
for every sampled parameter set. On COCO that takes GPU-days; this module builds a small detection
dataset that needs no download and runs on CPUs, with the same structure:

- Source: ``sklearn.datasets.load_digits`` (1,797 grey 8x8 images of the digits 0-9, shipped with
  scikit-learn). Category ids 1..10, names ``'0'`` .. ``'9'``.
- Splits: the 1,797 source digits are partitioned per class (deterministically by ``seed``) into
  three disjoint groups, 60 % / 20 % / 20 % by default; ``train`` (D_train of the search), ``eval``
  (D_eval, the search's reward) and ``val`` (final numbers) compose their scenes only from their
  own group, so no source digit is seen in two splits.
- Scenes: ``image_size`` x ``image_size`` grey PNGs (default 64) with a random background level, a
  linear gradient, Gaussian noise and a few faint line distractors; 1-4 digits each by default
  (uniform), alpha-composited as bright ink of random intensity, with limited overlap.
- Object sizes: an object's annotated box is the tight box of the digit's ink. Its size
  sqrt(w * h) is drawn log-uniformly inside one of three classes chosen with probabilities
  ``size_mix``; the class limits are COCO's area thresholds (32^2 and 96^2 px on images of about
  640 px) scaled to the image size, i.e. multiplied by ``image_size / 640``: at 128 px
  "small" is sqrt(area) in [4.5, 6.4), "medium" [6.4, 19.2), "large" [19.2, 56]. The default is
  the large class only (``size_mix`` (0, 0, 1)) at 64 px: sqrt(area) in [9.6, 28] px, sizes at
  which an 8 x 8 source digit stays recognizable (at 4.5-6.4 px it hardly is). Note that mmdet's
  CocoMetric (pycocotools) applies COCO's *absolute* area thresholds to AP_S/AP_M/AP_L; on
  64 px images it therefore counts every proxy object as "small" (AP_M and AP_L are -1). The
  relative class of each object is stored in its annotation (``size_class``) for own analyses.
- Format: COCO detection json (``images``, ``annotations`` with ``bbox`` = [x, y, w, h] in
  pixels, ``area`` = w * h, ``iscrowd`` = 0, ``categories``) plus PNG files; every annotation also
  records ``source_index`` (the row of ``load_digits``) and ``size_class``.

Everything is a deterministic function of the settings: the split partition, and every image from
``(seed, split, image index)`` alone, so e.g. D_eval does not change when ``num_train`` does.

Layout (``generate_proxy_dataset`` returns ``{split: <root>/<split>}``)::

    <root>/settings.json               written last: marks a complete dataset
    <root>/<split>/annotations.json    COCO json, split in ("train", "eval", "val")
    <root>/<split>/images/000001.png

The default root is ``$PAPLOSS_DATA/<settings hash>`` with ``PAPLOSS_DATA`` defaulting to
``~/.cache/paploss/proxy``. A dataset is written into ``.<root name>.tmp-<host>-<pid>`` next to
the root and renamed into place, under the lock file ``.<root name>.lock``; such folders left by a
killed process of this host are removed by the next generation. Every call checks a generated
dataset (:func:`dataset_problem`: settings.json, every split's json, every listed PNG present and
ending in its IEND chunk) and rebuilds a damaged one, saying so on stderr. Command line:
``python -m paploss.proxy_data --out DIR`` (``--check``: only report the state).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1
"""Bump whenever the generated content changes for the same settings (it enters the hash)."""

SPLITS = ("train", "eval", "val")
ANN_FILE = "annotations.json"
IMG_DIR = "images"
SETTINGS_FILE = "settings.json"
CLASSES = tuple(str(d) for d in range(10))
"""Category names; category id = digit + 1."""
ENV_CACHE = "PAPLOSS_DATA"
DEFAULT_CACHE = "~/.cache/paploss/proxy"
COCO_REFERENCE_SIZE = 640
"""COCO images are about 640 px on their long side; the 32^2 / 96^2 px area thresholds of the
small / medium / large classes are scaled by ``image_size / COCO_REFERENCE_SIZE``."""
SIZE_CLASSES = ("small", "medium", "large")
INK_THRESHOLD = 2.0
"""A source pixel (0..16) belongs to the digit's ink, and thus to its box, when above this."""
MAX_IMAGE_SIZE = 1024
"""Largest ``image_size``: a 1024 px scene is 1 MiB of pixels (float64: 8 MiB while composed)."""
MAX_IMAGES = 1_000_000
"""Largest ``num_train`` / ``num_eval`` / ``num_val``."""
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
"""The last 12 bytes of every complete PNG file: the empty IEND chunk and its CRC."""


@dataclasses.dataclass(frozen=True)
class ProxySettings:
    """Every knob of the generator; the dataset is a deterministic function of these.

    Attributes:
        seed: master seed of the partition and of every scene.
        num_train, num_eval, num_val: number of images of D_train, D_eval and val (1 to
            ``MAX_IMAGES``).
        image_size: side of the square images in pixels (64 to ``MAX_IMAGE_SIZE``).
        min_objects, max_objects: digits per image, drawn uniformly from this range.
        size_mix: probabilities of the small / medium / large size classes (sum 1).
        min_small: lower limit of sqrt(box area) of small objects at ``image_size`` 128 (scaled).
        max_large: upper limit of sqrt(box area) of large objects at ``image_size`` 128 (scaled).
        split_fractions: fractions of the source digits of each class given to train / eval / val.
        max_iou: largest IoU allowed between the boxes of two digits of one image.
        max_cover: largest fraction of a box that another digit's box may cover.
    """

    seed: int = 0
    num_train: int = 6000
    num_eval: int = 500
    num_val: int = 500
    image_size: int = 64
    min_objects: int = 1
    max_objects: int = 4
    size_mix: tuple[float, float, float] = (0.0, 0.0, 1.0)
    min_small: float = 4.5
    max_large: float = 56.0
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    max_iou: float = 0.1
    max_cover: float = 0.3

    def __post_init__(self) -> None:
        for name in ("num_train", "num_eval", "num_val"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not 1 <= value <= MAX_IMAGES
            ):
                raise ValueError(f"{name} must be an int in [1, {MAX_IMAGES}], got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")
        size = self.image_size
        if isinstance(size, bool) or not isinstance(size, int) or not 64 <= size <= MAX_IMAGE_SIZE:
            raise ValueError(
                f"image_size must be an int in [64, {MAX_IMAGE_SIZE}] (pixels), got {size!r}"
            )
        if not (1 <= self.min_objects <= self.max_objects <= 20):
            raise ValueError(
                f"need 1 <= min_objects <= max_objects <= 20, got {self.min_objects}, "
                f"{self.max_objects}"
            )
        for name in ("size_mix", "split_fractions"):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) != 3 or min(value) < 0 or not math.isclose(sum(value), 1.0, abs_tol=1e-6):
                raise ValueError(f"{name} must be 3 non-negative numbers summing to 1, got {value}")
            object.__setattr__(self, name, value)
        if min(self.split_fractions) <= 0:
            raise ValueError(f"split_fractions must all be positive, got {self.split_fractions}")
        small, medium = self.size_limits()[1:3]
        if not (0 < self.min_small * self.scale < small and medium < self.max_large * self.scale):
            raise ValueError(
                f"need 0 < min_small < {small / self.scale:.3g} and max_large > "
                f"{medium / self.scale:.3g} (at 128 px), got {self.min_small}, {self.max_large}"
            )
        if self.max_large * self.scale > 0.6 * self.image_size:
            raise ValueError(f"max_large {self.max_large} is too large for the image size")
        if not (0 <= self.max_iou <= 1 and 0 <= self.max_cover <= 1):
            raise ValueError(
                f"max_iou and max_cover must lie in [0, 1], got {self.max_iou}, {self.max_cover}"
            )

    @property
    def scale(self) -> float:
        """Size factor relative to the reference image size 128."""
        return self.image_size / 128.0

    def size_limits(self) -> tuple[float, float, float, float]:
        """sqrt(area) class limits in pixels: (min small, small/medium, medium/large, max large)."""
        factor = self.image_size / COCO_REFERENCE_SIZE
        return (
            self.min_small * self.scale,
            32.0 * factor,
            96.0 * factor,
            self.max_large * self.scale,
        )

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["size_mix"] = list(self.size_mix)
        data["split_fractions"] = list(self.split_fractions)
        data["format_version"] = FORMAT_VERSION
        return data

    def digest(self) -> str:
        """12 hex digits identifying these settings (and the generator version)."""
        return settings_digest(self.to_dict())


def default_cache_dir() -> Path:
    """``$PAPLOSS_DATA`` or ``~/.cache/paploss/proxy``: the parent of the per-settings folders."""
    return Path(os.environ.get(ENV_CACHE) or DEFAULT_CACHE).expanduser()


def default_root(settings: ProxySettings | None = None) -> Path:
    """The cache folder of a settings combination: ``default_cache_dir() / settings.digest()``."""
    return default_cache_dir() / (settings or ProxySettings()).digest()


def split_paths(root: str | os.PathLike[str]) -> dict[str, Path]:
    """``{split: <root>/<split>}``; each holds ``annotations.json`` and ``images/``."""
    root = Path(root)
    return {split: root / split for split in SPLITS}


# ------------------------------------------------------------------------------ generation
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """-> (images [1797, 8, 8] float64 in [0, 16], labels [1797] int64)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return np.asarray(digits.images, dtype=np.float64), np.asarray(digits.target, dtype=np.int64)


def partition_sources(
    labels: np.ndarray, seed: int, fractions: Sequence[float]
) -> dict[str, np.ndarray]:
    """Split the indices of the source digits per class into disjoint train / eval / val groups.

    Args:
        labels: [S] int class of every source digit.
        seed: partition seed.
        fractions: three fractions (sum 1) of every class's digits.

    Returns:
        ``{split: sorted int64 indices}``; every class is represented in every split.
    """
    rng = np.random.default_rng([seed, 7919])
    groups: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        idx = idx[rng.permutation(idx.size)]
        n_train = int(round(fractions[0] * idx.size))
        n_eval = int(round(fractions[1] * idx.size))
        if not (0 < n_train and 0 < n_eval and n_train + n_eval < idx.size):
            raise ValueError(f"class {cls} has too few digits ({idx.size}) for {fractions}")
        groups["train"].append(idx[:n_train])
        groups["eval"].append(idx[n_train : n_train + n_eval])
        groups["val"].append(idx[n_train + n_eval :])
    return {split: np.sort(np.concatenate(parts)) for split, parts in groups.items()}


def _ink_box(digit: np.ndarray) -> tuple[int, int, int, int]:
    """Tight ink box of an 8x8 digit in grid cells: (col0, row0, col1 + 1, row1 + 1)."""
    ink = digit > INK_THRESHOLD
    cols = np.flatnonzero(ink.any(axis=0))
    rows = np.flatnonzero(ink.any(axis=1))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _box_overlaps(box: np.ndarray, others: list[np.ndarray]) -> tuple[float, float]:
    """Largest IoU and largest covered fraction (of either box) between ``box`` and ``others``."""
    worst_iou, worst_cover = 0.0, 0.0
    area = (box[2] - box[0]) * (box[3] - box[1])
    for other in others:
        iw = min(box[2], other[2]) - max(box[0], other[0])
        ih = min(box[3], other[3]) - max(box[1], other[1])
        if iw <= 0 or ih <= 0:
            continue
        inter = iw * ih
        other_area = (other[2] - other[0]) * (other[3] - other[1])
        worst_iou = max(worst_iou, inter / (area + other_area - inter))
        worst_cover = max(worst_cover, inter / min(area, other_area))
    return worst_iou, worst_cover


def _resize_digit(digit: np.ndarray, side: int) -> np.ndarray:
    """8x8 digit in [0, 16] -> [side, side] alpha in [0, 1] (antialiased bilinear resampling)."""
    from PIL import Image

    img = Image.fromarray((digit * (255.0 / 16.0)).astype(np.float32))  # mode "F"
    out = np.asarray(img.resize((side, side), Image.Resampling.BILINEAR), dtype=np.float64)
    return np.clip(out / 255.0, 0.0, 1.0)


def digit_side(
    digit: np.ndarray, target: float, limit: int
) -> tuple[int, tuple[int, int, int, int]]:
    """(side of the square the 8x8 digit is drawn in, its ink box in grid cells) so that the ink
    box's sqrt(area) is ``target`` px; the side is at least 3 and at most ``limit``."""
    c0, r0, c1, r1 = _ink_box(digit)
    side = max(3, int(round(target / math.sqrt((c1 - c0) * (r1 - r0) / 64.0))))
    return min(side, limit), (c0, r0, c1, r1)


def paint_digit(
    rng: np.random.Generator, canvas: np.ndarray, digit: np.ndarray, side: int, x0: int, y0: int
) -> None:
    """Alpha-composite the digit into ``canvas[y0:y0+side, x0:x0+side]`` as bright ink of random
    opacity (0.75-1) and intensity (170-255), in place."""
    alpha = _resize_digit(digit, side) * rng.uniform(0.75, 1.0)
    ink = rng.uniform(170.0, 255.0)
    patch = canvas[y0 : y0 + side, x0 : x0 + side]
    canvas[y0 : y0 + side, x0 : x0 + side] = patch * (1.0 - alpha) + ink * alpha


def settings_digest(data: dict[str, Any]) -> str:
    """12 hex digits identifying a settings dict (its canonical JSON)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """[size, size] float64 grey background: level + linear gradient + faint lines + noise."""
    level = rng.uniform(0.0, 70.0)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    amplitude = rng.uniform(0.0, 40.0)
    coords = (np.arange(size, dtype=np.float64) + 0.5) / size - 0.5
    ramp = math.cos(angle) * coords[None, :] + math.sin(angle) * coords[:, None]
    canvas = level + amplitude * ramp
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    for _ in range(int(rng.integers(0, 4))):  # faint straight strokes as distractors
        x0, y0, x1, y1 = rng.uniform(0, size, 4)
        width = rng.uniform(0.6, 1.6)
        length = max(math.hypot(x1 - x0, y1 - y0), 1e-6)
        t = np.clip(((xx - x0) * (x1 - x0) + (yy - y0) * (y1 - y0)) / length**2, 0.0, 1.0)
        dist = np.hypot(xx - (x0 + t * (x1 - x0)), yy - (y0 + t * (y1 - y0)))
        canvas += rng.uniform(20.0, 70.0) * np.clip(width - dist, 0.0, 1.0)
    return canvas


def compose_scene(
    rng: np.random.Generator,
    settings: ProxySettings,
    images: np.ndarray,
    labels: np.ndarray,
    pool: np.ndarray,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One scene from the source digits in ``pool``.

    Args:
        rng: the scene's random generator.
        settings: generator settings.
        images: [S, 8, 8] source digits in [0, 16].
        labels: [S] their classes.
        pool: indices into ``images`` this split may use.

    Returns:
        (uint8 image [H, W], objects), each object a dict with ``bbox`` (x1, y1, x2, y2 floats in
        pixels), ``label`` (digit), ``source_index`` and ``size_class``.
    """
    size = settings.image_size
    limits = settings.size_limits()
    canvas = _background(rng, size)
    boxes: list[np.ndarray] = []
    objects: list[dict[str, Any]] = []
    num = int(rng.integers(settings.min_objects, settings.max_objects + 1))
    for _ in range(num):
        src = int(pool[rng.integers(pool.size)])
        digit = images[src]
        size_class = int(rng.choice(3, p=settings.size_mix))
        lo, hi = limits[size_class], limits[size_class + 1]
        target = math.exp(rng.uniform(math.log(lo), math.log(hi)))  # sqrt(box area)
        side, (c0, r0, c1, r1) = digit_side(digit, target, size)
        cell = side / 8.0
        placed = None
        for _attempt in range(30):
            x0 = int(rng.integers(0, size - side + 1))
            y0 = int(rng.integers(0, size - side + 1))
            box = np.array([x0 + c0 * cell, y0 + r0 * cell, x0 + c1 * cell, y0 + r1 * cell])
            iou, cover = _box_overlaps(box, boxes)
            if iou <= settings.max_iou and cover <= settings.max_cover:
                placed = (x0, y0, box)
                break
        if placed is None:
            continue
        x0, y0, box = placed
        paint_digit(rng, canvas, digit, side, x0, y0)
        boxes.append(box)
        # The class of the box actually drawn (the rounding of ``side`` may cross a limit).
        drawn = math.sqrt((box[2] - box[0]) * (box[3] - box[1]))
        objects.append(
            dict(
                bbox=[float(v) for v in box],
                label=int(labels[src]),
                source_index=src,
                size_class=SIZE_CLASSES[int(np.searchsorted(limits[1:3], drawn, side="right"))],
            )
        )
    canvas += rng.normal(0.0, rng.uniform(2.0, 10.0), canvas.shape)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), objects


def _write_split(
    out_dir: Path,
    split: str,
    num_images: int,
    settings: ProxySettings,
    images: np.ndarray,
    labels: np.ndarray,
    pool: np.ndarray,
) -> None:
    from PIL import Image

    img_dir = out_dir / IMG_DIR
    img_dir.mkdir(parents=True)
    split_id = SPLITS.index(split)
    coco_images, annotations = [], []
    for i in range(num_images):
        rng = np.random.default_rng([settings.seed, split_id, i])
        pixels, objects = compose_scene(rng, settings, images, labels, pool)
        file_name = f"{i + 1:06d}.png"
        Image.fromarray(pixels).save(img_dir / file_name, optimize=False)
        coco_images.append(
            dict(
                id=i + 1, file_name=file_name, width=settings.image_size, height=settings.image_size
            )
        )
        for obj in objects:
            x1, y1, x2, y2 = (round(v, 3) for v in obj["bbox"])
            w, h = round(x2 - x1, 3), round(y2 - y1, 3)
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=i + 1,
                    category_id=obj["label"] + 1,
                    bbox=[x1, y1, w, h],
                    area=round(w * h, 3),
                    iscrowd=0,
                    source_index=obj["source_index"],
                    size_class=obj["size_class"],
                )
            )
    coco = dict(
        info=dict(
            description=f"paploss proxy digits, split {split!r}",
            version=str(FORMAT_VERSION),
            settings=settings.to_dict(),
        ),
        images=coco_images,
        annotations=annotations,
        categories=[
            dict(id=d + 1, name=name, supercategory="digit") for d, name in enumerate(CLASSES)
        ],
    )
    (out_dir / ANN_FILE).write_text(json.dumps(coco, separators=(",", ":")))


def _read_settings(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((root / SETTINGS_FILE).read_text())
    except (OSError, ValueError):
        return None


def _png_complete(path: Path) -> bool:
    """The file exists and ends in a PNG's IEND chunk (a truncated file does not)."""
    try:
        with open(path, "rb") as f:
            f.seek(-len(PNG_END), os.SEEK_END)
            return f.read() == PNG_END
    except OSError:
        return False


def dataset_problem(root: str | os.PathLike[str]) -> str | None:
    """What is wrong with the generated dataset in ``root``; None when it is complete.

    Checks settings.json (the completion marker), that every split's annotations.json parses and
    lists as many images as the settings ask for, and that every listed image file exists and
    ends in a PNG's IEND chunk. Reads 12 bytes per image (7,000 images: well under a second).
    """
    root = Path(root)
    settings = _read_settings(root)
    if not isinstance(settings, dict):
        return f"no readable {SETTINGS_FILE}"
    for split in SPLITS:
        ann_file = root / split / ANN_FILE
        try:
            coco = json.loads(ann_file.read_bytes())
            names = [im["file_name"] for im in coco["images"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return f"{split}/{ANN_FILE} cannot be read ({type(exc).__name__})"
        if len(names) != settings.get(f"num_{split}"):
            return (
                f"{split}/{ANN_FILE} lists {len(names)} images, not {settings.get(f'num_{split}')}"
            )
        img_dir = root / split / IMG_DIR
        bad = [name for name in names if not _png_complete(img_dir / str(name))]
        if bad:
            return (
                f"{len(bad)} of {len(names)} {split} images are missing or truncated, e.g. "
                f"{split}/{IMG_DIR}/{bad[0]}"
            )
    return None


def _host() -> str:
    """This machine's name as it appears in temporary folder names (letters and digits)."""
    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname()) or "host"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, as another user's process
        return True
    return True


def remove_stale_temporaries(root: Path) -> list[Path]:
    """Remove ``.<root name>.tmp-[<host>-]<pid>`` (and ``.damaged-``) folders next to ``root``
    that a process of this host left behind when it was killed (its pid is gone).

    Returns:
        The folders removed.
    """
    removed: list[Path] = []
    pattern = re.compile(rf"\.{re.escape(root.name)}\.(?:tmp|damaged)-(?:(\w+)-)?(\d+)")
    try:
        entries = list(root.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or match.group(1) not in (None, _host()):
            continue
        if int(match.group(2)) == os.getpid() or not _pid_alive(int(match.group(2))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


@contextlib.contextmanager
def _generation_lock(root: Path) -> Iterator[None]:
    """Hold the exclusive lock ``.<root name>.lock`` next to ``root`` (one process generates or
    repairs a root at a time; the others wait and then find it complete)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: the rename into place still keeps the root consistent
        yield
        return
    fd = os.open(root.parent / f".{root.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _state(root: Path, wanted: dict[str, Any], own_cache: bool) -> str | None:
    """None: ``root`` holds the wanted, complete dataset. "" : there is none yet (missing or an
    empty folder). Otherwise why the folder must be rebuilt.

    Raises:
        ValueError: ``root`` holds something that is not to be replaced: a dataset of other
            settings, a file, or (outside the cache) a folder with other content.
    """
    existing = _read_settings(root)
    if existing is not None and existing != wanted:
        raise ValueError(
            f"{str(root)!r} holds a proxy dataset with other settings ({existing}); "
            f"requested {wanted}. Choose another folder or delete it."
        )
    if existing is not None:
        return dataset_problem(root)
    if not root.exists():
        return ""
    if not root.is_dir():
        raise ValueError(f"{str(root)!r} exists and is not an (empty) proxy dataset folder")
    entries = {p.name for p in root.iterdir()}
    if not entries:
        return ""
    # A folder of the cache holds only what the generator writes; elsewhere an incomplete
    # dataset is not told apart from a user's folder, which is never deleted.
    if own_cache and entries <= {SETTINGS_FILE, *SPLITS}:
        return f"incomplete: no readable {SETTINGS_FILE}"
    raise ValueError(
        f"{str(root)!r} exists and is not an (empty) proxy dataset folder; delete it or choose "
        "another folder"
    )


def generate_proxy_dataset(
    root: str | os.PathLike[str] | None = None,
    *,
    seed: int = 0,
    num_train: int = ProxySettings.num_train,
    num_eval: int = ProxySettings.num_eval,
    num_val: int = ProxySettings.num_val,
    image_size: int = ProxySettings.image_size,
    min_objects: int = ProxySettings.min_objects,
    max_objects: int = ProxySettings.max_objects,
    size_mix: Sequence[float] = ProxySettings.size_mix,
    split_fractions: Sequence[float] = ProxySettings.split_fractions,
    **other: Any,
) -> dict[str, Path]:
    """Generate the proxy dataset (or find it already generated) and return its split folders.

    Idempotent and safe to call from concurrent processes: a folder whose ``settings.json`` equals
    the requested settings and that passes :func:`dataset_problem` is returned untouched;
    otherwise the data is written into a temporary sibling folder and renamed into place. A
    damaged dataset of these settings (a truncated image, a broken json; in the default cache
    also one without ``settings.json``) is rebuilt, with one line on stderr saying so.

    Args:
        root: target folder; None = ``default_root(settings)`` (``$PAPLOSS_DATA/<hash>``).
        seed, num_train, num_eval, num_val, image_size, min_objects, max_objects, size_mix,
        split_fractions, **other: the ``ProxySettings`` fields (``other``: min_small, max_large,
            max_iou, max_cover).

    Returns:
        ``{"train": <root>/train, "eval": <root>/eval, "val": <root>/val}``; each folder holds
        ``annotations.json`` (COCO) and ``images/``.

    Raises:
        ValueError: invalid settings; ``root`` holds a different dataset or foreign files; the
            dataset must be generated or rebuilt but its folder is not writable (the message
            names the folder to delete or the setting to change).
    """
    unknown = set(other) - {f.name for f in dataclasses.fields(ProxySettings)}
    if unknown:
        raise ValueError(f"unknown proxy settings {sorted(unknown)}")
    settings = ProxySettings(
        seed=seed,
        num_train=num_train,
        num_eval=num_eval,
        num_val=num_val,
        image_size=image_size,
        min_objects=min_objects,
        max_objects=max_objects,
        size_mix=tuple(size_mix),
        split_fractions=tuple(split_fractions),
        **other,
    )
    own_cache = root is None
    root = Path(root).expanduser().absolute() if root is not None else default_root(settings)
    wanted = settings.to_dict()
    problem = _state(root, wanted, own_cache)
    if problem is None:
        return split_paths(root)
    _check_parent_writable(root, problem, own_cache)
    root.parent.mkdir(parents=True, exist_ok=True)
    with _generation_lock(root):
        problem = _state(root, wanted, own_cache)  # another process may have finished it
        if problem is not None:
            remove_stale_temporaries(root)
            if problem:
                _discard_damaged(root, problem)
            _generate(root, settings, wanted)
    return split_paths(root)


def _check_parent_writable(root: Path, problem: str, own_cache: bool) -> None:
    """Raise ValueError unless the folder holding ``root`` is writable: the temporary folder and
    the rename into place need it. ``problem``: why ``root`` is to be (re)built ("": missing)."""
    from paploss.study.data import writable_dir_problem

    unwritable = writable_dir_problem(root.parent)
    if unwritable is None:
        return
    elsewhere = f", or set ${ENV_CACHE} to a writable folder" if own_cache else ""
    if problem:
        raise ValueError(
            f"the proxy dataset {root} is damaged ({problem}) and cannot be rebuilt there "
            f"({unwritable}); delete {root} and run again{elsewhere}"
        )
    fix = f"set ${ENV_CACHE} to a writable folder" if own_cache else "choose a writable folder"
    raise ValueError(f"cannot generate the proxy dataset in {root} ({unwritable}); {fix}")


def _discard_damaged(root: Path, problem: str) -> None:
    """Move the damaged dataset ``root`` aside and delete it, saying so on stderr (the caller
    holds the generation lock)."""
    print(f"[proxy_data] {root}: damaged ({problem}); rebuilding it", file=sys.stderr)
    aside = root.parent / f".{root.name}.damaged-{_host()}-{os.getpid()}"
    try:
        os.rename(root, aside)
    except OSError as exc:
        raise ValueError(
            f"the proxy dataset {root} is damaged ({problem}) and cannot be moved aside "
            f"({exc.strerror}); delete {root} and run again"
        ) from exc
    shutil.rmtree(aside, ignore_errors=True)


def _generate(root: Path, settings: ProxySettings, wanted: dict[str, Any]) -> None:
    """Write the dataset into a temporary sibling of ``root`` and rename it into place."""
    images, labels = _load_digits()
    pools = partition_sources(labels, settings.seed, settings.split_fractions)
    counts = dict(train=settings.num_train, eval=settings.num_eval, val=settings.num_val)
    tmp = root.parent / f".{root.name}.tmp-{_host()}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        for split in SPLITS:
            _write_split(tmp / split, split, counts[split], settings, images, labels, pools[split])
        (tmp / SETTINGS_FILE).write_text(json.dumps(wanted, indent=2, sort_keys=True))
        with contextlib.suppress(OSError):
            root.rmdir()  # an empty folder; os.rename needs a free name
        try:
            os.rename(tmp, root)
        except OSError:
            # Another process (without the lock: another host) finished first; keep its copy
            # if it is the same, complete dataset.
            if _read_settings(root) != wanted or dataset_problem(root) is not None:
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def load_settings(root: str | os.PathLike[str]) -> ProxySettings:
    """The settings a generated dataset folder was built with."""
    data = _read_settings(Path(root))
    if data is None:
        raise ValueError(f"{str(root)!r} is not a generated proxy dataset (no {SETTINGS_FILE})")
    data = dict(data)
    version = data.pop("format_version", None)
    if version != FORMAT_VERSION:
        raise ValueError(f"{str(root)!r} has format version {version}, expected {FORMAT_VERSION}")
    data["size_mix"] = tuple(data["size_mix"])
    data["split_fractions"] = tuple(data["split_fractions"])
    return ProxySettings(**data)


# ------------------------------------------------------------------------------ command line
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m paploss.proxy_data``: generate (or repair) the dataset and print
    its folder; ``--check`` only reports its state. Bad input: one ``error:`` line, exit code 2;
    ``--check`` of a missing or damaged dataset: one ``error:`` line, exit code 1."""
    defaults = ProxySettings()
    parser = argparse.ArgumentParser(
        prog="python -m paploss.proxy_data",
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
    problem = _state(root, settings.to_dict(), own_cache=out is None)
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


if __name__ == "__main__":
    raise SystemExit(main())
