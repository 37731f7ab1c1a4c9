"""Tests for actors.policy.provider_status, driven by a fake clock."""

from __future__ import annotations

import json
import random

import pytest

from actors.policy.backoff import Backoff
from actors.policy.breaker import IllegalTransitionError
from actors.policy.provider_status import (
    STATUS_TRANSITIONS,
    HealthStatus,
    ProviderStatus,
    ProviderStatusSettings,
    Role,
    StatusCause,
    check_status_transition,
)
from tests.actors.policy.conftest import FakeClock

pytestmark = pytest.mark.timeout(30)

# Probe delays without jitter: 10, 20, 40, ... seconds, capped at 100.
PROBE_BACKOFF = Backoff("exponential", initial_delay=10.0, max_delay=100.0, jitter="none")


def _provider(
    clock: FakeClock,
    *,
    unhealthy: int = 3,
    recovery: int = 2,
    max_attempts: int = 3,
) -> ProviderStatus:
    settings = ProviderStatusSettings(
        unhealthy_threshold=unhealthy,
        recovery_threshold=recovery,
        max_attempts=max_attempts,
        probe_backoff=PROBE_BACKOFF,
    )
    return ProviderStatus("openai", Role.PRIMARY, settings, clock=clock, rng=random.Random(0))


def _checks(provider: ProviderStatus, *results: bool) -> None:
    for result in results:
        provider.record_check(result)


def test_status_fails_at_unhealthy_threshold(clock: FakeClock) -> None:
    provider = _provider(clock)
    _checks(provider, False, False)
    assert provider.status is HealthStatus.HEALTHY
    provider.record_check(False)
    assert provider.status is HealthStatus.FAILED


def test_status_check_success_resets_failures(clock: FakeClock) -> None:
    provider = _provider(clock)
    _checks(provider, False, False, True, False, False)
    assert provider.status is HealthStatus.HEALTHY
    assert provider.consecutive_check_failures == 2


def test_status_fails_when_breaker_opens(clock: FakeClock) -> None:
    provider = _provider(clock)
    provider.record_breaker_opened()
    assert provider.status is HealthStatus.FAILED
    assert provider.drain_events()[0].cause is StatusCause.BREAKER_OPENED


def test_status_schedules_probes_with_backoff(clock: FakeClock) -> None:
    provider = _provider(clock, max_attempts=5)
    clock.set(100.0)
    provider.record_breaker_opened()
    assert provider.next_probe_at == 110.0

    clock.set(109.9)
    assert not provider.probe_due()
    clock.set(110.0)
    assert provider.probe_due()

    provider.record_check(False)
    assert provider.next_probe_at == 130.0
    clock.set(130.0)
    provider.record_check(False)
    assert provider.next_probe_at == 170.0


def test_status_probe_success_moves_to_testing(clock: FakeClock) -> None:
    provider = _provider(clock)
    provider.record_breaker_opened()
    provider.record_check(True)
    assert provider.status is HealthStatus.TESTING
    assert provider.next_probe_at is None


def test_status_recovers_after_recovery_threshold(clock: FakeClock) -> None:
    provider = _provider(clock, recovery=3)
    provider.record_breaker_opened()
    _checks(provider, True, True, True)
    assert provider.status is HealthStatus.TESTING
    provider.record_check(True)
    assert provider.status is HealthStatus.HEALTHY
    assert provider.failed_probes == 0


def test_status_testing_failure_counts_probe(clock: FakeClock) -> None:
    provider = _provider(clock, max_attempts=3)
    provider.record_breaker_opened()
    _checks(provider, True, False)
    assert provider.status is HealthStatus.FAILED
    assert provider.failed_probes == 1


def test_status_does_not_flap_to_healthy(clock: FakeClock) -> None:
    provider = _provider(clock, recovery=2, max_attempts=100)
    provider.record_breaker_opened()
    # Each round is a probe success (to testing), one testing success, then a failure, so
    # the provider never has the two successes in a row that recovery needs.
    for result in [True, True, False] * 20:
        provider.record_check(result)
        assert provider.status is not HealthStatus.HEALTHY
    assert provider.failed_probes == 20


