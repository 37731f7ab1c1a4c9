"""ProviderActor in a real actor system, against real simulator servers on 127.0.0.1.

Each test builds the part of the node's tree that the provider actor needs::

    tpir/integrations/llm_provider            rest_for_one
    ├── breakers/openai                       CircuitBreakerActor, or StubBreaker
    ├── providers/openai                      ProviderActor
    └── router                                FanOutRouter (sends attempts by name)

``StubBreaker`` records every ``OutcomeReport`` with its kind and status, which the real
breaker only counts. ``FanOutRouter`` replaces the router. It sends many attempts at once,
as the router does, and collects their replies.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.breaker_actor import CircuitBreakerActor
from actors.messages import (
    Attempt,
    AttemptResult,
    CancelAttempt,
    Describe,
    OutcomeReport,
)
from actors.names import breaker_path, integration_path, provider_path, router_path
from actors.provider_actor import ProviderActor
from supervisors import (
    NOREPLY,
    Call,
    Caller,
    ChildSpec,
    GenActor,
    LogSettings,
    Reply,
    SupervisionError,
    SupervisionSystem,
    Supervisor,
    SupFlags,
)
from tests.supervisors.helpers import restarted, running_pid, wait_for
from tests.support.processes import group_members, wait_all_dead
from tpir.config import NodeConfig, Provider, SecretStr, load_config
from tpir.simulator import ProviderSimulator

pytestmark = pytest.mark.timeout(90)

INTEGRATION = "llm_provider"
PROVIDER = "openai"
API_KEY = "sk-provider-actor-test-5e4d3c2b1a0f9e8d7c6b5a4"
CHAT_REQUEST: dict[str, Any] = {
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
    "max_tokens": 32,
}
PROVIDER_PATH = provider_path(INTEGRATION, PROVIDER)
BREAKER_PATH = breaker_path(INTEGRATION, PROVIDER)
ROUTER_PATH = router_path(INTEGRATION)


# -- stand-ins for the breaker and the router ---------------------------------------


class StubBreaker(GenActor):
    """Records the OutcomeReports it receives and returns them for ``Call(Describe())``.

    It takes the breaker's start arguments and ignores them.
    """

    def init(self, integration: str, provider: Provider, node: NodeConfig) -> None:
        self.reports: list[OutcomeReport] = []

    def handle_cast(self, message: Any, sender: Any) -> None:
        if isinstance(message, OutcomeReport):
            self.reports.append(message)
            return
        super().handle_cast(message, sender)

    def handle_call(self, body: Any, caller: Caller) -> Any:
        if isinstance(body, Describe):
            return {"reports": list(self.reports)}
        return super().handle_call(body, caller)


class FanOutRouter(GenActor):
    """Sends attempts to the provider by name, as the router does, and collects the replies.

    Calls: ``("send", attempts)`` sends every attempt at once and returns how many;
    ``("collect", count, wait)`` returns the replies once ``count`` have arrived or
    ``wait`` seconds have passed. A collected reply is a dict with ``result`` (the
    ``AttemptResult``), ``error`` (an error code) and ``elapsed`` (seconds since sending).
    """

    def init(self, integration: str, provider: str) -> None:
        self.target = provider_path(integration, provider, root=self.path.split("/")[0])
        self.sent_at: dict[str, float] = {}
        self.replies: dict[str, dict[str, Any]] = {}
        self.waiting: tuple[Caller, int, int] | None = None

    def handle_call(self, body: Any, caller: Caller) -> Any:
        if body[0] == "send":
            for attempt in body[1]:
                self.sent_at[attempt.call_id] = time.monotonic()
                self.send_named(self.target, Call(attempt.call_id, attempt, self.myAddress))
            return len(body[1])
        if body[0] == "collect":
            _, count, wait = body
            if len(self.replies) >= count:
                return dict(self.replies)
            self.waiting = (caller, count, self.send_after(wait, "collect timeout"))
            return NOREPLY
        return super().handle_call(body, caller)

    def handle_cast(self, message: Any, sender: Any) -> None:
        if not isinstance(message, Reply):
            super().handle_cast(message, sender)
            return
        self.replies[message.ref] = {
            "result": message.value,
            "error": message.error.code if message.error else None,
            "elapsed": time.monotonic() - self.sent_at[message.ref],
        }
        if self.waiting is not None and len(self.replies) >= self.waiting[1]:
            caller, _count, timer = self.waiting
            self.cancel_timer(timer)
            self.waiting = None
            self.reply(caller, dict(self.replies))

    def handle_timeout(self, payload: Any) -> None:
        if self.waiting is not None:
            caller = self.waiting[0]
            self.waiting = None
            self.reply(caller, dict(self.replies))


# -- fixtures and helpers ------------------------------------------------------------


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "actors.log"


@pytest.fixture
def system(log_path: Path) -> Iterator[SupervisionSystem]:
    """An actor system on a free port logging at DEBUG. No process of it may outlive the test."""
    settings = LogSettings(level="DEBUG", format="json", path=str(log_path))
    sup_system = SupervisionSystem(log_settings=settings)
    sup_system.start()
    try:
        yield sup_system
    finally:
        admin_pid = sup_system.admin_pid
        pgid = os.getpgid(admin_pid) if admin_pid and os.path.exists(f"/proc/{admin_pid}") else None
        members = group_members(pgid) if pgid else []
        sup_system.stop(timeout=10)
        leftover = wait_all_dead(members, timeout=5)
        assert leftover == [], f"processes left after the test: {leftover}"


@pytest.fixture
def simulator() -> Iterator[ProviderSimulator]:
    sim = ProviderSimulator("provider-actor-tests", api_key=API_KEY).start()
    try:
        yield sim
    finally:
        sim.stop()


def _configs(sim: ProviderSimulator, tmp_path: Path) -> tuple[Provider, NodeConfig]:
    config = load_config(environ={})
    config = config.with_provider(
        INTEGRATION, PROVIDER, base_url=sim.api_url, api_key=SecretStr(API_KEY)
    )
    node = dataclasses.replace(
        config.node, data_dir=tmp_path, database=str(tmp_path / "recovery.sqlite3")
    )
    return config.integration(INTEGRATION).provider(PROVIDER), node


def _start_tree(
    system: SupervisionSystem, provider: Provider, node: NodeConfig, breaker: type[GenActor]
) -> None:
    def supervisor(name: str, strategy: str, children: list[ChildSpec]) -> ChildSpec:
        flags = SupFlags(strategy, intensity=10, period=5)
        return ChildSpec(name, Supervisor, args=(flags, children), type="supervisor")

    integration = supervisor(
        INTEGRATION,
        "rest_for_one",
        [
            supervisor(
                "breakers",
                "one_for_one",
                [ChildSpec(provider.name, breaker, args=(INTEGRATION, provider, node))],
            ),
            supervisor(
                "providers",
                "one_for_one",
                [ChildSpec(provider.name, ProviderActor, args=(INTEGRATION, provider, node))],
            ),
            ChildSpec("router", FanOutRouter, args=(INTEGRATION, provider.name)),
        ],
    )
    system.start_root(
        "tpir",
        SupFlags("one_for_one", 10, 5),
        [supervisor("integrations", "one_for_one", [integration])],
    )


@pytest.fixture
def tree(system: SupervisionSystem, simulator: ProviderSimulator, tmp_path: Path):
    """The tree with the real CircuitBreakerActor."""
    provider, node = _configs(simulator, tmp_path)
    _start_tree(system, provider, node, CircuitBreakerActor)
    return system


@pytest.fixture
def stub_tree(system: SupervisionSystem, simulator: ProviderSimulator, tmp_path: Path):
    """The tree with StubBreaker in the breaker's place."""
    provider, node = _configs(simulator, tmp_path)
    _start_tree(system, provider, node, StubBreaker)
    return system


