"""Table definition of the recovery-point store, shared by the sync and async stores.

``recovery_points`` has one row per saved point. ``state`` contains the canonical
JSON text of the state (see ``tpir.store.checksum``), and ``created_at`` is a double
so that the epoch seconds read back bit for bit and the checksum still matches.
"""

from __future__ import annotations

import logging

from sqlalchemy import Column, Double, Index, Integer, MetaData, String, Table, Text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

__all__ = [
    "MAX_NAME_LENGTH",
    "SCHEMA_OBJECT_COUNT",
    "create_schema",
    "metadata",
    "recovery_points",
]

logger = logging.getLogger(__name__)

MAX_NAME_LENGTH = 255
"""Maximum length in characters of ``integration``, ``actor_key`` and ``kind``."""

metadata = MetaData()

recovery_points = Table(
    "recovery_points",
    metadata,
    # AUTOINCREMENT keeps SQLite from reusing the seq of a pruned row.
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("integration", String(MAX_NAME_LENGTH), nullable=False),
    Column("actor_key", String(MAX_NAME_LENGTH), nullable=False),
    Column("kind", String(MAX_NAME_LENGTH), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("state", Text, nullable=False),
    Column("checksum", String(64), nullable=False),
    Index("ix_recovery_points_actor_key_created_at", "actor_key", "created_at"),
    Index("ix_recovery_points_integration_created_at", "integration", "created_at"),
    sqlite_autoincrement=True,
)

SCHEMA_OBJECT_COUNT = len(metadata.tables) + sum(
    len(table.indexes) for table in metadata.tables.values()
)
"""Number of tables and indexes that ``create_schema`` may create."""


def create_schema(connection: Connection) -> None:
    """Create the table and its indexes where they do not exist yet, then commit.

    ``connection`` must have no transaction open, because each attempt runs in a
    transaction of its own.
    """
    # Processes starting on a new file race to create the table and indexes, and
    # the loser of a race fails with "already exists". Each failure means one more
    # object exists, so one attempt per object plus one always suffices.
    attempts = SCHEMA_OBJECT_COUNT + 1
    for attempt in range(1, attempts + 1):
        try:
            with connection.begin():
                metadata.create_all(connection, checkfirst=True)
            return
        except DBAPIError as exc:
            if attempt == attempts:
                raise
            logger.debug("Schema creation attempt %d failed, retrying: %s", attempt, exc.orig)
