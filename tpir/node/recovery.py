"""Read-only access to the recovery-point store for the ``recovery_points`` operation.

`RecoveryPointReader` opens `tpir.store.RecoveryStore` on the first request, inside the
process that reads, because a store must not be opened before thespian forks the actor
processes. A database file that does not exist yet means no points, and the reader
does not create it.

``limit``: points returned, newest first. Default `DEFAULT_POINT_LIMIT` (50), at
least 1; larger values are capped at `MAX_POINT_LIMIT` (1000).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Final

from tpir.bridge.protocol import ProtocolError
from tpir.config import NodeConfig
from tpir.node.views import point_view
from tpir.store import RecoveryStore, StoreError

__all__ = ["RecoveryPointReader", "DEFAULT_POINT_LIMIT", "MAX_POINT_LIMIT"]

logger = logging.getLogger(__name__)

DEFAULT_POINT_LIMIT: Final = 50
MAX_POINT_LIMIT: Final = 1000


class RecoveryPointReader:
    """Lists stored recovery points of an integration; see the module docstring."""

    def __init__(self, node: NodeConfig) -> None:
        self._node = node
        self._store: RecoveryStore | None = None

    def list_points(self, integration: str, limit: int | None) -> dict[str, Any] | ProtocolError:
        """Return ``{"integration", "database", "points"}``, or a ``store_error``."""
        count = min(limit or DEFAULT_POINT_LIMIT, MAX_POINT_LIMIT)
        result: dict[str, Any] = {"integration": integration, "points": []}
        if not self._node.database_is_url and not Path(self._node.database).exists():
            result["database"] = self._node.database
            return result
        try:
            store = self._open()
            result["database"] = store.url
            points = store.list_points(integration, limit=count)
        except StoreError as exc:
            logger.error("listing recovery points of %s failed: %s", integration, exc)
            return ProtocolError(
                "store_error",
                f"listing the recovery points of '{integration}' failed: {exc}",
                {"integration": integration},
            )
        result["points"] = [point_view(point) for point in points]
        return result

    def _open(self) -> RecoveryStore:
        if self._store is None:
            retention = self._node.recovery_point_retention
            self._store = RecoveryStore(
                self._node.database,
                retention_count=retention.count,
                retention_seconds=retention.max_age,
            )
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
