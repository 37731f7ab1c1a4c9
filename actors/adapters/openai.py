"""Adapter for the OpenAI chat completions API and servers compatible with it.

Sends `POST {base_url}/chat/completions` with `Authorization: Bearer <api_key>`, where
`base_url` ends in `/v1` (for example `https://api.openai.com/v1`). Error bodies have the
form `{"error": {"message", "type", "param", "code"}}`.
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

__all__ = ["OPENAI_FINISH_REASONS", "OpenAIAdapter"]

logger = logging.getLogger(__name__)

OPENAI_FINISH_REASONS: Mapping[str, str] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
"""OpenAI `finish_reason` values and their normalized names. Others become "other"."""

# A 429 with one of these types or codes means that the account has no quota or budget
# left, which waiting does not fix.
_QUOTA_ERRORS = frozenset(
    {
        "insufficient_quota",
        "credit_balance_exhausted",
        "organization_spend_limit_exceeded",
        "project_spend_limit_exceeded",
        "organization_usage_limit_exceeded",
    }
)

_MAX_MESSAGE_LENGTH = 500


class OpenAIAdapter(Adapter):
    """Adapter for OpenAI chat completions.

    Options, besides those of `Adapter`:
    - `model`: model used when the request names none, for example "gpt-4o-mini".
      Default None, which makes a request without `model` invalid.
    - `default_max_tokens`: `max_tokens` sent when the request has none, 1 to 1,000,000.
      Default None (the field is left out and the model's own limit applies).
    - `max_tokens_field`: request field that carries `max_tokens`, either "max_tokens"
      (default, accepted by most OpenAI-compatible servers) or "max_completion_tokens"
      (required by OpenAI's reasoning models).
    """

    kind = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str | None = None,
        default_max_tokens: int | None = None,
        max_tokens_field: str = "max_tokens",
        **options: Any,
    ) -> None:
        super().__init__(base_url=base_url, **options)
        self.model = validate_model(model)
        self.default_max_tokens = validate_max_tokens(default_max_tokens, "default_max_tokens")
        if max_tokens_field not in ("max_tokens", "max_completion_tokens"):
            raise ValueError(
                f"max_tokens_field: invalid value {max_tokens_field!r}; expected "
                "'max_tokens' or 'max_completion_tokens'"
            )
        self.max_tokens_field = max_tokens_field

    def build_request(
        self, request: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> RequestSpec:
        """Translate a normalized chat request into a chat completions request."""
        chat = parse_chat_request(request)
        model = chat.model or self.model
        if model is None:
            raise ValueError(
                f"model: missing; set it in the request or configure a model for provider "
                f"{self.name!r}"
            )

        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": m.role, "content": m.content} for m in chat.messages],
        }
        max_tokens = chat.max_tokens if chat.max_tokens is not None else self.default_max_tokens
        if max_tokens is not None:
            body[self.max_tokens_field] = max_tokens
        if chat.temperature is not None:
            body["temperature"] = chat.temperature

        headers = self.common_headers(idempotency_key)
        headers["Content-Type"] = "application/json"
        headers["Accept"] = "application/json"
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key}"
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return RequestSpec(
            method="POST",
            path="/chat/completions",
            headers=headers,
            content=content,
            json_body=body,
        )

    def parse_response(self, status: int, headers: httpx.Headers, body: bytes) -> Outcome:
        """Translate a chat completions response into a normalized response or a failure."""
        request_id = headers.get("x-request-id")
        if not 200 <= status < 300:
            return self._error_failure(status, headers, body, request_id)

        try:
            data = decode_json_body(body)
        except ValueError as exc:
            return self.invalid_response(str(exc), status=status, request_id=request_id)
        if not isinstance(data, dict):
            return self.invalid_response(
                "the response body is not a JSON object", status=status, request_id=request_id
            )

        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return self.invalid_response(
                "choices is missing or empty", status=status, request_id=request_id
            )
        message = choices[0].get("message")
        if not isinstance(message, dict) or "content" not in message:
            return self.invalid_response(
                "choices[0].message.content is missing", status=status, request_id=request_id
            )
        content = message["content"]
        if content is not None and not isinstance(content, str):
            return self.invalid_response(
                "choices[0].message.content is neither a string nor null",
                status=status,
                request_id=request_id,
            )

        finish = choices[0].get("finish_reason")
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        value = normalized_response(
            text=content or "",
            finish_reason=OPENAI_FINISH_REASONS.get(finish, "other"),
            input_tokens=optional_count(usage.get("prompt_tokens")),
            output_tokens=optional_count(usage.get("completion_tokens")),
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
            error_code = optional_text(error.get("code"))
            text = optional_text(error.get("message"))
            if text is not None:
                message = text[:_MAX_MESSAGE_LENGTH]

        retryable: bool | None = None
        if status == 429 and ({error_type, error_code} & _QUOTA_ERRORS):
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
