"""Adapter for the Anthropic Messages API.

Sends `POST {base_url}/messages` with the headers `x-api-key`, `anthropic-version:
2023-06-01` and `content-type: application/json`, where `base_url` ends in `/v1` (for
example `https://api.anthropic.com/v1`). System messages move to the top-level `system`
field because the Messages API accepts only user and assistant turns. Error bodies have the
form `{"type": "error", "error": {"type", "message"}, "request_id"}`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import httpx

from actors.adapters.base import (
    Adapter,
    Outcome,
    RequestSpec,
    Success,
    decode_json_body,
    optional_count,
    optional_text,
)
from actors.adapters.chat import (
    normalized_response,
    parse_chat_request,
    validate_max_tokens,
    validate_model,
)
from actors.adapters.errors import Failure, retry_after_from_headers, status_failure

__all__ = ["ANTHROPIC_STOP_REASONS", "ANTHROPIC_VERSION", "AnthropicAdapter"]

logger = logging.getLogger(__name__)

ANTHROPIC_VERSION = "2023-06-01"
"""Value of the `anthropic-version` header, the API version this adapter speaks."""

ANTHROPIC_STOP_REASONS: Mapping[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
"""Anthropic `stop_reason` values and their normalized names. Others become "other"."""

DEFAULT_MAX_TOKENS = 1024
"""`max_tokens` sent when the request has none, because the Messages API requires it."""

# A 429 with this error_code means that the organization reached its monthly spend limit,
# which waiting does not fix. NOTE: the field name comes from Microsoft's Dev Proxy
# documentation of Anthropic errors, not from Anthropic's own API reference.
_SPEND_LIMIT_CODE = "enforced_spend_limit_reached"

_MAX_MESSAGE_LENGTH = 500


class AnthropicAdapter(Adapter):
    """Adapter for Anthropic messages.

    Options, besides those of `Adapter`:
    - `model`: model used when the request names none, for example "claude-sonnet-4-5".
      Default None, which makes a request without `model` invalid.
    - `default_max_tokens`: `max_tokens` sent when the request has none, 1 to 1,000,000.
      Default 1024.
    - `anthropic_version`: value of the `anthropic-version` header. Default "2023-06-01".
    """

    kind = "anthropic"

    def __init__(
        self,
        *,
        base_url: str,
        model: str | None = None,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        anthropic_version: str = ANTHROPIC_VERSION,
        **options: Any,
    ) -> None:
        super().__init__(base_url=base_url, **options)
        self.model = validate_model(model)
        if default_max_tokens is None:
            raise ValueError(
                "default_max_tokens: invalid value None; the Messages API requires max_tokens"
            )
        self.default_max_tokens = validate_max_tokens(default_max_tokens, "default_max_tokens")
        if not isinstance(anthropic_version, str) or not anthropic_version:
            raise ValueError(
                f"anthropic_version: invalid value {anthropic_version!r}; expected a date "
                "string such as '2023-06-01'"
            )
        self.anthropic_version = anthropic_version

    def build_request(
        self, request: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> RequestSpec:
        """Translate a normalized chat request into a Messages API request."""
        chat = parse_chat_request(request)
        model = chat.model or self.model
        if model is None:
            raise ValueError(
                f"model: missing; set it in the request or configure a model for provider "
                f"{self.name!r}"
            )

        system_parts = [m.content for m in chat.messages if m.role == "system"]
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": chat.max_tokens
            if chat.max_tokens is not None
            else self.default_max_tokens,
            "messages": [
                {"role": m.role, "content": m.content} for m in chat.messages if m.role != "system"
            ],
        }
        if system_parts:
            # The Messages API has a single system prompt, so several system messages
            # are joined in their original order.
            body["system"] = "\n\n".join(system_parts)
        if chat.temperature is not None:
            body["temperature"] = chat.temperature

        headers = self.common_headers(idempotency_key)
        headers["content-type"] = "application/json"
        headers["accept"] = "application/json"
        headers["anthropic-version"] = self.anthropic_version
        if self._api_key is not None:
            headers["x-api-key"] = self._api_key
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return RequestSpec(
            method="POST", path="/messages", headers=headers, content=content, json_body=body
        )

    def parse_response(self, status: int, headers: httpx.Headers, body: bytes) -> Outcome:
        """Translate a Messages API response into a normalized response or a failure."""
        request_id = headers.get("request-id")
        if not 200 <= status < 300:
            return self._error_failure(status, headers, body, request_id)

        try:
            data = decode_json_body(body)
        except ValueError as exc:
            return self.invalid_response(str(exc), status=status, request_id=request_id)
        if not isinstance(data, dict) or data.get("type") != "message":
            return self.invalid_response(
                'the response body is not an object of type "message"',
                status=status,
                request_id=request_id,
            )
        content = data.get("content")
        if not isinstance(content, list):
            return self.invalid_response(
                "content is missing or not a list", status=status, request_id=request_id
            )

        texts = [
            block["text"]
            for block in content
            if isinstance(block, dict)
            and block.get("type") == "text"
            and isinstance(block.get("text"), str)
        ]
        stop_reason = data.get("stop_reason")
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        value = normalized_response(
            text="".join(texts),
            finish_reason=ANTHROPIC_STOP_REASONS.get(stop_reason, "other"),
            input_tokens=optional_count(usage.get("input_tokens")),
            output_tokens=optional_count(usage.get("output_tokens")),
            model=optional_text(data.get("model")),
            provider=self.name,
        )
        return Success(provider=self.name, value=value, status=status, request_id=request_id)

    def _error_failure(
        self, status: int, headers: httpx.Headers, body: bytes, request_id: str | None
    ) -> Failure:
        error_type: str | None = None
        error_code: str | None = None
        message = f"HTTP {status}"
        try:
            data = decode_json_body(body)
        except ValueError:
            data = None
            content_type = headers.get("content-type", "no content type")
            message = f"HTTP {status} with a non-JSON body ({content_type})"

        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            error = data["error"]
            error_type = optional_text(error.get("type"))
            text = optional_text(error.get("message"))
            if text is not None:
                message = text[:_MAX_MESSAGE_LENGTH]
            details = error.get("details")
            if isinstance(details, dict):
                error_code = optional_text(details.get("error_code"))
            if request_id is None:
                request_id = optional_text(data.get("request_id"))

        retryable: bool | None = None
        if status == 429 and error_code == _SPEND_LIMIT_CODE:
            retryable = False
        return status_failure(
            provider=self.name,
            status=status,
            message=message,
            error_type=error_type,
            error_code=error_code,
            retry_after=retry_after_from_headers(headers),
            request_id=request_id,
            retryable=retryable,
        )