def _attempt(call_id: str, timeout: float = 2.0, **options: Any) -> Attempt:
    return Attempt(call_id, 1, CHAT_REQUEST, timeout, **options)


def _call(system: SupervisionSystem, attempt: Attempt, timeout: float = 10.0) -> AttemptResult:
    result = system.call(PROVIDER_PATH, attempt, timeout=timeout)
    assert isinstance(result, AttemptResult)
    return result


def _describe(system: SupervisionSystem) -> dict[str, Any]:
    return dict(system.call(PROVIDER_PATH, Describe()))


def _breaker_counts(system: SupervisionSystem, total: int) -> dict[str, int]:
    """Wait until the real breaker has counted ``total`` reports and return its counts."""
    found = wait_for(
        lambda: (
            (counts := system.call(BREAKER_PATH, Describe())["reports"])
            and sum(counts.values()) >= total
            and counts
        )
    )
    return dict(found)


def _reports(system: SupervisionSystem, count: int) -> list[OutcomeReport]:
    """Wait until the stub breaker has received ``count`` reports and return them."""
    found = wait_for(
        lambda: (
            (reports := system.call(BREAKER_PATH, Describe())["reports"])
            and len(reports) >= count
            and reports
        )
    )
    return list(found)


# -- results -------------------------------------------------------------------------


