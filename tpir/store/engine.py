"""Database URL resolution and SQLAlchemy engine setup for the recovery-point store.

A plain file path becomes a SQLite URL, and its parent folders are created when the
engine is. A string containing ``://`` is read as a SQLAlchemy URL and used as
given, except that the SQLite driver is switched to the one the store needs:
``sqlite`` (pysqlite) for the sync store, ``sqlite+aiosqlite`` for the async store.

Every new SQLite connection gets ``PRAGMA busy_timeout``, ``journal_mode=WAL`` and
``synchronous=NORMAL``, so several processes can write to one file at once. WAL
lets readers and the single writer proceed together. A writer that finds the lock
taken waits up to the busy timeout instead of failing at once.

Connections that a forked child inherits are neither used nor closed in the child.
SQLite's guide "How To Corrupt An SQLite Database File" warns against carrying an
open connection across fork(), because the child's copy shares file descriptors
and lock state with the parent's connection. An at-fork hook keeps the pools of all
store engines referenced in the child, so garbage collection never closes their
connections there, and the stores then replace those pools with fresh ones. The
cost is the memory of the inherited connections in each forked child.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import Pool

__all__ = [
    "create_sync_engine",
    "install_sqlite_pragmas",
    "make_sqlite_parent_folders",
    "replace_inherited_pool",
    "resolve_url",
    "track_engine",
]

logger = logging.getLogger(__name__)

_SYNC_SQLITE_DRIVERS = ("sqlite", "sqlite+pysqlite")
_ASYNC_SQLITE_DRIVER = "sqlite+aiosqlite"
_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)

_store_engines: weakref.WeakSet[Engine] = weakref.WeakSet()
_inherited_pools: list[Pool] = []
"""Pools inherited through fork, referenced so that this process never closes them."""


def _keep_inherited_pools() -> None:
    _inherited_pools.extend(engine.pool for engine in _store_engines)


os.register_at_fork(after_in_child=_keep_inherited_pools)


def track_engine(engine: Engine) -> None:
    """Register a store engine so a forked child keeps its inherited pool open."""
    _store_engines.add(engine)


def replace_inherited_pool(engine: Engine) -> None:
    """Give ``engine`` a fresh pool in a forked child, leaving inherited connections open.

    ``dispose(close=False)`` only drops the engine's reference to the old pool. The
    old pool stays referenced in ``_inherited_pools``, so its connections are not
    closed.
    """
    _inherited_pools.append(engine.pool)
    engine.dispose(close=False)


def resolve_url(url_or_path: str | os.PathLike[str], *, asynchronous: bool) -> URL:
    """Turn a file path or a SQLAlchemy URL into the URL the store connects to.

    Raises ValueError when ``url_or_path`` looks like a URL but cannot be parsed.
    """
    if isinstance(url_or_path, str) and "://" in url_or_path:
        try:
            url = make_url(url_or_path)
        except ArgumentError as exc:
            # The message from SQLAlchemy repeats the URL, which may contain a password.
            raise ValueError(
                "invalid url_or_path: expected a file path or a SQLAlchemy URL "
                "such as sqlite:///path/to/points.db"
            ) from exc
    else:
        path = Path(url_or_path).expanduser().absolute()
        url = URL.create("sqlite", database=str(path))

    if url.get_backend_name() != "sqlite":
        return url
    if asynchronous and url.drivername in _SYNC_SQLITE_DRIVERS:
        return url.set(drivername=_ASYNC_SQLITE_DRIVER)
    if not asynchronous and url.drivername == _ASYNC_SQLITE_DRIVER:
        return url.set(drivername="sqlite")
    return url


def make_sqlite_parent_folders(url: URL) -> None:
    """Create the parent folders of a SQLite database file, and do nothing for other URLs."""
    if url.get_backend_name() != "sqlite":
        return
    database = url.database or ""
    # In-memory databases and SQLite URI filenames (uri=true) name no plain file path.
    if database in ("", ":memory:") or url.query.get("uri") == "true":
        return
    Path(database).parent.mkdir(parents=True, exist_ok=True)


def install_sqlite_pragmas(engine: Engine, busy_timeout_ms: int) -> None:
    """Set busy timeout, WAL journal mode and synchronous=NORMAL on each new connection.

    ``engine`` is a sync engine, or the ``sync_engine`` of an async one.
    """

    @event.listens_for(engine, "connect")
    def _set_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            _enable_wal(cursor, busy_timeout_ms)
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()


def _enable_wal(cursor: Any, busy_timeout_ms: int) -> None:
    """Switch the database file to WAL, retrying while other connections hold it busy.

    When several processes open a new file at once, switching it to WAL can fail
    with "database is locked" at once, without waiting for the busy timeout
    (seen with SQLite 3.40.1), so this retries until the busy timeout has passed.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    delay = 0.001
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            # Extended result codes such as SQLITE_BUSY_RECOVERY keep the primary
            # code in the low byte.
            primary_code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            if primary_code not in _BUSY_CODES or time.monotonic() + delay > deadline:
                raise
            logger.debug("Database busy while switching to WAL (code %d), retrying", primary_code)
            # NOTE: with the async engine this sleep blocks the event loop. It
            # happens only while processes race to open a new database file.
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


def create_sync_engine(url: URL, busy_timeout_ms: int) -> Engine:
    """Create a sync engine for ``url``, which opens no connection until first use."""
    make_sqlite_parent_folders(url)
    # hide_parameters keeps state values out of error messages and SQL logs.
    engine = create_engine(url, hide_parameters=True)
    if url.get_backend_name() == "sqlite":
        install_sqlite_pragmas(engine, busy_timeout_ms)
    track_engine(engine)
    logger.debug("Created engine for %s", url.render_as_string(hide_password=True))
    return engine
