"""Paths, storage URLs and commands in the report as the user types them: no path of the machine.

A report is committed and read elsewhere, so what it shows of the machine that ran it is written
the way a user types it on their own machine (:func:`user_path`):

- a path under the current folder: relative to it (``docs/x``, ``data/proxy``);
- a path under the home folder: ``~/...`` (``~/.cache/paploss/reproduce/full``);
- a bundled config: ``paploss/configs/NAME`` (also one named by another checkout's
  ``studies/configs/NAME``);
- any other path: as given.

A SQLite URL keeps its form with the file shown the same way, where under the home folder as
``sqlite:///$HOME/...`` (SQLAlchemy does not expand ``~``; the shell expands ``$HOME``); a journal
file as ``journal:~/...`` (paploss expands ``~`` there). :func:`portable_command` applies this to
every word of a recorded command line and joins it for a POSIX shell. Passwords are hidden
before (:func:`paploss.study.storage.redact`).
"""

from __future__ import annotations

import shlex
from pathlib import Path, PurePosixPath

from paploss.study.cli import CONFIG_DIR

SQLITE = "sqlite:///"
JOURNAL = "journal:"


def _under(path: Path, root: Path) -> PurePosixPath | None:
    """``path`` relative to ``root`` (also through ``root``'s resolved form), else None."""
    for base in dict.fromkeys((root, root.resolve())):
        if path.is_relative_to(base):
            return PurePosixPath(path.relative_to(base).as_posix())
    return None


def _config(path: Path) -> str | None:
    """``paploss/configs/NAME`` for a bundled config's path (or another checkout's copy)."""
    shown = PurePosixPath(CONFIG_DIR.parent.name, CONFIG_DIR.name)
    if path.is_relative_to(CONFIG_DIR):
        return (shown / path.relative_to(CONFIG_DIR).as_posix()).as_posix()
    if path.parent.name == CONFIG_DIR.name and (CONFIG_DIR / path.name).is_file():
        return (shown / path.name).as_posix()
    return None


def _split(path_text: str, home_prefix: str) -> tuple[str, str]:
    """``(literal prefix, rest)`` of an absolute path as the user types it; the prefix is
    ``home_prefix`` for a path under the home folder, else empty."""
    path = Path(path_text)
    if not path.is_absolute():
        return "", path_text
    config = _config(path)
    if config is not None:
        return "", config
    rel = _under(path, Path.cwd())
    if rel is not None:
        return "", rel.as_posix()
    rel = _under(path, Path.home())
    if rel is not None:
        if rel == PurePosixPath("."):
            return home_prefix.rstrip("/"), ""
        return home_prefix, rel.as_posix()
    return "", path_text


def user_path(path: str | Path) -> str:
    """``path`` as the user types it: relative under the current folder, ``~/...`` under the home
    folder, ``paploss/configs/NAME`` for a bundled config, else as given."""
    prefix, rest = _split(str(path), "~/")
    return prefix + rest


def _word(word: str) -> str:
    """One shell word of a command, its path or storage URL portable (see the module)."""
    head = ""
    if word.startswith("--") and "=" in word:
        cut = word.index("=") + 1
        head, word = word[:cut], word[cut:]
    prefix, rest = "", word
    if word.startswith(SQLITE + "/"):
        prefix, rest = _split(word[len(SQLITE) :], "$HOME/")
        prefix = SQLITE + prefix
    elif word.startswith(JOURNAL):
        path = word[len(JOURNAL) :].removeprefix("//")
        if path.startswith("/"):
            prefix, rest = _split(path, "~/")
            prefix = JOURNAL + prefix
    else:
        prefix, rest = _split(word, "~/")
    quoted = shlex.quote(rest) if rest else ""
    if not prefix:
        return shlex.quote(head + rest)
    return (shlex.quote(head) if head else "") + prefix + quoted


def user_storage(url: str) -> str:
    """A storage URL as the user types it (see the module); other URLs unchanged."""
    return _word(url) if url.startswith((SQLITE + "/", JOURNAL)) else url


def portable_command(command: str) -> str:
    """A recorded command line with every path and storage URL as the user types it."""
    try:
        words = shlex.split(command)
    except ValueError:  # not shell syntax: shown as recorded
        return command
    return " ".join(_word(w) for w in words)
