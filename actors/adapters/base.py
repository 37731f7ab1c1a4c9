"""Shared parts of the provider adapters: the request description, outcomes and one send.

An adapter translates a normalized request into a `RequestSpec`, sends it once with an
`httpx.AsyncClient` that the caller owns, and translates the response or the exception into
a `Success` or a `Failure`. Adapters hold no connections, threads or actors, so one adapter
instance may serve many concurrent calls.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx

from actors.adapters.errors import Failure, FailureKind, Phase, classify_exception

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "RESERVED_HEADER_NAMES",
    "SECRET_HEADER_NAMES",
    "Adapter",
    "Outcome",
    "RequestSpec",
    "Success",
    "decode_json_body",
    "mask_headers",
    "optional_count",
    "optional_text",
    "validate_idempotency_key",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
"""Default limit for one response body, after content decoding (16 MiB)."""

MAX_TIMEOUT_SECONDS = 3600.0

SECRET_HEADER_NAMES: frozenset[str] = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie"}
)
"""Lower-case names of headers whose values are masked in every repr and log line."""

RESERVED_HEADER_NAMES: frozenset[str] = frozenset(
    {"host", "content-length", "transfer-encoding", "connection"}
)
"""Lower-case names of headers that httpx derives from the request itself. Callers cannot
set them, because a mismatch would corrupt the framing of the request."""

_MAX_IDEMPOTENCY_KEY_LENGTH = 255


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return a copy of `headers` with the values of `SECRET_HEADER_NAMES` replaced by ***.

    An Authorization value keeps its scheme ("Bearer ***") so that logs still show which
    scheme was used.
    """
    masked: dict[str, str] = {}
    for name, value in headers.items():
        if name.lower() not in SECRET_HEADER_NAMES:
            masked[name] = value
        elif name.lower().endswith("authorization") and " " in value:
            masked[name] = value.split(" ", 1)[0] + " ***"
        else:
            masked[name] = "***"
    return masked


@dataclass(frozen=True)
class RequestSpec:
    """One HTTP request to send, described independently of httpx.

    `path` is relative to the adapter's base URL and starts with "/". `content` is the
    encoded body, and `json_body` the same body before encoding (None for non-JSON bodies).
    The repr masks secret headers.
    """

    method: str
    path: str
    headers: Mapping[str, str] = field(repr=False)
    content: bytes | None = field(default=None, repr=False)
    json_body: Any = field(default=None, repr=False)

    def __repr__(self) -> str:
        size = 0 if self.content is None else len(self.content)
        return (
            f"RequestSpec(method={self.method!r}, path={self.path!r}, "
            f"headers={mask_headers(self.headers)!r}, body_bytes={size})"
        )

    def url(self, base_url: str) -> str:
        """Return the absolute URL of this request under `base_url`."""
        return base_url.rstrip("/") + self.path


@dataclass(frozen=True)
class Success:
    """One successful attempt. `value` is the adapter's normalized result."""

    provider: str
    value: Any
    status: int
    request_id: str | None = None

    @property
    def ok(self) -> bool:
        """Always True, so that callers can test `outcome.ok` on any outcome."""
        return True

    def unwrap(self) -> Any:
        """Return `value`. `Failure.unwrap` raises instead."""
        return self.value

    def to_dict(self) -> dict[str, Any]:
        """Convert to plain types for msgpack or JSON."""
        return {
            "provider": self.provider,
            "value": self.value,
            "status": self.status,
            "request_id": self.request_id,
        }


Outcome = Success | Failure
"""The outcome of one attempt through an adapter: a `Success` or a `Failure`."""


def decode_json_body(body: bytes) -> Any:
    """Decode a JSON response body. Raises ValueError if the body is not UTF-8 JSON."""
    try:
        return json.loads(body)
    except UnicodeDecodeError as exc:
        raise ValueError(f"the response body is not UTF-8: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"the response body is not valid JSON: {exc.msg} (byte {exc.pos})"
        ) from exc


