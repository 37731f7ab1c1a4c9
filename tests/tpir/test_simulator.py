"""The provider simulator: request shape checks, modes, scripts, control and lifecycle.

Every test talks to a real simulator on 127.0.0.1 with a plain httpx client and stops
every simulator, thread and process it started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tpir.simulator import ProviderSimulator

pytestmark = pytest.mark.timeout(30)

KEY = "sk-sim-test-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
OPENAI_BODY: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello there"},
    ],
    "max_tokens": 20,
}
ANTHROPIC_BODY: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 20,
    "system": "Be brief.",
    "messages": [{"role": "user", "content": "Hello there"}],
}
OPENAI_HEADERS = {"Authorization": f"Bearer {KEY}"}
ANTHROPIC_HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}


@pytest.fixture
def sim() -> Iterator[ProviderSimulator]:
    simulator = ProviderSimulator("sim-tests", api_key=KEY).start()
    try:
        yield simulator
    finally:
        simulator.stop()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as http_client:
        yield http_client


def post_openai(client: httpx.Client, sim: ProviderSimulator, body: Any, **kwargs: Any) -> Any:
    headers = kwargs.pop("headers", OPENAI_HEADERS)
    return client.post(f"{sim.url}/v1/chat/completions", json=body, headers=headers, **kwargs)


def post_anthropic(client: httpx.Client, sim: ProviderSimulator, body: Any, **kwargs: Any) -> Any:
    headers = kwargs.pop("headers", ANTHROPIC_HEADERS)
    return client.post(f"{sim.url}/v1/messages", json=body, headers=headers, **kwargs)


# Request shapes


def test_openai_valid_request_completed(sim: ProviderSimulator, client: httpx.Client) -> None:
    response = post_openai(client, sim, OPENAI_BODY)

    body = response.json()
    assert response.status_code == 200
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "Simulated reply to: Hello there"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}
    assert response.headers["x-request-id"].startswith("req_sim_")


def test_anthropic_valid_request_completed(sim: ProviderSimulator, client: httpx.Client) -> None:
    response = post_anthropic(client, sim, ANTHROPIC_BODY)

    body = response.json()
    assert response.status_code == 200
    assert body["type"] == "message"
    assert body["content"] == [{"type": "text", "text": "Simulated reply to: Hello there"}]
    assert body["stop_reason"] == "end_turn"
    assert body["usage"] == {"input_tokens": 4, "output_tokens": 5}
    assert response.headers["request-id"].startswith("req_sim_")


@pytest.mark.parametrize(
    ("change", "status", "fragment"),
    [
        ({"model": None}, 400, "model"),
        ({"messages": None}, 400, "messages"),
        ({"messages": []}, 400, "empty array"),
        ({"messages": [{"role": "robot", "content": "x"}]}, 400, "Supported values"),
        ({"messages": [{"role": "user"}]}, 400, "content"),
        ({"messages": [{"role": "user", "content": 5}]}, 400, "content"),
        ({"messages": [{"role": "tool", "content": "x"}]}, 400, "tool_call_id"),
        ({"max_tokens": 0}, 400, "below minimum"),
        ({"temperature": 2.5}, 400, "above maximum"),
        ({"stream": True}, 400, "stream"),
        ({"system": "x"}, 400, "Unrecognized request argument supplied: system"),
    ],
)
def test_openai_malformed_shape_rejected(
    sim: ProviderSimulator, client: httpx.Client, change: dict[str, Any], status: int, fragment: str
) -> None:
    body = {k: v for k, v in {**OPENAI_BODY, **change}.items() if v is not None}

    response = post_openai(client, sim, body)

    error = response.json()["error"]
    assert response.status_code == status
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert fragment in error["message"]
    assert sim.requests[-1].rejection is not None


@pytest.mark.parametrize(
    ("headers", "status", "fragment"),
    [
        ({}, 401, "didn't provide an API key"),
        ({"Authorization": "Bearer sk-wrong"}, 401, "Incorrect API key"),
    ],
)
def test_openai_missing_or_wrong_key_rejected(
    sim: ProviderSimulator,
    client: httpx.Client,
    headers: dict[str, str],
    status: int,
    fragment: str,
) -> None:
    response = post_openai(client, sim, OPENAI_BODY, headers=headers)

    assert response.status_code == status
    assert fragment in response.json()["error"]["message"]


def test_openai_invalid_json_rejected(sim: ProviderSimulator, client: httpx.Client) -> None:
    response = client.post(
        f"{sim.url}/v1/chat/completions",
        content=b"{not json",
        headers={**OPENAI_HEADERS, "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert "could not parse the JSON body" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"model": None}, "model: Field required"),
        ({"max_tokens": None}, "max_tokens: Field required"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"messages": []}, "at least one message"),
        ({"messages": [{"role": "system", "content": "x"}]}, 'Unexpected role "system"'),
        ({"messages": [{"role": "user", "content": "   "}]}, "non-whitespace"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}, "text"),
        ({"messages": [{"role": "user", "content": [{"kind": "text"}]}]}, "content block"),
        ({"temperature": 1.5}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"stop_sequences": "END"}, "stop_sequences"),
        ({"stream": True}, "stream"),
        ({"max_completion_tokens": 5}, "max_completion_tokens: Extra inputs are not permitted"),
    ],
)
def test_anthropic_malformed_shape_rejected(
    sim: ProviderSimulator, client: httpx.Client, change: dict[str, Any], fragment: str
) -> None:
    body = {k: v for k, v in {**ANTHROPIC_BODY, **change}.items() if v is not None}

    response = post_anthropic(client, sim, body)

    data = response.json()
    assert response.status_code == 400
    assert data["type"] == "error"
    assert data["error"]["type"] == "invalid_request_error"
    assert fragment in data["error"]["message"]
    assert data["request_id"]


@pytest.mark.parametrize(
    ("headers", "status", "error_type", "fragment"),
    [
        ({"x-api-key": KEY}, 400, "invalid_request_error", "anthropic-version"),
        (
            {"x-api-key": KEY, "anthropic-version": "1999-01-01"},
            400,
            "invalid_request_error",
            "invalid version",
        ),
        ({"anthropic-version": "2023-06-01"}, 401, "authentication_error", "x-api-key"),
        (
            {"x-api-key": "nope", "anthropic-version": "2023-06-01"},
            401,
            "authentication_error",
            "invalid x-api-key",
        ),
    ],
)
def test_anthropic_header_rules(
    sim: ProviderSimulator,
    client: httpx.Client,
    headers: dict[str, str],
    status: int,
    error_type: str,
    fragment: str,
) -> None:
    response = post_anthropic(client, sim, ANTHROPIC_BODY, headers=headers)

    assert response.status_code == status
    assert response.json()["error"]["type"] == error_type
    assert fragment in response.json()["error"]["message"]


def test_anthropic_requires_json_content_type(sim: ProviderSimulator, client: httpx.Client) -> None:
    response = client.post(
        f"{sim.url}/v1/messages",
        content=b"{}",
        headers={**ANTHROPIC_HEADERS, "Content-Type": "text/plain"},
    )

    assert response.status_code == 400
    assert "content-type" in response.json()["error"]["message"]


def test_no_key_configured_accepts_any(client: httpx.Client) -> None:
    with ProviderSimulator("open") as open_sim:
        response = post_openai(client, open_sim, OPENAI_BODY, headers={})

    assert response.status_code == 200


def test_pass_through_echo(sim: ProviderSimulator, client: httpx.Client) -> None:
    response = client.patch(
        f"{sim.url}/accounts/7?verbose=1",
        json={"name": "x"},
        headers={"Idempotency-Key": "k-7", "Authorization": "Bearer secret-token"},
    )

    echo = response.json()
    assert response.status_code == 200
    assert echo["method"] == "PATCH"
    assert echo["path"] == "/accounts/7"
    assert echo["query"] == "verbose=1"
    assert echo["body"] == {"name": "x"}
    assert echo["idempotency_key"] == "k-7"
    assert echo["headers"]["authorization"] == "Bearer ***"


def test_chunked_request_body_read(sim: ProviderSimulator, client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"part": '
        yield b"1}"

    response = client.post(
        f"{sim.url}/upload", content=chunks(), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 200
    assert response.json()["body"] == {"part": 1}


# Modes


def test_status_mode_openai_error_body(sim: ProviderSimulator, client: httpx.Client) -> None:
    sim.set_mode(503)

    response = post_openai(client, sim, OPENAI_BODY)

    assert response.status_code == 503
    assert response.json()["error"]["type"] == "server_error"


def test_overloaded_mode_anthropic_body(sim: ProviderSimulator, client: httpx.Client) -> None:
    sim.set_mode(529)

    response = post_anthropic(client, sim, ANTHROPIC_BODY)

    assert response.status_code == 529
    assert response.json()["error"] == {"type": "overloaded_error", "message": "Overloaded"}


def test_rate_limit_default_retry_after(sim: ProviderSimulator, client: httpx.Client) -> None:
    sim.set_mode(429)

    response = post_anthropic(client, sim, ANTHROPIC_BODY)

    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["type"] == "rate_limit_error"


def test_rate_limit_custom_retry_after(sim: ProviderSimulator, client: httpx.Client) -> None:
    sim.set_mode(429, retry_after=2.5)

    response = post_openai(client, sim, OPENAI_BODY)

    assert response.headers["retry-after"] == "2.5"


def test_gateway_errors_are_html(sim: ProviderSimulator, client: httpx.Client) -> None:
    sim.set_mode(504)

    response = post_openai(client, sim, OPENAI_BODY)

    assert response.status_code == 504
    assert response.headers["content-type"] == "text/html"


def test_malformed_mode_status_200(sim: ProviderSimulator, client: httpx.Client) -> None:
    sim.set_mode("malformed")

    response = post_openai(client, sim, OPENAI_BODY)

    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_slow_mode_delays_answer(sim: ProviderSimulator, client: httpx.Client) -> None:
    sim.set_mode("slow", delay=0.4)

    started = time.monotonic()
    response = post_openai(client, sim, OPENAI_BODY)

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.4


def test_close_mid_response_drops(sim: ProviderSimulator, client: httpx.Client) -> None:
    sim.set_mode("close_mid_response")

    with pytest.raises(httpx.RemoteProtocolError):
        post_openai(client, sim, OPENAI_BODY)


def test_refuse_rejects_connects(sim: ProviderSimulator) -> None:
    sim.set_mode("refuse")

    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", sim.port)):
        pass


def test_refuse_then_recover_same_port(sim: ProviderSimulator, client: httpx.Client) -> None:
    port = sim.port
    sim.set_mode("refuse")
    with pytest.raises(httpx.ConnectError):
        client.get(f"{sim.url}/health")

    sim.set_mode("normal")
    response = client.get(f"{sim.url}/health")

    assert sim.port == port
    assert response.status_code == 200


def _wait_until_healthy(client: httpx.Client, url: str, timeout: float = 5.0) -> int:
    """Poll /health until it responds, and return its status. Fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.get(f"{url}/health").status_code
        except httpx.TransportError:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_refuse_duration_reopens(sim: ProviderSimulator, client: httpx.Client) -> None:
    sim.set_mode("refuse", duration=1.0)
    with pytest.raises(httpx.ConnectError):
        client.get(f"{sim.url}/health")

    assert _wait_until_healthy(client, sim.url) == 200


