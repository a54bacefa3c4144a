"""Scene synthesis: scikit-learn's 8x8 digits composed into grey detection scenes.

- :func:`load_digits`: the 1,797 source digits and their classes.
- :func:`partition_sources`: the disjoint train / eval / val groups of source digits.
- :func:`background`: a scene's background (level, linear gradient, faint line distractors);
  :func:`clutter_background` the ``clutter`` variant's (textures, strokes and blocks).
- :func:`digit_side`, :func:`paint_digit`: a digit's drawn size and its alpha-compositing as ink.
- :func:`compose_scene`: one scene (pixels and object boxes) from a random generator.

The proxy backbone's pretraining crops (:mod:`paploss.proxy.backbone`) use the same background,
ink and noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from paploss.proxy.settings import INK_THRESHOLD, SIZE_CLASSES, SPLITS, ProxySettings


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """-> (images [1797, 8, 8] float64 in [0, 16], labels [1797] int64)."""
    from sklearn import datasets

    digits = datasets.load_digits()
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


def ink_box(digit: np.ndarray) -> tuple[int, int, int, int]:
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
    c0, r0, c1, r1 = ink_box(digit)
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


def background(rng: np.random.Generator, size: int) -> np.ndarray:
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


def clutter_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """[size, size] float64 background of the ``clutter`` variant: a brighter level, two random
    sinusoidal textures, 4-9 distractor strokes (brighter than :func:`background`'s) and 1-3
    solid blocks, plus noise added by the caller."""
    level = rng.uniform(30.0, 110.0)
    coords = np.arange(size, dtype=np.float64) + 0.5
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    canvas = np.full((size, size), level)
    for _ in range(2):
        angle = rng.uniform(0.0, math.pi)
        period = rng.uniform(6.0, 24.0)
        phase = rng.uniform(0.0, 2.0 * math.pi)
        wave = np.sin(
            2.0 * math.pi * (math.cos(angle) * xx + math.sin(angle) * yy) / period + phase
        )
        canvas += rng.uniform(8.0, 25.0) * wave
    for _ in range(int(rng.integers(4, 10))):
        x0, y0, x1, y1 = rng.uniform(0, size, 4)
        width = rng.uniform(0.8, 2.0)
        length = max(math.hypot(x1 - x0, y1 - y0), 1e-6)
        t = np.clip(((xx - x0) * (x1 - x0) + (yy - y0) * (y1 - y0)) / length**2, 0.0, 1.0)
        dist = np.hypot(xx - (x0 + t * (x1 - x0)), yy - (y0 + t * (y1 - y0)))
        canvas += rng.uniform(40.0, 110.0) * np.clip(width - dist, 0.0, 1.0)
    for _ in range(int(rng.integers(1, 4))):
        w, h = rng.integers(3, max(4, size // 5), 2)
        x0, y0 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
        canvas[y0 : y0 + h, x0 : x0 + w] = rng.uniform(0.0, 200.0)
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
    canvas = (
        background(rng, size) if settings.variant != "clutter" else clutter_background(rng, size)
    )
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
