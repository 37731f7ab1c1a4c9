"""Tests of request validation and of the reply and event builders."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from tpir.bridge.protocol import (
    OPERATIONS,
    ErrorCode,
    ProtocolError,
    Request,
    decode_request,
    encode_message,
    error_reply,
    event_message,
    ok_reply,
    validate_request,
)

pytestmark = pytest.mark.timeout(10)

VALID_REQUESTS: list[dict[str, Any]] = [
    {"id": 1, "op": "ping"},
    {"id": "a-1", "op": "call", "integration": "openai", "request": {"model": "x"}},
    {
        "id": 2,
        "op": "call",
        "integration": "openai",
        "request": {},
        "deadline": 2.5,
        "priority": -3,
        "idempotency_key": "k-1",
    },
    {"id": 3, "op": "status"},
    {"id": 4, "op": "status", "integration": "stripe"},
    {"id": 5, "op": "tree"},
    {"id": 6, "op": "which_children"},
    {"id": 7, "op": "which_children", "supervisor": "root/llm"},
    {"id": 8, "op": "restart_child", "child": "openai"},
    {"id": 9, "op": "terminate_child", "supervisor": "root", "child": "openai"},
    {"id": 10, "op": "recovery_points", "integration": "openai", "limit": 5},
    {"id": 11, "op": "restore", "integration": "openai", "at": 1_700_000_000},
    {"id": 12, "op": "restore", "integration": "openai", "at": "2024-05-01T12:00:00Z"},
    {"id": 13, "op": "restore", "integration": "openai", "at": "2024-05-01T12:00:00+02:00"},
    {"id": 14, "op": "reset_provider", "integration": "llm", "provider": "anthropic"},
    {"id": 15, "op": "subscribe"},
    {"id": 16, "op": "subscribe", "events": ["breaker_opened"]},
    {"id": 2**64 - 1, "op": "ping"},
]

# (request, argument named in the error)
INVALID_ARGUMENTS: list[tuple[dict[str, Any], str]] = [
    ({"id": 1, "op": "call", "request": {}}, "integration"),
    ({"id": 1, "op": "call", "integration": "", "request": {}}, "integration"),
    ({"id": 1, "op": "call", "integration": "a"}, "request"),
    ({"id": 1, "op": "call", "integration": "a", "request": [1]}, "request"),
    ({"id": 1, "op": "call", "integration": "a", "request": {}, "deadline": 0}, "deadline"),
    ({"id": 1, "op": "call", "integration": "a", "request": {}, "deadline": "5"}, "deadline"),
    (
        {"id": 1, "op": "call", "integration": "a", "request": {}, "deadline": float("inf")},
        "deadline",
    ),
    ({"id": 1, "op": "call", "integration": "a", "request": {}, "priority": 1.5}, "priority"),
    ({"id": 1, "op": "call", "integration": "a", "request": {}, "priority": True}, "priority"),
    (
        {"id": 1, "op": "call", "integration": "a", "request": {}, "idempotency_key": 7},
        "idempotency_key",
    ),
    ({"id": 1, "op": "status", "integration": 5}, "integration"),
    ({"id": 1, "op": "which_children", "supervisor": b"root"}, "supervisor"),
    ({"id": 1, "op": "restart_child"}, "child"),
    ({"id": 1, "op": "terminate_child", "child": None}, "child"),
    ({"id": 1, "op": "recovery_points", "integration": "a", "limit": 0}, "limit"),
    ({"id": 1, "op": "recovery_points"}, "integration"),
    ({"id": 1, "op": "restore", "integration": "a"}, "at"),
    ({"id": 1, "op": "restore", "integration": "a", "at": "yesterday"}, "at"),
    ({"id": 1, "op": "restore", "integration": "a", "at": "2024-05-01T12:00:00"}, "at"),
    ({"id": 1, "op": "restore", "integration": "a", "at": float("nan")}, "at"),
    ({"id": 1, "op": "reset_provider", "integration": "a"}, "provider"),
    ({"id": 1, "op": "subscribe", "events": "all"}, "events"),
    ({"id": 1, "op": "subscribe", "events": ["a", 1]}, "events"),
    ({"id": 1, "op": "ping", "extra": 1}, "extra"),
]


@pytest.mark.parametrize("obj", VALID_REQUESTS, ids=lambda obj: str(obj["op"]))
def test_validate_request_accepts_valid_request(obj: dict[str, Any]) -> None:
    result = validate_request(obj)

    assert isinstance(result, Request), result
    assert result.id == obj["id"]
    assert result.op == obj["op"]
    assert dict(result.args) == {k: v for k, v in obj.items() if k not in ("id", "op")}


@pytest.mark.parametrize(("obj", "argument"), INVALID_ARGUMENTS)
def test_validate_request_rejects_invalid_argument(obj: dict[str, Any], argument: str) -> None:
    result = validate_request(obj)

    assert isinstance(result, ProtocolError)
    assert result.code == ErrorCode.INVALID_ARGUMENT
    assert result.request_id == 1
    assert result.details["argument"] == argument
    assert f"'{argument}'" in result.message


def test_validate_request_names_expected_and_received() -> None:
    result = validate_request(
        {"id": 1, "op": "call", "integration": "a", "request": {}, "deadline": "soon"}
    )

    assert isinstance(result, ProtocolError)
    assert "a finite number > 0" in result.message
    assert "got str 'soon'" in result.message


def test_validate_request_truncates_received_value() -> None:
    result = validate_request({"id": 1, "op": "call", "integration": "a", "request": "x" * 5000})

    assert isinstance(result, ProtocolError)
    assert len(result.message) < 200
    assert "..." in result.message


def test_validate_request_lists_known_ops() -> None:
    result = validate_request({"id": 9, "op": "launch"})

    assert isinstance(result, ProtocolError)
    assert result.code == ErrorCode.UNKNOWN_OP
    assert result.request_id == 9
    assert result.details["op"] == "launch"
    assert result.details["known_ops"] == sorted(OPERATIONS)


@pytest.mark.parametrize("bad_id", [1.5, None, True, b"raw", [1], {"a": 1}])
def test_validate_request_rejects_id_type(bad_id: Any) -> None:
    result = validate_request({"id": bad_id, "op": "ping"})

    assert isinstance(result, ProtocolError)
    assert result.code == ErrorCode.INVALID_FIELD
    assert result.request_id is None
    assert result.details["field"] == "id"


def test_validate_request_rejects_op_type() -> None:
    result = validate_request({"id": 4, "op": 5})

    assert isinstance(result, ProtocolError)
    assert result.code == ErrorCode.INVALID_FIELD
    assert result.request_id == 4
    assert result.details["field"] == "op"


def test_validate_request_reports_missing_id_without_id() -> None:
    result = validate_request({"op": "ping"})

    assert isinstance(result, ProtocolError)
    assert result.code == ErrorCode.MISSING_FIELD
    assert result.details == {"field": "id"}
    assert result.request_id is None


def test_validate_request_reports_missing_op_with_id() -> None:
    result = validate_request({"id": "r1"})

    assert isinstance(result, ProtocolError)
    assert result.code == ErrorCode.MISSING_FIELD
    assert result.details == {"field": "op"}
    assert result.request_id == "r1"


def test_validate_request_rejects_non_map() -> None:
    result = validate_request([1, 2])

    assert isinstance(result, ProtocolError)
    assert result.code == ErrorCode.NOT_A_MAP
    assert result.details == {"received_type": "array"}


def test_decode_request_rejects_invalid_msgpack() -> None:
    result = decode_request(b"\xc1")

    assert isinstance(result, ProtocolError)
    assert result.code == ErrorCode.INVALID_MSGPACK
    assert result.request_id is None


def test_decode_request_rejects_trailing_bytes() -> None:
    result = decode_request(msgpack.packb({"id": 1, "op": "ping"}) + b"\x00")

    assert isinstance(result, ProtocolError)
    assert result.code == ErrorCode.INVALID_MSGPACK


def test_decode_request_rejects_unhashable_map_key() -> None:
    result = decode_request(b"\x81\x91\x01\x02")

    assert isinstance(result, ProtocolError)
    assert result.code == ErrorCode.INVALID_MSGPACK


def test_decode_request_invalid_utf8_int_id() -> None:
    frame = b"\x83\xa2id\x07\xa2op\xa4ping\xa1x\xa1\xff"

    result = decode_request(frame)

    assert isinstance(result, ProtocolError)
    assert result.code == ErrorCode.INVALID_UTF8
    assert result.request_id == 7


def test_decode_request_invalid_utf8_str_id() -> None:
    frame = b"\x82\xa2id\xa3r-1\xa2op\xa2\xc3\x28"

    result = decode_request(frame)

    assert isinstance(result, ProtocolError)
    assert result.code == ErrorCode.INVALID_UTF8
    assert result.request_id == "r-1"


def test_decode_request_keeps_bin_as_bytes() -> None:
    frame = msgpack.packb(
        {"id": 1, "op": "call", "integration": "a", "request": {"blob": b"\xff\x00"}},
        use_bin_type=True,
    )

    result = decode_request(frame)

    assert isinstance(result, Request)
    assert result.args["request"]["blob"] == b"\xff\x00"


def test_ok_reply_has_id_ok_result() -> None:
    assert ok_reply(3, {"a": 1}) == {"id": 3, "ok": True, "result": {"a": 1}}


def test_error_reply_has_code_message_details() -> None:
    error = ProtocolError("timeout", "provider timed out after 2 s", {"after_s": 2})

    assert error_reply("r", error) == {
        "id": "r",
        "ok": False,
        "error": {
            "code": "timeout",
            "message": "provider timed out after 2 s",
            "details": {"after_s": 2},
        },
    }


def test_event_message_rejects_reserved_field() -> None:
    with pytest.raises(ValueError, match="reserved"):
        event_message("breaker_opened", {"id": 1})


def test_encode_message_uses_str_and_bin() -> None:
    encoded = encode_message({"text": "é", "data": b"\x01"})

    assert encoded == b"\x82\xa4text\xa2\xc3\xa9\xa4data\xc4\x01\x01"
