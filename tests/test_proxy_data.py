"""The bundled proxy dataset (paploss.proxy): determinism, COCO format, disjoint splits."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("PIL")

from paploss import proxy  # noqa: E402
from paploss.proxy import cli, generate_proxy_dataset  # noqa: E402
from paploss.proxy.scenes import partition_sources  # noqa: E402
from paploss.proxy.settings import (  # noqa: E402
    ANN_FILE,
    CLASSES,
    IMG_DIR,
    SPLITS,
    ProxySettings,
)

SMALL = dict(num_train=6, num_eval=4, num_val=4)


def _digest_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


MEDIUM = dict(
    seed=3,
    num_train=60,
    num_eval=30,
    num_val=30,
    image_size=128,
    max_objects=6,
    size_mix=(0.3, 0.4, 0.3),
)


def _load(split_dir: Path) -> dict:
    return json.loads((split_dir / ANN_FILE).read_text())


@pytest.fixture(scope="module")
def medium_dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Enough scenes to see every size class and every category in every split (128 px scenes
    with all three size classes: the generator's general case, not the proxy's default)."""
    root = tmp_path_factory.mktemp("proxy") / "data"
    return generate_proxy_dataset(root, **MEDIUM)


def test_generation_is_deterministic(tmp_path: Path) -> None:
    a = generate_proxy_dataset(tmp_path / "a", seed=1, **SMALL)
    b = generate_proxy_dataset(tmp_path / "b", seed=1, **SMALL)
    c = generate_proxy_dataset(tmp_path / "c", seed=2, **SMALL)
    tree_a = _digest_tree(tmp_path / "a")
    assert tree_a == _digest_tree(tmp_path / "b")  # byte-identical json and PNGs
    assert len([k for k in tree_a if k.endswith(".png")]) == 14
    assert _load(a["train"]) == _load(b["train"])
    assert _load(a["train"])["annotations"] != _load(c["train"])["annotations"]


def test_splits_do_not_depend_on_the_other_splits_sizes(tmp_path: Path) -> None:
    a = generate_proxy_dataset(tmp_path / "a", seed=0, num_train=3, num_eval=4, num_val=2)
    b = generate_proxy_dataset(tmp_path / "b", seed=0, num_train=5, num_eval=4, num_val=3)
    pngs_a = {k: v for k, v in _digest_tree(a["eval"]).items() if k.endswith(".png")}
    assert pngs_a and pngs_a == {
        k: v for k, v in _digest_tree(b["eval"]).items() if k.endswith(".png")
    }
    for key in ("images", "annotations", "categories"):
        assert _load(a["eval"])[key] == _load(b["eval"])[key]  # only info.settings differs
    assert _load(b["train"])["images"][:3] == _load(a["train"])["images"]


def test_generation_is_idempotent_and_refuses_other_settings(tmp_path: Path) -> None:
    root = tmp_path / "p"
    paths = generate_proxy_dataset(root, **SMALL)
    assert paths == {split: root / split for split in SPLITS}
    png = paths["val"] / IMG_DIR / "000001.png"
    stamp = png.stat().st_mtime_ns
    assert generate_proxy_dataset(root, **SMALL) == paths
    assert png.stat().st_mtime_ns == stamp  # not rewritten
    with pytest.raises(ValueError, match="other settings"):
        generate_proxy_dataset(root, **{**SMALL, "num_train": 7})
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x.txt").write_text("x")
    with pytest.raises(ValueError, match="not an \\(empty\\) proxy dataset"):
        generate_proxy_dataset(foreign, **SMALL)
    assert not list(tmp_path.glob(".*tmp-*"))  # no temporary folder left behind
    assert proxy.load_settings(root) == ProxySettings(**SMALL)


def test_default_root_is_a_settings_hash_under_paploss_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAPLOSS_DATA", str(tmp_path / "cache"))
    paths = generate_proxy_dataset(**SMALL)
    expected = tmp_path / "cache" / ProxySettings(**SMALL).digest()
    assert paths["train"] == expected / "train"
    assert (expected / "settings.json").is_file()
    assert ProxySettings(**SMALL).digest() != ProxySettings(**{**SMALL, "seed": 1}).digest()
    monkeypatch.delenv("PAPLOSS_DATA")
    assert proxy.default_cache_dir() == Path("~/.cache/paploss/proxy").expanduser()


