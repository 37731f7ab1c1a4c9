"""Actors of a running node killed with SIGKILL: restarts, events and calls in flight."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator

import pytest

from tests.tpir.node.support import (
    CHAT_REQUEST,
    INTEGRATION,
    NodeUnderTest,
    child_entry,
    run_cli,
    wait_until,
)
from tpir.simulator import OPENAI_PATH, ProviderSimulator

pytestmark = pytest.mark.timeout(120)

BASE = f"tpir/integrations/{INTEGRATION}"


@pytest.fixture
def reset_simulators(
    simulators: tuple[ProviderSimulator, ProviderSimulator],
) -> Iterator[tuple[ProviderSimulator, ProviderSimulator]]:
    try:
        yield simulators
    finally:
        for simulator in simulators:
            simulator.reset()


def entry(node: NodeUnderTest, path: str) -> dict:
    return child_entry(node.request("tree")["result"], path)


def cli_entry(node: NodeUnderTest, path: str) -> dict:
    done = run_cli("tree", "--data-dir", str(node.config_path.parent / "data"), "--json")
    assert done.returncode == 0, done.stderr
    return child_entry(json.loads(done.stdout), path)


def test_killed_provider_restart_counts_in_cli_tree(fresh_node: NodeUnderTest) -> None:
    path = f"{BASE}/providers/openai"
    fresh_node.request("subscribe", events=["child_restarted"])
    before = entry(fresh_node, path)

    os.kill(before["pid"], signal.SIGKILL)
    event = fresh_node.wait_event("child_restarted", path=path)
    fresh_node.refresh_pids()
    after = cli_entry(fresh_node, path)

    assert event["child"] == "openai"
    assert event["pid"] == after["pid"]
    assert after["restarts"] == 1
    assert after["pid"] != before["pid"]
    assert after["status"] == "running"
    assert cli_entry(fresh_node, f"{BASE}/breakers/openai")["restarts"] == 0


def test_killed_router_fails_call_in_flight(
    fresh_node: NodeUnderTest,
    reset_simulators: tuple[ProviderSimulator, ProviderSimulator],
) -> None:
    primary, _ = reset_simulators
    primary.set_mode("hang")
    router = entry(fresh_node, f"{BASE}/router")
    fresh_node.send(
        {"id": 1, "op": "call", "integration": INTEGRATION, "request": CHAT_REQUEST, "deadline": 30}
    )
    assert primary.wait_for_count(1, OPENAI_PATH, timeout=10)

    os.kill(router["pid"], signal.SIGKILL)
    reply = fresh_node.reply_to(1)

    assert reply["ok"] is False
    assert reply["error"]["code"] == "actor_crashed"
    assert reply["error"]["details"]["path"] == f"{BASE}/router"


def test_call_after_router_restart_succeeds(
    fresh_node: NodeUnderTest,
    reset_simulators: tuple[ProviderSimulator, ProviderSimulator],
) -> None:
    first = fresh_node.request("call", integration=INTEGRATION, request=CHAT_REQUEST)
    router = entry(fresh_node, f"{BASE}/router")

    os.kill(router["pid"], signal.SIGKILL)
    restarted = wait_until(lambda: entry(fresh_node, f"{BASE}/router")["restarts"] == 1, 20)
    fresh_node.refresh_pids()
    second = fresh_node.request("call", integration=INTEGRATION, request=CHAT_REQUEST)

    assert first["ok"] is True
    assert restarted is True
    assert second["ok"] is True, second


def test_terminate_and_restart_child_by_request(fresh_node: NodeUnderTest) -> None:
    supervisor = f"integrations/{INTEGRATION}/providers"

    terminated = fresh_node.request("terminate_child", supervisor=supervisor, child="anthropic")
    stopped = entry(fresh_node, f"{BASE}/providers/anthropic")
    restarted = fresh_node.request("restart_child", supervisor=supervisor, child="anthropic")
    running = entry(fresh_node, f"{BASE}/providers/anthropic")
    fresh_node.refresh_pids()

    assert terminated == {"id": terminated["id"], "ok": True, "result": True}
    assert stopped["status"] == "undefined"
    assert stopped["pid"] is None
    assert restarted["result"]["pid"] == running["pid"]
    assert running["status"] == "running"


def test_restart_of_running_child_rejected(fresh_node: NodeUnderTest) -> None:
    reply = fresh_node.request(
        "restart_child", supervisor=f"integrations/{INTEGRATION}", child="router"
    )

    assert reply["ok"] is False
    assert reply["error"]["code"] == "running"


def test_killed_bridge_restarts_and_serves(fresh_node: NodeUnderTest) -> None:
    bridge = entry(fresh_node, "tpir/bridge")

    os.kill(bridge["pid"], signal.SIGKILL)
    after = entry(fresh_node, "tpir/bridge")
    fresh_node.refresh_pids()
    cli = cli_entry(fresh_node, "tpir/bridge")

    assert after["restarts"] == 1
    assert after["pid"] != bridge["pid"]
    assert cli["pid"] == after["pid"]


def test_root_gives_up_after_bridge_crash_loop(fresh_node: NodeUnderTest) -> None:
    # The root allows 3 restarts in 10 s, so the fourth crash within 10 s ends the node.
    started = time.monotonic()
    for _ in range(4):
        pid = entry(fresh_node, "tpir/bridge")["pid"]
        fresh_node.refresh_pids()
        os.kill(pid, signal.SIGKILL)

    status = fresh_node.process.wait(timeout=20)
    stderr = fresh_node.stderr_text()

    assert time.monotonic() - started < 10
    assert status == 1
    assert "the root supervisor gave up and the node is stopping" in stderr
    assert "maximum restart intensity" in stderr
    assert wait_until(lambda: fresh_node.running_pids() == [], 5) is True
