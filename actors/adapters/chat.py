"""The normalized chat request and response shared by the OpenAI and Anthropic adapters.

A normalized request is a mapping with these keys:

- `messages` (required): a non-empty list of `{"role", "content"}` mappings. `role` is
  `system`, `user` or `assistant`. `content` is a string with at least one
  non-whitespace character, because Anthropic rejects blank text. At least one message
  must not be a system message.
- `max_tokens` (optional): maximum number of tokens to generate, an integer from 1 to
  1,000,000. The Anthropic adapter fills in its default when it is missing.
- `temperature` (optional): a number from 0 to 1, the range that both providers accept,
  so that a request can fail over between them unchanged.
- `model` (optional): overrides the provider's configured model. Leave it out for
  requests that may fail over, because model names differ between providers.

A normalized response is `{"text", "finish_reason", "usage": {"input_tokens",
"output_tokens"}, "model", "provider"}`. `finish_reason` is one of `FINISH_REASONS`.
Token counts are None when the provider did not report usage.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CHAT_ROLES",
    "FINISH_REASONS",
    "MAX_TOKENS_LIMIT",
    "ChatMessage",
    "ChatRequest",
    "normalized_response",
    "parse_chat_request",
    "validate_max_tokens",
    "validate_model",
]

CHAT_ROLES = ("system", "user", "assistant")
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "other")
MAX_TOKENS_LIMIT = 1_000_000

_REQUEST_KEYS = frozenset({"messages", "max_tokens", "temperature", "model"})


@dataclass(frozen=True)
class ChatMessage:
    """One message of a conversation."""

    role: str
    content: str


@dataclass(frozen=True)
class ChatRequest:
    """A validated normalized chat request."""

    messages: tuple[ChatMessage, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    model: str | None = None


def _parse_message(index: int, message: Any) -> ChatMessage:
    where = f"messages[{index}]"
    if not isinstance(message, Mapping):
        raise ValueError(f"{where}: expected a mapping with role and content")
    unknown = set(message) - {"role", "content"}
    if unknown:
        raise ValueError(
            f"{where}: unknown keys {sorted(map(str, unknown))}; allowed keys are role, content"
        )
    role = message.get("role")
    if role not in CHAT_ROLES:
        raise ValueError(
            f"{where}.role: invalid value {role!r}; expected one of {', '.join(CHAT_ROLES)}"
        )
    content = message.get("content")
    if not isinstance(content, str) or not content.strip():
        raise ValueError(
            f"{where}.content: invalid value {content!r}; expected a string with at least "
            "one non-whitespace character"
        )
    return ChatMessage(role=role, content=content)


def validate_max_tokens(value: Any, field: str = "max_tokens") -> int | None:
    """Return `value` if it is None or a valid token limit, else raise ValueError."""
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOKENS_LIMIT
    ):
        raise ValueError(
            f"{field}: invalid value {value!r}; expected an integer from 1 to {MAX_TOKENS_LIMIT}"
        )
    return value


def validate_model(value: Any, field: str = "model") -> str | None:
    """Return `value` if it is None or a non-empty model name, else raise ValueError."""
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ValueError(f"{field}: invalid value {value!r}; expected a non-empty string")
    return value


def parse_chat_request(request: Mapping[str, Any]) -> ChatRequest:
    """Validate a normalized chat request. Raises ValueError naming the invalid field."""
    if not isinstance(request, Mapping):
        raise ValueError(f"request: expected a mapping, got {type(request).__name__}")
    unknown = set(request) - _REQUEST_KEYS
    if unknown:
        raise ValueError(
            f"request: unknown keys {sorted(map(str, unknown))}; allowed keys are "
            f"{', '.join(sorted(_REQUEST_KEYS))}"
        )

    raw_messages = request.get("messages")
    if not isinstance(raw_messages, list | tuple) or not raw_messages:
        raise ValueError("messages: missing or empty; expected a non-empty list of messages")
    messages = tuple(_parse_message(i, m) for i, m in enumerate(raw_messages))
    if all(m.role == "system" for m in messages):
        raise ValueError("messages: expected at least one user or assistant message")

    max_tokens = validate_max_tokens(request.get("max_tokens"))

    temperature = request.get("temperature")
    if temperature is not None:
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, int | float)
            or not math.isfinite(temperature)
            or not 0 <= temperature <= 1
        ):
            raise ValueError(
                f"temperature: invalid value {temperature!r}; expected a number from 0 to 1"
            )
        temperature = float(temperature)

    model = validate_model(request.get("model"))

    return ChatRequest(
        messages=messages, max_tokens=max_tokens, temperature=temperature, model=model
    )


def normalized_response(
    *,
    text: str,
    finish_reason: str,
    input_tokens: int | None,
    output_tokens: int | None,
    model: str | None,
    provider: str,
) -> dict[str, Any]:
    """Build a normalized chat response, the value of a successful chat `Success`."""
    return {
        "text": text,
        "finish_reason": finish_reason,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        "model": model,
        "provider": provider,
    }
