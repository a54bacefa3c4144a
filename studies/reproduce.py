#!/usr/bin/env python
"""Reproduce the paper's ablations (Tab. 1-7, Fig. 3-4) on the proxy; resumable; writes the report.

    .venv/bin/python studies/reproduce.py all --budget full      # docs/reproduction.md

See ``--help`` and paploss/reproduce/command.py.

The same as the console script ``paploss-reproduce``: this wrapper imports the installed paploss (the
set-up installs the checkout in editable mode).
"""

import sys

from paploss.reproduce.command import main

if __name__ == "__main__":
    sys.exit(main())
