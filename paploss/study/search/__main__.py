"""``python -m paploss.study.search``: the search command (:mod:`paploss.study.search.command`)."""

import sys

from paploss.study.search.command import main

sys.exit(main())
