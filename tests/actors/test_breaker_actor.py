"""The circuit-breaker actor on a real actor system with its store in tmp_path.

Each test builds the tree of one integration by hand (see ``breaker_health_tree``), with
recorders standing in for the router and the health checker.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.breaker_actor import breaker_settings
from actors.messages import (
    BreakerUpdate,
    Describe,
    OutcomeReport,
    ResetProvider,
    Restore,
    StateRequest,
)
from actors.names import actor_key, breaker_path, health_path, router_path
from actors.policy import CircuitBreaker
from supervisors import SupervisionError, SupervisionSystem
from tests.actors.breaker_health_tree import (
    INTEGRATION,
    PROVIDER,
    actor_system,
    build_config,
    kill_and_wait,
    latest_point,
    point_rows,
    recorded,
    start_tree,
    wait_for,
    wait_for_point,
)
from tpir.config import Config
from tpir.store import RecoveryStore

pytestmark = pytest.mark.timeout(90)

BREAKERS = f"{INTEGRATION}/breakers"
BREAKERS_SUP = f"tpir/integrations/{BREAKERS}"
BREAKER = breaker_path(INTEGRATION, PROVIDER)
ROUTER = router_path(INTEGRATION)
HEALTH = health_path(INTEGRATION, PROVIDER)
KEY = actor_key(INTEGRATION, "breaker", PROVIDER)


@pytest.fixture
def system(tmp_path: Path) -> Iterator[SupervisionSystem]:
    with actor_system(tmp_path / "actors.log") as running:
        yield running


def report(outcome: str, duration: float = 0.01) -> OutcomeReport:
    return OutcomeReport(PROVIDER, outcome, duration)


def send(system: SupervisionSystem, *outcomes: str) -> None:
    for outcome in outcomes:
        system.send_to(BREAKER, report(outcome))


def breaker_state(system: SupervisionSystem) -> BreakerUpdate:
    update = system.call(BREAKER, StateRequest())
    assert isinstance(update, BreakerUpdate)
    return update


def updates_with_state(system: SupervisionSystem, path: str, state: str) -> list[BreakerUpdate]:
    return [update for update in recorded(system, path) if update.state == state]


def wait_for_update(
    system: SupervisionSystem, path: str, state: str, timeout: float = 5.0
) -> BreakerUpdate:
    return wait_for(lambda: updates_with_state(system, path, state), timeout=timeout)[0]


def database_of(config: Config) -> Path:
    return Path(config.node.database)


def test_breaker_actor_starts_closed(system: SupervisionSystem, tmp_path: Path) -> None:
    start_tree(system, build_config(tmp_path))
    assert breaker_state(system).state == "closed"


def test_breaker_actor_opens_at_failure_threshold(
    system: SupervisionSystem, tmp_path: Path
) -> None:
    start_tree(system, build_config(tmp_path, circuit_breaker={"failure_threshold": 3}))
    send(system, "failure", "failure")
    assert breaker_state(system).state == "closed"
    send(system, "failure")
    assert breaker_state(system).state == "open"


def test_breaker_actor_sends_update_to_router(system: SupervisionSystem, tmp_path: Path) -> None:
    start_tree(system, build_config(tmp_path, circuit_breaker={"failure_threshold": 1}))
    send(system, "failure")
    update = wait_for_update(system, ROUTER, "open")
    assert update.provider == PROVIDER
    assert update.retry_at is not None


def test_breaker_actor_sends_update_to_health_checker(
    system: SupervisionSystem, tmp_path: Path
) -> None:
    start_tree(system, build_config(tmp_path, circuit_breaker={"failure_threshold": 1}))
    send(system, "failure")
    assert wait_for_update(system, HEALTH, "open").provider == PROVIDER


def test_breaker_actor_sends_no_update_without_transition(
    system: SupervisionSystem, tmp_path: Path
) -> None:
    start_tree(system, build_config(tmp_path, circuit_breaker={"failure_threshold": 3}))
    send(system, "failure", "success", "failure")
    breaker_state(system)
    system.pump(0.3)
    assert recorded(system, ROUTER) == []


def test_breaker_actor_ignored_report_counts_neither_way(
    system: SupervisionSystem, tmp_path: Path
) -> None:
    start_tree(system, build_config(tmp_path, circuit_breaker={"failure_threshold": 3}))
    send(system, "failure", "failure", "ignored")
    described = system.call(BREAKER, Describe())
    assert described["consecutive_failures"] == 2
    assert described["reports"]["ignored"] == 1
    send(system, "failure")
    assert breaker_state(system).state == "open"


def test_breaker_actor_counts_reports_while_open(system: SupervisionSystem, tmp_path: Path) -> None:
    config = build_config(tmp_path, circuit_breaker={"failure_threshold": 1, "open_duration": 30})
    start_tree(system, config)
    send(system, "failure", "success", "success")
    described = system.call(BREAKER, Describe())
    assert described["state"] == "open"
    assert described["reports"]["while_open"] == 2


def test_breaker_actor_drops_invalid_report(system: SupervisionSystem, tmp_path: Path) -> None:
    start_tree(system, build_config(tmp_path, circuit_breaker={"failure_threshold": 1}))
    system.send_to(BREAKER, OutcomeReport(PROVIDER, "failure", float("nan")))
    system.send_to(BREAKER, OutcomeReport("anthropic", "failure", 0.1))
    system.send_to(BREAKER, OutcomeReport(PROVIDER, "broken", 0.1))
    described = system.call(BREAKER, Describe())
    assert described["state"] == "closed"
    assert described["reports"]["invalid"] == 3


def test_breaker_actor_half_opens_without_traffic(
    system: SupervisionSystem, tmp_path: Path
) -> None:
    config = build_config(tmp_path, circuit_breaker={"failure_threshold": 1, "open_duration": 0.5})
    start_tree(system, config)
    send(system, "failure")
    opened = wait_for_update(system, ROUTER, "open")
    half_open = wait_for_update(system, ROUTER, "half_open")
    assert half_open.at >= opened.retry_at
    assert half_open.at < opened.retry_at + 0.5


def test_breaker_actor_closes_after_probe_successes(
    system: SupervisionSystem, tmp_path: Path
) -> None:
    breaker = {"failure_threshold": 1, "open_duration": 0.3, "half_open_permitted_calls": 2}
    start_tree(system, build_config(tmp_path, circuit_breaker=breaker))
    send(system, "failure")
    wait_for_update(system, ROUTER, "half_open")
    send(system, "success")
    assert breaker_state(system).state == "half_open"
    send(system, "success")
    assert breaker_state(system).state == "closed"


def test_breaker_actor_reopens_on_failed_probe(system: SupervisionSystem, tmp_path: Path) -> None:
    config = build_config(tmp_path, circuit_breaker={"failure_threshold": 1, "open_duration": 0.3})
    start_tree(system, config)
    send(system, "failure")
    wait_for_update(system, ROUTER, "half_open")
    send(system, "failure")
    assert breaker_state(system).state == "open"


def test_breaker_actor_failure_count_survives_kill(
    system: SupervisionSystem, tmp_path: Path
) -> None:
    config = build_config(tmp_path, circuit_breaker={"failure_threshold": 3})
    start_tree(system, config)
    send(system, "failure", "failure")
    wait_for_point(database_of(config), KEY, lambda state: state["consecutive_failures"] == 2)

    kill_and_wait(system, BREAKERS_SUP, PROVIDER)

    assert system.call(BREAKER, Describe())["consecutive_failures"] == 2
    send(system, "failure")
    assert breaker_state(system).state == "open"


def test_breaker_actor_keeps_deadline_across_restart(
    system: SupervisionSystem, tmp_path: Path
) -> None:
    breaker = {"failure_threshold": 1, "open_duration": 2.0, "half_open_permitted_calls": 1}
    start_tree(system, build_config(tmp_path, circuit_breaker=breaker))
    send(system, "failure")
    opened = wait_for_update(system, ROUTER, "open")
    time.sleep(max(0.0, opened.snapshot["opened_at"] + 1.0 - time.time()))

    kill_and_wait(system, BREAKERS_SUP, PROVIDER)

    resumed = breaker_state(system)
    assert resumed.state == "open"
    assert resumed.retry_at == opened.retry_at
    half_open = wait_for_update(system, ROUTER, "half_open")
    # A breaker that counted its open duration again from the restart would half-open
    # about 1 s later than this.
    assert half_open.at >= opened.retry_at
    assert half_open.at < opened.retry_at + 0.5
    send(system, "success")
    assert breaker_state(system).state == "closed"


def test_breaker_actor_resumes_open_state_at_start(
    system: SupervisionSystem, tmp_path: Path
) -> None:
    config = build_config(tmp_path, circuit_breaker={"failure_threshold": 1, "open_duration": 60})
    provider = config.integrations[0].providers[0]
    policy = CircuitBreaker(breaker_settings(provider.circuit_breaker), name=PROVIDER)
    policy.on_failure(policy.try_acquire(), 0.1)
    with RecoveryStore(config.node.database) as store:
        store.save(INTEGRATION, KEY, "breaker", policy.to_state())

    start_tree(system, config)

    resumed = breaker_state(system)
    assert resumed.state == "open"
    assert resumed.retry_at == policy.retry_at


def test_breaker_actor_saves_change_within_one_second(
    system: SupervisionSystem, tmp_path: Path
) -> None:
    config = build_config(tmp_path, circuit_breaker={"failure_threshold": 5})
    start_tree(system, config)
    wait_for_point(database_of(config), KEY, lambda state: state["state"] == "closed")

    sent = time.monotonic()
    send(system, "failure")
    wait_for_point(database_of(config), KEY, lambda state: state["consecutive_failures"] == 1)
    assert time.monotonic() - sent < 1.0


def test_breaker_actor_saves_transition_at_once(system: SupervisionSystem, tmp_path: Path) -> None:
    config = build_config(tmp_path, circuit_breaker={"failure_threshold": 1, "open_duration": 60})
    start_tree(system, config)
    breaker_state(system)

    sent = time.monotonic()
    send(system, "failure")
    wait_for_point(database_of(config), KEY, lambda state: state["state"] == "open")
    assert time.monotonic() - sent < 0.5


def test_breaker_actor_skips_tampered_point(system: SupervisionSystem, tmp_path: Path) -> None:
    config = build_config(tmp_path, circuit_breaker={"failure_threshold": 5})
    database = database_of(config)
    start_tree(system, config)
    send(system, "failure")
    wait_for_point(database, KEY, lambda state: state["consecutive_failures"] == 1)
    send(system, "failure")
    newest = wait_for_point(database, KEY, lambda state: state["consecutive_failures"] == 2)
    tampered = dict(newest["state"], consecutive_failures=4)
    with contextlib.closing(sqlite3.connect(database)) as connection:
        connection.execute(
            "UPDATE recovery_points SET state = ? WHERE seq = ?",
            (json.dumps(tampered), newest["seq"]),
        )
        connection.commit()

    kill_and_wait(system, BREAKERS_SUP, PROVIDER)

    assert system.call(BREAKER, Describe())["consecutive_failures"] == 1


def test_breaker_actor_restore_reloads_earlier_point(
    system: SupervisionSystem, tmp_path: Path
) -> None:
    config = build_config(tmp_path, circuit_breaker={"failure_threshold": 5})
    database = database_of(config)
    start_tree(system, config)
    send(system, "failure")
    first = wait_for_point(database, KEY, lambda state: state["consecutive_failures"] == 1)
    send(system, "failure", "failure")
    wait_for_point(database, KEY, lambda state: state["consecutive_failures"] == 3)

    restored_at = system.call(BREAKER, Restore(first["created_at"]))

    assert restored_at == first["created_at"]
    assert system.call(BREAKER, Describe())["consecutive_failures"] == 1
    assert latest_point(database, KEY)["state"]["consecutive_failures"] == 1


def test_breaker_actor_restore_announces_state_change(
    system: SupervisionSystem, tmp_path: Path
) -> None:
    config = build_config(tmp_path, circuit_breaker={"failure_threshold": 1, "open_duration": 60})
    database = database_of(config)
    start_tree(system, config)
    closed = wait_for_point(database, KEY, lambda state: state["state"] == "closed")
    send(system, "failure")
    wait_for_point(database, KEY, lambda state: state["state"] == "open")

    system.call(BREAKER, Restore(closed["created_at"]))

    assert breaker_state(system).state == "closed"
    assert wait_for_update(system, ROUTER, "closed").provider == PROVIDER


def test_breaker_actor_restore_without_point_is_none(
    system: SupervisionSystem, tmp_path: Path
) -> None:
    config = build_config(tmp_path)
    start_tree(system, config)
    wait_for(lambda: point_rows(database_of(config), KEY))
    assert system.call(BREAKER, Restore(0.0)) is None


def test_breaker_actor_rejects_reset_provider(system: SupervisionSystem, tmp_path: Path) -> None:
    start_tree(system, build_config(tmp_path))
    with pytest.raises(SupervisionError) as raised:
        system.call(BREAKER, ResetProvider(PROVIDER))
    assert raised.value.code == "unknown_request"


def test_breaker_actor_describe_shows_last_transition(
    system: SupervisionSystem, tmp_path: Path
) -> None:
    start_tree(system, build_config(tmp_path, circuit_breaker={"failure_threshold": 1}))
    send(system, "failure")
    transition = system.call(BREAKER, Describe())["last_transition"]
    assert transition["to"] == "open"
    assert transition["cause"] == "consecutive_failures"


def test_breaker_actor_describe_names_provider(system: SupervisionSystem, tmp_path: Path) -> None:
    start_tree(system, build_config(tmp_path))
    described = system.call(BREAKER, Describe())
    assert described["provider"] == PROVIDER
    assert described["integration"] == INTEGRATION
    assert described["checkpoint"]["actor_key"] == KEY
