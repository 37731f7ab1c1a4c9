"""Each failure mode of a real simulator, classified by each adapter."""

from __future__ import annotations

import asyncio
import email.utils
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from actors.adapters import Adapter, FailureKind, HttpAdapter, classify_exception
from tests.actors.adapters.support import (
    CHAT_REQUEST,
    anthropic_adapter,
    http_adapter,
    openai_adapter,
    request_for,
    send,
)
from tpir.simulator import ProviderSimulator

pytestmark = pytest.mark.timeout(30)

ALL_ADAPTERS = [openai_adapter, anthropic_adapter, http_adapter]
LLM_ADAPTERS = [openai_adapter, anthropic_adapter]
MakeAdapter = Callable[..., Adapter]


@pytest.mark.parametrize("make_adapter", ALL_ADAPTERS)
@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (502, True), (503, True), (504, True), (529, True), (400, False), (404, False)],
)
def test_error_status_classified(
    simulator: ProviderSimulator, make_adapter: MakeAdapter, status: int, retryable: bool
) -> None:
    simulator.set_mode(status)
    adapter = make_adapter(simulator)

    outcome = send(adapter, request_for(adapter))

    assert not outcome.ok
    assert outcome.kind is FailureKind.HTTP_STATUS
    assert outcome.status == status
    assert outcome.retryable is retryable
    assert outcome.may_have_reached_provider is True


@pytest.mark.parametrize("make_adapter", ALL_ADAPTERS)
def test_rate_limit_retry_after_seconds(
    simulator: ProviderSimulator, make_adapter: MakeAdapter
) -> None:
    simulator.set_mode(429, retry_after=7)
    adapter = make_adapter(simulator)

    outcome = send(adapter, request_for(adapter))

    assert outcome.kind is FailureKind.HTTP_STATUS
    assert outcome.status == 429
    assert outcome.retryable is True
    assert outcome.retry_after == 7.0


def test_rate_limit_retry_after_http_date(simulator: ProviderSimulator) -> None:
    simulator.set_mode(429, retry_after=email.utils.formatdate(time.time() + 120, usegmt=True))

    outcome = send(openai_adapter(simulator), CHAT_REQUEST)

    assert outcome.retry_after is not None
    assert 100 <= outcome.retry_after <= 121


@pytest.mark.parametrize("make_adapter", ALL_ADAPTERS)
def test_malformed_json_is_invalid_response(
    simulator: ProviderSimulator, make_adapter: MakeAdapter
) -> None:
    simulator.set_mode("malformed")
    adapter = make_adapter(simulator)

    outcome = send(adapter, request_for(adapter))

    assert outcome.kind is FailureKind.INVALID_RESPONSE
    assert outcome.status == 200
    assert outcome.retryable is False
    assert outcome.may_have_reached_provider is True


@pytest.mark.parametrize("make_adapter", LLM_ADAPTERS)
def test_missing_fields_is_invalid_response(
    simulator: ProviderSimulator, make_adapter: MakeAdapter
) -> None:
    simulator.set_mode("missing_fields")

    outcome = send(make_adapter(simulator), CHAT_REQUEST)

    assert outcome.kind is FailureKind.INVALID_RESPONSE
    assert outcome.may_have_reached_provider is True


@pytest.mark.parametrize("make_adapter", ALL_ADAPTERS)
def test_slow_beyond_timeout_is_read_timeout(
    simulator: ProviderSimulator, make_adapter: MakeAdapter
) -> None:
    simulator.set_mode("slow", delay=2.0)
    adapter = make_adapter(simulator)

    started = time.monotonic()
    outcome = send(adapter, request_for(adapter), timeout=0.3)
    elapsed = time.monotonic() - started

    assert outcome.kind is FailureKind.READ_TIMEOUT
    assert outcome.may_have_reached_provider is True
    assert outcome.retryable is True
    assert elapsed < 1.5


def test_slow_within_timeout_succeeds(simulator: ProviderSimulator) -> None:
    simulator.set_mode("slow", delay=0.2)

    outcome = send(openai_adapter(simulator), CHAT_REQUEST, timeout=2.0)

    assert outcome.ok


@pytest.mark.parametrize("make_adapter", ALL_ADAPTERS)
def test_hang_is_read_timeout(simulator: ProviderSimulator, make_adapter: MakeAdapter) -> None:
    simulator.set_mode("hang")
    adapter = make_adapter(simulator)

    outcome = send(adapter, request_for(adapter), timeout=0.3)

    assert outcome.kind is FailureKind.READ_TIMEOUT
    assert outcome.may_have_reached_provider is True


@pytest.mark.parametrize("make_adapter", ALL_ADAPTERS)
def test_refused_is_connect_error(simulator: ProviderSimulator, make_adapter: MakeAdapter) -> None:
    simulator.set_mode("refuse")
    adapter = make_adapter(simulator)

    outcome = send(adapter, request_for(adapter))

    assert outcome.kind is FailureKind.CONNECT_ERROR
    assert outcome.may_have_reached_provider is False
    assert outcome.retryable is True


