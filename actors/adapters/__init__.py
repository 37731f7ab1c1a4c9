"""Provider adapters: translate normalized requests to provider HTTP calls and back.

`create_adapter(kind, ...)` builds the adapter for a configured provider kind. Every
adapter's `send(client, request, timeout=..., idempotency_key=...)` returns a `Success` or
a classified `Failure`.
"""

from __future__ import annotations

from typing import Any

from actors.adapters.anthropic import ANTHROPIC_VERSION, AnthropicAdapter
from actors.adapters.base import (
    SECRET_HEADER_NAMES,
    Adapter,
    Outcome,
    RequestSpec,
    Success,
    mask_headers,
)
from actors.adapters.chat import (
    FINISH_REASONS,
    ChatMessage,
    ChatRequest,
    parse_chat_request,
)
from actors.adapters.errors import (
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
from actors.adapters.http import HttpAdapter
from actors.adapters.openai import OpenAIAdapter

__all__ = [
    "ADAPTER_KINDS",
    "ANTHROPIC_VERSION",
    "FINISH_REASONS",
    "RETRYABLE_KINDS",
    "RETRYABLE_STATUSES",
    "SECRET_HEADER_NAMES",
    "Adapter",
    "AdapterError",
    "AnthropicAdapter",
    "ChatMessage",
    "ChatRequest",
    "Failure",
    "FailureKind",
    "HttpAdapter",
    "OpenAIAdapter",
    "Outcome",
    "Phase",
    "RequestSpec",
    "Success",
    "classify_exception",
    "create_adapter",
    "is_retryable_status",
    "mask_headers",
    "parse_chat_request",
    "parse_retry_after",
]

ADAPTER_KINDS: dict[str, type[Adapter]] = {
    "openai": OpenAIAdapter,
    "anthropic": AnthropicAdapter,
    "http": HttpAdapter,
}
"""Adapter class for each provider kind of the configuration."""


def create_adapter(kind: str, **options: Any) -> Adapter:
    """Build the adapter for a provider `kind` (openai, anthropic or http).

    `options` are the keyword arguments of that adapter class, for example `base_url`,
    `name`, `api_key`, `model` and `headers`. `model` is ignored for the http kind, so that
    one provider configuration can be passed for every kind.
    """
    try:
        adapter_class = ADAPTER_KINDS[kind]
    except KeyError:
        raise ValueError(
            f"kind: invalid value {kind!r}; expected one of {', '.join(ADAPTER_KINDS)}"
        ) from None
    if adapter_class is HttpAdapter:
        options.pop("model", None)
    return adapter_class(**options)
