"""Exceptions raised by the recovery-point store."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

__all__ = ["InvalidStateError", "StoreError", "describe_database_error"]


class StoreError(Exception):
    """A database operation of the store failed; ``__cause__`` is the SQLAlchemy error."""


class InvalidStateError(ValueError):
    """A state value cannot be stored because it is not JSON-safe.

    ``path`` is the key path of the offending value, written as Python subscripts
    from ``state`` (for example ``state['limits']['rpm'][1]``).
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"invalid {path}: {message}")
        self.path = path


def describe_database_error(exc: SQLAlchemyError) -> str:
    """Return the driver's message of a database error, without the SQL statement."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {exc.orig}"
    return str(exc)