def optional_count(value: Any) -> int | None:
    """Return `value` if it is a non-negative integer (a token count), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def optional_text(value: Any) -> str | None:
    """Return `value` if it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def _validate_base_url(base_url: str) -> str:
    if not isinstance(base_url, str):
        raise ValueError(f"base_url: expected a string, got {type(base_url).__name__}")
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"base_url: invalid value {base_url!r}; expected an http:// or https:// URL with a host"
        )
    if parts.query or parts.fragment:
        raise ValueError(
            f"base_url: invalid value {base_url!r}; a base URL cannot have a query or fragment"
        )
    return base_url.rstrip("/")


def _validate_static_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    if headers is None:
        return {}
    result: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ValueError(f"headers: names and values must be strings, got {name!r}")
        lowered = name.lower()
        if lowered in SECRET_HEADER_NAMES:
            raise ValueError(
                f"headers: {name!r} is not allowed in static headers; pass the key as api_key"
            )
        if lowered in RESERVED_HEADER_NAMES:
            raise ValueError(f"headers: {name!r} is set by the HTTP client and cannot be set")
        result[name] = value
    return result


def validate_idempotency_key(key: str | None) -> str | None:
    """Return `key` unchanged, or raise ValueError if it cannot be sent as a header value."""
    if key is None:
        return None
    if not isinstance(key, str):
        raise ValueError(f"idempotency_key: expected a string, got {type(key).__name__}")
    if not 1 <= len(key) <= _MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ValueError(
            f"idempotency_key: invalid length {len(key)}; expected 1 to "
            f"{_MAX_IDEMPOTENCY_KEY_LENGTH} characters"
        )
    if not key.isascii() or not key.isprintable():
        raise ValueError(
            "idempotency_key: invalid value; expected printable ASCII without line breaks"
        )
    return key


class _PhaseTracer:
    """An httpcore `trace` extension callback that records how far an attempt got."""

    def __init__(self) -> None:
        self.phase = Phase.UNKNOWN

    async def __call__(self, event_name: str, info: dict[str, Any]) -> None:
        # Phases only move forward. Event names look like "connection.connect_tcp.started"
        # or "http11.send_request_headers.started" (httpcore 1.0).
        if event_name.startswith("connection.") and self.phase is Phase.UNKNOWN:
            self.phase = Phase.CONNECTING
        elif event_name.endswith("send_request_headers.started"):
            self.phase = Phase.SENDING
        elif event_name.endswith("send_request_body.complete"):
            self.phase = Phase.WAITING
        elif event_name.endswith("receive_response_headers.complete"):
            self.phase = Phase.RECEIVING


