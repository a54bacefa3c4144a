"""The second generated proxy dataset (``variant="clutter"``, paper Tab. 8's other dataset) and
the default dataset left byte-identical by the variant setting."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("PIL")

from paploss.proxy import generate_proxy_dataset  # noqa: E402
from paploss.proxy.settings import ANN_FILE, VARIANTS, ProxySettings  # noqa: E402

SMALL = dict(num_train=6, num_eval=4, num_val=4)
DEFAULT_TREE_SHA256 = "1d5ed62cc852138a7cd74496aea405b00494f436e0e2e0c02c1d008e8cd320d2"
"""sha256 over the paths and bytes of the SMALL default dataset, computed with the generator
before the variant setting existed: the default's bytes must stay these."""


def _tree_sha256(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        if f.is_file():
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def test_default_variant_is_byte_identical(tmp_path: Path) -> None:
    assert "variant" not in ProxySettings().to_dict()  # the cache folder name is unchanged
    assert ProxySettings(variant="digits").digest() == ProxySettings().digest()
    generate_proxy_dataset(tmp_path / "d", **SMALL)
    assert _tree_sha256(tmp_path / "d") == DEFAULT_TREE_SHA256


def test_clutter_is_another_dataset(tmp_path: Path) -> None:
    clutter = ProxySettings.clutter(**SMALL)
    assert clutter.variant == "clutter" and clutter.to_dict()["variant"] == "clutter"
    assert clutter.digest() != ProxySettings(**SMALL).digest()
    fields = {k: v for k, v in clutter.to_dict().items() if k != "format_version"}
    paths = generate_proxy_dataset(tmp_path / "c", **fields)
    default = generate_proxy_dataset(tmp_path / "d", **SMALL)
    again = generate_proxy_dataset(tmp_path / "c2", **fields)
    assert _tree_sha256(tmp_path / "c") == _tree_sha256(tmp_path / "c2")  # deterministic
    assert again["train"].parent == tmp_path / "c2"
    limit = clutter.size_limits()[3]
    counts = []
    for split in paths:
        ann = json.loads((paths[split] / ANN_FILE).read_text())
        per_image = {img["id"]: 0 for img in ann["images"]}
        for a in ann["annotations"]:
            per_image[a["image_id"]] += 1
            assert math.sqrt(a["bbox"][2] * a["bbox"][3]) <= limit + 1.0  # 20 px (+ rounding)
        counts += per_image.values()
        for img in ann["images"]:
            ours = (paths[split] / "images" / img["file_name"]).read_bytes()
            theirs = (default[split] / "images" / img["file_name"]).read_bytes()
            assert ours != theirs
    assert max(counts) <= 6 and np.mean(counts) > 2.0  # 2-6 placed (a few may not fit)
    with pytest.raises(ValueError, match="variant must be one of"):
        ProxySettings(variant="nope")
    assert set(VARIANTS) == {"digits", "clutter"}
