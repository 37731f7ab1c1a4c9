"""Recovery-point store: saved actor states in SQLite (or another database) via SQLAlchemy.

``RecoveryStore`` is the blocking store that actors use, ``AsyncRecoveryStore`` the
asyncio one for the node. Both write the ``recovery_points`` table and protect each
point with a SHA-256 checksum that ``tpir.store.checksum`` specifies.
"""

from __future__ import annotations

from tpir.store.aio import AsyncRecoveryStore
from tpir.store.checksum import canonical_encoding, compute_checksum, validate_state
from tpir.store.errors import InvalidStateError, StoreError
from tpir.store.point import RecoveryPoint
from tpir.store.settings import StoreSettings
from tpir.store.sync import RecoveryStore

__all__ = [
    "AsyncRecoveryStore",
    "InvalidStateError",
    "RecoveryPoint",
    "RecoveryStore",
    "StoreError",
    "StoreSettings",
    "canonical_encoding",
    "compute_checksum",
    "validate_state",
]
