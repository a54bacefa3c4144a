"""Copy paploss's PPO2 sampler modules into the OptunaHub package folder.

``contrib/optunahub/samplers/ppo2`` must be self-contained (OptunaHub users install only that
folder), so it holds copies of ``paploss/samplers/_ppo2``'s modules; those modules use relative
imports only, so the copies are byte-identical. Run this after changing them:

    python scripts/sync_optunahub.py            # rewrite the copies
    python scripts/sync_optunahub.py --check    # exit 1 when a copy differs (tests run this)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "paploss" / "samplers" / "_ppo2"
TARGET = ROOT / "contrib" / "optunahub" / "samplers" / "ppo2"
MODULES = (
    "_checks.py",
    "_compat.py",
    "_keys.py",
    "_rounds.py",
    "_sampler.py",
    "_space.py",
    "_truncnorm.py",
    "_update.py",
    "_view.py",
)


def stale() -> list[str]:
    """The modules whose copy differs from paploss's (or is missing)."""
    return [
        name
        for name in MODULES
        if not (TARGET / name).is_file()
        or (TARGET / name).read_bytes() != (SOURCE / name).read_bytes()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report differing copies")
    args = parser.parse_args(argv)
    names = stale()
    if args.check:
        for name in names:
            print(f"{TARGET.relative_to(ROOT) / name} differs from paploss's copy", file=sys.stderr)
        return 1 if names else 0
    for name in names:
        (TARGET / name).write_bytes((SOURCE / name).read_bytes())
        print(f"wrote {TARGET.relative_to(ROOT) / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
