"""The OpenAI chat completions dialect of the simulator (`POST /v1/chat/completions`).

`check` rejects what the real API rejects in the fields that clients commonly send. These
are unknown top-level fields, a missing or empty `model` or `messages`, unknown roles or
message fields, and content of the wrong type. Out-of-range `max_tokens`, `temperature`,
`top_p` and `n` are rejected too. Error bodies have the form
`{"error": {"message", "type", "param", "code"}}`.

NOTE: the rules are a hand-written subset of OpenAI's documented request format, not its
schema. A request that passes here can still fail at OpenAI, and the error messages only
resemble OpenAI's. `stream: true` is rejected because the simulator does not stream.
"""

from __future__ import annotations

import hmac
import math
import time
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

__all__ = ["OpenAIDialect"]

_TOP_LEVEL_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "n",
        "stream",
        "stream_options",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "user",
        "seed",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "functions",
        "function_call",
        "service_tier",
        "store",
        "metadata",
        "reasoning_effort",
        "modalities",
        "audio",
        "prediction",
        "web_search_options",
        "verbosity",
        "safety_identifier",
        "prompt_cache_key",
    }
)
_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_MESSAGE_FIELDS = frozenset(
    {"role", "content", "name", "tool_calls", "tool_call_id", "function_call", "refusal", "audio"}
)
_FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
}
_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}
_DEFAULT_MESSAGES = {
    400: "Invalid request (simulated).",
    401: "Incorrect API key provided.",
    403: "Country, region, or territory not supported.",
    404: "The model does not exist or you do not have access to it.",
    429: "Rate limit reached for requests (simulated).",
    500: "The server had an error while processing your request (simulated).",
    503: "The engine is currently overloaded, please try again later (simulated).",
}


