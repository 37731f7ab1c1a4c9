"""Failure vocabulary for provider adapters and the default rules for retrying.

Every call through an adapter ends in a normalized result or a `Failure`. A failure has a
`FailureKind`, states whether the request may have reached the provider, and states whether
the default rules allow a retry:

- Connect errors, timeouts, write errors and connections dropped mid-response are
  retryable, as in `actors.policy.retry.DEFAULT_RETRYABLE_KINDS`. Whether a request that
  may have reached the provider is sent again is for the retry policy to decide, from
  `may_have_reached_provider` and the request's idempotency.
- HTTP 429, 500, 502, 503, 504 and 529 (Anthropic's "overloaded") are retryable.
- Other 4xx and 5xx statuses are not retryable.
- `invalid_response`, `invalid_request` and `cancelled` are not retryable.
- Quota exhaustion is not retryable even though it arrives as HTTP 429: OpenAI reports it
  with error type or code `insufficient_quota`, and Anthropic with
  `error.details.error_code == "enforced_spend_limit_reached"`. Waiting does not clear
  either one.

The retry policy module may override these defaults, so `retryable` is advice for it.
"""

from __future__ import annotations

import asyncio
import email.utils
import enum
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import httpx

__all__ = [
    "RETRYABLE_KINDS",
    "RETRYABLE_STATUSES",
    "AdapterError",
    "Failure",
    "FailureKind",
    "Phase",
    "classify_exception",
    "is_retryable_status",
    "parse_retry_after",
    "retry_after_from_headers",
    "status_failure",
]

logger = logging.getLogger(__name__)


class FailureKind(enum.StrEnum):
    """Reason for a failed attempt. Values are plain strings, so they travel in msgpack and JSON."""

    CONNECT_ERROR = "connect_error"
    """The connection failed before any request byte was sent (refused, reset, DNS)."""
    CONNECT_TIMEOUT = "connect_timeout"
    """No connection was ready within the timeout. Nothing was sent."""
    WRITE_TIMEOUT = "write_timeout"
    """Sending the request timed out. Part of it may have reached the provider."""
    WRITE_ERROR = "write_error"
    """The connection broke while the request was being sent."""
    READ_TIMEOUT = "read_timeout"
    """The request was sent but the response did not arrive within the timeout."""
    DROPPED_MID_RESPONSE = "dropped_mid_response"
    """The connection closed after the request was sent, before the response was complete."""
    HTTP_STATUS = "http_status"
    """The provider responded with an error status (4xx or 5xx)."""
    INVALID_RESPONSE = "invalid_response"
    """The response was not valid JSON, lacked a required field or could not be decoded."""
    INVALID_REQUEST = "invalid_request"
    """The normalized request or the adapter configuration was invalid, so nothing was sent."""
    CANCELLED = "cancelled"
    """The caller cancelled the attempt."""


RETRYABLE_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504, 529})
"""HTTP statuses that the default rules retry. 529 is Anthropic's "overloaded" status."""

RETRYABLE_KINDS: frozenset[FailureKind] = frozenset(
    {
        FailureKind.CONNECT_ERROR,
        FailureKind.CONNECT_TIMEOUT,
        FailureKind.WRITE_TIMEOUT,
        FailureKind.WRITE_ERROR,
        FailureKind.READ_TIMEOUT,
        FailureKind.DROPPED_MID_RESPONSE,
    }
)
"""Failure kinds other than `http_status` that the default rules retry."""

_NOT_SENT_KINDS = frozenset(
    {FailureKind.CONNECT_ERROR, FailureKind.CONNECT_TIMEOUT, FailureKind.INVALID_REQUEST}
)


class Phase(enum.Enum):
    """How far one attempt got, as reported by httpcore's trace events."""

    UNKNOWN = "unknown"
    """No trace event arrived, for example with a transport that does not emit them."""
    CONNECTING = "connecting"
    SENDING = "sending"
    WAITING = "waiting"
    RECEIVING = "receiving"


@dataclass(frozen=True)
class Failure:
    """One failed attempt, classified.

    `may_have_reached_provider` is True for everything that happened after the first
    request byte was sent, HTTP error responses included. A 429 or 529 response states that
    the provider did not process the request, so a policy may still choose to retry those
    for non-idempotent requests. `retry_after` is in seconds (from `Retry-After` or
    `retry-after-ms`), None when the provider did not send one. `message` never contains an
    API key or an Authorization header.
    """

    kind: FailureKind
    provider: str
    message: str
    may_have_reached_provider: bool
    retryable: bool
    status: int | None = None
    error_type: str | None = None
    error_code: str | None = None
    retry_after: float | None = None
    request_id: str | None = None

    @property
    def ok(self) -> bool:
        """Always False, so that callers can test `outcome.ok` on any outcome."""
        return False

    def to_dict(self) -> dict[str, Any]:
        """Convert to plain types for msgpack or JSON."""
        data = asdict(self)
        data["kind"] = str(self.kind)
        return data

    def unwrap(self) -> Any:
        """Raise `AdapterError` carrying this failure."""
        raise AdapterError(self)


