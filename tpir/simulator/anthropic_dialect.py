"""The Anthropic Messages dialect of the simulator (`POST /v1/messages`).

`check` requires the `anthropic-version` header, the `x-api-key` header when the simulator
has a key, a JSON body, `model`, `max_tokens` (at least 1) and a non-empty `messages` list
of user and assistant turns with non-blank content. It rejects unknown top-level fields, a
"system" role inside `messages` (the system prompt is the top-level `system` field), and
out-of-range `temperature`, `top_p` and `top_k`. Error bodies have the form
`{"type": "error", "error": {"type", "message"}, "request_id"}`.

NOTE: the rules are a hand-written subset of Anthropic's documented request format, not its
schema. A request that passes here can still fail at Anthropic, and the error messages only
resemble Anthropic's. `stream: true` is rejected because the simulator does not stream.
"""

from __future__ import annotations

import hmac
import math
from typing import Any

from tpir.simulator.modes import Behavior
from tpir.simulator.wire import (
    Incoming,
    Reply,
    count_tokens,
    gateway_reply,
    json_reply,
    reply_text,
)

__all__ = ["ACCEPTED_VERSIONS", "AnthropicDialect"]

ACCEPTED_VERSIONS = frozenset({"2023-06-01", "2023-01-01"})
"""Values of the `anthropic-version` header that the simulator accepts."""

_TOP_LEVEL_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "service_tier",
        "container",
        "mcp_servers",
        "context_management",
    }
)
_BLOCK_TYPES = frozenset(
    {
        "text",
        "image",
        "document",
        "tool_use",
        "tool_result",
        "thinking",
        "redacted_thinking",
        "search_result",
    }
)
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_DEFAULT_MESSAGES = {
    400: "Invalid request (simulated).",
    401: "invalid x-api-key",
    403: "Your API key does not have permission to use the specified resource.",
    404: "The requested resource could not be found.",
    413: "Request exceeds the maximum allowed number of bytes.",
    429: "Number of requests has exceeded your rate limit (simulated).",
    500: "Internal server error (simulated).",
    529: "Overloaded",
}


def _error(
    status: int,
    message: str,
    *,
    error_type: str = "invalid_request_error",
    error_code: str | None = None,
    request_id: str = "req_sim_rejected",
) -> Reply:
    error: dict[str, Any] = {"type": error_type, "message": message}
    if error_code is not None:
        # Anthropic reports the reason of some errors, such as a reached spend limit, in
        # error.details.error_code.
        error["details"] = {"error_code": error_code}
    body = {"type": "error", "error": error, "request_id": request_id}
    return json_reply(
        status,
        body,
        headers=(("request-id", request_id),),
        note=f"{status} {error_type}: {message}",
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            block["text"]
            for block in content
            if isinstance(block, dict)
            and block.get("type") == "text"
            and isinstance(block.get("text"), str)
        )
    return ""


def _check_content(where: str, content: Any) -> Reply | None:
    if isinstance(content, str):
        if not content.strip():
            return _error(400, f"{where}: text content blocks must contain non-whitespace text")
        return None
    if not isinstance(content, list) or not content:
        return _error(400, f"{where}: Input should be a valid string or a non-empty list")
    for index, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") not in _BLOCK_TYPES:
            return _error(
                400,
                f"{where}.{index}: Input tag does not match any of the "
                "expected content block types",
            )
        if block["type"] == "text":
            text = block.get("text")
            if not isinstance(text, str) or not text.strip():
                return _error(
                    400,
                    f"{where}.{index}.text: text content blocks must contain non-whitespace text",
                )
    return None


def _check_messages(messages: Any) -> Reply | None:
    if not isinstance(messages, list):
        return _error(400, "messages: Field required")
    if not messages:
        return _error(400, "messages: at least one message is required")
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict):
            return _error(400, f"{where}: Input should be a valid dictionary")
        unknown = sorted(set(message) - {"role", "content"})
        if unknown:
            return _error(400, f"{where}.{unknown[0]}: Extra inputs are not permitted")
        role = message.get("role")
        if role == "system":
            return _error(
                400,
                f'{where}.role: Unexpected role "system". The Messages API '
                'accepts a top-level `system` parameter, not "system" as an '
                "input message role.",
            )
        if role not in ("user", "assistant"):
            return _error(400, f"{where}.role: Input should be 'user' or 'assistant'")
        if "content" not in message:
            return _error(400, f"{where}.content: Field required")
        rejection = _check_content(f"{where}.content", message["content"])
        if rejection is not None:
            return rejection
    return None


