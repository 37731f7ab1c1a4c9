"""The health-checker actor on a real actor system, against a real provider simulator.

The simulator's ``/health`` path serves the health checks, so each test points the provider's
``base_url`` at the simulator's root URL and switches the ``health`` target between
normal and failing modes. A `Recorder` at the router path keeps the `StatusUpdate`
messages the checker sends.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.messages import (
    Describe,
    OutcomeReport,
    ResetProvider,
    Restore,
    StateRequest,
    StatusUpdate,
)
from actors.names import actor_key, breaker_path, health_path, router_path
from supervisors import SupervisionError, SupervisionSystem
from tests.actors.breaker_health_tree import (
    INTEGRATION,
    PROVIDER,
    actor_system,
    build_config,
    kill_and_wait,
    recorded,
    simulator,
    start_tree,
    wait_for,
    wait_for_point,
)
from tpir.config import Config
from tpir.simulator import ProviderSimulator

pytestmark = pytest.mark.timeout(90)

HEALTH = health_path(INTEGRATION, PROVIDER)
HEALTH_SUP = f"tpir/integrations/{INTEGRATION}/health"
BREAKER = breaker_path(INTEGRATION, PROVIDER)
ROUTER = router_path(INTEGRATION)
KEY = actor_key(INTEGRATION, "provider_status", PROVIDER)
SECRET = "sk-health-test-5c1d0e9f8a7b6c5d4e3f2a1b"

CHECKS = {"path": "/health", "interval": 0.3, "timeout": 0.2, "retries": 2}
"""Health checks every 0.3 s. Two failed checks in a row mark the provider failed."""


@pytest.fixture
def system(tmp_path: Path) -> Iterator[SupervisionSystem]:
    with actor_system(tmp_path / "actors.log") as running:
        yield running


@pytest.fixture
def sim() -> Iterator[ProviderSimulator]:
    with simulator() as running:
        yield running


def health_config(
    tmp_path: Path,
    sim: ProviderSimulator,
    *,
    recovery: dict[str, Any] | None = None,
    **options: Any,
) -> Config:
    probes = {"initial_delay": 0.3, "max_delay": 2.0, "multiplier": 2.0, "jitter": "none"}
    recovery_section = {"max_attempts": 0, "recovery_threshold": 2, "probe_backoff": probes}
    recovery_section.update(recovery or {})
    options.setdefault("health_check", CHECKS)
    return build_config(tmp_path, sim.url, recovery=recovery_section, **options)


def status_of(system: SupervisionSystem) -> StatusUpdate:
    update = system.call(HEALTH, StateRequest())
    assert isinstance(update, StatusUpdate)
    return update


def wait_for_status(
    system: SupervisionSystem, status: str, *, after: float = 0.0, timeout: float = 8.0
) -> StatusUpdate:
    """Wait until the router has received a `StatusUpdate` to ``status`` sent after ``after``."""

    def found() -> list[StatusUpdate]:
        return [
            update
            for update in recorded(system, ROUTER)
            if isinstance(update, StatusUpdate) and update.status == status and update.at > after
        ]

    return wait_for(found, timeout=timeout)[0]


def health_requests(sim: ProviderSimulator, start: float, end: float) -> list[Any]:
    return [
        request
        for request in sim.requests
        if request.path == "/health" and start <= request.received_at <= end
    ]


def start_checked(system: SupervisionSystem, sim: ProviderSimulator, config: Config) -> None:
    """Start the tree with a real health checker and wait for its first passed check."""
    start_tree(system, config, health="real")
    assert sim.wait_for_count(1, "/health", timeout=5)


def test_health_actor_starts_healthy(
    system: SupervisionSystem, sim: ProviderSimulator, tmp_path: Path
) -> None:
    start_checked(system, sim, health_config(tmp_path, sim))
    assert status_of(system).status == "healthy"


def test_health_actor_checks_every_interval(
    system: SupervisionSystem, sim: ProviderSimulator, tmp_path: Path
) -> None:
    start_checked(system, sim, health_config(tmp_path, sim))
    assert sim.wait_for_count(5, "/health", timeout=5)
    times = [r.received_at for r in sim.requests if r.path == "/health"][:5]
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert min(gaps) > 0.25
    assert max(gaps) < 0.5


def test_health_actor_marks_failed_after_retries(
    system: SupervisionSystem, sim: ProviderSimulator, tmp_path: Path
) -> None:
    start_checked(system, sim, health_config(tmp_path, sim))
    failing_since = time.time()
    sim.set_mode(503, target="health")

    failed = wait_for_status(system, "failed")

    assert len(health_requests(sim, failing_since, failed.at)) == CHECKS["retries"]


def test_health_actor_probes_with_backoff(
    system: SupervisionSystem, sim: ProviderSimulator, tmp_path: Path
) -> None:
    config = health_config(tmp_path, sim, recovery={"max_attempts": 4})
    start_checked(system, sim, config)
    sim.set_mode(503, target="health")
    failed = wait_for_status(system, "failed")
    given_up = wait_for_status(system, "permanently_failed", timeout=10)

    probes = [r.received_at for r in health_requests(sim, failed.at, given_up.at)]
    assert len(probes) == 4
    gaps = [later - earlier for earlier, later in zip(probes, probes[1:], strict=False)]
    # The gaps between probes double from 0.6 s to 1.2 s, then stop at max_delay, 2.0 s.
    assert gaps[0] >= 0.58
    assert gaps[1] > gaps[0] * 1.5
    assert gaps[2] > gaps[1] * 1.4


def test_health_actor_permanently_failed_stops_checks(
    system: SupervisionSystem, sim: ProviderSimulator, tmp_path: Path
) -> None:
    start_checked(system, sim, health_config(tmp_path, sim, recovery={"max_attempts": 1}))
    sim.set_mode(503, target="health")
    given_up = wait_for_status(system, "permanently_failed")
    time.sleep(1.0)
    assert health_requests(sim, given_up.at, time.time()) == []


def test_health_actor_recovers_after_recovery_threshold(
    system: SupervisionSystem, sim: ProviderSimulator, tmp_path: Path
) -> None:
    start_checked(system, sim, health_config(tmp_path, sim))
    sim.set_mode(503, target="health")
    failed = wait_for_status(system, "failed")
    sim.set_mode("normal", target="health")

    testing = wait_for_status(system, "testing", after=failed.at)
    healthy = wait_for_status(system, "healthy", after=failed.at)

    assert testing.at < healthy.at
    # One probe moves it to testing, then recovery_threshold (2) passed checks.
    assert len(health_requests(sim, failed.at, healthy.at)) == 3


def test_health_actor_reset_returns_provider_to_testing(
    system: SupervisionSystem, sim: ProviderSimulator, tmp_path: Path
) -> None:
    start_checked(system, sim, health_config(tmp_path, sim, recovery={"max_attempts": 1}))
    sim.set_mode(503, target="health")
    given_up = wait_for_status(system, "permanently_failed")
    sim.set_mode("normal", target="health")

    assert system.call(HEALTH, ResetProvider(PROVIDER)) is True

    assert wait_for_status(system, "testing", after=given_up.at).provider == PROVIDER
    assert wait_for_status(system, "healthy", after=given_up.at).provider == PROVIDER


def test_health_actor_reset_rejects_healthy_provider(
    system: SupervisionSystem, sim: ProviderSimulator, tmp_path: Path
) -> None:
    start_checked(system, sim, health_config(tmp_path, sim))
    with pytest.raises(SupervisionError) as raised:
        system.call(HEALTH, ResetProvider(PROVIDER))
    assert raised.value.code == "invalid_state"


def test_health_actor_reset_rejects_other_provider(
    system: SupervisionSystem, sim: ProviderSimulator, tmp_path: Path
) -> None:
    start_checked(system, sim, health_config(tmp_path, sim))
    with pytest.raises(SupervisionError) as raised:
        system.call(HEALTH, ResetProvider("anthropic"))
    assert raised.value.code == "not_found"


def test_health_actor_marks_failed_when_breaker_opens(
    system: SupervisionSystem, sim: ProviderSimulator, tmp_path: Path
) -> None:
    config = health_config(tmp_path, sim, circuit_breaker={"failure_threshold": 1})
    start_checked(system, sim, config)

    system.send_to(BREAKER, OutcomeReport(PROVIDER, "failure", 0.1))

    failed = wait_for_status(system, "failed")
    assert failed.snapshot["breaker_state"] == "open"
    assert failed.snapshot["last_change"]["cause"] == "breaker_opened"


def test_health_actor_status_survives_kill(
    system: SupervisionSystem, sim: ProviderSimulator, tmp_path: Path
) -> None:
    # Probes start 60 s after the failure, so nothing changes the status during the test.
    slow_probes = {"probe_backoff": {"initial_delay": 60.0, "max_delay": 60.0}}
    config = health_config(tmp_path, sim, recovery=slow_probes)
    start_checked(system, sim, config)
    sim.set_mode(503, target="health")
    failed = wait_for_status(system, "failed")
    database = Path(config.node.database)
    wait_for_point(database, KEY, lambda state: state["status"] == "failed")

    kill_and_wait(system, HEALTH_SUP, PROVIDER)

    resumed = status_of(system)
    assert resumed.status == "failed"
    assert resumed.snapshot["next_probe_at"] == failed.snapshot["next_probe_at"]


def test_health_actor_saves_status_change_at_once(
    system: SupervisionSystem, sim: ProviderSimulator, tmp_path: Path
) -> None:
    config = health_config(tmp_path, sim)
    start_checked(system, sim, config)
    sim.set_mode(503, target="health")
    failed = wait_for_status(system, "failed")
    point = wait_for_point(
        Path(config.node.database), KEY, lambda state: state["status"] == "failed", timeout=1.0
    )
    assert point["created_at"] - failed.at < 0.1


def test_health_actor_restore_reloads_earlier_point(
    system: SupervisionSystem, sim: ProviderSimulator, tmp_path: Path
) -> None:
    slow_probes = {"probe_backoff": {"initial_delay": 60.0, "max_delay": 60.0}}
    config = health_config(tmp_path, sim, recovery=slow_probes)
    database = Path(config.node.database)
    start_checked(system, sim, config)
    healthy = wait_for_point(database, KEY, lambda state: state["status"] == "healthy")
    sim.set_mode(503, target="health")
    failed = wait_for_status(system, "failed")
    sim.set_mode("normal", target="health")

    assert system.call(HEALTH, Restore(healthy["created_at"])) == healthy["created_at"]

    assert status_of(system).status == "healthy"
    assert wait_for_status(system, "healthy", after=failed.at).provider == PROVIDER


def test_health_actor_check_ends_within_timeout(
    system: SupervisionSystem, sim: ProviderSimulator, tmp_path: Path
) -> None:
    start_checked(system, sim, health_config(tmp_path, sim))
    sim.set_mode("hang", target="health")

    def hung_check() -> dict[str, Any] | None:
        last = system.call(HEALTH, Describe())["last_check"]
        return last if last is not None and not last["passed"] else None

    last = wait_for(hung_check, timeout=5)
    assert last["error"].startswith("timed out")
    assert last["duration"] < CHECKS["timeout"] + 0.05


def test_health_actor_refused_connection_fails_check(
    system: SupervisionSystem, sim: ProviderSimulator, tmp_path: Path
) -> None:
    start_checked(system, sim, health_config(tmp_path, sim))
    sim.set_mode("refuse", target="all")
    failed = wait_for_status(system, "failed")
    assert failed.snapshot["last_check"]["status"] is None


def test_health_actor_sends_api_key(
    system: SupervisionSystem, sim: ProviderSimulator, tmp_path: Path
) -> None:
    start_checked(system, sim, health_config(tmp_path, sim, api_key=SECRET))
    headers = {name.lower(): value for name, value in sim.requests[0].headers.items()}
    assert headers["authorization"] == "Bearer ***"
    assert SECRET not in (tmp_path / "actors.log").read_text(encoding="utf-8")


def test_health_actor_disabled_sends_no_request(
    system: SupervisionSystem, sim: ProviderSimulator, tmp_path: Path
) -> None:
    config = health_config(
        tmp_path, sim, health_check={"enabled": False}, circuit_breaker={"failure_threshold": 1}
    )
    start_tree(system, config, health="real")
    system.send_to(BREAKER, OutcomeReport(PROVIDER, "failure", 0.1))
    wait_for(lambda: system.call(HEALTH, Describe())["breaker_state"] == "open")
    assert status_of(system).status == "healthy"
    assert sim.count("/health") == 0
