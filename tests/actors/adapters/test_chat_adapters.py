"""OpenAI and Anthropic adapters against a real simulator: request shapes and responses."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from actors.adapters import FailureKind, parse_chat_request
from actors.adapters.anthropic import ANTHROPIC_STOP_REASONS
from actors.adapters.openai import OPENAI_FINISH_REASONS
from tests.actors.adapters.support import (
    API_KEY,
    CHAT_REQUEST,
    anthropic_adapter,
    openai_adapter,
    send,
)
from tpir.simulator import ProviderSimulator

pytestmark = pytest.mark.timeout(30)


def test_openai_request_accepted_by_simulator(simulator: ProviderSimulator) -> None:
    outcome = send(openai_adapter(simulator), CHAT_REQUEST)

    assert outcome.ok
    assert simulator.requests[-1].rejection is None
    assert simulator.requests[-1].path == "/v1/chat/completions"


def test_openai_request_body_shape() -> None:
    adapter = openai_adapter(ProviderSimulator("unstarted"))

    spec = adapter.build_request(CHAT_REQUEST)

    assert spec.method == "POST"
    assert spec.path == "/chat/completions"
    assert spec.json_body == {
        "model": "gpt-4o-mini",
        "messages": CHAT_REQUEST["messages"],
        "max_tokens": 64,
        "temperature": 0.2,
    }
    assert spec.headers["Authorization"] == f"Bearer {API_KEY}"
    assert spec.headers["Content-Type"] == "application/json"


def test_openai_max_completion_tokens_field(simulator: ProviderSimulator) -> None:
    adapter = openai_adapter(simulator, max_tokens_field="max_completion_tokens")

    outcome = send(adapter, CHAT_REQUEST)

    assert outcome.ok
    assert simulator.requests[-1].body["max_completion_tokens"] == 64
    assert "max_tokens" not in simulator.requests[-1].body


def test_openai_request_model_overrides_configured(simulator: ProviderSimulator) -> None:
    outcome = send(openai_adapter(simulator), {**CHAT_REQUEST, "model": "gpt-4.1"})

    assert outcome.ok
    assert outcome.value["model"] == "gpt-4.1"


def test_anthropic_request_accepted_by_simulator(simulator: ProviderSimulator) -> None:
    outcome = send(anthropic_adapter(simulator), CHAT_REQUEST)

    assert outcome.ok
    assert simulator.requests[-1].rejection is None
    assert simulator.requests[-1].path == "/v1/messages"


def test_anthropic_request_moves_system_to_top_level() -> None:
    adapter = anthropic_adapter(ProviderSimulator("unstarted"))
    request = {
        "messages": [
            {"role": "system", "content": "Rule one."},
            {"role": "user", "content": "Hello"},
            {"role": "system", "content": "Rule two."},
        ]
    }

    body = adapter.build_request(request).json_body

    assert body["system"] == "Rule one.\n\nRule two."
    assert body["messages"] == [{"role": "user", "content": "Hello"}]


def test_anthropic_request_headers() -> None:
    adapter = anthropic_adapter(ProviderSimulator("unstarted"))

    headers = adapter.build_request(CHAT_REQUEST).headers

    assert headers["x-api-key"] == API_KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["content-type"] == "application/json"
    assert "Authorization" not in headers


def test_anthropic_default_max_tokens_sent(simulator: ProviderSimulator) -> None:
    request = {"messages": [{"role": "user", "content": "Hi"}]}

    outcome = send(anthropic_adapter(simulator, default_max_tokens=321), request)

    assert outcome.ok
    assert simulator.requests[-1].body["max_tokens"] == 321


def test_normalized_responses_equal_in_form(simulator: ProviderSimulator) -> None:
    from_openai = send(openai_adapter(simulator), CHAT_REQUEST)
    from_anthropic = send(anthropic_adapter(simulator), CHAT_REQUEST)

    assert from_openai.ok
    assert from_anthropic.ok
    left, right = from_openai.value, from_anthropic.value
    assert left.keys() == right.keys() == {"text", "finish_reason", "usage", "model", "provider"}
    assert left["usage"].keys() == right["usage"].keys() == {"input_tokens", "output_tokens"}
    assert left["text"] == right["text"]
    assert left["finish_reason"] == right["finish_reason"] == "stop"
    assert left["usage"] == right["usage"]
    assert left["provider"] == "openai"
    assert right["provider"] == "anthropic"
    assert left["model"] == "gpt-4o-mini"
    assert right["model"] == "claude-sonnet-4-5"


@pytest.mark.parametrize("finish_reason", ["stop", "length", "tool_calls", "content_filter"])
@pytest.mark.parametrize("make_adapter", [openai_adapter, anthropic_adapter])
def test_finish_reason_normalized(
    simulator: ProviderSimulator, make_adapter: Callable[..., Any], finish_reason: str
) -> None:
    simulator.set_mode("normal", finish_reason=finish_reason, text="a reply")

    outcome = send(make_adapter(simulator), CHAT_REQUEST)

    assert outcome.ok
    assert outcome.value["finish_reason"] == finish_reason


@pytest.mark.parametrize("make_adapter", [openai_adapter, anthropic_adapter])
def test_truncated_reply_finishes_with_length(
    simulator: ProviderSimulator, make_adapter: Callable[..., Any]
) -> None:
    outcome = send(make_adapter(simulator), {**CHAT_REQUEST, "max_tokens": 2})

    assert outcome.ok
    assert outcome.value["finish_reason"] == "length"
    assert outcome.value["usage"]["output_tokens"] == 2


def test_anthropic_stop_reason_table() -> None:
    assert ANTHROPIC_STOP_REASONS["end_turn"] == "stop"
    assert ANTHROPIC_STOP_REASONS["stop_sequence"] == "stop"
    assert ANTHROPIC_STOP_REASONS["max_tokens"] == "length"
    assert ANTHROPIC_STOP_REASONS["tool_use"] == "tool_calls"


def test_unknown_stop_reason_is_other() -> None:
    adapter = anthropic_adapter(ProviderSimulator("unstarted"))
    body = b'{"type":"message","content":[{"type":"text","text":"x"}],"stop_reason":"pause_turn"}'

    outcome = adapter.parse_response(200, httpx.Headers(), body)

    assert outcome.ok
    assert outcome.value["finish_reason"] == "other"
    assert outcome.value["usage"] == {"input_tokens": None, "output_tokens": None}


def test_openai_function_call_is_tool_calls() -> None:
    assert OPENAI_FINISH_REASONS["function_call"] == "tool_calls"


@pytest.mark.parametrize("make_adapter", [openai_adapter, anthropic_adapter])
def test_wrong_api_key_is_not_retryable(
    simulator: ProviderSimulator, make_adapter: Callable[..., Any]
) -> None:
    adapter = make_adapter(simulator, api_key="sk-wrong")

    outcome = send(adapter, CHAT_REQUEST)

    assert not outcome.ok
    assert outcome.kind is FailureKind.HTTP_STATUS
    assert outcome.status == 401
    assert outcome.retryable is False


def test_openai_wrong_key_error_fields(simulator: ProviderSimulator) -> None:
    outcome = send(openai_adapter(simulator, api_key="sk-wrong"), CHAT_REQUEST)

    assert outcome.error_type == "invalid_request_error"
    assert outcome.error_code == "invalid_api_key"


def test_anthropic_wrong_key_error_fields(simulator: ProviderSimulator) -> None:
    outcome = send(anthropic_adapter(simulator, api_key="sk-wrong"), CHAT_REQUEST)

    assert outcome.error_type == "authentication_error"
    assert outcome.message == "invalid x-api-key"


def test_openai_insufficient_quota_not_retryable(simulator: ProviderSimulator) -> None:
    simulator.set_mode(429, error_type="insufficient_quota", error_code="insufficient_quota")

    outcome = send(openai_adapter(simulator), CHAT_REQUEST)

    assert outcome.status == 429
    assert outcome.retryable is False


def test_anthropic_spend_limit_not_retryable(simulator: ProviderSimulator) -> None:
    simulator.set_mode(429, error_code="enforced_spend_limit_reached")

    outcome = send(anthropic_adapter(simulator), CHAT_REQUEST)

    assert outcome.status == 429
    assert outcome.error_code == "enforced_spend_limit_reached"
    assert outcome.retryable is False


def test_anthropic_overloaded_error_type(simulator: ProviderSimulator) -> None:
    simulator.set_mode(529)

    outcome = send(anthropic_adapter(simulator), CHAT_REQUEST)

    assert outcome.status == 529
    assert outcome.error_type == "overloaded_error"
    assert outcome.retryable is True


def test_anthropic_request_id_parsed(simulator: ProviderSimulator) -> None:
    simulator.set_mode(500)

    outcome = send(anthropic_adapter(simulator), CHAT_REQUEST)

    assert outcome.request_id is not None
    assert outcome.request_id.startswith("req_sim_")


@pytest.mark.parametrize(
    ("request_body", "field"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": "  "}]}, "messages[0].content"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages"),
        ({**CHAT_REQUEST, "temperature": 1.5}, "temperature"),
        ({**CHAT_REQUEST, "max_tokens": 0}, "max_tokens"),
        ({**CHAT_REQUEST, "max_tokens": True}, "max_tokens"),
        ({**CHAT_REQUEST, "stream": True}, "request"),
        ({**CHAT_REQUEST, "model": ""}, "model"),
    ],
)
def test_chat_request_invalid_names_field(request_body: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(field)}:"):
        parse_chat_request(request_body)


@pytest.mark.parametrize("make_adapter", [openai_adapter, anthropic_adapter])
def test_invalid_chat_request_not_sent(
    simulator: ProviderSimulator, make_adapter: Callable[..., Any]
) -> None:
    outcome = send(make_adapter(simulator), {"messages": []})

    assert outcome.kind is FailureKind.INVALID_REQUEST
    assert outcome.may_have_reached_provider is False
    assert outcome.retryable is False
    assert simulator.count() == 0


def test_missing_model_not_sent(simulator: ProviderSimulator) -> None:
    outcome = send(openai_adapter(simulator, model=None), CHAT_REQUEST)

    assert outcome.kind is FailureKind.INVALID_REQUEST
    assert "model" in outcome.message
    assert simulator.count() == 0