def _post_in_thread(url: str, results: list[Any], timeout: float) -> threading.Thread:
    def run() -> None:
        try:
            with httpx.Client(timeout=timeout) as thread_client:
                results.append(thread_client.get(url).status_code)
        except httpx.HTTPError as exc:
            results.append(exc)

    thread = threading.Thread(target=run, name="test-hanging-client")
    thread.start()
    return thread


def test_hang_released_by_mode_change(sim: ProviderSimulator) -> None:
    sim.set_mode("hang")
    results: list[Any] = []
    thread = _post_in_thread(f"{sim.url}/anything", results, timeout=10.0)
    try:
        assert sim.wait_for_count(1, timeout=5.0)
        time.sleep(0.1)
        assert results == []

        sim.set_mode("normal")
    finally:
        thread.join(10.0)

    assert results == [200]


def test_hang_ends_when_stopped() -> None:
    sim = ProviderSimulator("hang-stop").start()
    sim.set_mode("hang")
    results: list[Any] = []
    thread = _post_in_thread(f"{sim.url}/anything", results, timeout=20.0)
    try:
        assert sim.wait_for_count(1, timeout=5.0)
        started = time.monotonic()
        sim.stop()
    finally:
        sim.stop()
        thread.join(10.0)

    assert not thread.is_alive()
    assert time.monotonic() - started < 5.0
    assert isinstance(results[0], httpx.RemoteProtocolError)


