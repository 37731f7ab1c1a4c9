"""Messages of the TPIR port protocol: request validation, replies and events.

Every message is one MessagePack map carried in one frame (see `tpir.bridge.framing`)::

    request      {"id": int | str, "op": str, <argument>: <value>, ...}
    ok reply     {"id": <request id>, "ok": true, "result": <any>}
    error reply  {"id": <request id or nil>, "ok": false,
                  "error": {"code": str, "message": str, "details": <any>}}
    event        {"event": str, <field>: <value>, ...}      (no "id")

Text travels as MessagePack str (UTF-8) and byte strings as bin: frames are decoded with
``raw=False`` and encoded with ``use_bin_type=True``, so str maps to Python `str` and bin
to `bytes`. Ids must be unique among the requests in flight, and the server does not check this.

Error codes that the protocol layer sends (`ErrorCode`). Handlers may send their own codes.
    invalid_msgpack    the frame is not one complete MessagePack value
    not_a_map          the frame decodes to something other than a map
    invalid_utf8       a str in the frame is not valid UTF-8 (binary data must be sent as bin)
    missing_field      the request has no "id" or no "op" (details name the field)
    invalid_field      "id" is not an int or str, or "op" is not a str
    unknown_op         no operation of that name (details list the known operations)
    invalid_argument   an argument has the wrong type or value, is missing, or is unknown
    frame_too_large    the frame exceeds the node's maximum frame size (always with id nil)
    internal_error     the handler raised or its result could not be encoded

An error reply carries the request id whenever one could be read, and nil otherwise.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

import msgpack

__all__ = [
    "OPERATIONS",
    "ArgSpec",
    "ArgType",
    "ErrorCode",
    "OperationSpec",
    "ProtocolError",
    "Request",
    "RequestId",
    "decode_request",
    "encode_message",
    "error_reply",
    "event_message",
    "frame_too_large_error",
    "ok_reply",
    "validate_request",
]

logger = logging.getLogger(__name__)

RequestId = int | str

# Received values are quoted in error messages up to this many characters, so a large or
# secret-bearing value is never echoed whole.
_PREVIEW_CHARS = 40
_RESERVED_FIELDS = frozenset({"id", "op"})


class ErrorCode(enum.StrEnum):
    """Error codes sent by the protocol layer, described in the module docstring."""

    INVALID_MSGPACK = "invalid_msgpack"
    NOT_A_MAP = "not_a_map"
    INVALID_UTF8 = "invalid_utf8"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    UNKNOWN_OP = "unknown_op"
    INVALID_ARGUMENT = "invalid_argument"
    FRAME_TOO_LARGE = "frame_too_large"
    INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True)
class ProtocolError:
    """An error to send as an error reply. It is a value to return, not an exception.

    Fields:
        code: an `ErrorCode` value, or a handler's own code such as "timeout".
        message: one sentence for a human reader.
        details: any MessagePack-encodable value for programs, usually a map. Default None.
        request_id: the id of the failed request, or None when it could not be read.
    """

    code: str
    message: str
    details: Any = None
    request_id: RequestId | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"code": str(self.code), "message": self.message, "details": self.details}


@dataclass(frozen=True)
class Request:
    """A validated request. ``args`` contains every field except "id" and "op"."""

    id: RequestId
    op: str
    args: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


class ArgType(enum.Enum):
    """Argument types of the operation table."""

    STR = "str"
    BOOL = "bool"
    INT = "int"
    NUMBER = "number"
    MAP = "map"
    STR_ARRAY = "array of str"
    # Epoch seconds as a number, or an ISO 8601 str with a UTC offset.
    TIMESTAMP = "timestamp"


@dataclass(frozen=True)
class ArgSpec:
    """Schema of one operation argument.

    Fields:
        name: the argument's key in the request map.
        type: the `ArgType`. INT rejects booleans, NUMBER accepts int or finite float.
        required: whether the request must contain the argument. Default False.
        choices: the allowed values, or None for any value of the type. For STR_ARRAY
            each item must be one of them. Default None.
        minimum: inclusive lower bound for INT and NUMBER. Default None.
        exclusive_minimum: exclusive lower bound for INT and NUMBER. Default None.
        min_length: minimum length of a STR in characters. Default 0.
    """

    name: str
    type: ArgType
    required: bool = False
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    exclusive_minimum: float | None = None
    min_length: int = 0

    def describe(self) -> str:
        """Return the expected value in words, for error messages."""
        if self.type is ArgType.TIMESTAMP:
            text = "a finite number (epoch seconds) or an ISO 8601 str with a UTC offset"
        elif self.type is ArgType.MAP:
            text = "a map"
        elif self.type is ArgType.STR_ARRAY:
            text = "an array of str"
        elif self.type is ArgType.BOOL:
            text = "a bool"
        elif self.type is ArgType.INT:
            text = "an int"
        elif self.type is ArgType.NUMBER:
            text = "a finite number"
        elif self.min_length == 1:
            text = "a non-empty str"
        elif self.min_length > 1:
            text = f"a str of at least {self.min_length} characters"
        else:
            text = "a str"
        if self.minimum is not None:
            text += f" >= {self.minimum:g}"
        if self.exclusive_minimum is not None:
            text += f" > {self.exclusive_minimum:g}"
        if self.choices is not None:
            text += " (one of " + ", ".join(repr(choice) for choice in self.choices) + ")"
        return text

    def accepts(self, value: Any) -> bool:
        """Return whether ``value`` has this argument's type and meets its constraints."""
        if self.type is ArgType.STR:
            valid = isinstance(value, str) and len(value) >= self.min_length
        elif self.type is ArgType.BOOL:
            valid = isinstance(value, bool)
        elif self.type is ArgType.INT:
            valid = _is_int(value) and self._in_range(value)
        elif self.type is ArgType.NUMBER:
            valid = _is_finite_number(value) and self._in_range(value)
        elif self.type is ArgType.MAP:
            valid = isinstance(value, dict)
        elif self.type is ArgType.STR_ARRAY:
            # choices constrain the items here, so the array itself is not looked up below.
            return isinstance(value, list) and all(
                isinstance(item, str) and (self.choices is None or item in self.choices)
                for item in value
            )
        else:
            valid = _is_finite_number(value) or _is_iso8601_with_offset(value)
        return valid and (self.choices is None or value in self.choices)

    def _in_range(self, value: float) -> bool:
        if self.minimum is not None and value < self.minimum:
            return False
        return self.exclusive_minimum is None or value > self.exclusive_minimum