class AdapterError(Exception):
    """An exception carrying a `Failure`, for callers that prefer raising to returning."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(f"{failure.provider}: {failure.kind}: {failure.message}")
        self.failure = failure


def is_retryable_status(status: int) -> bool:
    """Return whether the default rules retry an HTTP status."""
    return status in RETRYABLE_STATUSES


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Parse a `Retry-After` header value into seconds from now.

    The value is either a non-negative number of seconds or an HTTP date such as
    "Tue, 03 Jun 2025 10:00:00 GMT". A date in the past gives 0.0. An empty or unparsable
    value gives None. `now` returns the current time in seconds since the epoch.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None

    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is not None:
        if not math.isfinite(seconds) or seconds < 0:
            return None
        return seconds

    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # HTTP dates are always in GMT, and email.utils returns a naive datetime for
        # "-0000" zones, so such a value is not a valid HTTP date.
        return None
    return max(0.0, when.timestamp() - now())


def retry_after_from_headers(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """Return the delay in seconds that the provider asked for, or None.

    `retry-after-ms`, a non-standard millisecond variant that some providers send, wins
    over `Retry-After` because it is more precise.
    `headers` must look names up case-insensitively, as `httpx.Headers` does.
    """
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            value = float(milliseconds)
        except ValueError:
            value = -1.0
        if math.isfinite(value) and value >= 0:
            return value / 1000.0
    return parse_retry_after(headers.get("retry-after"), now=now)


def status_failure(
    *,
    provider: str,
    status: int,
    message: str,
    error_type: str | None = None,
    error_code: str | None = None,
    retry_after: float | None = None,
    request_id: str | None = None,
    retryable: bool | None = None,
) -> Failure:
    """Build an `http_status` failure. `retryable` None applies `RETRYABLE_STATUSES`."""
    if retryable is None:
        retryable = is_retryable_status(status)
    return Failure(
        kind=FailureKind.HTTP_STATUS,
        provider=provider,
        message=message,
        may_have_reached_provider=True,
        retryable=retryable,
        status=status,
        error_type=error_type,
        error_code=error_code,
        retry_after=retry_after,
        request_id=request_id,
    )


def _sent(phase: Phase) -> bool:
    # With an unknown phase, assume the request may have been sent, because wrongly
    # assuming "not sent" could repeat a non-idempotent request.
    return phase is not Phase.CONNECTING


def classify_exception(
    exc: BaseException, *, provider: str, phase: Phase = Phase.UNKNOWN
) -> Failure | None:
    """Classify an exception raised while sending a request or reading its response.

    `phase` is how far the attempt got. It decides between connect, write and read
    timeouts for a `TimeoutError` from an overall deadline (`asyncio.timeout`).
    `asyncio.CancelledError` maps to `cancelled`, with `may_have_reached_provider` True
    because the attempt may have been anywhere. Returns None for exceptions that are not
    transport failures, so that the caller can re-raise them as bugs.
    """
    kind: FailureKind
    if isinstance(exc, asyncio.CancelledError):
        return Failure(
            kind=FailureKind.CANCELLED,
            provider=provider,
            message="the attempt was cancelled",
            may_have_reached_provider=True,
            retryable=False,
        )
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        kind = FailureKind.CONNECT_TIMEOUT
    elif isinstance(exc, httpx.ConnectError | httpx.ProxyError):
        kind = FailureKind.CONNECT_ERROR
    elif isinstance(exc, httpx.WriteTimeout):
        kind = FailureKind.WRITE_TIMEOUT
    elif isinstance(exc, httpx.WriteError):
        kind = FailureKind.WRITE_ERROR
    elif isinstance(exc, httpx.ReadTimeout):
        kind = FailureKind.READ_TIMEOUT
    elif isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError | httpx.CloseError):
        kind = FailureKind.DROPPED_MID_RESPONSE
    elif isinstance(exc, httpx.DecodingError | httpx.TooManyRedirects):
        kind = FailureKind.INVALID_RESPONSE
    elif isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError | httpx.InvalidURL):
        kind = FailureKind.INVALID_REQUEST
    elif isinstance(exc, TimeoutError):
        if not _sent(phase):
            kind = FailureKind.CONNECT_TIMEOUT
        elif phase is Phase.SENDING:
            kind = FailureKind.WRITE_TIMEOUT
        else:
            kind = FailureKind.READ_TIMEOUT
    else:
        return None

    reached = kind not in _NOT_SENT_KINDS
    message = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError) and not isinstance(exc, httpx.TimeoutException):
        stage = "at an unknown stage" if phase is Phase.UNKNOWN else f"while {phase.value}"
        message = f"the per-try timeout expired {stage}"
    return Failure(
        kind=kind,
        provider=provider,
        message=message,
        may_have_reached_provider=reached,
        retryable=kind in RETRYABLE_KINDS,
    )
