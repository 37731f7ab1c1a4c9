"""The asyncio recovery-point store for the node's async code.

It runs the same plans (``tpir.store.plans``) on the same table as ``RecoveryStore``,
through SQLAlchemy's async engine. SQLAlchemy's asyncio extension needs the
``greenlet`` package. The extension is imported on first use, so the sync store
still works where greenlet is missing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from tpir.store import plans
from tpir.store.engine import (
    install_sqlite_pragmas,
    make_sqlite_parent_folders,
    replace_inherited_pool,
    resolve_url,
    track_engine,
)
from tpir.store.errors import StoreError, describe_database_error
from tpir.store.point import RecoveryPoint
from tpir.store.schema import create_schema
from tpir.store.settings import StoreSettings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["AsyncRecoveryStore"]

T = TypeVar("T")


class AsyncRecoveryStore:
    """Saves and restores recovery points from asyncio code, like ``RecoveryStore``.

    Options, defaults, ranges and semantics are those of ``RecoveryStore``, except
    that a path or an ``sqlite`` URL is opened with the ``sqlite+aiosqlite`` driver
    and that the methods are coroutines. Both stores read and write the same table,
    so either can read what the other wrote. Use one instance from one event loop.
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
        self._url = resolve_url(url_or_path, asynchronous=True)
        self._clock = clock
        self._engine: AsyncEngine | None = None
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

    async def save(
        self,
        integration: str,
        actor_key: str,
        kind: str,
        state: dict[str, Any],
        *,
        at: float | None = None,
    ) -> RecoveryPoint:
        """Insert a point and return it, as ``RecoveryStore.save`` does."""
        created_at = self._clock() if at is None else at
        plan = plans.save_point(integration, actor_key, kind, state, created_at)
        return await self._run("save", plan)

    async def latest(self, actor_key: str) -> RecoveryPoint | None:
        """Return the actor's newest valid point or None, as ``RecoveryStore.latest`` does."""
        return await self._run("latest", plans.find_latest(actor_key))

    async def latest_at(self, actor_key: str, at: float) -> RecoveryPoint | None:
        """Return the actor's newest valid point at or before ``at``, or None."""
        return await self._run("latest_at", plans.find_latest(actor_key, at))

    async def list_points(
        self,
        integration: str | None = None,
        actor_key: str | None = None,
        limit: int = 100,
    ) -> list[RecoveryPoint]:
        """Return up to ``limit`` stored points, newest first, unverified."""
        return await self._run("list_points", plans.list_points(integration, actor_key, limit))

    async def restore_plan(self, integration: str, at: float) -> dict[str, RecoveryPoint]:
        """Map each actor key of ``integration`` to its newest valid point at or before ``at``."""
        return await self._run("restore_plan", plans.build_restore_plan(integration, at))

    async def prune(self) -> int:
        """Delete points beyond the retention options and return how many were deleted."""
        return await self._run("prune", plans.prune_points(self._settings, self._clock()))

    async def close(self) -> None:
        """Close the pooled connections, after which operations raise StoreError."""
        self._closed = True
        engine, self._engine = self._engine, None
        if engine is None:
            return
        if self._engine_pid == os.getpid():
            await engine.dispose()
        else:
            replace_inherited_pool(engine.sync_engine)

    async def __aenter__(self) -> AsyncRecoveryStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _run(self, operation: str, plan: plans.Plan[T]) -> T:
        try:
            engine = await self._ready_engine()
            async with engine.begin() as connection:
                return await _run_plan(plan, connection)
        except SQLAlchemyError as exc:
            message = describe_database_error(exc)
            raise StoreError(f"{operation} failed on {self.url}: {message}") from exc
        except OSError as exc:
            raise StoreError(f"{operation} failed on {self.url}: {exc}") from exc

    async def _ready_engine(self) -> AsyncEngine:
        if self._closed:
            raise StoreError(
                f"The store for {self.url} is closed. Create a new AsyncRecoveryStore."
            )
        pid = os.getpid()
        if self._engine is None:
            self._engine = _create_async_engine(self._url, self._settings.busy_timeout_ms)
            self._engine_pid = pid
        elif self._engine_pid != pid:
            # Same multiprocessing rule as in the sync store. Replacing the pool
            # without closing connections does no I/O, so it needs no await.
            replace_inherited_pool(self._engine.sync_engine)
            self._engine_pid = pid
        if not self._schema_ready:
            async with self._engine.connect() as connection:
                await connection.run_sync(create_schema)
            self._schema_ready = True
        return self._engine


async def _run_plan(plan: plans.Plan[T], connection: AsyncConnection) -> T:
    try:
        statement = plan.send(None)  # type: ignore[arg-type]
    except StopIteration as stop:
        return stop.value
    while True:
        result = await connection.execute(statement)
        try:
            statement = plan.send(plans.collect_outcome(result))
        except StopIteration as stop:
            return stop.value


def _create_async_engine(url: URL, busy_timeout_ms: int) -> AsyncEngine:
    from sqlalchemy.ext.asyncio import create_async_engine

    make_sqlite_parent_folders(url)
    # hide_parameters keeps state values out of error messages and SQL logs.
    engine = create_async_engine(url, hide_parameters=True)
    if url.get_backend_name() == "sqlite":
        install_sqlite_pragmas(engine.sync_engine, busy_timeout_ms)
    track_engine(engine.sync_engine)
    return engine
