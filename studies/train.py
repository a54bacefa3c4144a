#!/usr/bin/env python
"""Train a detector with searched (or preset / JSON) loss parameters for a full schedule and
evaluate it on val (paper Sec. 4.1, "Training Settings"); ``--export`` writes the params as JSON
for ``loss_cls=dict(type='ParameterizedAPLoss', params=dict(file=...))``. See ``--help`` and
paploss/study/train.py.

    .venv/bin/python studies/train.py --storage sqlite:///paploss.db \
        --study-name paploss-proxy-demo --epochs 12 --export best.json

The same as the console script ``paploss-train``: this wrapper imports the installed paploss (the
set-up installs the checkout in editable mode).
"""

import sys

from paploss.study.train import main

if __name__ == "__main__":
    sys.exit(main())