def test_tree_paths_match_names():
    assert PROVIDER_PATH == f"{integration_path(INTEGRATION)}/providers/{PROVIDER}"
    assert PROVIDER_PATH.startswith("tpir/")


def test_provider_200_normalized_result(tree, simulator):
    result = _call(tree, _attempt("call-ok"))
    assert result.ok
    assert result.failure is None
    assert result.provider == PROVIDER
    assert result.call_id == "call-ok"
    assert result.attempt_no == 1
    assert result.value["text"] == "Simulated reply to: What is the capital of France?"
    assert result.value["finish_reason"] == "stop"
    assert result.value["provider"] == PROVIDER
    assert result.duration > 0
    assert simulator.count() == 1


def test_provider_sends_idempotency_key(tree, simulator):
    _call(tree, _attempt("call-key", idempotency_key="order-42"))
    [request] = simulator.requests
    assert request.idempotency_key == "order-42"


def test_provider_503_retryable_failure(tree, simulator):
    simulator.set_mode(503)
    result = _call(tree, _attempt("call-503"))
    assert not result.ok
    assert result.failure["kind"] == "http_status"
    assert result.failure["status"] == 503
    assert result.failure["retryable"] is True
    assert result.failure["may_have_reached_provider"] is True


def test_provider_429_carries_retry_after(tree, simulator):
    simulator.set_mode(429, retry_after=2)
    result = _call(tree, _attempt("call-429"))
    assert result.failure["kind"] == "http_status"
    assert result.failure["status"] == 429
    assert result.failure["retry_after"] == 2.0
    assert result.failure["retryable"] is True
    assert result.failure["may_have_reached_provider"] is True


def test_provider_hang_is_read_timeout(tree, simulator):
    simulator.set_mode("hang")
    started = time.monotonic()
    result = _call(tree, _attempt("call-hang", timeout=0.3))
    elapsed = time.monotonic() - started
    assert result.failure["kind"] == "read_timeout"
    assert result.failure["may_have_reached_provider"] is True
    assert result.failure["retryable"] is True
    assert 0.3 <= result.duration < 1.0
    assert elapsed < 2.0


def test_provider_refused_is_connect_error(tree, simulator):
    simulator.set_mode("refuse")
    result = _call(tree, _attempt("call-refused"))
    assert result.failure["kind"] == "connect_error"
    assert result.failure["may_have_reached_provider"] is False
    assert result.failure["retryable"] is True
    assert result.failure["status"] is None