def _check_sampling(body: dict[str, Any]) -> Reply | None:
    for name, high in (("temperature", 1.0), ("top_p", 1.0)):
        value = body.get(name)
        if value is not None and (not _is_number(value) or not 0 <= value <= high):
            return _error(400, f"{name}: Input should be a number from 0 to {high:g}")
    top_k = body.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
        return _error(400, "top_k: Input should be an integer greater than or equal to 0")
    stop_sequences = body.get("stop_sequences")
    if stop_sequences is not None and (
        not isinstance(stop_sequences, list) or not all(isinstance(s, str) for s in stop_sequences)
    ):
        return _error(400, "stop_sequences: Input should be a list of strings")
    return None


class AnthropicDialect:
    """Request checks and response bodies of Anthropic messages."""

    name = "anthropic"

    def check(self, request: Incoming, api_key: str | None) -> Reply | None:
        """Return Anthropic's rejection of the request, or None if it is acceptable."""
        if request.method != "POST":
            return _error(405, f"Method {request.method} is not allowed for this endpoint")
        version = request.headers.get("anthropic-version")
        if version is None:
            return _error(400, "anthropic-version: header is required")
        if version not in ACCEPTED_VERSIONS:
            return _error(400, f"anthropic-version: invalid version {version!r}")
        if api_key is not None:
            sent_key = request.headers.get("x-api-key")
            if sent_key is None:
                return _error(
                    401, "x-api-key header is required", error_type="authentication_error"
                )
            if not hmac.compare_digest(sent_key.encode(), api_key.encode()):
                return _error(401, "invalid x-api-key", error_type="authentication_error")
        if request.media_type() != "application/json":
            return _error(400, "content-type: expected application/json")
        try:
            body = request.json()
        except ValueError:
            return _error(400, "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.")

        unknown = sorted(set(body) - _TOP_LEVEL_FIELDS)
        if unknown:
            return _error(400, f"{unknown[0]}: Extra inputs are not permitted")
        if not isinstance(body.get("model"), str) or not body["model"]:
            return _error(400, "model: Field required")
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            return _error(400, "max_tokens: Field required")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            return _error(400, "max_tokens: Input should be an integer greater than or equal to 1")
        rejection = _check_messages(body.get("messages"))
        if rejection is not None:
            return rejection
        system = body.get("system")
        if system is not None and not isinstance(system, str):
            rejection = _check_content("system", system)
            if rejection is not None:
                return rejection
        rejection = _check_sampling(body)
        if rejection is not None:
            return rejection
        if body.get("stream") is True:
            return _error(400, "stream: streaming is not supported by this simulator")
        return None

    def success(self, request: Incoming, behavior: Behavior, request_id: str) -> Reply:
        """Return the `message` object that responds to the request."""
        body = request.json()
        messages = body["messages"]
        user_texts = [_content_text(m["content"]) for m in messages if m["role"] == "user"]
        text, finish = reply_text(
            behavior, user_texts[-1] if user_texts else "", body["max_tokens"]
        )
        input_tokens = count_tokens(_content_text(body.get("system") or "")) + sum(
            count_tokens(_content_text(m["content"])) for m in messages
        )

        content: list[dict[str, Any]] = []
        if text:
            content.append({"type": "text", "text": text})
        if finish == "tool_calls":
            content.append(
                {"type": "tool_use", "id": f"toolu_{request_id}", "name": "lookup", "input": {}}
            )
        message = {
            "id": f"msg_{request_id}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": _STOP_REASONS[finish],
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": count_tokens(text)},
        }
        return json_reply(200, message, headers=(("request-id", request_id),))

    def error(self, behavior: Behavior, request_id: str) -> Reply:
        """Return Anthropic's error response for the behavior's status."""
        status = behavior.status
        if status in (502, 504):
            return gateway_reply(status)
        default_type = _ERROR_TYPES.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        return _error(
            status,
            behavior.message or _DEFAULT_MESSAGES.get(status, f"Simulated error {status}."),
            error_type=behavior.error_type or default_type,
            error_code=behavior.error_code,
            request_id=request_id,
        )

    def malformed(self, request_id: str) -> Reply:
        """Return status 200 with a message cut off in the middle of its JSON."""
        body = b'{"id":"msg_' + request_id.encode() + b'","type":"message","content":[{"ty'
        return Reply(status=200, body=body, headers=(("request-id", request_id),))

    def missing_fields(self, request_id: str) -> Reply:
        """Return status 200 with a message object that has no `content`."""
        return json_reply(
            200,
            {"id": f"msg_{request_id}", "type": "message"},
            headers=(("request-id", request_id),),
        )
