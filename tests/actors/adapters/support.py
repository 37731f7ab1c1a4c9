"""Helpers for the adapter tests: adapters aimed at a simulator and a way to send once."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx

from actors.adapters import Adapter, AnthropicAdapter, HttpAdapter, OpenAIAdapter, Outcome
from tpir.simulator import ProviderSimulator

API_KEY = "sk-test-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
CHAT_REQUEST: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is the capital of France?"},
    ],
    "max_tokens": 64,
    "temperature": 0.2,
}
HTTP_REQUEST: dict[str, Any] = {"method": "POST", "path": "/charges", "body": {"amount": 100}}


def openai_adapter(sim: ProviderSimulator, **options: Any) -> OpenAIAdapter:
    options.setdefault("api_key", API_KEY)
    options.setdefault("model", "gpt-4o-mini")
    return OpenAIAdapter(base_url=sim.api_url, **options)


def anthropic_adapter(sim: ProviderSimulator, **options: Any) -> AnthropicAdapter:
    options.setdefault("api_key", API_KEY)
    options.setdefault("model", "claude-sonnet-4-5")
    return AnthropicAdapter(base_url=sim.api_url, **options)


def http_adapter(sim: ProviderSimulator, **options: Any) -> HttpAdapter:
    return HttpAdapter(base_url=sim.url, **options)


def request_for(adapter: Adapter) -> dict[str, Any]:
    """Return a valid normalized request for the adapter's kind."""
    return HTTP_REQUEST if adapter.kind == "http" else CHAT_REQUEST


def send(
    adapter: Adapter,
    request: Mapping[str, Any],
    *,
    timeout: float = 2.0,
    idempotency_key: str | None = None,
) -> Outcome:
    """Send one attempt with a fresh client and close the client afterwards."""

    async def run() -> Outcome:
        async with httpx.AsyncClient() as client:
            return await adapter.send(
                client, request, timeout=timeout, idempotency_key=idempotency_key
            )

    return asyncio.run(run())