def _error(
    status: int,
    message: str,
    *,
    error_type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    request_id: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> Reply:
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    if request_id is not None:
        headers = (*headers, ("x-request-id", request_id))
    return json_reply(status, body, headers=headers, note=f"{status} {error_type}: {message}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _missing(param: str) -> Reply:
    return _error(
        400,
        f"Missing required parameter: '{param}'.",
        param=param,
        code="missing_required_parameter",
    )


def _invalid_type(param: str, expected: str) -> Reply:
    return _error(
        400, f"Invalid type for '{param}': expected {expected}.", param=param, code="invalid_type"
    )


def _check_message(index: int, message: Any) -> Reply | None:
    param = f"messages[{index}]"
    if not isinstance(message, dict):
        return _invalid_type(param, "an object")

    unknown = sorted(set(message) - _MESSAGE_FIELDS)
    if unknown:
        return _error(
            400,
            f"Unrecognized message field '{unknown[0]}' in '{param}'.",
            param=f"{param}.{unknown[0]}",
            code="unknown_parameter",
        )

    role = message.get("role")
    if role not in _ROLES:
        supported = ", ".join(f"'{r}'" for r in _ROLES)
        return _error(
            400,
            f"Invalid value: {role!r}. Supported values are: {supported}.",
            param=f"{param}.role",
            code="invalid_value",
        )

    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        return _missing(f"{param}.tool_call_id")
    return _check_content(param, role, message)


def _check_content(param: str, role: str, message: dict[str, Any]) -> Reply | None:
    if "content" not in message:
        has_call = "tool_calls" in message or "function_call" in message
        return None if role == "assistant" and has_call else _missing(f"{param}.content")

    content = message["content"]
    if content is None:
        # Only an assistant message that calls a tool may have null content.
        if role == "assistant" and ("tool_calls" in message or "function_call" in message):
            return None
        return _invalid_type(f"{param}.content", "a string or an array, got null")

    if isinstance(content, str):
        return None
    if not isinstance(content, list):
        return _invalid_type(f"{param}.content", "a string or an array")
    for part_index, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            return _invalid_type(f"{param}.content[{part_index}]", "an object with a 'type'")
    return None


def _check_range(
    body: dict[str, Any], name: str, low: float, high: float | None, integer: bool
) -> Reply | None:
    if name not in body or body[name] is None:
        return None
    value = body[name]
    kind = "integer" if integer else "decimal"
    if not _is_number(value) or (integer and not isinstance(value, int)):
        return _error(
            400,
            f"Invalid type for '{name}': expected {'an integer' if integer else 'a number'}.",
            param=name,
            code="invalid_type",
        )
    if value < low:
        return _error(
            400,
            f"Invalid '{name}': {kind} below minimum value. Expected a value "
            f">= {low:g}, but got {value} instead.",
            param=name,
            code=f"{kind}_below_min_value",
        )
    if high is not None and value > high:
        return _error(
            400,
            f"Invalid '{name}': {kind} above maximum value. Expected a value "
            f"<= {high:g}, but got {value} instead.",
            param=name,
            code=f"{kind}_above_max_value",
        )
    return None


class OpenAIDialect:
    """Request checks and response bodies of OpenAI chat completions."""

    name = "openai"

    def check(self, request: Incoming, api_key: str | None) -> Reply | None:
        """Return OpenAI's rejection of the request, or None if it is acceptable."""
        if request.method != "POST":
            return _error(405, f"Invalid method for URL ({request.method} {request.path}).")
        if api_key is not None:
            authorization = request.headers.get("authorization", "")
            if not authorization.startswith("Bearer "):
                return _error(
                    401,
                    "You didn't provide an API key in an Authorization header using Bearer auth.",
                )
            if not hmac.compare_digest(authorization[7:].encode(), api_key.encode()):
                return _error(401, "Incorrect API key provided.", code="invalid_api_key")
        if request.media_type() != "application/json":
            return _error(400, "The request body must be JSON with Content-Type application/json.")
        try:
            body = request.json()
        except ValueError:
            return _error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return _error(400, "The JSON body of your request must be an object.")

        unknown = sorted(set(body) - _TOP_LEVEL_FIELDS)
        if unknown:
            return _error(
                400,
                f"Unrecognized request argument supplied: {unknown[0]}",
                param=unknown[0],
                code="unknown_parameter",
            )
        if not isinstance(body.get("model"), str) or not body["model"]:
            return _error(400, "you must provide a model parameter", param="model")
        messages = body.get("messages")
        if not isinstance(messages, list):
            return _error(
                400,
                "Missing required parameter: 'messages'.",
                param="messages",
                code="missing_required_parameter",
            )
        if not messages:
            return _error(
                400,
                "Invalid 'messages': empty array. Expected an array with "
                "minimum length 1, but got an empty array instead.",
                param="messages",
                code="empty_array",
            )
        for index, message in enumerate(messages):
            rejection = _check_message(index, message)
            if rejection is not None:
                return rejection

        for name, low, high, integer in (
            ("max_tokens", 1, None, True),
            ("max_completion_tokens", 1, None, True),
            ("temperature", 0, 2, False),
            ("top_p", 0, 1, False),
            ("n", 1, 128, True),
        ):
            rejection = _check_range(body, name, low, high, integer)
            if rejection is not None:
                return rejection
        if body.get("stream") is True:
            return _error(400, "stream=true is not supported by this simulator.", param="stream")
        return None

    def success(self, request: Incoming, behavior: Behavior, request_id: str) -> Reply:
        """Return the `chat.completion` object that responds to the request."""
        body = request.json()
        messages = body["messages"]
        user_texts = [_content_text(m.get("content")) for m in messages if m["role"] == "user"]
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        text, finish = reply_text(behavior, user_texts[-1] if user_texts else "", max_tokens)
        input_tokens = sum(count_tokens(_content_text(m.get("content"))) for m in messages)
        output_tokens = count_tokens(text)

        message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
        if finish == "tool_calls":
            message["tool_calls"] = [
                {
                    "id": f"call_{request_id}",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": "{}"},
                }
            ]
        choices = [
            {
                "index": i,
                "message": message,
                "logprobs": None,
                "finish_reason": _FINISH_REASONS[finish],
            }
            for i in range(body.get("n") or 1)
        ]
        completion = {
            "id": f"chatcmpl-{request_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": choices,
            "usage": {
                "prompt_tokens": input_tokens,
                "completion_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            },
            "system_fingerprint": None,
        }
        return json_reply(200, completion, headers=(("x-request-id", request_id),))

    def error(self, behavior: Behavior, request_id: str) -> Reply:
        """Return OpenAI's error response for the behavior's status."""
        status = behavior.status
        if status in (502, 504):
            return gateway_reply(status)
        default_type, default_code = _ERROR_TYPES.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None)
        )
        return _error(
            status,
            behavior.message or _DEFAULT_MESSAGES.get(status, f"Simulated error {status}."),
            error_type=behavior.error_type or default_type,
            code=behavior.error_code or default_code,
            request_id=request_id,
        )

    def malformed(self, request_id: str) -> Reply:
        """Return status 200 with a completion cut off in the middle of its JSON."""
        body = b'{"id":"chatcmpl-' + request_id.encode() + b'","object":"chat.completion","choi'
        return Reply(status=200, body=body, headers=(("x-request-id", request_id),))

    def missing_fields(self, request_id: str) -> Reply:
        """Return status 200 with a completion object that has no `choices`."""
        return json_reply(
            200,
            {"id": f"chatcmpl-{request_id}", "object": "chat.completion"},
            headers=(("x-request-id", request_id),),
        )
