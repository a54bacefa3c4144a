#!/usr/bin/env python
"""Reproduce the paper's ablations (Tab. 1-7, Fig. 3-4) on the proxy; resumable; writes the report.

    .venv/bin/python studies/reproduce.py all --budget full      # docs/reproduction.md

See ``--help`` and paploss/study/reproduce.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from paploss.study.reproduce import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