@dataclass(frozen=True)
class OperationSpec:
    """One operation of the protocol: its name, a one-line summary and its arguments."""

    name: str
    summary: str
    args: tuple[ArgSpec, ...] = ()

    def arg(self, name: str) -> ArgSpec | None:
        for spec in self.args:
            if spec.name == name:
                return spec
        return None


def _name_arg(name: str, *, required: bool) -> ArgSpec:
    return ArgSpec(name, ArgType.STR, required=required, min_length=1)


# The operations that erlmcp may request. A node serves the subset it has handlers for.
OPERATIONS: Mapping[str, OperationSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            OperationSpec("ping", "Check that the node answers."),
            OperationSpec(
                "call",
                "Send a request to an integration under its recovery policy.",
                (
                    _name_arg("integration", required=True),
                    ArgSpec("request", ArgType.MAP, required=True),
                    # Seconds from receipt until the caller stops waiting.
                    ArgSpec("deadline", ArgType.NUMBER, exclusive_minimum=0),
                    ArgSpec("priority", ArgType.INT),
                    _name_arg("idempotency_key", required=False),
                ),
            ),
            OperationSpec(
                "status",
                "Report the state of one integration, or of all when none is named.",
                (_name_arg("integration", required=False),),
            ),
            OperationSpec("tree", "Report the whole supervision tree."),
            OperationSpec(
                "which_children",
                "List the children of a supervisor, given by path (absent means the root).",
                (_name_arg("supervisor", required=False),),
            ),
            OperationSpec(
                "restart_child",
                "Restart one child of a supervisor (absent supervisor means the root).",
                (_name_arg("supervisor", required=False), _name_arg("child", required=True)),
            ),
            OperationSpec(
                "terminate_child",
                "Stop one child of a supervisor (absent supervisor means the root).",
                (_name_arg("supervisor", required=False), _name_arg("child", required=True)),
            ),
            OperationSpec(
                "recovery_points",
                "List the stored recovery points of an integration, newest first.",
                (
                    _name_arg("integration", required=True),
                    ArgSpec("limit", ArgType.INT, minimum=1),
                ),
            ),
            OperationSpec(
                "restore",
                "Restore an integration to its recovery point at or before a time.",
                (
                    _name_arg("integration", required=True),
                    ArgSpec("at", ArgType.TIMESTAMP, required=True),
                ),
            ),
            OperationSpec(
                "reset_provider",
                "Return a permanently failed provider of an integration to testing.",
                (_name_arg("integration", required=True), _name_arg("provider", required=True)),
            ),
            OperationSpec(
                "subscribe",
                "Receive events, all of them or only the named ones.",
                (ArgSpec("events", ArgType.STR_ARRAY),),
            ),
        )
    }
)


