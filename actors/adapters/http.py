"""Pass-through adapter for plain HTTP integrations such as payment or identity providers.

A normalized request is a mapping with these keys:

- `method` (required): GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS.
- `path` (required): path relative to the base URL, starting with "/", with an optional
  query string.
- `headers` (optional): a mapping of header names to string values.
- `body` (optional): bytes are sent as they are, a string is sent as UTF-8 text, and any
  other value is sent as JSON. None or a missing body sends no body.

A successful result is `{"status", "headers", "body"}`. Header names are lower case. The
body is the decoded JSON value when the response declares a JSON content type, a string
for `text/*`, None when empty, and bytes otherwise. Every status of 400 or above is an
`http_status` failure, so that the retry rules see it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import httpx

from actors.adapters.base import (
    RESERVED_HEADER_NAMES,
    Adapter,
    Outcome,
    RequestSpec,
    Success,
    decode_json_body,
    optional_text,
)
from actors.adapters.errors import retry_after_from_headers, status_failure

__all__ = ["HTTP_METHODS", "HttpAdapter"]

logger = logging.getLogger(__name__)

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

_REQUEST_KEYS = frozenset({"method", "path", "headers", "body"})
_MAX_MESSAGE_LENGTH = 500


def _is_json_content_type(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _request_headers(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"headers: expected a mapping, got {type(raw).__name__}")
    headers: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ValueError(f"headers: names and values must be strings, got {name!r}")
        if name.lower() in RESERVED_HEADER_NAMES:
            raise ValueError(f"headers: {name!r} is set by the HTTP client and cannot be set")
        headers[name] = value
    return headers


def _error_message(status: int, headers: httpx.Headers, body: bytes) -> tuple[str, str | None]:
    """Return the error message and error type found in an error response body."""
    content_type = headers.get("content-type", "")
    if _is_json_content_type(content_type):
        try:
            data = decode_json_body(body)
        except ValueError:
            data = None
        if isinstance(data, dict):
            error = data.get("error")
            if isinstance(error, dict):
                message = optional_text(error.get("message"))
                return message or f"HTTP {status}", optional_text(error.get("type"))
            if optional_text(error) is not None:
                return error[:_MAX_MESSAGE_LENGTH], None
            if optional_text(data.get("message")) is not None:
                return data["message"][:_MAX_MESSAGE_LENGTH], None
    if content_type.lower().startswith("text/plain") and body:
        text = body[:_MAX_MESSAGE_LENGTH].decode("utf-8", errors="replace").strip()
        if text:
            return text, None
    return f"HTTP {status} ({content_type or 'no content type'})", None


class HttpAdapter(Adapter):
    """Pass-through adapter. With an `api_key`, it sends `Authorization: Bearer <api_key>`,
    which replaces any Authorization header in the request. Options are those of `Adapter`.
    """

    kind = "http"

    def build_request(
        self, request: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> RequestSpec:
        """Translate a normalized pass-through request."""
        if not isinstance(request, Mapping):
            raise ValueError(f"request: expected a mapping, got {type(request).__name__}")
        unknown = set(request) - _REQUEST_KEYS
        if unknown:
            raise ValueError(
                f"request: unknown keys {sorted(map(str, unknown))}; allowed keys are "
                f"{', '.join(sorted(_REQUEST_KEYS))}"
            )

        method = request.get("method")
        if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
            raise ValueError(
                f"method: invalid value {method!r}; expected one of {', '.join(HTTP_METHODS)}"
            )
        path = request.get("path")
        # A path that does not start with "/" could change the host when appended to the
        # base URL ("@other-host/...").
        if not isinstance(path, str) or not path.startswith("/") or path.startswith("//"):
            raise ValueError(
                f"path: invalid value {path!r}; expected a path starting with a single '/'"
            )
        if any(ch in path for ch in "\r\n #") or not path.isascii():
            raise ValueError(
                f"path: invalid value {path!r}; expected a percent-encoded path without "
                "spaces, line breaks or fragment"
            )

        headers = self.common_headers(idempotency_key)
        for name, value in _request_headers(request.get("headers")).items():
            headers[name] = value
        if self._api_key is not None:
            for name in [n for n in headers if n.lower() == "authorization"]:
                del headers[name]
            headers["Authorization"] = f"Bearer {self._api_key}"

        body = request.get("body")
        json_body: Any = None
        content: bytes | None
        if body is None:
            content = None
        elif isinstance(body, bytes | bytearray):
            content = bytes(body)
        elif isinstance(body, str):
            content = body.encode("utf-8")
        else:
            try:
                content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            except (TypeError, ValueError) as exc:
                raise ValueError(f"body: cannot be encoded as JSON: {exc}") from exc
            json_body = body
            if not any(n.lower() == "content-type" for n in headers):
                headers["Content-Type"] = "application/json"
        return RequestSpec(
            method=method.upper(),
            path=path,
            headers=headers,
            content=content,
            json_body=json_body,
        )

    def parse_response(self, status: int, headers: httpx.Headers, body: bytes) -> Outcome:
        """Translate a response into `{"status", "headers", "body"}` or a failure."""
        request_id = headers.get("x-request-id") or headers.get("request-id")
        if status >= 400:
            message, error_type = _error_message(status, headers, body)
            return status_failure(
                provider=self.name,
                status=status,
                message=message,
                error_type=error_type,
                retry_after=retry_after_from_headers(headers),
                request_id=request_id,
            )

        content_type = headers.get("content-type", "")
        decoded: Any
        if not body:
            decoded = None
        elif _is_json_content_type(content_type):
            try:
                decoded = decode_json_body(body)
            except ValueError as exc:
                return self.invalid_response(str(exc), status=status, request_id=request_id)
        elif content_type.lower().startswith("text/"):
            decoded = body.decode(_charset(content_type), errors="replace")
        else:
            decoded = body

        result = {
            "status": status,
            "headers": {name.lower(): value for name, value in headers.items()},
            "body": decoded,
        }
        return Success(provider=self.name, value=result, status=status, request_id=request_id)


def _charset(content_type: str) -> str:
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
            try:
                "".encode(charset)
            except LookupError:
                break
            return charset
    return "utf-8"
