"""The blocking recovery-point store that actors use (thespian actors are not async)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from tpir.store import plans
from tpir.store.engine import create_sync_engine, replace_inherited_pool, resolve_url
from tpir.store.errors import StoreError, describe_database_error
from tpir.store.point import RecoveryPoint
from tpir.store.schema import create_schema
from tpir.store.settings import StoreSettings

__all__ = ["RecoveryStore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class RecoveryStore:
    """Saves and restores actors' recovery points in a database through SQLAlchemy.

    ``url_or_path``: a file path, which becomes ``sqlite:///PATH`` with its parent
    folders created, or a SQLAlchemy URL used as given (an ``sqlite+aiosqlite`` URL
    is switched to the sync SQLite driver).
    ``retention_count``: points kept per actor key by ``prune()``; default 100,
    at least 1.
    ``retention_seconds``: age in seconds past which ``prune()`` drops points, except
    the newest valid point of each actor key. Default None (no age limit), otherwise
    greater than 0.
    ``busy_timeout_seconds``: how long a SQLite writer waits for another process's
    lock; default 30.0, from 0 to 2147483.
    ``clock``: callable returning the current epoch seconds, used for ``save()``
    without ``at`` and by ``prune()``; default ``time.time``.

    Nothing connects before the first operation, which also creates the table. When
    the store is used in a process forked from the one that opened its pool, the
    store replaces the pool without closing the inherited connections and opens new
    ones, so a store may be created and used before actor processes fork. The store is
    safe to use from several threads. Retention is applied only when ``prune()``
    is called. Database failures raise StoreError; invalid arguments raise
    ValueError naming the argument.
    """

    def __init__(
        self,
        url_or_path: str | os.PathLike[str],
        *,
        retention_count: int = 100,
        retention_seconds: float | None = None,
        busy_timeout_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = StoreSettings(retention_count, retention_seconds, busy_timeout_seconds)
        self._url = resolve_url(url_or_path, asynchronous=False)
        self._clock = clock
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._engine_pid = 0
        self._schema_ready = False
        self._closed = False

    @property
    def url(self) -> str:
        """Database URL with any password replaced by ``***``."""
        return self._url.render_as_string(hide_password=True)

    @property
    def settings(self) -> StoreSettings:
        """Retention and busy-timeout options of this store."""
        return self._settings

    def save(
        self,
        integration: str,
        actor_key: str,
        kind: str,
        state: dict[str, Any],
        *,
        at: float | None = None,
    ) -> RecoveryPoint:
        """Insert a point with ``state`` at ``at`` epoch seconds (default: now) and return it.

        Raises InvalidStateError naming the key path of a value that is not JSON-safe.
        """
        created_at = self._clock() if at is None else at
        return self._run("save", plans.save_point(integration, actor_key, kind, state, created_at))

    def latest(self, actor_key: str) -> RecoveryPoint | None:
        """Return the actor's newest point whose checksum matches, or None.

        Each newer point whose checksum does not match is skipped with a WARNING.
        """
        return self._run("latest", plans.find_latest(actor_key))

    def latest_at(self, actor_key: str, at: float) -> RecoveryPoint | None:
        """Return the actor's newest valid point created at or before ``at``, or None."""
        return self._run("latest_at", plans.find_latest(actor_key, at))

    def list_points(
        self,
        integration: str | None = None,
        actor_key: str | None = None,
        limit: int = 100,
    ) -> list[RecoveryPoint]:
        """Return up to ``limit`` (at least 1) stored points, newest first, unverified."""
        return self._run("list_points", plans.list_points(integration, actor_key, limit))

    def restore_plan(self, integration: str, at: float) -> dict[str, RecoveryPoint]:
        """Map each actor key of ``integration`` to its newest valid point at or before ``at``."""
        return self._run("restore_plan", plans.build_restore_plan(integration, at))

    def prune(self) -> int:
        """Delete points beyond the retention options and return how many were deleted."""
        return self._run("prune", plans.prune_points(self._settings, self._clock()))

    def close(self) -> None:
        """Close the pooled connections, after which operations raise StoreError."""
        with self._lock:
            self._closed = True
            engine, self._engine = self._engine, None
        if engine is None:
            return
        if self._engine_pid == os.getpid():
            engine.dispose()
        else:
            replace_inherited_pool(engine)

    def __enter__(self) -> RecoveryStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self, operation: str, plan: plans.Plan[T]) -> T:
        try:
            engine = self._ready_engine()
            with engine.begin() as connection:
                return plans.run_plan(plan, connection.execute)
        except SQLAlchemyError as exc:
            message = describe_database_error(exc)
            raise StoreError(f"{operation} failed on {self.url}: {message}") from exc
        except OSError as exc:
            raise StoreError(f"{operation} failed on {self.url}: {exc}") from exc

    def _ready_engine(self) -> Engine:
        with self._lock:
            if self._closed:
                raise StoreError(f"The store for {self.url} is closed. Create a new RecoveryStore.")
            pid = os.getpid()
            if self._engine is None:
                self._engine = create_sync_engine(self._url, self._settings.busy_timeout_ms)
                self._engine_pid = pid
            elif self._engine_pid != pid:
                # SQLAlchemy's pooling guide ("Using Connection Pools with
                # Multiprocessing or os.fork()") says a child must not use pooled
                # connections that it inherited.
                logger.debug("Process %d inherited a store pool, opening new connections", pid)
                replace_inherited_pool(self._engine)
                self._engine_pid = pid
            if not self._schema_ready:
                with self._engine.connect() as connection:
                    create_schema(connection)
                self._schema_ready = True
            return self._engine