def test_provider_close_mid_response_dropped(tree, simulator):
    simulator.set_mode("close_mid_response")
    result = _call(tree, _attempt("call-dropped"))
    assert result.failure["kind"] == "dropped_mid_response"
    assert result.failure["may_have_reached_provider"] is True
    assert result.failure["retryable"] is True


def test_provider_invalid_timeout_not_sent(tree, simulator):
    result = _call(tree, _attempt("call-zero", timeout=0.0))
    assert result.failure["kind"] == "invalid_request"
    assert result.failure["may_have_reached_provider"] is False
    assert "timeout" in result.failure["message"]
    assert simulator.count() == 0


def test_provider_failure_dict_keys(tree, simulator):
    simulator.set_mode(500)
    failure = _call(tree, _attempt("call-500")).failure
    for key in ("kind", "message", "may_have_reached_provider", "retryable", "status"):
        assert key in failure, key
    assert "retry_after" in failure


# -- outcome reports -----------------------------------------------------------------


def test_provider_report_fields(stub_tree, simulator):
    simulator.script([200, 503, 400])
    for number in range(3):
        _call(stub_tree, _attempt(f"call-{number}"))
    simulator.set_mode("hang")
    _call(stub_tree, _attempt("call-timeout", timeout=0.2))
    _call(stub_tree, Attempt("call-bad", 1, {"messages": []}, 2.0))
    stub_tree.call(ROUTER_PATH, ("send", [_attempt("call-cancel", timeout=30.0)]))
    wait_for(lambda: _describe(stub_tree)["in_flight"] == 1)
    stub_tree.send_to(PROVIDER_PATH, CancelAttempt("call-cancel"))

    reports = _reports(stub_tree, 6)
    outcomes = [report.outcome for report in reports]
    assert outcomes == ["success", "failure", "ignored", "failure", "ignored", "ignored"]
    assert [report.status for report in reports] == [None, 503, 400, None, None, None]
    kinds = [report.kind for report in reports]
    assert kinds == [
        None,
        "http_status",
        "http_status",
        "read_timeout",
        "invalid_request",
        "cancelled",
    ]
    assert all(report.provider == PROVIDER for report in reports)
    assert reports[3].duration >= 0.2


def test_provider_outcomes_reach_breaker(tree, simulator):
    simulator.script([200, 503, 400])
    for number in range(3):
        _call(tree, _attempt(f"call-{number}"))
    simulator.set_mode("hang")
    _call(tree, _attempt("call-timeout", timeout=0.2))

    counts = _breaker_counts(tree, 4)
    assert counts["success"] == 1
    assert counts["failure"] == 2
    assert counts["ignored"] == 1
    assert counts["invalid"] == 0


def test_provider_invalid_request_ignored(tree, simulator):
    result = _call(tree, Attempt("call-bad", 1, {"messages": []}, 2.0))
    assert result.failure["kind"] == "invalid_request"
    counts = _breaker_counts(tree, 1)
    assert counts["ignored"] == 1
    assert counts["failure"] == 0


# -- concurrency and cancellation ----------------------------------------------------


def test_provider_attempts_run_concurrently(tree, simulator):
    simulator.set_mode("slow", delay=0.5)
    attempts = [_attempt(f"call-{number}", timeout=5.0) for number in range(20)]
    assert tree.call(ROUTER_PATH, ("send", attempts)) == 20

    describe_latencies = []
    in_flight_seen = 0
    deadline = time.monotonic() + 0.4
    while time.monotonic() < deadline:
        started = time.monotonic()
        in_flight_seen = max(in_flight_seen, _describe(tree)["in_flight"])
        describe_latencies.append(time.monotonic() - started)

    replies = tree.call(ROUTER_PATH, ("collect", 20, 8.0), timeout=10)
    assert len(replies) == 20
    assert all(reply["result"].ok for reply in replies.values())
    assert max(reply["elapsed"] for reply in replies.values()) < 2.5
    assert in_flight_seen > 1
    assert max(describe_latencies) < 0.25
    assert _describe(tree)["successes"] == 20


