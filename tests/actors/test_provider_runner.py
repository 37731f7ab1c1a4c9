"""The provider actor's loop thread, completion pipe and attempt runner, on a real simulator."""

from __future__ import annotations

import asyncio
import select
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from actors.adapters import OpenAIAdapter, Outcome
from actors.provider import AttemptRunner, CompletionChannel, Finished, LoopThread
from tpir.simulator import ProviderSimulator

pytestmark = pytest.mark.timeout(30)

API_KEY = "sk-runner-test-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
CHAT_REQUEST: dict[str, Any] = {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 16}


class RaisingAdapter(OpenAIAdapter):
    """An OpenAI adapter with a parsing bug: every response makes it raise KeyError."""

    def parse_response(self, status: int, headers: httpx.Headers, body: bytes) -> Outcome:
        raise KeyError("choices")


@pytest.fixture
def simulator() -> Iterator[ProviderSimulator]:
    sim = ProviderSimulator("runner-tests", api_key=API_KEY).start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def runner(simulator: ProviderSimulator) -> Iterator[AttemptRunner]:
    adapter = OpenAIAdapter(
        base_url=simulator.api_url, name="openai", api_key=API_KEY, model="gpt-4o-mini"
    )
    attempt_runner = AttemptRunner(adapter, max_connections=32)
    attempt_runner.start()
    try:
        yield attempt_runner
    finally:
        assert attempt_runner.close(1.0)
        assert not _loop_threads_alive()


def _loop_threads_alive() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("provider-")]


def _wait_finished(runner: AttemptRunner, count: int, timeout: float = 10.0) -> list[Finished]:
    """Collect ``count`` finished attempts by watching the runner's descriptor like the actor."""
    finished: list[Finished] = []
    deadline = time.monotonic() + timeout
    while len(finished) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{len(finished)} of {count} attempts finished in {timeout} s")
        readable, _, _ = select.select([runner.fileno()], [], [], remaining)
        if readable:
            finished.extend(runner.drain())
    return finished


def test_completion_channel_post_wakes_select():
    channel: CompletionChannel[int] = CompletionChannel()
    try:
        poster = threading.Timer(0.05, channel.post, args=(7,))
        poster.start()
        readable, _, _ = select.select([channel.fileno()], [], [], 2.0)
        poster.join()
        assert readable == [channel.fileno()]
        assert channel.drain() == [7]
    finally:
        channel.close()


def test_completion_channel_drain_consumes_wakeups():
    channel: CompletionChannel[int] = CompletionChannel()
    try:
        for item in range(3):
            channel.post(item)
        assert channel.drain() == [0, 1, 2]
        readable, _, _ = select.select([channel.fileno()], [], [], 0.0)
        assert readable == []
    finally:
        channel.close()


def test_completion_channel_post_after_close_is_dropped():
    channel: CompletionChannel[int] = CompletionChannel()
    channel.close()
    channel.post(1)
    assert channel.drain() == []


def test_loop_thread_stop_cancels_sleeping_task():
    loop = LoopThread("provider-loop-test")
    loop.start()
    future = loop.submit(asyncio.sleep(30))
    started = time.monotonic()
    ended = loop.stop(1.0)
    elapsed = time.monotonic() - started
    assert ended
    assert future.cancelled()
    assert elapsed < 1.0


def test_loop_thread_submit_after_stop_raises():
    loop = LoopThread("provider-loop-test")
    loop.start()
    loop.stop(1.0)
    coroutine = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="is not running"):
        loop.submit(coroutine)


def test_runner_success_returns_normalized_value(runner):
    token = runner.submit(CHAT_REQUEST, timeout=2.0)
    [finished] = _wait_finished(runner, 1)
    assert finished.token == token
    assert finished.outcome is not None
    assert finished.outcome.ok
    assert finished.outcome.value["text"] == "Simulated reply to: ping"
    assert finished.error is None
    assert runner.in_flight == 0


def test_runner_attempts_run_concurrently(runner, simulator):
    simulator.set_mode("slow", delay=0.5)
    started = time.monotonic()
    for _ in range(20):
        runner.submit(CHAT_REQUEST, timeout=5.0)
    assert runner.in_flight == 20
    finished = _wait_finished(runner, 20)
    elapsed = time.monotonic() - started
    assert all(item.outcome is not None and item.outcome.ok for item in finished)
    assert elapsed < 2.5


def test_runner_cancel_drops_result(runner, simulator):
    simulator.set_mode("hang")
    token = runner.submit(CHAT_REQUEST, timeout=10.0)
    assert simulator.wait_for_count(1, timeout=5.0)
    assert runner.cancel(token)
    assert runner.in_flight == 0
    time.sleep(0.3)
    assert runner.drain() == []


def test_runner_cancel_unknown_token_returns_false(runner):
    assert not runner.cancel(12345)


def test_runner_adapter_exception_becomes_error(simulator):
    adapter = RaisingAdapter(base_url=simulator.api_url, api_key=API_KEY, model="gpt-4o-mini")
    attempt_runner = AttemptRunner(adapter)
    attempt_runner.start()
    try:
        attempt_runner.submit(CHAT_REQUEST, timeout=2.0)
        [finished] = _wait_finished(attempt_runner, 1)
        assert finished.outcome is None
        assert finished.error == "KeyError: 'choices'"
    finally:
        assert attempt_runner.close(1.0)


def test_runner_close_with_hanging_attempts_is_bounded(simulator):
    simulator.set_mode("hang")
    adapter = OpenAIAdapter(base_url=simulator.api_url, api_key=API_KEY, model="gpt-4o-mini")
    attempt_runner = AttemptRunner(adapter)
    attempt_runner.start()
    for _ in range(5):
        attempt_runner.submit(CHAT_REQUEST, timeout=30.0)
    assert simulator.wait_for_count(5, timeout=5.0)
    started = time.monotonic()
    ended = attempt_runner.close(1.0)
    elapsed = time.monotonic() - started
    assert ended
    assert elapsed < 1.0
    assert attempt_runner.in_flight == 0
    assert not _loop_threads_alive()


def test_runner_submit_after_close_raises(simulator):
    adapter = OpenAIAdapter(base_url=simulator.api_url, model="gpt-4o-mini")
    attempt_runner = AttemptRunner(adapter)
    attempt_runner.start()
    attempt_runner.close(1.0)
    with pytest.raises(RuntimeError, match="is not running"):
        attempt_runner.submit(CHAT_REQUEST, timeout=1.0)


@pytest.mark.parametrize("value", [0, 10_001, True, 2.5])
def test_runner_rejects_invalid_max_connections(simulator, value):
    adapter = OpenAIAdapter(base_url=simulator.api_url, model="gpt-4o-mini")
    with pytest.raises(ValueError, match="max_connections: invalid value"):
        AttemptRunner(adapter, max_connections=value)