def test_stop_leaves_no_threads() -> None:
    before = set(threading.enumerate())
    sim = ProviderSimulator("threads").start()
    sim.set_mode("slow", delay=10.0)
    results: list[Any] = []
    thread = _post_in_thread(f"{sim.url}/slow", results, timeout=20.0)
    assert sim.wait_for_count(1, timeout=5.0)
    with httpx.Client() as local_client:
        local_client.get(f"{sim.url}/health")

    sim.stop()
    thread.join(10.0)

    assert set(threading.enumerate()) - before == set()


def test_stop_during_refuse_timer_leaves_no_threads() -> None:
    before = set(threading.enumerate())
    sim = ProviderSimulator("refuse-stop").start()
    sim.set_mode("refuse", duration=30.0)

    sim.stop()

    assert set(threading.enumerate()) - before == set()


def test_script_consumed_per_request(sim: ProviderSimulator, client: httpx.Client) -> None:
    sim.script([429, 400, 200])

    statuses = [post_openai(client, sim, OPENAI_BODY).status_code for _ in range(4)]

    assert statuses == [429, 400, 200, 200]


def test_script_falls_back_to_persistent(sim: ProviderSimulator, client: httpx.Client) -> None:
    sim.set_mode(503)
    sim.script([{"mode": "normal"}, ("slow", {"delay": 0.01})])

    statuses = [post_openai(client, sim, OPENAI_BODY).status_code for _ in range(3)]

    assert statuses == [200, 200, 503]


