"""Conversions between actor values and the port protocol's MessagePack values.

Actors reply with dataclasses, enums, tuples and other Python values that MessagePack
cannot encode or would encode differently on every call. `to_wire` turns them into maps,
arrays, str and numbers. `parse_timestamp` reads the protocol's timestamp argument.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

__all__ = ["to_wire", "parse_timestamp", "iso_time"]

# Nesting deeper than this is cut, because a reply is read by people and short programs.
_MAX_DEPTH = 32


def to_wire(value: Any, _depth: int = 0) -> Any:
    """Return ``value`` as plain maps, arrays, str, bytes, numbers, bools and nil.

    Dataclasses become maps of their fields, enums their value, tuples and sets arrays
    (sets sorted by their text), paths str, NaN and infinities nil. Map keys become str
    unless they are int. Any other object becomes its ``repr``, so the result always
    encodes.
    """
    if _depth > _MAX_DEPTH:
        return "..."
    if value is None or isinstance(value, bool | int | bytes):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return to_wire(value.value, _depth + 1)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
        return to_wire(fields, _depth + 1)
    if isinstance(value, Mapping):
        return {_wire_key(key): to_wire(item, _depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_wire(item, _depth + 1) for item in value]
    if isinstance(value, set | frozenset):
        return [to_wire(item, _depth + 1) for item in sorted(value, key=repr)]
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return repr(value)


def _wire_key(key: Any) -> str | int:
    if isinstance(key, int) and not isinstance(key, bool):
        return key
    if isinstance(key, enum.Enum):
        return str(key.value)
    return str(key)


def parse_timestamp(value: Any) -> float:
    """Return epoch seconds from a number or an ISO 8601 str with a UTC offset.

    Raises ValueError naming the value when it is neither, or when an ISO 8601 str has
    no offset (its time zone would be a guess).
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"invalid timestamp {value!r}: expected a finite number")
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"invalid timestamp {value[:40]!r}: expected epoch seconds or ISO 8601 "
                "such as 2024-05-01T12:00:00+00:00"
            ) from None
        if parsed.tzinfo is None:
            raise ValueError(
                f"invalid timestamp {value[:40]!r}: an ISO 8601 time needs a UTC offset "
                "such as +00:00"
            )
        return parsed.timestamp()
    raise ValueError(
        f"invalid timestamp of type {type(value).__name__}: expected epoch seconds or an "
        "ISO 8601 str"
    )


def iso_time(epoch_seconds: float | None) -> str | None:
    """Return epoch seconds as an ISO 8601 str in UTC, or None for None."""
    if epoch_seconds is None:
        return None
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat()
