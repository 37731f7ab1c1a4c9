"""The failure vocabulary, Retry-After parsing and exception classification."""

from __future__ import annotations

import asyncio
import email.utils
import json

import httpx
import pytest

from actors.adapters import (
    RETRYABLE_KINDS,
    RETRYABLE_STATUSES,
    AdapterError,
    Failure,
    FailureKind,
    Phase,
    classify_exception,
    is_retryable_status,
    parse_retry_after,
)
from actors.adapters.errors import retry_after_from_headers

pytestmark = pytest.mark.timeout(10)

NOW = 1_700_000_000.0


def fake_clock() -> float:
    return NOW


def test_failure_kind_vocabulary() -> None:
    assert {kind.value for kind in FailureKind} == {
        "connect_error",
        "connect_timeout",
        "write_timeout",
        "write_error",
        "read_timeout",
        "dropped_mid_response",
        "http_status",
        "invalid_response",
        "invalid_request",
        "cancelled",
    }


def test_retryable_statuses() -> None:
    assert RETRYABLE_STATUSES == {429, 500, 502, 503, 504, 529}


def test_retryable_kinds() -> None:
    assert RETRYABLE_KINDS == {
        FailureKind.CONNECT_ERROR,
        FailureKind.CONNECT_TIMEOUT,
        FailureKind.WRITE_TIMEOUT,
        FailureKind.WRITE_ERROR,
        FailureKind.READ_TIMEOUT,
        FailureKind.DROPPED_MID_RESPONSE,
    }


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422, 501])
def test_other_statuses_not_retryable(status: int) -> None:
    assert is_retryable_status(status) is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("120", 120.0),
        ("1.5", 1.5),
        (" 3 ", 3.0),
        ("-1", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=fake_clock) == expected


def test_retry_after_http_date() -> None:
    value = email.utils.formatdate(NOW + 90, usegmt=True)

    assert parse_retry_after(value, now=fake_clock) == 90.0


def test_retry_after_past_date_is_zero() -> None:
    value = email.utils.formatdate(NOW - 90, usegmt=True)

    assert parse_retry_after(value, now=fake_clock) == 0.0


def test_retry_after_ms_wins() -> None:
    headers = httpx.Headers({"retry-after": "20", "retry-after-ms": "1500"})

    assert retry_after_from_headers(headers, now=fake_clock) == 1.5


def test_retry_after_header_without_ms() -> None:
    headers = httpx.Headers({"Retry-After": "20"})

    assert retry_after_from_headers(headers, now=fake_clock) == 20.0


REQUEST = httpx.Request("POST", "http://127.0.0.1:9/v1/messages")


@pytest.mark.parametrize(
    ("exc", "kind", "reached"),
    [
        (httpx.ConnectError("refused", request=REQUEST), FailureKind.CONNECT_ERROR, False),
        (httpx.ConnectTimeout("slow", request=REQUEST), FailureKind.CONNECT_TIMEOUT, False),
        (httpx.PoolTimeout("pool", request=REQUEST), FailureKind.CONNECT_TIMEOUT, False),
        (httpx.WriteTimeout("slow", request=REQUEST), FailureKind.WRITE_TIMEOUT, True),
        (httpx.WriteError("reset", request=REQUEST), FailureKind.WRITE_ERROR, True),
        (httpx.ReadTimeout("slow", request=REQUEST), FailureKind.READ_TIMEOUT, True),
        (httpx.ReadError("reset", request=REQUEST), FailureKind.DROPPED_MID_RESPONSE, True),
        (
            httpx.RemoteProtocolError("closed", request=REQUEST),
            FailureKind.DROPPED_MID_RESPONSE,
            True,
        ),
        (httpx.DecodingError("gzip", request=REQUEST), FailureKind.INVALID_RESPONSE, True),
        (
            httpx.UnsupportedProtocol("ftp", request=REQUEST),
            FailureKind.INVALID_REQUEST,
            False,
        ),
    ],
)
def test_httpx_exception_classified(exc: Exception, kind: FailureKind, reached: bool) -> None:
    failure = classify_exception(exc, provider="p")

    assert failure is not None
    assert failure.kind is kind
    assert failure.may_have_reached_provider is reached


@pytest.mark.parametrize(
    ("phase", "kind"),
    [
        (Phase.CONNECTING, FailureKind.CONNECT_TIMEOUT),
        (Phase.SENDING, FailureKind.WRITE_TIMEOUT),
        (Phase.WAITING, FailureKind.READ_TIMEOUT),
        (Phase.RECEIVING, FailureKind.READ_TIMEOUT),
        (Phase.UNKNOWN, FailureKind.READ_TIMEOUT),
    ],
)
def test_deadline_classified_by_phase(phase: Phase, kind: FailureKind) -> None:
    failure = classify_exception(TimeoutError(), provider="p", phase=phase)

    assert failure is not None
    assert failure.kind is kind


def test_unknown_exception_not_classified() -> None:
    assert classify_exception(KeyError("bug"), provider="p") is None


def test_cancelled_error_classified() -> None:
    failure = classify_exception(asyncio.CancelledError(), provider="p")

    assert failure is not None
    assert failure.kind is FailureKind.CANCELLED
    assert failure.retryable is False


def test_failure_to_dict_is_json_ready() -> None:
    failure = Failure(
        kind=FailureKind.HTTP_STATUS,
        provider="openai",
        message="Rate limit reached",
        may_have_reached_provider=True,
        retryable=True,
        status=429,
        retry_after=2.0,
    )

    data = failure.to_dict()

    assert data["kind"] == "http_status"
    assert type(data["kind"]) is str
    assert json.loads(json.dumps(data)) == data


def test_failure_unwrap_raises_adapter_error() -> None:
    failure = Failure(
        kind=FailureKind.CONNECT_ERROR,
        provider="openai",
        message="refused",
        may_have_reached_provider=False,
        retryable=True,
    )

    with pytest.raises(AdapterError) as caught:
        failure.unwrap()

    assert caught.value.failure is failure
