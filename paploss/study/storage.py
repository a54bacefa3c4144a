"""The Optuna storage of a study: URL handling, opening it (for the search: read-write with
heartbeats; for ``studies/train.py``: an existing study), and the check that the workers of a
study agree on its settings.

A storage is an RDB (a SQLAlchemy URL: ``sqlite:///FILE.db``, ``postgresql://...``) or a journal
file, spelled ``journal:PATH`` (also ``journal://PATH``, so ``journal:///abs/search.log`` is
absolute): Optuna's ``JournalStorage`` over a ``JournalFileBackend``, for many workers on one host
(or on a file system with working file locks) without a database server. Heartbeats, and so the
retry of a dead worker's trial, exist only on RDB storage.

Every connection has a timeout: a PostgreSQL or MySQL server that accepts TCP connections but never
answers ends in an error after ``CONNECT_TIMEOUT`` seconds instead of a hang. A failure is a
:class:`~paploss.errors.StorageError` with one line naming the storage, the cause and the fix.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paploss.errors import StorageError

CONNECT_TIMEOUT = 10
"""Seconds to wait for a database server's answer when connecting."""
URL_HINT = (
    "Give a reachable SQLAlchemy URL: sqlite:///FILE.db in an existing folder, or a running "
    "database server (postgresql://USER@HOST:PORT/DB needs psycopg2-binary), or a journal file "
    "journal:FILE.log in an existing folder"
)
JOURNAL_PREFIX = "journal:"
"""The ``--storage`` prefix of a journal file (``journal:PATH`` or ``journal://PATH``)."""


def journal_file(url: str) -> Path | None:
    """The log file of a ``journal:PATH`` storage (None for RDB URLs).

    ``journal:search.log`` and ``journal://search.log`` are relative to the current folder,
    ``journal:///tmp/search.log`` (as ``journal:/tmp/search.log``) is absolute; ``~`` is expanded.

    Raises:
        StorageError: the prefix has no path after it.
    """
    if not url.startswith(JOURNAL_PREFIX):
        return None
    rest = url[len(JOURNAL_PREFIX) :]
    if rest.startswith("//"):
        rest = rest[2:]
    if not rest:
        raise StorageError(
            f"storage {url!r}: no journal file after {JOURNAL_PREFIX!r}; give e.g. "
            "journal:search.log or journal:///abs/path/search.log"
        )
    return Path(rest).expanduser()


def is_journal(url: str | None) -> bool:
    """Whether ``url`` names a journal file (``journal:PATH``)."""
    return url is not None and url.startswith(JOURNAL_PREFIX)


def engine_kwargs(url: str) -> dict[str, Any]:
    """SQLAlchemy engine arguments: connection checks and a connect timeout for servers."""
    if url.startswith("postgresql"):
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": CONNECT_TIMEOUT}}
    if url.startswith("mysql"):
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": CONNECT_TIMEOUT}}
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": CONNECT_TIMEOUT}}
    return {}


def sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///FILE`` URL (None for other URLs and in-memory ones)."""
    scheme, sep, rest = url.partition(":///")
    if not sep or not scheme.startswith("sqlite") or not rest or rest == ":memory:":
        return None
    return Path(rest.split("?", 1)[0])


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (drivers append hints and help URLs below it)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    max_retry: int = 3,
    must_exist: bool = False,
) -> Any:
    """An ``optuna.storages.RDBStorage`` for ``url``, or a ``JournalStorage`` for ``journal:PATH``.

    Args:
        heartbeat_interval, grace_period, max_retry: the search's heartbeat and the retry of
            trials whose worker died (``RetryHeartbeatStaleTrialCallback``); None: no heartbeat.
            A journal storage has no heartbeat: they are ignored there (the search warns).
        must_exist: reading an existing study: a SQLite or journal file that does not exist is an
            error (instead of a new, empty database left behind).

    Raises:
        StorageError: the storage cannot be opened.
    """
    import optuna
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    journal = journal_file(url)
    if journal is not None:
        return _open_journal(url, journal, must_exist=must_exist)
    url = normalize_storage_url(url)
    path = sqlite_file(url)
    if must_exist and path is not None and not path.is_file():
        raise StorageError(
            f"storage {render_url(url)}: no such database file {str(path)!r}; give the URL of "
            "the search's storage (the --storage the search ran with)"
        )
    try:
        with warnings.catch_warnings():  # the heartbeat API is experimental in Optuna
            warnings.simplefilter("ignore", ExperimentalWarning)
            heartbeat: dict[str, Any] = {}
            if heartbeat_interval is not None:
                heartbeat = dict(
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                        max_retry=max_retry
                    ),
                )
            storage = RDBStorage(url, engine_kwargs=engine_kwargs(url), **heartbeat)
    except Exception as exc:
        raise StorageError(
            f"cannot open storage {render_url(url)}: {redact(first_line(exc))}. {URL_HINT}"
        ) from exc
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return storage