def test_provider_cancel_stops_hanging_attempt(tree, simulator):
    simulator.set_mode("hang")
    tree.call(ROUTER_PATH, ("send", [_attempt("call-cancel", timeout=30.0)]))
    assert simulator.wait_for_count(1, timeout=5.0)
    wait_for(lambda: _describe(tree)["in_flight"] == 1)

    started = time.monotonic()
    tree.send_to(PROVIDER_PATH, CancelAttempt("call-cancel"))
    wait_for(lambda: _describe(tree)["in_flight"] == 0, timeout=2.0, interval=0.005)
    elapsed = time.monotonic() - started
    assert elapsed < 0.5

    replies = tree.call(ROUTER_PATH, ("collect", 1, 0.5))
    assert replies == {}
    described = _describe(tree)
    assert described["cancelled"] == 1
    assert described["failures"] == 0
    counts = _breaker_counts(tree, 1)
    assert counts["ignored"] == 1


def test_provider_cancel_call_returns_count(tree, simulator):
    simulator.set_mode("hang")
    tree.call(ROUTER_PATH, ("send", [_attempt("call-a", timeout=30.0)]))
    wait_for(lambda: _describe(tree)["in_flight"] == 1)
    assert tree.call(PROVIDER_PATH, CancelAttempt("call-a")) == 1
    assert tree.call(PROVIDER_PATH, CancelAttempt("call-a")) == 0


# -- restarts, shutdown and secrets --------------------------------------------------


def test_provider_restarts_after_sigkill(tree, simulator):
    simulator.set_mode("slow", delay=1.0)
    attempts = [_attempt(f"load-{number}", timeout=5.0) for number in range(10)]
    tree.call(ROUTER_PATH, ("send", attempts))
    wait_for(lambda: _describe(tree)["in_flight"] > 0)
    supervisor = f"{integration_path(INTEGRATION)}/providers"
    old_pid = running_pid(tree, supervisor, PROVIDER)

    os.kill(old_pid, signal.SIGKILL)
    simulator.set_mode("normal")
    # A call sent before the supervisor notices the kill may reach the dead instance, and
    # the supervisor then replies "lost". It must get a reply either way.
    try:
        at_kill: AttemptResult | str = _call(tree, _attempt("at-kill"), timeout=15.0)
    except SupervisionError as exc:
        at_kill = exc.code
    new_pid = restarted(tree, supervisor, PROVIDER, old_pid)

    if isinstance(at_kill, str):
        assert at_kill == "lost"
    else:
        assert at_kill.ok
    assert new_pid != old_pid
    assert _describe(tree)["pid"] == new_pid
    for number in range(3):
        assert _call(tree, _attempt(f"after-restart-{number}")).ok


def test_provider_terminate_is_bounded(tree, simulator):
    simulator.set_mode("hang")
    tree.call(ROUTER_PATH, ("send", [_attempt(f"hung-{n}", timeout=30.0) for n in range(5)]))
    assert simulator.wait_for_count(5, timeout=5.0)
    supervisor = f"{integration_path(INTEGRATION)}/providers"
    pid = running_pid(tree, supervisor, PROVIDER)

    started = time.monotonic()
    tree.terminate_child(supervisor, PROVIDER)
    elapsed = time.monotonic() - started

    assert elapsed < 2.0
    assert wait_all_dead([pid], timeout=2.0) == []


def test_provider_logs_no_api_key(tree, simulator, log_path):
    _call(tree, _attempt("secret-ok"))
    simulator.set_mode(503)
    _call(tree, _attempt("secret-503"))
    _call(tree, Attempt("secret-bad", 1, {"messages": []}, 2.0))
    described = _describe(tree)
    tree.stop()

    text = log_path.read_text(encoding="utf-8")
    assert "provider actor tpir/integrations/llm_provider/providers/openai started" in text
    assert "attempt 1 of call secret-ok sent" in text
    assert "(status 503," in text
    assert API_KEY not in text
    assert API_KEY not in repr(described)
