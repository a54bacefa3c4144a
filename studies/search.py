#!/usr/bin/env python
"""Search the Parameterized AP Loss parameters as an Optuna study (paper Sec. 3.3, Alg. 1).

Each trial samples Theta, trains the detector for --epochs on D_train in a child process and
reports bbox mAP on D_eval; see ``--help`` and paploss/study/search/command.py.

    .venv/bin/python studies/search.py --rounds 3 --samples-per-round 4 \
        --study-name paploss-proxy-demo --storage sqlite:///paploss.db --work-dir work_dirs/search

The same as the console script ``paploss-search``: this wrapper imports the installed paploss (the
set-up installs the checkout in editable mode).
"""

import sys

from paploss.study.search.command import main

if __name__ == "__main__":
    sys.exit(main())