@pytest.mark.parametrize("make_adapter", ALL_ADAPTERS)
def test_close_mid_response_is_dropped(
    simulator: ProviderSimulator, make_adapter: MakeAdapter
) -> None:
    simulator.set_mode("close_mid_response")
    adapter = make_adapter(simulator)

    outcome = send(adapter, request_for(adapter))

    assert outcome.kind is FailureKind.DROPPED_MID_RESPONSE
    assert outcome.may_have_reached_provider is True
    assert outcome.retryable is True


@pytest.fixture
def full_backlog_port() -> Iterator[int]:
    """A port whose listen backlog is full, so that new connects time out.

    On Linux a listener with backlog 0 queues one connection and drops later SYNs.
    """
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(3):
            filler = socket.socket()
            filler.settimeout(0.2)
            fillers.append(filler)
            try:
                filler.connect(("127.0.0.1", port))
            except TimeoutError:
                break
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_full_backlog_is_connect_timeout(full_backlog_port: int) -> None:
    adapter = HttpAdapter(base_url=f"http://127.0.0.1:{full_backlog_port}")

    outcome = send(adapter, {"method": "GET", "path": "/"}, timeout=0.3)

    assert outcome.kind is FailureKind.CONNECT_TIMEOUT
    assert outcome.may_have_reached_provider is False
    assert outcome.retryable is True


def test_idempotency_key_sent_on_every_attempt(simulator: ProviderSimulator) -> None:
    simulator.script([503, 200])
    adapter = openai_adapter(simulator)

    first = send(adapter, CHAT_REQUEST, idempotency_key="order-42")
    second = send(adapter, CHAT_REQUEST, idempotency_key="order-42")

    assert first.status == 503
    assert second.ok
    assert [r.idempotency_key for r in simulator.requests] == ["order-42", "order-42"]


@pytest.mark.parametrize("make_adapter", ALL_ADAPTERS)
def test_idempotency_key_header_name(
    simulator: ProviderSimulator, make_adapter: MakeAdapter
) -> None:
    adapter = make_adapter(simulator)

    send(adapter, request_for(adapter), idempotency_key="key-1")

    assert simulator.requests[-1].headers["idempotency-key"] == "key-1"


def test_no_idempotency_key_by_default(simulator: ProviderSimulator) -> None:
    send(anthropic_adapter(simulator), CHAT_REQUEST)

    assert simulator.requests[-1].idempotency_key is None


def test_idempotency_key_with_line_break_not_sent(simulator: ProviderSimulator) -> None:
    outcome = send(openai_adapter(simulator), CHAT_REQUEST, idempotency_key="a\r\nX-Evil: 1")

    assert outcome.kind is FailureKind.INVALID_REQUEST
    assert simulator.count() == 0


def test_response_over_limit_is_invalid_response(simulator: ProviderSimulator) -> None:
    adapter = http_adapter(simulator, max_response_bytes=16)

    outcome = send(adapter, {"method": "GET", "path": "/big"})

    assert outcome.kind is FailureKind.INVALID_RESPONSE
    assert "max_response_bytes" in outcome.message


def test_cancellation_propagates(simulator: ProviderSimulator) -> None:
    simulator.set_mode("hang")
    adapter = openai_adapter(simulator)

    async def run() -> BaseException | None:
        async with httpx.AsyncClient() as client:
            task = asyncio.create_task(adapter.send(client, CHAT_REQUEST, timeout=10.0))
            await asyncio.sleep(0.2)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError as exc:
                return exc
            return None

    cancelled = asyncio.run(run())

    assert isinstance(cancelled, asyncio.CancelledError)
    failure = classify_exception(cancelled, provider="openai")
    assert failure is not None
    assert failure.kind is FailureKind.CANCELLED
    assert failure.retryable is False


def test_recovery_after_refuse_succeeds(simulator: ProviderSimulator) -> None:
    adapter = openai_adapter(simulator)
    simulator.set_mode("refuse")
    refused = send(adapter, CHAT_REQUEST)

    simulator.recover()
    recovered = send(adapter, CHAT_REQUEST)

    assert refused.kind is FailureKind.CONNECT_ERROR
    assert recovered.ok


def test_pooled_connection_after_refuse_is_connect_error(simulator: ProviderSimulator) -> None:
    adapter = openai_adapter(simulator)

    async def run() -> tuple[Any, Any]:
        async with httpx.AsyncClient() as client:
            first = await adapter.send(client, CHAT_REQUEST, timeout=2.0)
            simulator.set_mode("refuse")
            second = await adapter.send(client, CHAT_REQUEST, timeout=2.0)
            return first, second

    first, second = asyncio.run(run())

    assert first.ok
    assert second.kind is FailureKind.CONNECT_ERROR