class Adapter(ABC):
    """Base class of the provider adapters.

    Options:
    - `base_url`: http or https URL that request paths are appended to. Required.
    - `name`: provider name used in results, failures and logs. Default: the adapter kind.
    - `api_key`: the provider's secret. Default None (no authentication header). Never
      logged and never shown in a repr.
    - `headers`: extra static headers sent with every request. Default none. Names of
      secret headers (Authorization, x-api-key) and of framing headers are rejected.
    - `max_response_bytes`: limit of one decoded response body in bytes, 1 to 1 GiB.
      Default 16 MiB. A larger body ends the attempt as `invalid_response`.
    """

    kind: ClassVar[str]

    def __init__(
        self,
        *,
        base_url: str,
        name: str | None = None,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.base_url = _validate_base_url(base_url)
        self.name = self.kind if name is None else name
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name: invalid value {name!r}; expected a non-empty string")
        if api_key is not None and (not isinstance(api_key, str) or not api_key):
            raise ValueError("api_key: expected a non-empty string or None")
        self._api_key = api_key
        self.static_headers = _validate_static_headers(headers)
        if (
            isinstance(max_response_bytes, bool)
            or not isinstance(max_response_bytes, int)
            or not 1 <= max_response_bytes <= 1024**3
        ):
            raise ValueError(
                f"max_response_bytes: invalid value {max_response_bytes!r}; "
                f"expected an integer from 1 to {1024**3}"
            )
        self.max_response_bytes = max_response_bytes

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r})"

    @abstractmethod
    def build_request(
        self, request: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> RequestSpec:
        """Translate a normalized request. Raises ValueError naming the invalid field."""

    @abstractmethod
    def parse_response(self, status: int, headers: httpx.Headers, body: bytes) -> Outcome:
        """Translate a complete HTTP response into a `Success` or a `Failure`."""

    def common_headers(self, idempotency_key: str | None) -> dict[str, str]:
        """Return the static headers plus `Idempotency-Key` when a key is given."""
        headers = dict(self.static_headers)
        key = validate_idempotency_key(idempotency_key)
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    def invalid_response(self, message: str, *, status: int, request_id: str | None) -> Failure:
        """Build an `invalid_response` failure for a response this adapter cannot use."""
        return Failure(
            kind=FailureKind.INVALID_RESPONSE,
            provider=self.name,
            message=message,
            may_have_reached_provider=True,
            retryable=False,
            status=status,
            request_id=request_id,
        )

    async def send(
        self,
        client: httpx.AsyncClient,
        request: Mapping[str, Any],
        *,
        timeout: float,
        idempotency_key: str | None = None,
    ) -> Outcome:
        """Send one attempt of `request` and return its outcome.

        `timeout` is the per-try deadline in seconds (greater than 0, at most 3600). It
        bounds connecting, sending and reading the whole body together. An invalid
        normalized request returns an `invalid_request` failure without sending anything.
        Cancellation of the calling task propagates as `asyncio.CancelledError`, because
        swallowing it would break the caller's own timeouts. Use `classify_exception` to
        turn it into a `cancelled` failure.
        """
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or not 0 < timeout <= MAX_TIMEOUT_SECONDS
        ):
            raise ValueError(
                f"timeout: invalid value {timeout!r}; expected seconds greater than 0 "
                f"and at most {MAX_TIMEOUT_SECONDS:g}"
            )
        try:
            spec = self.build_request(request, idempotency_key=idempotency_key)
        except (ValueError, TypeError) as exc:
            logger.info("provider %s: invalid request not sent: %s", self.name, exc)
            return Failure(
                kind=FailureKind.INVALID_REQUEST,
                provider=self.name,
                message=str(exc),
                may_have_reached_provider=False,
                retryable=False,
            )

        tracer = _PhaseTracer()
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                status, headers, body = await self._exchange(client, spec, timeout, tracer)
        except Exception as exc:
            failure = classify_exception(exc, provider=self.name, phase=tracer.phase)
            if failure is None:
                raise
            logger.info(
                "provider %s: %s %s failed after %.3f s: %s: %s",
                self.name,
                spec.method,
                spec.path,
                time.monotonic() - started,
                failure.kind,
                failure.message,
            )
            return failure

        if body is None:
            outcome: Outcome = self.invalid_response(
                f"the response body exceeds max_response_bytes ({self.max_response_bytes})",
                status=status,
                request_id=None,
            )
        else:
            outcome = self.parse_response(status, headers, body)
        elapsed = time.monotonic() - started
        if outcome.ok:
            logger.debug(
                "provider %s: %s %s returned %d in %.3f s",
                self.name,
                spec.method,
                spec.path,
                status,
                elapsed,
            )
        else:
            logger.info(
                "provider %s: %s %s failed after %.3f s: %s (status %d, request id %s): %s",
                self.name,
                spec.method,
                spec.path,
                elapsed,
                outcome.kind,
                status,
                outcome.request_id,
                outcome.message,
            )
        return outcome

    async def _exchange(
        self,
        client: httpx.AsyncClient,
        spec: RequestSpec,
        timeout: float,
        tracer: _PhaseTracer,
    ) -> tuple[int, httpx.Headers, bytes | None]:
        """Send `spec` and read the whole body, or return None for a body over the limit."""
        http_request = client.build_request(
            spec.method,
            spec.url(self.base_url),
            headers=spec.headers,
            content=spec.content,
            timeout=httpx.Timeout(timeout),
            extensions={"trace": tracer},
        )
        response = await client.send(http_request, stream=True, follow_redirects=False)
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_response_bytes:
                    return response.status_code, response.headers, None
                chunks.append(chunk)
        finally:
            await response.aclose()
        return response.status_code, response.headers, b"".join(chunks)
