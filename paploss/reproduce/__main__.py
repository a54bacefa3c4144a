"""``python -m paploss.reproduce``: the reproduction command (:mod:`paploss.reproduce.command`)."""

import sys

from paploss.reproduce.command import main

sys.exit(main())
