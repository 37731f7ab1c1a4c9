"""API keys never appear in logs, reprs or the simulator's records."""

from __future__ import annotations

import logging

import pytest

from actors.adapters import AnthropicAdapter, OpenAIAdapter
from tests.actors.adapters.support import (
    API_KEY,
    CHAT_REQUEST,
    anthropic_adapter,
    http_adapter,
    openai_adapter,
    send,
)
from tpir.simulator import ProviderSimulator

pytestmark = pytest.mark.timeout(30)


def test_api_key_absent_from_logs(
    simulator: ProviderSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for make_adapter in (openai_adapter, anthropic_adapter):
        send(make_adapter(simulator), CHAT_REQUEST)
        send(make_adapter(simulator, api_key=API_KEY + "-wrong"), CHAT_REQUEST)
    simulator.set_mode(503)
    send(openai_adapter(simulator), CHAT_REQUEST)
    send(http_adapter(simulator, api_key=API_KEY), {"method": "GET", "path": "/x"})

    assert len(caplog.records) > 0
    assert API_KEY not in caplog.text


def test_api_key_masked_in_simulator_records(simulator: ProviderSimulator) -> None:
    send(openai_adapter(simulator), CHAT_REQUEST)
    send(anthropic_adapter(simulator), CHAT_REQUEST)

    openai_record, anthropic_record = simulator.requests

    assert openai_record.headers["authorization"] == "Bearer ***"
    assert anthropic_record.headers["x-api-key"] == "***"
    assert API_KEY not in repr(simulator.requests)
    assert API_KEY not in str([r.headers for r in simulator.requests])


def test_api_key_absent_from_reprs() -> None:
    openai = OpenAIAdapter(base_url="http://127.0.0.1:9/v1", api_key=API_KEY, model="m")
    anthropic = AnthropicAdapter(base_url="http://127.0.0.1:9/v1", api_key=API_KEY, model="m")

    texts = [
        repr(openai),
        repr(anthropic),
        repr(openai.build_request(CHAT_REQUEST)),
        repr(anthropic.build_request(CHAT_REQUEST)),
    ]

    for text in texts:
        assert API_KEY not in text


def test_api_key_absent_from_failures(simulator: ProviderSimulator) -> None:
    outcome = send(openai_adapter(simulator, api_key=API_KEY + "-wrong"), CHAT_REQUEST)

    assert outcome.status == 401
    assert API_KEY not in repr(outcome)
