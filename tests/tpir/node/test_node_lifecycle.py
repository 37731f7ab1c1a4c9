"""How a node ends: end of input, SIGTERM, invalid configuration; and its stdout guard."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.tpir.node.support import (
    CHAT_REQUEST,
    EOF_MARK,
    INTEGRATION,
    REPO_ROOT,
    NodeUnderTest,
    wait_until,
    write_config,
)
from tpir.simulator import OPENAI_PATH, ProviderSimulator

pytestmark = pytest.mark.timeout(120)

EXIT_BUDGET_S = 2.0
# The health check path appended to the providers' base URL ending in /v1.
HEALTH_CHECK_PATH = "/v1/health"


@pytest.fixture
def hanging_primary(
    simulators: tuple[ProviderSimulator, ProviderSimulator],
) -> Iterator[ProviderSimulator]:
    primary, secondary = simulators
    primary.set_mode("hang")
    secondary.set_mode("hang")
    try:
        yield primary
    finally:
        primary.reset()
        secondary.reset()


def seconds_until_all_dead(node: NodeUnderTest, started: float) -> float | None:
    """Return the seconds from ``started`` until every process of the node has exited."""
    if not wait_until(lambda: node.running_pids() == [], timeout=10, interval=0.01):
        return None
    return time.monotonic() - started


def test_node_exits_fast_on_eof_with_calls(
    fresh_node: NodeUnderTest, hanging_primary: ProviderSimulator
) -> None:
    call_ids = list(range(1, 6))
    for call_id in call_ids:
        fresh_node.send(
            {"id": call_id, "op": "call", "integration": INTEGRATION, "request": CHAT_REQUEST}
        )
    assert hanging_primary.wait_for_count(len(call_ids), OPENAI_PATH, timeout=10)
    pids = fresh_node.refresh_pids()
    assert len(pids) >= 15

    started = time.monotonic()
    fresh_node.close_stdin()
    elapsed = seconds_until_all_dead(fresh_node, started)
    replies = [fresh_node.reply_to(call_id) for call_id in call_ids]

    assert elapsed is not None
    assert elapsed <= EXIT_BUDGET_S
    assert fresh_node.process.wait(timeout=5) == 0
    assert [reply["error"]["code"] for reply in replies] == ["node_stopping"] * len(call_ids)
    assert fresh_node.next_item(timeout=5) is EOF_MARK
    assert not (fresh_node.config_path.parent / "data" / "tpir.sock").exists()


def test_node_exits_fast_while_actors_block(
    tmp_path: Path,
    simulators: tuple[ProviderSimulator, ProviderSimulator],
    hanging_primary: ProviderSimulator,
) -> None:
    # Each health checker blocks for up to 3 s in a check of a hanging provider, longer
    # than its 2 s shutdown timeout, so an orderly stop alone would take too long.
    config = write_config(
        tmp_path / "node.toml",
        tmp_path / "data",
        *simulators,
        health_interval=3.5,
        health_timeout=3.0,
    )
    node = NodeUnderTest(config, tmp_path / "node.stderr")
    try:
        node.wait_ready()
        node.refresh_pids()
        node.send({"id": 1, "op": "call", "integration": INTEGRATION, "request": CHAT_REQUEST})
        checks = hanging_primary.count(HEALTH_CHECK_PATH)
        # A check that starts now keeps the primary's health checker busy for 3 s.
        assert hanging_primary.wait_for_count(checks + 1, HEALTH_CHECK_PATH, timeout=10)

        started = time.monotonic()
        node.close_stdin()
        elapsed = seconds_until_all_dead(node, started)
        status = node.process.wait(timeout=5)
    finally:
        leftover = node.stop()

    assert leftover == []
    assert elapsed is not None
    assert elapsed <= EXIT_BUDGET_S
    assert status == 0


def test_node_exits_fast_on_sigterm(
    fresh_node: NodeUnderTest, hanging_primary: ProviderSimulator
) -> None:
    fresh_node.send({"id": 1, "op": "call", "integration": INTEGRATION, "request": CHAT_REQUEST})
    assert hanging_primary.wait_for_count(1, OPENAI_PATH, timeout=10)
    fresh_node.refresh_pids()

    started = time.monotonic()
    os.kill(fresh_node.process.pid, signal.SIGTERM)
    elapsed = seconds_until_all_dead(fresh_node, started)
    reply = fresh_node.reply_to(1)

    assert elapsed is not None
    assert elapsed <= EXIT_BUDGET_S
    assert fresh_node.process.wait(timeout=5) == 0
    assert reply["error"]["code"] == "node_stopping"
    assert "received SIGTERM; stopping the node" in fresh_node.stderr_text()


def test_node_logs_json_lines_when_asked(start_node: Callable[..., NodeUnderTest]) -> None:
    node = start_node("--log-format", "json")

    lines = [line for line in node.stderr_text().splitlines() if '"node started' in line]

    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["level"] == "INFO"
    assert entry["logger"] == "tpir.node.main"
    assert entry["pid"] == node.process.pid


def test_node_processes_send_stdout_to_stderr(fresh_node: NodeUnderTest) -> None:
    pids = sorted(fresh_node.refresh_pids())
    stderr_target = str(fresh_node.stderr_path)

    targets = {pid: os.readlink(f"/proc/{pid}/fd/1") for pid in pids}

    assert {pid: target for pid, target in targets.items() if target != stderr_target} == {}


def test_node_rejects_invalid_config_with_status_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        '[node]\nadmin_port = 70000\n[[integrations]]\nname = "x"\ntier = 1\n'
        '[[integrations.providers]]\nname = "p"\nkind = "openai"\n'
        'base_url = "http://127.0.0.1:9/v1"\n',
        encoding="utf-8",
    )

    done = subprocess.run(
        [sys.executable, "-m", "tpir.cli", "run", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        cwd=REPO_ROOT,
    )

    assert done.returncode == 2
    assert done.stdout == b""
    assert b"node.admin_port" in done.stderr
    assert b"65535" in done.stderr


def test_node_rejects_missing_config_file(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tpir.cli", "run", "--config", str(tmp_path / "none.toml")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        cwd=REPO_ROOT,
    )

    assert done.returncode == 2
    assert b"failed to read the file" in done.stderr


@pytest.mark.parametrize("victim", ["root", "admin"])
def test_node_exits_when_root_or_admin_is_killed(fresh_node: NodeUnderTest, victim: str) -> None:
    tree = fresh_node.request("tree")["result"]
    fresh_node.refresh_pids()
    root_pid = tree["pid"]
    with open(f"/proc/{root_pid}/stat", encoding="ascii") as stat:
        admin_pid = int(stat.read().rsplit(")", 1)[1].split()[1])
    os.kill(root_pid if victim == "root" else admin_pid, signal.SIGKILL)

    started = time.monotonic()
    status = fresh_node.process.wait(timeout=10)
    elapsed = seconds_until_all_dead(fresh_node, started)

    assert status == 1
    assert elapsed is not None
    assert elapsed <= 5.0
    assert "the root supervisor's process" in fresh_node.stderr_text()
