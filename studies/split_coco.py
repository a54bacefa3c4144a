#!/usr/bin/env python
"""Split a COCO detection json by image into D_train / D_eval for the search (paper Sec. 4.1:
train2017 -> 113k / 5k images), seeded.

    .venv/bin/python studies/split_coco.py data/coco/annotations/instances_train2017.json \
        --out-dir data/coco/search_split --eval-images 5000 --seed 0
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from paploss.study.split import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
