"""Request and reply values shared by the simulator's dialects, and helpers for them."""

from __future__ import annotations

import http
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tpir.simulator.modes import Behavior

__all__ = [
    "MASKED_HEADER_NAMES",
    "Dialect",
    "Incoming",
    "Reply",
    "count_tokens",
    "gateway_reply",
    "json_reply",
    "mask_headers",
    "reason_phrase",
    "reply_text",
]

MASKED_HEADER_NAMES = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie"}
)
"""Lower-case names of headers whose values the simulator never records or echoes."""


@dataclass(frozen=True)
class Incoming:
    """One received request. Header names are lower case."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes = field(repr=False)

    def json(self) -> Any:
        """Return the body parsed as JSON. Raises ValueError if it is not UTF-8 JSON."""
        return json.loads(self.body.decode("utf-8"))

    def media_type(self) -> str:
        """Return the media type of the Content-Type header, lower case, without parameters."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def recorded_body(self) -> Any:
        """Return the body as tests inspect it: parsed JSON, else text, else bytes, or None."""
        if not self.body:
            return None
        try:
            return self.json()
        except ValueError:
            pass
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError:
            return self.body


@dataclass(frozen=True)
class Reply:
    """One response to send. `note` explains a rejection in logs and request records."""

    status: int
    body: bytes = field(repr=False)
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    note: str | None = None


class Dialect(Protocol):
    """Interface of one provider dialect: request checks and response bodies."""

    name: str

    def check(self, request: Incoming, api_key: str | None) -> Reply | None:
        """Return the provider's rejection of a malformed or unauthenticated request."""

    def success(self, request: Incoming, behavior: Behavior, request_id: str) -> Reply:
        """Return the normal response to a request that passed `check`."""

    def error(self, behavior: Behavior, request_id: str) -> Reply:
        """Return the provider's error response for `behavior.status`."""

    def malformed(self, request_id: str) -> Reply:
        """Return status 200 with a truncated JSON body."""

    def missing_fields(self, request_id: str) -> Reply:
        """Return status 200 with JSON that lacks the dialect's required fields."""


def json_reply(
    status: int,
    data: Any,
    *,
    headers: tuple[tuple[str, str], ...] = (),
    note: str | None = None,
) -> Reply:
    """Build a JSON reply."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Reply(status=status, body=body, headers=headers, note=note)


def reason_phrase(status: int) -> str:
    """Return the reason phrase of a status, including 529 ("Overloaded")."""
    if status == 529:
        return "Overloaded"
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def gateway_reply(status: int) -> Reply:
    """Build the HTML page that a load balancer in front of an API returns for 502 or 504."""
    phrase = reason_phrase(status)
    page = (
        f"<html><head><title>{status} {phrase}</title></head>"
        f"<body><h1>{status} {phrase}</h1><p>simulated gateway</p></body></html>"
    )
    return Reply(status=status, body=page.encode("ascii"), content_type="text/html")


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return a copy of `headers` with secret values replaced by *** (the scheme is kept)."""
    masked: dict[str, str] = {}
    for name, value in headers.items():
        if name.lower() not in MASKED_HEADER_NAMES:
            masked[name] = value
        elif name.lower().endswith("authorization") and " " in value:
            masked[name] = value.split(" ", 1)[0] + " ***"
        else:
            masked[name] = "***"
    return masked


def count_tokens(text: str) -> int:
    """Count tokens the simulated way: one token per whitespace-separated word."""
    return len(text.split())


def reply_text(behavior: Behavior, last_user_text: str, max_tokens: int | None) -> tuple[str, str]:
    """Return the reply text and its normalized finish reason for a normal response.

    The text is cut to `max_tokens` words, which makes the finish reason "length" unless
    the behavior sets one.
    """
    text = behavior.text
    if text is None:
        text = f"Simulated reply to: {last_user_text}".strip()
    finish = behavior.finish_reason or "stop"
    words = text.split()
    if max_tokens is not None and len(words) > max_tokens:
        text = " ".join(words[:max_tokens])
        finish = behavior.finish_reason or "length"
    return text, finish
