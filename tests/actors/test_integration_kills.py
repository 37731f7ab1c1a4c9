"""The whole integration tree of ``actors.tree`` under load while its actors are SIGKILLed.

Calls go to the router by name from the test process, one after another,
while a thread kills provider, breaker and health-checker actor processes
found in ``/proc``. No call may fail at the caller while the other provider
is healthy, and a killed breaker must come back with the state it had.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.messages import Describe, IntegrationCall, StateRequest
from actors.names import breaker_path, integration_path, router_path
from actors.tree import root_children, root_flags
from supervisors import LogSettings, SupervisionError, SupervisionSystem
from tests.support.processes import group_members, wait_all_dead
from tpir.config import Config, default_config_text, parse_config
from tpir.simulator import ProviderSimulator

pytestmark = pytest.mark.timeout(120)

LLM = "llm_provider"
CHAT = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 16}


def _config(tmp_path: Path, openai: ProviderSimulator, anthropic: ProviderSimulator) -> Config:
    text = default_config_text()
    text = text.replace("http://127.0.0.1:18081/v1", openai.api_url)
    text = text.replace("http://127.0.0.1:18082/v1", anthropic.api_url)
    text = text.replace(
        "[node]\n",
        f'[node]\ndata_dir = "{tmp_path}"\ndatabase = "{tmp_path / "tpir.sqlite3"}"\n',
        1,
    )
    return parse_config(text)


@pytest.fixture
def simulators() -> Iterator[tuple[ProviderSimulator, ProviderSimulator]]:
    with ProviderSimulator("openai") as openai, ProviderSimulator("anthropic") as anthropic:
        yield openai, anthropic


@pytest.fixture
def tree(tmp_path, simulators) -> Iterator[SupervisionSystem]:
    config = _config(tmp_path, *simulators)
    system = SupervisionSystem(log_settings=LogSettings(path=str(tmp_path / "actors.log")))
    system.start()
    members: list[int] = []
    try:
        system.start_root("tpir", root_flags(), root_children(config))
        members = group_members(os.getpgid(system.admin_pid))
        yield system
    finally:
        system.stop(timeout=10)
        assert wait_all_dead(members, timeout=5) == []


def _child_pids(parent_pid: int) -> list[int]:
    try:
        with open(f"/proc/{parent_pid}/task/{parent_pid}/children", encoding="ascii") as f:
            return [int(pid) for pid in f.read().split()]
    except FileNotFoundError:
        return []


def _call(system: SupervisionSystem) -> dict:
    return system.call(router_path(LLM), IntegrationCall(CHAT), timeout=10)


def test_kills_during_load_lose_no_call(tree):
    system = tree
    base = integration_path(LLM)
    pids = system.pids()
    groups = [pids[f"{base}/{name}"] for name in ("providers", "breakers", "health")]
    for _ in range(5):
        _call(system)
    kills: list[int] = []
    stop = threading.Event()

    def killer() -> None:
        # The actor system client is not thread-safe, so victims come from /proc.
        round_number = 0
        while not stop.is_set() and round_number < 9:
            time.sleep(0.3)
            group = groups[round_number % len(groups)]
            victims = _child_pids(group)
            if victims:
                os.kill(victims[round_number % len(victims)], signal.SIGKILL)
                kills.append(group)
            round_number += 1

    thread = threading.Thread(target=killer)
    failures: list[str] = []
    answered = 0
    thread.start()
    try:
        while thread.is_alive():
            try:
                result = _call(system)
                assert result["result"]["text"]
                answered += 1
            except SupervisionError as exc:
                failures.append(f"{exc.code}: {exc}")
    finally:
        stop.set()
        thread.join()
    assert len(kills) >= 6
    assert answered >= 20
    assert failures == []


def test_killed_breaker_resumes_open_state(tree, simulators):
    system = tree
    openai, _anthropic = simulators
    openai.set_mode(503)
    for _ in range(6):
        _call(system)
    before = system.call(breaker_path(LLM, "openai"), StateRequest(), timeout=5)
    assert before.state == "open"
    breaker_pid = system.pids()[breaker_path(LLM, "openai")]
    os.kill(breaker_pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        current = system.pids().get(breaker_path(LLM, "openai"))
        if current not in (None, breaker_pid):
            break
        time.sleep(0.02)
    after = system.call(breaker_path(LLM, "openai"), StateRequest(), timeout=5)
    assert after.state in ("open", "half_open")
    assert after.retry_at == before.retry_at


def test_router_describe_after_provider_kill(tree):
    system = tree
    _call(system)
    provider_pid = system.pids()[f"{integration_path(LLM)}/providers/openai"]
    os.kill(provider_pid, signal.SIGKILL)
    for _ in range(5):
        _call(system)
    description = system.call(router_path(LLM), Describe(), timeout=5)
    assert description["integration"] == LLM
