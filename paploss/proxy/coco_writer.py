"""The COCO writer of the proxy dataset: one split's PNG scenes and its ``annotations.json``.

Annotations are COCO detection records (``bbox`` = [x, y, w, h] in pixels rounded to 3 decimals,
``area`` = w * h, ``iscrowd`` = 0) plus ``source_index`` (the row of ``load_digits``) and
``size_class``; category ids are digit + 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from paploss.proxy.scenes import compose_scene
from paploss.proxy.settings import ANN_FILE, CLASSES, FORMAT_VERSION, IMG_DIR, SPLITS, ProxySettings


def write_split(
    out_dir: Path,
    split: str,
    num_images: int,
    settings: ProxySettings,
    images: np.ndarray,
    labels: np.ndarray,
    pool: np.ndarray,
) -> None:
    """Write the split ``split`` into ``out_dir``: ``num_images`` scenes composed from the source
    digits ``pool`` as ``images/000001.png`` ... and their COCO json ``annotations.json``.

    Image ``i`` is a function of ``(settings.seed, split, i)`` alone.

    Args:
        out_dir: the split's folder (created; must not exist).
        split: one of ``SPLITS``.
        num_images: number of scenes.
        settings: generator settings (also recorded in the json's ``info``).
        images: [S, 8, 8] source digits in [0, 16]; labels: [S] their classes.
        pool: indices into ``images`` this split may use.
    """
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