def test_coco_json_loads_in_pycocotools_and_is_consistent(medium_dataset: dict[str, Path]) -> None:
    from PIL import Image
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    for split in SPLITS:
        ann_file = str(medium_dataset[split] / ANN_FILE)
        coco = COCO(ann_file)
        cats = coco.loadCats(coco.getCatIds())
        assert [c["name"] for c in cats] == list(CLASSES)
        assert [c["id"] for c in cats] == list(range(1, 11))
        for img in coco.loadImgs(coco.getImgIds()):
            pixels = np.asarray(Image.open(medium_dataset[split] / IMG_DIR / img["file_name"]))
            assert pixels.shape == (img["height"], img["width"]) == (128, 128)
            anns = coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))
            assert 1 <= len(anns) <= 6
            for ann in anns:
                x, y, w, h = ann["bbox"]
                assert 0 <= x and 0 <= y and x + w <= 128 and y + h <= 128 and w > 0 and h > 0
                assert math.isclose(ann["area"], w * h, rel_tol=1e-3, abs_tol=1e-3)
                assert ann["iscrowd"] == 0
                if ann["size_class"] == "large":  # the box holds bright ink
                    crop = pixels[int(y) : int(y + h), int(x) : int(x + w)]
                    assert crop.max() > np.median(pixels) + 60

    # The ground truth as detections scores AP = 1 through pycocotools.
    coco = COCO(str(medium_dataset["eval"] / ANN_FILE))
    dets = [
        dict(image_id=a["image_id"], category_id=a["category_id"], bbox=a["bbox"], score=1.0)
        for a in coco.dataset["annotations"]
    ]
    evaluator = COCOeval(coco, coco.loadRes(dets), "bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    assert evaluator.stats[0] == pytest.approx(1.0)


def test_splits_are_disjoint_by_source_digit(medium_dataset: dict[str, Path]) -> None:
    from sklearn.datasets import load_digits

    labels = load_digits().target
    pools = partition_sources(labels, seed=3, fractions=(0.6, 0.2, 0.2))
    assert sum(p.size for p in pools.values()) == labels.size == 1797
    assert len(set.union(*(set(p.tolist()) for p in pools.values()))) == 1797
    for split in SPLITS:
        assert set(labels[pools[split]].tolist()) == set(range(10))
    used = {
        split: {a["source_index"] for a in _load(medium_dataset[split])["annotations"]}
        for split in SPLITS
    }
    for split in SPLITS:
        assert used[split] <= set(pools[split].tolist())
        for digit_ann in _load(medium_dataset[split])["annotations"]:
            assert labels[digit_ann["source_index"]] + 1 == digit_ann["category_id"]
    assert not used["train"] & used["eval"]
    assert not used["train"] & used["val"]
    assert not used["eval"] & used["val"]


def test_object_sizes_cover_scaled_coco_classes(medium_dataset: dict[str, Path]) -> None:
    settings = ProxySettings(**MEDIUM)
    lo, small, medium, hi = settings.size_limits()
    assert (small, medium) == pytest.approx((32 * 128 / 640, 96 * 128 / 640))
    anns = _load(medium_dataset["train"])["annotations"]
    sides = np.sqrt([a["area"] for a in anns])
    classes = [a["size_class"] for a in anns]
    for name in ("small", "medium", "large"):
        assert classes.count(name) >= 0.15 * len(anns), (name, classes.count(name), len(anns))
    # Rounding the digit to whole pixels may move a box slightly past the drawn range.
    assert sides.min() >= 0.85 * lo and sides.max() <= 1.15 * hi
    for side, name in zip(sides, classes):
        expected = "small" if side < small else "medium" if side < medium else "large"
        assert name == expected
    images = {a["image_id"] for a in anns}
    assert len(images) == 60
    assert {a["category_id"] for a in anns} == set(range(1, 11))


def test_default_scenes_hold_1_to_4_recognizable_digits(tmp_path: Path) -> None:
    """The proxy's defaults: 64 px scenes, 1-4 digits of sqrt(area) 9.6-28 px, tight ink boxes."""
    from PIL import Image

    defaults = ProxySettings()
    assert (defaults.image_size, defaults.min_objects, defaults.max_objects) == (64, 1, 4)
    assert defaults.size_mix == (0.0, 0.0, 1.0)
    _, _, lo, hi = defaults.size_limits()  # the large class: (medium/large limit, max)
    assert (lo, hi) == pytest.approx((64 / 640 * 96, 28.0))
    paths = generate_proxy_dataset(tmp_path / "d", num_train=40, num_eval=10, num_val=10)
    coco = _load(paths["train"])
    per_image = {img["id"]: 0 for img in coco["images"]}
    for ann in coco["annotations"]:
        per_image[ann["image_id"]] += 1
        x, y, w, h = ann["bbox"]
        assert 0 <= x and 0 <= y and x + w <= 64 and y + h <= 64
        side = math.sqrt(w * h)
        assert 0.85 * lo <= side <= 1.15 * hi, side  # whole-pixel rounding of the digit
        pixels = np.asarray(Image.open(paths["train"] / IMG_DIR / f"{ann['image_id']:06d}.png"))
        crop = pixels[int(y) : math.ceil(y + h), int(x) : math.ceil(x + w)]
        assert crop.max() > np.median(pixels) + 60  # the box holds the digit's bright ink
    assert 1 <= min(per_image.values()) and max(per_image.values()) <= 4
    assert {img["width"] for img in coco["images"]} == {64}


def test_bad_settings_raise_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="num_train"):
        generate_proxy_dataset(tmp_path / "x", num_train=0)
    with pytest.raises(ValueError, match="image_size"):
        generate_proxy_dataset(tmp_path / "x", image_size=32)
    with pytest.raises(ValueError, match="size_mix"):
        generate_proxy_dataset(tmp_path / "x", size_mix=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="unknown proxy settings"):
        generate_proxy_dataset(tmp_path / "x", colour=True)
    assert not (tmp_path / "x").exists()


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert (
        cli.main(["--out", str(out), "--num-train", "2", "--num-eval", "2", "--num-val", "2"]) == 0
    )
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert "train: 2 images" in captured.err
    assert len(_load(out / "val")["images"]) == 2


def test_the_proxy_package_sits_below_the_study_layer() -> None:
    """``paploss.proxy`` (and its backbone module) import neither the study layer nor torch or
    mmdet; ``paploss._files`` imports nothing of paploss."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import paploss._files\n"
        "print(sorted(m for m in sys.modules if m.startswith('paploss.')))\n"
        "import paploss.proxy, paploss.proxy.backbone, paploss.proxy.cli\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'mmdet', 'mmengine')"
        " or m.startswith('paploss.study')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    files_imports, upward = out.stdout.strip().splitlines()
    assert files_imports == "['paploss._files']"
    assert upward == "[]"
