"""File helpers shared by the proxy data (:mod:`paploss.proxy`) and the study layer
(:mod:`paploss.study`): the bottom floor, importing nothing of paploss.

- :func:`writable_dir_problem`: why a folder cannot be written or created (None when it can).
- :func:`write_json_atomic`: JSON written through a temporary sibling and renamed into place.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any


def writable_dir_problem(path: Path) -> str | None:
    """Why the folder ``path`` cannot be written or created (e.g. "cannot create folders in /x
    (permission denied)"); None when it can. Creates nothing."""
    for existing in (path, *path.parents):
        try:
            mode = os.stat(existing).st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            return f"cannot access {existing} ({exc.strerror})"
        if not stat.S_ISDIR(mode):
            return "is a file, not a folder" if existing == path else f"{existing} is a file"
        if os.access(existing, os.W_OK | os.X_OK):
            return None
        try:
            read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
        except OSError:
            read_only = False
        reason = "read-only file system" if read_only else "permission denied"
        verb = "write to" if existing == path else "create folders in"
        return f"cannot {verb} {existing} ({reason})"
    return f"no folder of {path} exists"


def write_json_atomic(path: Path, data: Any, *, indent: int | None = None) -> None:
    """Write JSON through a uniquely named temporary sibling and rename it into place (readers
    never see a partial file; concurrent writers each rename a complete one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=indent)
            if indent is not None:
                f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
