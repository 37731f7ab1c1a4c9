"""The router actor in a real integration tree, against real provider simulators on 127.0.0.1.

Each test builds the tree of `actors.names` by hand, with the real breaker, provider and
health checker actors (health checks disabled unless a test needs them), its store in
``tmp_path``, and an `EventCollector` at ``tpir/events`` that subscribes to the router.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.breaker_actor import CircuitBreakerActor
from actors.health_actor import HealthCheckerActor
from actors.messages import (
    Attempt,
    CancelAttempt,
    CancelCall,
    Describe,
    IntegrationCall,
    IntegrationEvent,
    Restore,
    StatusUpdate,
    SubscribeEvents,
)
from actors.names import provider_path, router_path
from actors.provider_actor import ProviderActor
from actors.router_actor import ATTEMPT_GRACE, RouterActor
from supervisors import (
    NOREPLY,
    Call,
    Caller,
    ChildSpec,
    GenActor,
    LogSettings,
    SupervisionError,
    SupervisionSystem,
    Supervisor,
    SupFlags,
)
from tests.supervisors.helpers import restarted, running_pid, wait_for
from tests.support.processes import group_members, wait_all_dead
from tpir.config import Config, parse_config
from tpir.simulator import ProviderSimulator

pytestmark = pytest.mark.timeout(90)

ROOT = "tpir"
LLM = "llm_provider"
PAYMENTS = "payments"
CHAT = {"messages": [{"role": "user", "content": "hello"}]}
CHARGE = {"method": "POST", "path": "/charges", "body": {"amount": 100}}
HANG_SLACK = 0.05
"""Seconds a hanging primary may cost beyond its per-try timeout."""

_FLAGS = SupFlags("one_for_one", intensity=10, period=10)


class EventCollector(GenActor):
    """Subscribes to one router at start and keeps every `IntegrationEvent` it receives.

    ``Call("events")`` returns the events, oldest first.
    """

    def init(self, router: str) -> None:
        self.events: list[IntegrationEvent] = []
        self.send_named(router, Call(("subscribe",), SubscribeEvents(), self.myAddress))

    def handle_cast(self, message: Any, sender: Any) -> None:
        if isinstance(message, IntegrationEvent):
            self.events.append(message)
        # The router's reply to the subscription needs no handling.

    def handle_call(self, body: Any, caller: Caller) -> Any:
        if body == "events":
            return list(self.events)
        return super().handle_call(body, caller)


class SilentProvider(GenActor):
    """Stands in for a provider actor whose replies are lost: it replies to no attempt.

    ``Call(Describe())`` returns the call ids of the attempts and cancellations received.
    """

    def init(self, *args: Any) -> None:
        self.attempts: list[str] = []
        self.cancelled: list[str] = []

    def handle_call(self, body: Any, caller: Caller) -> Any:
        if isinstance(body, Attempt):
            self.attempts.append(body.call_id)
            return NOREPLY
        if isinstance(body, Describe):
            return {"attempts": list(self.attempts), "cancelled": list(self.cancelled)}
        return super().handle_call(body, caller)

    def handle_cast(self, message: Any, sender: Any) -> None:
        if isinstance(message, CancelAttempt):
            self.cancelled.append(message.call_id)
        else:
            super().handle_cast(message, sender)


# -- configuration and tree -----------------------------------------------------------------


def _provider_toml(name: str, kind: str, role: str, base_url: str, timeout: float) -> str:
    model = f'model = "{kind}-test-model"\n' if kind != "http" else ""
    return (
        f'\n[[integrations.providers]]\nname = "{name}"\nkind = "{kind}"\n'
        f'role = "{role}"\nbase_url = "{base_url}"\ntimeout = {timeout}\n{model}'
    )


def build_config(
    tmp_path: Path,
    providers: list[tuple[str, str, str, str]],
    *,
    integration: str = LLM,
    timeout: float = 5.0,
    per_try: float = 0.5,
    max_retries: int = 1,
    failure_threshold: int = 50,
    retry_extra: str = "",
) -> Config:
    """Return a configuration with one integration and its store in ``tmp_path``.

    ``providers`` lists (name, kind, role, base_url). Health checks are disabled, and the
    breaker opens only after ``failure_threshold`` consecutive failures.
    """
    text = (
        f'[node]\ndata_dir = "{tmp_path}"\ndatabase = "{tmp_path / "recovery.sqlite3"}"\n'
        f"checkpoint_interval = 0.2\n"
        f'\n[[integrations]]\nname = "{integration}"\ntier = 1\ntimeout = {timeout}\n'
        f"\n[integrations.circuit_breaker]\nfailure_threshold = {failure_threshold}\n"
        f"open_duration = 30.0\n"
        f"\n[integrations.retry]\nmax_retries = {max_retries}\ninitial_delay = 0.01\n"
        f'max_delay = 0.05\njitter = "none"\n{retry_extra}'
        f"\n[integrations.health_check]\nenabled = false\n"
        f"\n[integrations.failover]\nconsecutive_failures = 50\n"
    )
    for name, kind, role, base_url in providers:
        text += _provider_toml(name, kind, role, base_url, per_try)
    return parse_config(text, environ={"HOME": str(tmp_path)})


def build_tree(config: Config, stand_ins: dict[str, type] | None = None) -> list[ChildSpec]:
    """Return the children of the root ``tpir``: the integration tree and the collector.

    ``stand_ins`` maps provider names to an actor class that replaces their provider actor.
    """
    integration = config.integrations[0]
    node = config.node

    def group(child_id: str, actor: type) -> ChildSpec:
        workers = []
        for p in integration.providers:
            chosen = (stand_ins or {}).get(p.name, actor) if child_id == "providers" else actor
            workers.append(
                ChildSpec(p.name, chosen, args=(integration.name, p, node), shutdown=3000)
            )
        return ChildSpec(child_id, Supervisor, args=(_FLAGS, workers), type="supervisor")

    members = [
        group("breakers", CircuitBreakerActor),
        group("providers", ProviderActor),
        group("health", HealthCheckerActor),
        ChildSpec("router", RouterActor, args=(integration, node), shutdown=3000),
    ]
    integration_spec = ChildSpec(
        integration.name,
        Supervisor,
        args=(SupFlags("rest_for_one", intensity=10, period=10), members),
        type="supervisor",
    )
    collector = ChildSpec(
        "events", EventCollector, args=(router_path(integration.name, root=ROOT),)
    )
    return [
        ChildSpec("integrations", Supervisor, args=(_FLAGS, [integration_spec]), type="supervisor"),
        collector,
    ]


def start(
    system: SupervisionSystem, config: Config, stand_ins: dict[str, type] | None = None
) -> str:
    """Start the tree, wait until the collector has subscribed, and return the router path."""
    system.start_root(ROOT, _FLAGS, build_tree(config, stand_ins))
    router = router_path(config.integrations[0].name, root=ROOT)
    wait_for(lambda: system.call(router, Describe())["subscribers"] >= 1)
    return router


def route(
    system: SupervisionSystem,
    router: str,
    request: dict[str, Any] = CHAT,
    *,
    deadline: float | None = None,
    key: str | None = None,
    timeout: float = 15.0,
) -> Any:
    return system.call(router, IntegrationCall(request, deadline, key), timeout=timeout)


def route_error(system: SupervisionSystem, router: str, *args: Any, **kwargs: Any):
    with pytest.raises(SupervisionError) as caught:
        route(system, router, *args, **kwargs)
    return caught.value


def events(system: SupervisionSystem, kind: str) -> list[IntegrationEvent]:
    return [event for event in system.call(f"{ROOT}/events", "events") if event.kind == kind]


def describe(system: SupervisionSystem, router: str) -> dict[str, Any]:
    return dict(system.call(router, Describe()))


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def system(tmp_path: Path) -> Iterator[SupervisionSystem]:
    """An actor system on a free port; after the test, no process of it may be left."""
    sup_system = SupervisionSystem(
        log_settings=LogSettings(format="json", path=str(tmp_path / "actors.log"))
    )
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
def primary() -> Iterator[ProviderSimulator]:
    with ProviderSimulator("primary") as sim:
        yield sim


@pytest.fixture
def secondary() -> Iterator[ProviderSimulator]:
    with ProviderSimulator("secondary") as sim:
        yield sim


def _llm_pair(primary: ProviderSimulator, secondary: ProviderSimulator):
    return [
        ("openai", "openai", "primary", primary.api_url),
        ("anthropic", "anthropic", "secondary", secondary.api_url),
    ]


def _http_pair(primary: ProviderSimulator, secondary: ProviderSimulator):
    return [
        ("stripe", "http", "primary", primary.url),
        ("adyen", "http", "secondary", secondary.url),
    ]


# -- routing and failover -------------------------------------------------------------------


def test_router_actor_serves_call_from_primary(system, tmp_path, primary, secondary):
    router = start(system, build_config(tmp_path, _llm_pair(primary, secondary)))
    reply = route(system, router)
    assert reply["provider"] == "openai"
    assert reply["result"]["text"].startswith("Simulated reply")
    assert [a["outcome"] for a in reply["attempts"]] == ["ok"]
    assert secondary.count() == 0


@pytest.mark.parametrize(
    ("mode", "key"),
    [(503, "key-503"), ("hang", "key-hang"), ("refuse", None)],
    ids=["503", "hang", "refuse"],
)
def test_router_actor_fails_over_from_failing_primary(
    system, tmp_path, primary, secondary, mode, key
):
    # A chat request is not idempotent, so only an idempotency key lets it fail over
    # after a failure that may have reached the provider. A refused connection needs none.
    router = start(system, build_config(tmp_path, _llm_pair(primary, secondary), per_try=0.4))
    primary.set_mode(mode)
    reply = route(system, router, key=key)
    assert reply["provider"] == "anthropic"
    assert reply["attempts"][0]["provider"] == "openai"
    assert reply["attempts"][-1]["outcome"] == "ok"


def test_router_actor_sends_failover_event(system, tmp_path, primary, secondary):
    router = start(system, build_config(tmp_path, _llm_pair(primary, secondary)))
    primary.set_mode(503)
    route(system, router, key="event-key")
    found = wait_for(lambda: events(system, "failover"))
    assert found[0].provider == "anthropic"
    assert found[0].details["from"] == "openai"
    assert found[0].integration == LLM


def test_router_actor_hanging_primary_costs_per_try_timeout(system, tmp_path, primary, secondary):
    per_try = 0.4
    router = start(system, build_config(tmp_path, _llm_pair(primary, secondary), per_try=per_try))
    route(system, router)  # warm up connections and processes
    primary.set_mode("hang")
    started = time.monotonic()
    reply = route(system, router, key="hang-key")
    elapsed = time.monotonic() - started
    hang, served = reply["attempts"]
    assert hang["outcome"] == "read_timeout"
    assert hang["duration"] <= per_try + HANG_SLACK
    # The call's wall time also covers the secondary's attempt and the trip through
    # the supervisors, which the router does not control.
    assert elapsed - served["duration"] <= per_try + HANG_SLACK + 0.15


def test_router_actor_hang_blocks_no_other_call(system, tmp_path, primary, secondary):
    config = build_config(tmp_path, _llm_pair(primary, secondary), per_try=2.0)
    router = start(system, config)
    primary.set_mode("hang")
    system.send_to(router, Call("slow-call", IntegrationCall(CHAT)))
    assert primary.wait_for_count(1, timeout=5.0)
    system.send_to(router, StatusUpdate("openai", "failed", at=time.time()))
    started = time.monotonic()
    reply = route(system, router)
    assert reply["provider"] == "anthropic"
    assert time.monotonic() - started < 1.0


# -- retryability, Retry-After and idempotency ---------------------------------------------


def test_router_actor_s5_returns_400_after_429(system, tmp_path, primary):
    config = build_config(
        tmp_path, [("openai", "openai", "primary", primary.api_url)], max_retries=3
    )
    router = start(system, config)
    primary.script([{"mode": 429, "retry_after": 0.2}, 400, 200])
    error = route_error(system, router, key="s5-key")
    assert error.code == "provider_error"
    assert error.details["status"] == 400
    assert len(error.details["attempts"]) == 2
    assert primary.count() == 2


def test_router_actor_s6_retry_after_sets_cooldown(system, tmp_path, primary, secondary):
    router = start(system, build_config(tmp_path, _llm_pair(primary, secondary)))
    primary.set_mode(429, retry_after=30)
    before = time.time()
    reply = route(system, router, key="s6-key")
    assert reply["provider"] == "anthropic"
    cooling = describe(system, router)["providers"]["openai"]["cooling_until"]
    assert cooling >= before + 30
    route(system, router, key="s6-next")
    assert primary.count() == 1


def test_router_actor_records_both_failed_providers(system, tmp_path, primary, secondary):
    config = build_config(tmp_path, _llm_pair(primary, secondary), max_retries=0)
    router = start(system, config)
    primary.set_mode(429, retry_after=20)
    secondary.set_mode(503, retry_after=10)
    error = route_error(system, router, key="both")
    assert error.code == "all_providers_failed"
    providers = describe(system, router)["providers"]
    assert providers["openai"]["cooling_until"] is not None
    assert providers["anthropic"]["cooling_until"] is not None
    assert providers["openai"]["totals"]["failures"] == 1
    assert providers["anthropic"]["totals"]["failures"] == 1


def test_router_actor_no_cycles_lists_every_attempt(system, tmp_path, primary, secondary):
    config = build_config(tmp_path, _llm_pair(primary, secondary), max_retries=2)
    router = start(system, config)
    primary.set_mode(503)
    secondary.set_mode(503)
    error = route_error(system, router, key="cycle")
    assert error.code == "all_providers_failed"
    assert len(error.details["attempts"]) == 6
    assert primary.count() == 3
    assert secondary.count() == 3
    assert str(error).count("http_status 503") == 6


def test_router_actor_post_not_retried_after_timeout(system, tmp_path, primary, secondary):
    config = build_config(
        tmp_path, _http_pair(primary, secondary), integration=PAYMENTS, per_try=0.3
    )
    router = start(system, config)
    primary.set_mode("hang")
    error = route_error(system, router, CHARGE)
    assert error.code == "not_retried"
    assert error.details["kind"] == "read_timeout"
    assert primary.count() == 1
    assert secondary.count() == 0


def test_router_actor_post_retried_after_refusal(system, tmp_path, primary, secondary):
    config = build_config(tmp_path, _http_pair(primary, secondary), integration=PAYMENTS)
    router = start(system, config)
    primary.set_mode("refuse")
    reply = route(system, router, CHARGE)
    assert reply["provider"] == "adyen"
    assert reply["attempts"][0]["outcome"] == "connect_error"
    assert secondary.count() == 1


def test_router_actor_repeats_idempotency_key(system, tmp_path, primary, secondary):
    config = build_config(tmp_path, _http_pair(primary, secondary), integration=PAYMENTS)
    router = start(system, config)
    primary.script([503, 200])
    secondary.script([503])
    reply = route(system, router, CHARGE, key="charge-42")
    assert reply["provider"] == "stripe"
    assert len(reply["attempts"]) == 3
    keys = [r.idempotency_key for r in primary.requests + secondary.requests]
    assert keys == ["charge-42", "charge-42", "charge-42"]


def test_router_actor_rejects_request_of_wrong_kind(system, tmp_path, primary, secondary):
    config = build_config(tmp_path, _http_pair(primary, secondary), integration=PAYMENTS)
    router = start(system, config)
    error = route_error(system, router, CHAT)
    assert error.code == "invalid_request"
    assert primary.count() == 0


# -- deadline, cancellation and lost replies -------------------------------------------------


def test_router_actor_deadline_cancels_attempt(system, tmp_path, primary, secondary):
    # The silent provider never times out by itself, so only the router's deadline can
    # end the attempt, and the cancellation it sends is observable.
    config = build_config(tmp_path, _llm_pair(primary, secondary), per_try=3.0)
    router = start(system, config, {"openai": SilentProvider})
    started = time.monotonic()
    error = route_error(system, router, deadline=0.5, key="deadline-key")
    elapsed = time.monotonic() - started
    assert error.code == "deadline_exceeded"
    assert elapsed < 0.5 + ATTEMPT_GRACE
    openai = provider_path(LLM, "openai", root=ROOT)
    seen = wait_for(lambda: (d := system.call(openai, Describe()))["cancelled"] and d)
    assert seen["cancelled"] == seen["attempts"]
    assert secondary.count() == 0


def test_router_actor_deadline_ends_hanging_attempt(system, tmp_path, primary, secondary):
    config = build_config(tmp_path, _llm_pair(primary, secondary), per_try=3.0)
    router = start(system, config)
    primary.set_mode("hang")
    started = time.monotonic()
    error = route_error(system, router, deadline=0.5, key="hang-deadline")
    elapsed = time.monotonic() - started
    assert error.code == "deadline_exceeded"
    assert elapsed < 1.5
    openai = provider_path(LLM, "openai", root=ROOT)
    # The per-try timeout equals the time left, so the provider actor's own timeout and
    # the router's cancellation race; either way nothing stays in flight.
    wait_for(lambda: system.call(openai, Describe())["in_flight"] == 0)
    assert secondary.count() == 0


def test_router_actor_cancel_call_stops_attempt(system, tmp_path, primary, secondary):
    config = build_config(tmp_path, _llm_pair(primary, secondary), per_try=3.0)
    router = start(system, config)
    primary.set_mode("hang")
    system.send_to(router, Call("caller-gone", IntegrationCall(CHAT)))
    assert primary.wait_for_count(1, timeout=5.0)
    assert system.call(router, CancelCall("caller-gone")) == 1
    assert describe(system, router)["calls_in_flight"] == 0
    openai = provider_path(LLM, "openai", root=ROOT)
    described = wait_for(lambda: (d := system.call(openai, Describe()))["cancelled"] and d)
    assert described["in_flight"] == 0
    assert secondary.count() == 0


def test_router_actor_lost_reply_counts_as_timeout(system, tmp_path, primary, secondary):
    per_try = 1.0
    config = build_config(tmp_path, _llm_pair(primary, secondary), per_try=per_try)
    router = start(system, config)
    primary.set_mode("hang")
    supervisor = f"{ROOT}/integrations/{LLM}/providers"
    pid = running_pid(system, supervisor, "openai")

    def kill_when_sent() -> None:
        if primary.wait_for_count(1, timeout=5.0):
            os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_when_sent)
    killer.start()
    try:
        started = time.monotonic()
        reply = route(system, router, key="lost-key")
        elapsed = time.monotonic() - started
    finally:
        killer.join()
    assert reply["provider"] == "anthropic"
    assert reply["attempts"][0]["outcome"] == "no_reply"
    assert elapsed < per_try + ATTEMPT_GRACE + 1.0
    restarted(system, supervisor, "openai", pid)


def test_router_actor_bounds_attempt_without_reply(system, tmp_path, primary, secondary):
    per_try = 0.3
    config = build_config(tmp_path, _llm_pair(primary, secondary), per_try=per_try)
    router = start(system, config, {"openai": SilentProvider})
    started = time.monotonic()
    reply = route(system, router, key="silent-key")
    elapsed = time.monotonic() - started
    lost, served = reply["attempts"]
    assert lost["outcome"] == "no_reply"
    assert lost["duration"] >= per_try + ATTEMPT_GRACE
    assert served["provider"] == "anthropic"
    assert elapsed < per_try + ATTEMPT_GRACE + 1.0


# -- replica, events and state --------------------------------------------------------------


def test_router_actor_breaker_trip_moves_traffic(system, tmp_path, primary, secondary):
    config = build_config(tmp_path, _llm_pair(primary, secondary), failure_threshold=2)
    router = start(system, config)
    primary.set_mode(503)
    for index in range(2):
        assert route(system, router, key=f"trip-{index}")["provider"] == "anthropic"
    wait_for(lambda: events(system, "circuit_opened"))
    reply = route(system, router, key="after-trip")
    assert reply["provider"] == "anthropic"
    assert [a["provider"] for a in reply["attempts"]] == ["anthropic"]
    assert primary.count() == 2


def test_router_actor_no_provider_available_alerts(system, tmp_path, primary, secondary):
    router = start(system, build_config(tmp_path, _llm_pair(primary, secondary)))
    for name in ("openai", "anthropic"):
        system.send_to(router, StatusUpdate(name, "failed", at=time.time()))
    error = route_error(system, router)
    assert error.code == "no_provider_available"
    assert error.details["providers"]["openai"] == "health status is failed"
    alert = wait_for(lambda: events(system, "no_provider_available"))[0]
    assert alert.integration == LLM
    assert len(events(system, "provider_failed")) == 2


def test_router_actor_status_recovery_sends_event(system, tmp_path, primary, secondary):
    router = start(system, build_config(tmp_path, _llm_pair(primary, secondary)))
    system.send_to(router, StatusUpdate("openai", "failed", at=time.time()))
    system.send_to(router, StatusUpdate("openai", "healthy", at=time.time() + 0.001))
    recovered = wait_for(lambda: events(system, "provider_recovered"))
    assert recovered[0].provider == "openai"


def test_router_actor_describe_lists_providers(system, tmp_path, primary, secondary):
    router = start(system, build_config(tmp_path, _llm_pair(primary, secondary)))
    described = describe(system, router)
    assert described["integration"] == LLM
    assert described["tier"] == 1
    assert described["providers"]["openai"]["role"] == "primary"
    assert described["providers"]["anthropic"]["breaker"] == "closed"
    assert described["providers"]["anthropic"]["health"] == "healthy"
    assert described["providers"]["openai"]["breaker_known"] is True


def test_router_actor_resumes_cooldown_after_restart(system, tmp_path, primary, secondary):
    router = start(system, build_config(tmp_path, _llm_pair(primary, secondary)))
    primary.set_mode(429, retry_after=60)
    route(system, router, key="before-restart")
    cooling = describe(system, router)["providers"]["openai"]["cooling_until"]
    integration = f"{ROOT}/integrations/{LLM}"
    pid = running_pid(system, integration, "router")
    os.kill(pid, signal.SIGKILL)
    restarted(system, integration, "router", pid)
    resumed = wait_for(lambda: describe(system, router)["providers"]["openai"]["cooling_until"])
    assert resumed == pytest.approx(cooling)
    assert describe(system, router)["totals"]["calls"] == 1


def test_router_actor_restore_reloads_point(system, tmp_path, primary, secondary):
    router = start(system, build_config(tmp_path, _llm_pair(primary, secondary)))
    before_any_point = time.time()
    primary.set_mode(429, retry_after=60)
    route(system, router, key="restore-key")
    cooling = describe(system, router)["providers"]["openai"]["cooling_until"]
    assert system.call(router, Restore(before_any_point)) is None
    restored_at = system.call(router, Restore(time.time()))
    assert before_any_point <= restored_at <= time.time()
    assert describe(system, router)["providers"]["openai"]["cooling_until"] == cooling
