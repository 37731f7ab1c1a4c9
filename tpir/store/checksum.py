"""Canonical encoding and SHA-256 checksum of a recovery point.

A point's checksum is the lowercase hex SHA-256 digest of the UTF-8 bytes of one
JSON array, ``[integration, actor_key, kind, created_at, state]``, written so that
any implementation can reproduce the bytes exactly:

- No whitespace anywhere: items are separated by ``,`` and keys from values by ``:``.
- Object keys are sorted by Unicode code point, at every nesting level.
- Strings are written with their characters as they are (not ``\\uXXXX``) and then
  UTF-8 encoded. Only ``"`` and ``\\`` and the control characters U+0000 to U+001F
  are escaped: ``\\"``, ``\\\\``, ``\\b``, ``\\f``, ``\\n``, ``\\r`` and ``\\t`` where
  such a short form exists, and ``\\u00xx`` with lowercase hex digits otherwise.
- ``true``, ``false`` and ``null`` for booleans and None, and integers in plain decimal.
- Floats in Python's ``repr`` form, which is the shortest decimal that reads back as
  the same IEEE 754 double. It always has a ``.0`` or a fraction (``5.0``, ``-0.0``,
  ``0.0001``). It is in exponent form when the decimal exponent is below -4 or at
  least 16 (``1e-05``, ``1e+16``). NaN and the infinities are rejected.
- ``created_at`` is always a float, so a point saved at ``at=5`` encodes ``5.0``.

Example: integration ``llm_provider``, actor key ``llm_provider/openai/breaker``,
kind ``breaker``, created_at ``1700000000.5`` and state
``{"state": "open", "failures": 3}`` encode as::

    ["llm_provider","llm_provider/openai/breaker","breaker",1700000000.5,{"failures":3,"state":"open"}]

whose checksum is
``22213d6f4aa8a305c03be71a4d9695479859f12e0188afaa6382858cab516357``.

State values must be JSON-safe: dict with str keys, list, str, int, float, bool or
None, with exactly those types (a tuple, a set, a subclass such as an enum member,
a non-finite float, a string that is not valid UTF-8 or a reference cycle is
rejected), so that the state reads back from the database equal to what was saved.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from tpir.store.errors import InvalidStateError

__all__ = [
    "canonical_encoding",
    "compute_checksum",
    "encode_state",
    "validate_state",
]

_SCALAR_TYPES = (str, int, float, bool, type(None))


def validate_state(state: object) -> None:
    """Raise InvalidStateError naming the key path unless ``state`` is a JSON-safe dict."""
    if type(state) is not dict:
        raise InvalidStateError("state", f"expected a dict, got {type(state).__name__}")
    _validate_value(state, "state", set())


def _validate_value(value: object, path: str, open_containers: set[int]) -> None:
    value_type = type(value)

    if value_type is dict or value_type is list:
        # Only containers on the current path count, so a value shared by two
        # branches is accepted while a container that contains itself is not.
        if id(value) in open_containers:
            raise InvalidStateError(path, "contains a reference cycle")
        open_containers.add(id(value))
        if value_type is dict:
            for key, item in value.items():  # type: ignore[union-attr]
                if type(key) is not str:
                    raise InvalidStateError(
                        f"{path}[{key!r}]",
                        f"dict keys must be str, got {type(key).__name__}",
                    )
                _validate_string(key, f"{path}[{key!r}]")
                _validate_value(item, f"{path}[{key!r}]", open_containers)
        else:
            for index, item in enumerate(value):  # type: ignore[arg-type]
                _validate_value(item, f"{path}[{index}]", open_containers)
        open_containers.discard(id(value))
        return

    if value_type not in _SCALAR_TYPES:
        hint = " (use a list)" if value_type is tuple else ""
        raise InvalidStateError(
            path,
            f"{value_type.__name__} is not JSON-safe{hint}; "
            "expected dict, list, str, int, float, bool or None",
        )
    if value_type is float and not math.isfinite(value):  # type: ignore[arg-type]
        raise InvalidStateError(path, f"float must be finite, got {value!r}")
    if value_type is str:
        _validate_string(value, path)  # type: ignore[arg-type]


def _validate_string(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidStateError(
            path, f"string is not valid UTF-8 (lone surrogate at index {exc.start})"
        ) from exc


def _dump(value: Any) -> str:
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def encode_state(state: dict[str, Any]) -> str:
    """Return the canonical JSON text of a validated state, as stored in the database."""
    return _dump(state)


def canonical_encoding(
    integration: str,
    actor_key: str,
    kind: str,
    created_at: float,
    state: dict[str, Any],
) -> bytes:
    """Return the bytes that the checksum covers, as the module docstring specifies."""
    return _dump([integration, actor_key, kind, float(created_at), state]).encode("utf-8")


def compute_checksum(
    integration: str,
    actor_key: str,
    kind: str,
    created_at: float,
    state: dict[str, Any],
) -> str:
    """Return the lowercase hex SHA-256 of the canonical encoding of a point."""
    payload = canonical_encoding(integration, actor_key, kind, created_at, state)
    return hashlib.sha256(payload).hexdigest()
