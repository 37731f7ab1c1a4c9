"""Validated options shared by the sync and async recovery-point stores."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["MAX_BUSY_TIMEOUT_SECONDS", "StoreSettings", "finite_float"]

MAX_BUSY_TIMEOUT_SECONDS = 2_147_483
"""SQLite takes the busy timeout in milliseconds as a C int, so this is its maximum."""


@dataclass(frozen=True)
class StoreSettings:
    """Retention and locking options of a recovery-point store.

    ``retention_count``: points kept per actor key by ``prune()``; default 100,
    at least 1.
    ``retention_seconds``: age in seconds past which ``prune()`` drops points, except
    the newest valid point of each actor key. Default None (no age limit), otherwise
    a finite number greater than 0.
    ``busy_timeout_seconds``: how long in seconds a SQLite connection waits for
    another writer's lock before the operation fails with "database is locked";
    default 30.0, from 0 to 2147483, applied in whole milliseconds.
    """

    retention_count: int = 100
    retention_seconds: float | None = None
    busy_timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        count = self.retention_count
        if type(count) is not int or count < 1:
            raise ValueError(f"invalid retention_count {count!r}: expected an int of at least 1")

        seconds = self.retention_seconds
        if seconds is not None:
            seconds_number = finite_float(seconds)
            if seconds_number is None or seconds_number <= 0:
                raise ValueError(
                    f"invalid retention_seconds {seconds!r}: "
                    "expected None or a finite number greater than 0"
                )

        timeout = self.busy_timeout_seconds
        timeout_number = finite_float(timeout)
        if timeout_number is None or not 0 <= timeout_number <= MAX_BUSY_TIMEOUT_SECONDS:
            raise ValueError(
                f"invalid busy_timeout_seconds {timeout!r}: "
                f"expected a number from 0 to {MAX_BUSY_TIMEOUT_SECONDS}"
            )

    @property
    def busy_timeout_ms(self) -> int:
        """Busy timeout in whole milliseconds, as SQLite's ``PRAGMA busy_timeout`` takes it."""
        return round(self.busy_timeout_seconds * 1000)


def finite_float(value: object) -> float | None:
    """Return ``value`` as a float when it is a finite int or float (not a bool), else None."""
    if type(value) not in (int, float):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except OverflowError:
        return None
    return number if math.isfinite(number) else None
