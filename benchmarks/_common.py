"""What the benchmark scripts share: the machine description, Markdown tables, result writers.

API (every benchmark imports these instead of writing its own):

- :func:`cpu_name`: the CPU's model name (``/proc/cpuinfo``, else ``platform``).
- :func:`machine_summary`: one line, ``"<cores> cores (<cpu>), load average <l> at the end"``.
- :func:`load_average`: the 1-minute load average.
- :func:`package_versions`: ``{name: version}`` of the named packages (``"not installed"``).
- :func:`git_commit`: the checkout's short commit (``"uncommitted"`` outside git).
- :func:`command_line`: the command a results file quotes, without its output paths.
- :func:`markdown_table`: the lines of a Markdown table from a header and rows of strings.
- :func:`text_table`: the same rows as aligned plain text (terminal output).
- :func:`replace_section`: put a text between the ``<!-- name:begin -->`` / ``<!-- name:end -->``
  markers of a Markdown file (appended with the markers when the file has none), leaving the
  rest of the file as it is.
- :func:`write_json`: write a JSON document (indent 1, trailing newline) atomically.
- :func:`section_markers`: the two marker lines of a section name.

``ROOT`` is the checkout (``benchmarks/``'s parent), ``RESULTS_MD`` its ``RESULTS.md`` (written
only by a run given it, ``--results-md``) and ``RESULTS_DIR`` the raw results' folder
``benchmarks/results``. A ``--smoke`` run writes nothing under ``benchmarks/``: only to the paths
the caller names, or to a temporary folder.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
RESULTS_DIR = ROOT / "benchmarks" / "results"


def section_markers(name: str) -> tuple[str, str]:
    """The begin and end markers of the section ``name`` of a Markdown file."""
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


# ------------------------------------------------------------------------------ machine
def cpu_name() -> str:
    """The CPU's model name from ``/proc/cpuinfo``; ``platform``'s processor or machine else."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def load_average() -> float:
    """The 1-minute load average (NaN where the system has none)."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return float("nan")


def machine_summary() -> str:
    """``"<cores> cores (<cpu>), load average <l> at the end"``: the heading of a measurement
    taken on this machine (call it when the measurement ends)."""
    return f"{os.cpu_count()} cores ({cpu_name()}), load average {load_average():.2f} at the end"


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """``{name: installed version}`` (``"not installed"`` for a missing distribution)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit(root: Path = ROOT) -> str:
    """The short commit of the checkout at ``root``; ``"uncommitted"`` when git cannot tell."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=root,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    return commit or "uncommitted"


def command_line(script: str, argv: Sequence[str], *, drop: Sequence[str] = ()) -> str:
    """``python <script> <argv>`` as a shell line, without the options in ``drop`` and their
    values (``--opt VALUE`` or ``--opt=VALUE``): where a run wrote its results is no part of
    what it measured, and a results file carries no path of the machine it ran on."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in drop:
            skip = "=" not in arg
            continue
        kept.append(arg)
    return shlex.join(["python", script, *kept])


# ------------------------------------------------------------------------------ tables
def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table: header, ``|---|`` rule, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a plain-text table, every column left-aligned to its widest cell."""
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return lines


# ------------------------------------------------------------------------------ writers
def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def replace_section(
    path: Path, name: str, body: str, *, title: str = "# Benchmark results"
) -> None:
    """Write ``body`` between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in ``path``.

    The text outside the markers is kept; a file without them gets the section appended, a
    missing file is created with ``title`` as its first line. ``body`` is given without the
    markers.
    """
    path = Path(path)
    begin, end = section_markers(name)
    section = f"{begin}\n{body.strip(chr(10))}\n{end}"
    text = path.read_text() if path.is_file() else f"{title}\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    _write_text_atomic(path, text)


def write_json(path: Path, data: Any) -> None:
    """``data`` as JSON (indent 1, trailing newline), written to a temporary file and renamed."""
    _write_text_atomic(Path(path), json.dumps(data, indent=1) + "\n")