def test_status_permanently_failed_after_max_attempts(clock: FakeClock) -> None:
    provider = _provider(clock, max_attempts=3)
    provider.record_breaker_opened()
    _checks(provider, False, False)
    assert provider.status is HealthStatus.FAILED
    provider.record_check(False)
    assert provider.status is HealthStatus.PERMANENTLY_FAILED
    assert provider.next_probe_at is None
    assert not provider.probe_due()


def test_status_permanently_failed_ignores_checks(clock: FakeClock) -> None:
    provider = _provider(clock, max_attempts=1)
    provider.record_breaker_opened()
    provider.record_check(False)
    provider.drain_events()
    _checks(provider, True, True, True)
    assert provider.status is HealthStatus.PERMANENTLY_FAILED
    assert provider.drain_events() == []


def test_status_reset_moves_to_testing(clock: FakeClock) -> None:
    provider = _provider(clock, max_attempts=1)
    provider.record_breaker_opened()
    provider.record_check(False)
    provider.reset()
    assert provider.status is HealthStatus.TESTING
    assert provider.failed_probes == 0
    assert provider.drain_events()[-1].cause is StatusCause.OPERATOR_RESET


def test_status_reset_leaves_healthy_alone(clock: FakeClock) -> None:
    provider = _provider(clock)
    provider.reset()
    assert provider.status is HealthStatus.HEALTHY
    assert provider.drain_events() == []


def test_status_events_carry_states_time_and_cause(clock: FakeClock) -> None:
    provider = _provider(clock, recovery=1)
    clock.set(5.0)
    _checks(provider, False, False, False)
    clock.set(20.0)
    provider.record_check(True)
    clock.set(30.0)
    provider.record_check(True)

    transitions = [(e.from_status, e.to_status, e.at, e.cause) for e in provider.drain_events()]
    assert transitions == [
        (HealthStatus.HEALTHY, HealthStatus.FAILED, 5.0, StatusCause.HEALTH_CHECKS_FAILED),
        (HealthStatus.FAILED, HealthStatus.TESTING, 20.0, StatusCause.PROBE_SUCCEEDED),
        (HealthStatus.TESTING, HealthStatus.HEALTHY, 30.0, StatusCause.RECOVERED),
    ]


def test_status_state_survives_restart(clock: FakeClock) -> None:
    provider = _provider(clock, max_attempts=5)
    clock.set(1_700_000_000.0)
    provider.record_breaker_opened()
    provider.record_check(False)
    next_probe_at = provider.next_probe_at

    saved = json.loads(json.dumps(provider.to_state()))
    restored = ProviderStatus.from_state(saved, provider.settings, clock=clock)
    assert restored.status is HealthStatus.FAILED
    assert restored.failed_probes == 1
    assert restored.next_probe_at == next_probe_at
    assert restored.role is Role.PRIMARY


def test_status_from_state_rejects_unknown_status(clock: FakeClock) -> None:
    state = _provider(clock).to_state()
    state["status"] = "sleepy"
    with pytest.raises(ValueError, match="'sleepy' is not a valid HealthStatus"):
        ProviderStatus.from_state(state, clock=clock)


def test_check_status_transition_rejects_healthy_to_testing() -> None:
    with pytest.raises(IllegalTransitionError, match="from healthy to testing"):
        check_status_transition(HealthStatus.HEALTHY, HealthStatus.TESTING)


def test_status_transition_table_covers_every_status() -> None:
    assert set(STATUS_TRANSITIONS) == set(HealthStatus)


def test_status_rejects_unknown_role(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="role must be one of primary, secondary, fallback"):
        ProviderStatus("openai", "backup", clock=clock)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"unhealthy_threshold": 0}, r"unhealthy_threshold must be an int in 1\.\.10000, got 0"),
        ({"recovery_threshold": 0}, r"recovery_threshold must be an int in 1\.\.10000, got 0"),
        ({"max_attempts": 0}, r"max_attempts must be an int in 1\.\.1000000, got 0"),
        ({"probe_backoff": 5.0}, r"probe_backoff must be a Backoff, got 5\.0"),
    ],
)
def test_status_settings_validation_names_field(kwargs: dict, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        ProviderStatusSettings(**kwargs)