def test_health_mode_separate_from_api(sim: ProviderSimulator, client: httpx.Client) -> None:
    sim.set_mode(503, target="health")

    health = client.get(f"{sim.url}/health")
    api = post_openai(client, sim, OPENAI_BODY)

    assert health.status_code == 503
    assert health.json()["status"] == "unavailable"
    assert api.status_code == 200


def test_target_all_sets_both(sim: ProviderSimulator, client: httpx.Client) -> None:
    sim.set_mode(500, target="all")

    assert client.get(f"{sim.url}/health").status_code == 500
    assert post_openai(client, sim, OPENAI_BODY).status_code == 500


def test_api_mode_leaves_health_alone(sim: ProviderSimulator, client: httpx.Client) -> None:
    sim.set_mode(500)

    assert client.get(f"{sim.url}/health").json() == {"status": "ok", "name": "sim-tests"}


@pytest.mark.parametrize(
    ("mode", "params", "fragment"),
    [
        ("explode", {}, "mode"),
        (302, {}, "status"),
        (503, {"delay_ms": 5}, "delay_ms"),
        ("slow", {}, "delay"),
        ("slow", {"delay": -1}, "delay"),
        (429, {"retry_after": float("inf")}, "retry_after"),
        ("normal", {"finish_reason": "done"}, "finish_reason"),
        ("refuse", {"duration": 0}, "duration"),
    ],
)
def test_set_mode_rejects_bad_values(
    sim: ProviderSimulator, mode: Any, params: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        sim.set_mode(mode, **params)


def test_script_rejects_refuse(sim: ProviderSimulator) -> None:
    with pytest.raises(ValueError, match="refuse"):
        sim.script([503, "refuse"])


def test_refuse_rejects_health_target(sim: ProviderSimulator) -> None:
    with pytest.raises(ValueError, match="target"):
        sim.set_mode("refuse", target="health")


# Records and counts


def test_counts_per_path(sim: ProviderSimulator, client: httpx.Client) -> None:
    post_openai(client, sim, OPENAI_BODY)
    post_openai(client, sim, OPENAI_BODY)
    client.get(f"{sim.url}/health")
    client.get(f"{sim.url}/_control")

    assert sim.count("/v1/chat/completions") == 2
    assert sim.count("/health") == 1
    assert sim.count("/_control") == 0
    assert sim.count() == 3


def test_records_mask_secrets(sim: ProviderSimulator, client: httpx.Client) -> None:
    post_openai(client, sim, OPENAI_BODY, headers={**OPENAI_HEADERS, "Idempotency-Key": "i-1"})
    post_anthropic(client, sim, ANTHROPIC_BODY)

    openai_record, anthropic_record = sim.requests

    assert openai_record.headers["authorization"] == "Bearer ***"
    assert anthropic_record.headers["x-api-key"] == "***"
    assert openai_record.idempotency_key == "i-1"
    assert openai_record.body == OPENAI_BODY
    assert anthropic_record.dialect == "anthropic"
    assert KEY not in repr(sim.requests)


def test_record_limit_keeps_latest(client: httpx.Client) -> None:
    with ProviderSimulator("limited", record_limit=2) as limited:
        for index in range(3):
            client.get(f"{limited.url}/item/{index}")
        paths = [record.path for record in limited.requests]
        total = limited.count()

    assert paths == ["/item/1", "/item/2"]
    assert total == 3


def test_reset_clears_counts_and_modes(sim: ProviderSimulator, client: httpx.Client) -> None:
    sim.set_mode(503)
    post_openai(client, sim, OPENAI_BODY)

    sim.reset()

    assert sim.count() == 0
    assert sim.requests == []
    assert post_openai(client, sim, OPENAI_BODY).status_code == 200


# Control endpoint


def test_control_sets_mode(sim: ProviderSimulator, client: httpx.Client) -> None:
    response = client.post(f"{sim.url}/_control", json={"mode": 502, "target": "all"})

    assert response.status_code == 200
    assert response.json()["targets"]["health"]["mode"] == "status 502"
    assert client.get(f"{sim.url}/health").status_code == 502


def test_control_sets_script(sim: ProviderSimulator, client: httpx.Client) -> None:
    client.post(f"{sim.url}/_control", json={"script": [429, {"mode": "normal"}]})

    statuses = [post_openai(client, sim, OPENAI_BODY).status_code for _ in range(2)]

    assert statuses == [429, 200]


def test_control_reset(sim: ProviderSimulator, client: httpx.Client) -> None:
    sim.set_mode(503)
    post_openai(client, sim, OPENAI_BODY)

    state = client.post(f"{sim.url}/_control", json={"reset": True}).json()

    assert state["counts"] == {}
    assert state["targets"]["api"]["mode"] == "normal"


@pytest.mark.parametrize(
    "body",
    [{"mode": "explode"}, {"mode": 503, "script": []}, {}, [], {"reset": False}],
)
def test_control_rejects_invalid(sim: ProviderSimulator, client: httpx.Client, body: Any) -> None:
    response = client.post(f"{sim.url}/_control", json=body)

    assert response.status_code == 400
    assert response.json()["error"]


def test_control_refuse_with_duration(sim: ProviderSimulator, client: httpx.Client) -> None:
    response = client.post(f"{sim.url}/_control", json={"mode": "refuse", "duration": 1.0})
    assert response.status_code == 200

    with pytest.raises(httpx.ConnectError):
        client.get(f"{sim.url}/health")

    assert _wait_until_healthy(client, sim.url) == 200


# Command line


def test_command_line_runs_and_stops(tmp_path: Path, client: httpx.Client) -> None:
    port_file = tmp_path / "port"
    process = subprocess.Popen(
        [sys.executable, "-m", "tpir.simulator", "--port", "0", "--port-file", str(port_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 15.0
        while not port_file.exists() or not port_file.read_text().strip():
            assert process.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.05)
        port = int(port_file.read_text())

        health = client.get(f"http://127.0.0.1:{port}/health")
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=10.0)

    assert health.status_code == 200
    assert process.returncode == 0
    assert stdout == b""
    assert b"listening on" in stderr
