"""``python -m paploss.proxy``: generate (or check) the bundled proxy dataset."""

from paploss.proxy.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