def decode_request(
    frame: bytes, operations: Mapping[str, OperationSpec] = OPERATIONS
) -> Request | ProtocolError:
    """Decode one frame payload and validate it with `validate_request`."""
    try:
        obj = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except UnicodeDecodeError as error:
        return _invalid_utf8_error(frame, error)
    except (ValueError, TypeError, msgpack.UnpackException) as error:
        # TypeError comes from a map or array used as a map key, which Python cannot hash.
        return ProtocolError(
            ErrorCode.INVALID_MSGPACK,
            f"frame is not valid MessagePack: {_truncate(str(error) or type(error).__name__)}",
            {"reason": _truncate(str(error) or type(error).__name__)},
        )
    return validate_request(obj, operations)


def validate_request(
    obj: Any, operations: Mapping[str, OperationSpec] = OPERATIONS
) -> Request | ProtocolError:
    """Check a decoded message against the request format and the operation table.

    Returns the `Request`, or the `ProtocolError` of the first problem found, in this
    order: not a map, id missing or invalid, op missing or invalid, unknown op, arguments.
    """
    if not isinstance(obj, dict):
        return ProtocolError(
            ErrorCode.NOT_A_MAP,
            f"request must be a MessagePack map, got {_type_name(obj)}",
            {"received_type": _type_name(obj)},
        )

    if "id" not in obj:
        return _missing_field("id", None)
    request_id = obj["id"]
    if not (_is_int(request_id) or isinstance(request_id, str)):
        return ProtocolError(
            ErrorCode.INVALID_FIELD,
            f"field 'id' must be an int or str, got {_describe(request_id)}",
            {"field": "id", "expected": "int or str", "received_type": _type_name(request_id)},
        )

    if "op" not in obj:
        return _missing_field("op", request_id)
    op = obj["op"]
    if not isinstance(op, str):
        return ProtocolError(
            ErrorCode.INVALID_FIELD,
            f"field 'op' must be a str, got {_describe(op)}",
            {"field": "op", "expected": "str", "received_type": _type_name(op)},
            request_id,
        )

    spec = operations.get(op)
    if spec is None:
        known = sorted(operations)
        return ProtocolError(
            ErrorCode.UNKNOWN_OP,
            f"unknown operation {_truncate(repr(op))}. Known operations: {', '.join(known)}",
            {"op": _truncate(op), "known_ops": known},
            request_id,
        )

    args = {key: value for key, value in obj.items() if key not in _RESERVED_FIELDS}
    error = _check_args(spec, args, request_id)
    if error is not None:
        return error
    return Request(request_id, op, MappingProxyType(args))


def ok_reply(request_id: RequestId, result: Any) -> dict[str, Any]:
    """Build the reply map of a successful request."""
    return {"id": request_id, "ok": True, "result": result}


def error_reply(request_id: RequestId | None, error: ProtocolError) -> dict[str, Any]:
    """Build the reply map of a failed request. ``request_id`` None sends id nil."""
    return {"id": request_id, "ok": False, "error": error.to_wire()}


