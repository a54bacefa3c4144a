#!/usr/bin/env python
"""Split a COCO detection json by image into D_train / D_eval for the search (paper Sec. 4.1:
train2017 -> 113k / 5k images), seeded.

    .venv/bin/python studies/split_coco.py data/coco/annotations/instances_train2017.json \
        --out-dir data/coco/search_split --eval-images 5000 --seed 0

The same as the console script ``paploss-split-coco``: this wrapper imports the installed
paploss (the set-up installs the checkout in editable mode).
"""

import sys

from paploss.study.split import main

if __name__ == "__main__":
    sys.exit(main())
