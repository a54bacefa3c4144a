#!/usr/bin/env python
"""Search the Parameterized AP Loss parameters as an Optuna study (paper Sec. 3.3, Alg. 1).

Each trial samples Theta, trains the detector for --epochs on D_train in a child process and
reports bbox mAP on D_eval; see ``--help`` and paploss/study/search.py.

    .venv/bin/python studies/search.py --rounds 3 --samples-per-round 4 \
        --study-name paploss-proxy-demo --storage sqlite:///paploss.db --work-dir work_dirs/search
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from paploss.study.search import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