def _open_journal(url: str, path: Path, *, must_exist: bool) -> Any:
    """A ``JournalStorage`` over the ``JournalFileBackend`` of ``path`` (created if missing)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend  # Optuna >= 4 (the project pins 5)

    if must_exist and not path.is_file():
        raise StorageError(
            f"storage {url}: no such journal file {str(path)!r}; give the --storage the search "
            "ran with"
        )
    if not path.parent.is_dir():
        raise StorageError(
            f"storage {url}: folder {str(path.parent)!r} does not exist; create it or give a "
            "journal file in an existing folder"
        )
    try:
        storage = JournalStorage(JournalFileBackend(str(path)))
    except Exception as exc:
        raise StorageError(f"cannot open storage {url}: {first_line(exc)}. {URL_HINT}") from exc
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return storage


# ------------------------------------------------------------------------------ URLs
HIDDEN = "***"
"""What a password is replaced by (as SQLAlchemy's ``render_as_string(hide_password=True)``)."""
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*):[^\s@]*@")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:password|passwd|pwd)=)[^&\s'\"]*", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` (a URL, a command line, a log line) with every URL password replaced by ``***``:
    ``scheme://user:PASSWORD@host`` and ``?password=PASSWORD``. The one place that hides
    passwords: messages, printed lines, stored attributes and reports go through it."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{HIDDEN}@", text)
    return _QUERY_PASSWORD.sub(lambda m: f"{m['head']}{HIDDEN}", text)


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command line's arguments, each through :func:`redact`."""
    return [redact(str(arg)) for arg in argv]


def render_url(url: str) -> str:
    """The storage URL with its password hidden (for messages and records)."""
    return redact(url)


def normalize_storage_url(url: str) -> str:
    """Pick an installed PostgreSQL driver for a plain ``postgresql://`` URL.

    SQLAlchemy >= 2.1 maps ``postgresql://`` to psycopg 3; where only psycopg2 is installed
    (``psycopg2-binary``, this project's dev extra) the URL becomes ``postgresql+psycopg2://``.
    Other URLs are returned unchanged.
    """
    import importlib.util

    scheme, sep, rest = url.partition("://")
    if sep and scheme == "postgresql":
        has_psycopg3 = importlib.util.find_spec("psycopg") is not None
        has_psycopg2 = importlib.util.find_spec("psycopg2") is not None
        if not has_psycopg3 and has_psycopg2:
            return f"postgresql+psycopg2://{rest}"
    return url


def command_url(url: str) -> str:
    """The ``--storage`` value for a printed paploss command: as :func:`dashboard_url`, with a
    journal file kept as ``journal:ABSOLUTE_PATH``."""
    journal = journal_file(url)
    if journal is not None:
        return f"{JOURNAL_PREFIX}{journal.resolve()}"
    return dashboard_url(url)


def dashboard_url(url: str) -> str:
    """The storage URL for optuna-dashboard: a relative SQLite path made absolute, the installed
    PostgreSQL driver named, a password hidden (:func:`redact`: printed commands show ``***``
    where the user types the password)."""
    journal = journal_file(url)
    if journal is not None:  # optuna-dashboard takes the journal file's path
        return str(journal.resolve())
    url = normalize_storage_url(url)
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:
        return redact(url)
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database)
        if not path.is_absolute():
            parsed = parsed.set(database=str(path.resolve()))
        return parsed.render_as_string(hide_password=False)
    return redact(url)


# ------------------------------------------------------------------------------ settings
def json_roundtrip(value: Any) -> Any:
    return json.loads(json.dumps(value))


def settings_conflicts(stored: dict, mine: dict) -> list[str]:
    """Keys whose values differ (after a JSON round trip, as stored)."""
    mine = json_roundtrip(mine)
    return sorted(k for k in set(stored) | set(mine) if stored.get(k) != mine.get(k))


def describe_conflict(name: str, keys: list[str], stored: dict, mine: dict) -> str:
    mine = json_roundtrip(mine)
    parts = [f"{k}: study has {stored.get(k)!r}, this command {mine.get(k)!r}" for k in keys]
    return (
        f"study {name!r} was created with other settings ({'; '.join(parts)}). Run this command "
        "with the study's settings to resume or join it, or choose a new --study-name"
    )