def event_message(name: str, fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Build an event map. Raises ValueError for an empty name or a field named "event" or "id"."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"event name must be a non-empty str, got {_describe(name)}")
    message: dict[str, Any] = {"event": name}
    for key, value in (fields or {}).items():
        if key in ("event", "id"):
            raise ValueError(f"event field {key!r} is reserved, rename it")
        message[key] = value
    return message


def encode_message(message: Mapping[str, Any]) -> bytes:
    """Encode a reply or event map as MessagePack (str for text, bin for bytes).

    Raises TypeError, ValueError or OverflowError when a value cannot be encoded, for
    example a set or an int outside the 64-bit range.
    """
    return msgpack.packb(message, use_bin_type=True)


def frame_too_large_error(length: int, max_frame_bytes: int) -> ProtocolError:
    """Build the error for a discarded oversized frame. Its id is always nil."""
    return ProtocolError(
        ErrorCode.FRAME_TOO_LARGE,
        f"frame of {length} bytes exceeds the maximum of {max_frame_bytes} bytes and was discarded",
        {"length": length, "max_frame_bytes": max_frame_bytes},
    )


def _check_args(
    spec: OperationSpec, args: Mapping[Any, Any], request_id: RequestId
) -> ProtocolError | None:
    for key in args:
        if isinstance(key, str) and spec.arg(key) is not None:
            continue
        known = [arg.name for arg in spec.args]
        return ProtocolError(
            ErrorCode.INVALID_ARGUMENT,
            f"unknown argument {_truncate(repr(key))} for operation '{spec.name}'. "
            f"Known arguments: {', '.join(known) if known else 'none'}",
            {"op": spec.name, "argument": _truncate(str(key)), "known_arguments": known},
            request_id,
        )

    for arg in spec.args:
        if arg.name not in args:
            if arg.required:
                return ProtocolError(
                    ErrorCode.INVALID_ARGUMENT,
                    f"operation '{spec.name}' requires argument '{arg.name}', "
                    f"which must be {arg.describe()}",
                    {"op": spec.name, "argument": arg.name, "expected": arg.describe()},
                    request_id,
                )
            continue
        value = args[arg.name]
        if not arg.accepts(value):
            return ProtocolError(
                ErrorCode.INVALID_ARGUMENT,
                f"argument '{arg.name}' of operation '{spec.name}' must be "
                f"{arg.describe()}, got {_describe(value)}",
                {
                    "op": spec.name,
                    "argument": arg.name,
                    "expected": arg.describe(),
                    "received_type": _type_name(value),
                },
                request_id,
            )
    return None


def _missing_field(name: str, request_id: RequestId | None) -> ProtocolError:
    return ProtocolError(
        ErrorCode.MISSING_FIELD,
        f"request is missing the required field '{name}'",
        {"field": name},
        request_id,
    )


def _invalid_utf8_error(frame: bytes, error: UnicodeDecodeError) -> ProtocolError:
    # Decoding again without UTF-8 checks finds the id, so the peer can match the reply.
    try:
        raw_obj = msgpack.unpackb(frame, raw=True, strict_map_key=False)
    except (ValueError, TypeError, msgpack.UnpackException) as raw_error:
        return ProtocolError(
            ErrorCode.INVALID_MSGPACK,
            f"frame is not valid MessagePack: {_truncate(str(raw_error) or 'malformed')}",
            {"reason": _truncate(str(raw_error) or type(raw_error).__name__)},
        )

    request_id: RequestId | None = None
    if isinstance(raw_obj, dict):
        raw_id = raw_obj.get(b"id")
        if _is_int(raw_id):
            request_id = raw_id
        elif isinstance(raw_id, bytes):
            try:
                request_id = raw_id.decode("utf-8")
            except UnicodeDecodeError:
                request_id = None
    return ProtocolError(
        ErrorCode.INVALID_UTF8,
        "request contains a str that is not valid UTF-8. Send binary data as bin",
        {"reason": _truncate(str(error))},
        request_id,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    if _is_int(value):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _is_iso8601_with_offset(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return False
    return parsed.tzinfo is not None


def _type_name(value: Any) -> str:
    """Return the MessagePack type name of a decoded value."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, bytes | bytearray):
        return "bin"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "map"
    return "ext"


def _describe(value: Any) -> str:
    return f"{_type_name(value)} {_truncate(repr(value))}"


def _truncate(text: str) -> str:
    if len(text) <= _PREVIEW_CHARS:
        return text
    return text[: _PREVIEW_CHARS - 3] + "..."
