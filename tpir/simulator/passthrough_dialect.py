"""The plain HTTP dialect (every path without a provider dialect) and the health endpoint.

The HTTP dialect accepts any request and echoes it as JSON: method, path, query, headers
(secret values masked), the body (parsed JSON, else text) and the idempotency key. Its
error bodies have the form `{"error": {"type", "message"}}`. The health dialect responds with
`{"status": "ok", "name": ...}`.
"""

from __future__ import annotations

from tpir.simulator.modes import Behavior
from tpir.simulator.wire import (
    Incoming,
    Reply,
    gateway_reply,
    json_reply,
    mask_headers,
    reason_phrase,
)

__all__ = ["HealthDialect", "PassThroughDialect"]


class PassThroughDialect:
    """Echo of plain HTTP requests, for the `http` adapter."""

    name = "http"

    def check(self, request: Incoming, api_key: str | None) -> Reply | None:
        """Accept every request: a pass-through integration has no fixed request shape."""
        return None

    def success(self, request: Incoming, behavior: Behavior, request_id: str) -> Reply:
        """Return the request echoed as JSON."""
        echo = {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "headers": mask_headers(request.headers),
            "body": _echo_body(request),
            "idempotency_key": request.headers.get("idempotency-key"),
        }
        if behavior.text is not None:
            echo["text"] = behavior.text
        return json_reply(200, echo, headers=(("x-request-id", request_id),))

    def error(self, behavior: Behavior, request_id: str) -> Reply:
        """Return a JSON error whose type is the status's reason phrase in snake case."""
        status = behavior.status
        if status in (502, 504):
            return gateway_reply(status)
        error_type = behavior.error_type or reason_phrase(status).lower().replace(" ", "_")
        body = {
            "error": {
                "type": error_type,
                "message": behavior.message or f"{reason_phrase(status)} (simulated)",
            }
        }
        return json_reply(status, body, headers=(("x-request-id", request_id),))

    def malformed(self, request_id: str) -> Reply:
        """Return status 200 with truncated JSON."""
        return Reply(
            status=200, body=b'{"method":"POST","pa', headers=(("x-request-id", request_id),)
        )

    def missing_fields(self, request_id: str) -> Reply:
        """Return status 200 with an empty JSON object."""
        return json_reply(200, {}, headers=(("x-request-id", request_id),))


class HealthDialect:
    """The simulator's health endpoint, `/health`, for any method."""

    name = "health"

    def __init__(self, simulator_name: str) -> None:
        self.simulator_name = simulator_name

    def check(self, request: Incoming, api_key: str | None) -> Reply | None:
        """Accept every request, because health checkers send no credentials."""
        return None

    def success(self, request: Incoming, behavior: Behavior, request_id: str) -> Reply:
        """Return `{"status": "ok"}`."""
        return json_reply(200, {"status": "ok", "name": self.simulator_name})

    def error(self, behavior: Behavior, request_id: str) -> Reply:
        """Return `{"status": "unavailable"}` with the behavior's status."""
        if behavior.status in (502, 504):
            return gateway_reply(behavior.status)
        return json_reply(behavior.status, {"status": "unavailable", "name": self.simulator_name})

    def malformed(self, request_id: str) -> Reply:
        """Return status 200 with truncated JSON."""
        return Reply(status=200, body=b'{"status":"o')

    def missing_fields(self, request_id: str) -> Reply:
        """Return status 200 with an empty JSON object."""
        return json_reply(200, {})


def _echo_body(request: Incoming) -> object:
    body = request.recorded_body()
    if isinstance(body, bytes):
        return {"bytes": len(body)}
    return body
