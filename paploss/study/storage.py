"""Opening the Optuna RDB storage of a study, for the search (read-write, with heartbeats) and for
``studies/train.py`` (reading an existing study).

Every connection has a timeout: a PostgreSQL or MySQL server that accepts TCP connections but never
answers ends in an error after ``CONNECT_TIMEOUT`` seconds instead of a hang. A failure is a
:class:`~paploss.study.cli.UsageError` with one line naming the storage, the cause and the fix.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from paploss.study.cli import UsageError, normalize_storage_url, render_url

CONNECT_TIMEOUT = 10
"""Seconds to wait for a database server's answer when connecting."""
URL_HINT = (
    "Give a reachable SQLAlchemy URL: sqlite:///FILE.db in an existing folder, or a running "
    "database server (postgresql://USER@HOST:PORT/DB needs psycopg2-binary)"
)


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
    """An ``optuna.storages.RDBStorage`` for ``url``.

    Args:
        heartbeat_interval, grace_period, max_retry: the search's heartbeat and the retry of
            trials whose worker died (``RetryHeartbeatStaleTrialCallback``); None: no heartbeat.
        must_exist: reading an existing study: a SQLite file that does not exist is an error
            (instead of a new, empty database left behind).

    Raises:
        UsageError: the storage cannot be opened.
    """
    import optuna
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    url = normalize_storage_url(url)
    path = sqlite_file(url)
    if must_exist and path is not None and not path.is_file():
        raise UsageError(
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
        raise UsageError(
            f"cannot open storage {render_url(url)}: {first_line(exc)}. {URL_HINT}"
        ) from exc
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return storage
