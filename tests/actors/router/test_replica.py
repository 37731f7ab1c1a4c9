"""Tests for actors.router.replica: the router's view of breakers, health, cooldowns, ejection."""

from __future__ import annotations

import pytest

from actors.messages import BreakerUpdate, StatusUpdate
from tests.actors.router.conftest import FakeClock, replica_of, rules

pytestmark = pytest.mark.timeout(30)


def _replica(clock: FakeClock, **kwargs: object):
    return replica_of(clock, rules("openai", **kwargs), rules("anthropic", "secondary", **kwargs))


def test_replica_treats_unknown_provider_as_closed_and_healthy(clock: FakeClock) -> None:
    replica = _replica(clock)
    described = replica.describe("openai")
    assert described["breaker"] == "closed"
    assert described["health"] == "healthy"
    assert described["breaker_known"] is False
    assert replica.skip_reason("openai") is None


@pytest.mark.parametrize(
    ("state", "event"),
    [("open", "circuit_opened"), ("half_open", "circuit_half_open")],
)
def test_replica_breaker_change_returns_event(clock: FakeClock, state: str, event: str) -> None:
    replica = _replica(clock)
    assert replica.apply_breaker(BreakerUpdate("openai", state, retry_at=None, at=1.0)) == event


def test_replica_breaker_close_returns_event(clock: FakeClock) -> None:
    replica = _replica(clock)
    replica.apply_breaker(BreakerUpdate("openai", "open", retry_at=None, at=1.0))
    update = BreakerUpdate("openai", "closed", retry_at=None, at=2.0)
    assert replica.apply_breaker(update) == "circuit_closed"


def test_replica_unchanged_breaker_returns_no_event(clock: FakeClock) -> None:
    replica = _replica(clock)
    assert replica.apply_breaker(BreakerUpdate("openai", "closed", retry_at=None)) is None


def test_replica_ignores_older_breaker_update(clock: FakeClock) -> None:
    replica = _replica(clock)
    replica.apply_breaker(BreakerUpdate("openai", "open", retry_at=None, at=5.0))
    assert replica.apply_breaker(BreakerUpdate("openai", "closed", retry_at=None, at=4.0)) is None
    assert replica.describe("openai")["breaker"] == "open"


@pytest.mark.parametrize(
    "update",
    [BreakerUpdate("nobody", "open", retry_at=None), BreakerUpdate("openai", "ajar", None)],
    ids=["unknown provider", "unknown state"],
)
def test_replica_ignores_invalid_breaker_update(clock: FakeClock, update: BreakerUpdate) -> None:
    replica = _replica(clock)
    assert replica.apply_breaker(update) is None
    assert replica.describe("openai")["breaker"] == "closed"


def test_replica_open_breaker_admits_nothing_before_retry_at(clock: FakeClock) -> None:
    replica = _replica(clock)
    replica.apply_breaker(BreakerUpdate("openai", "open", retry_at=clock() + 5.0))
    assert not replica.breaker_admits("openai")
    assert replica.available_at("openai") == pytest.approx(clock() + 5.0)


def test_replica_half_open_limits_concurrent_probes(clock: FakeClock) -> None:
    replica = _replica(clock, half_open_permitted_calls=2)
    replica.apply_breaker(BreakerUpdate("openai", "half_open", retry_at=None))
    first = replica.acquire("openai")
    second = replica.acquire("openai")
    assert first and second
    assert not replica.breaker_admits("openai")
    replica.release("openai", first)
    assert replica.breaker_admits("openai")


def test_replica_closed_breaker_takes_no_probe_slot(clock: FakeClock) -> None:
    replica = _replica(clock)
    assert replica.acquire("openai") is False


@pytest.mark.parametrize(
    ("before", "after", "event"),
    [
        ("healthy", "failed", "provider_failed"),
        ("testing", "permanently_failed", "provider_failed"),
        ("failed", "testing", None),
        ("testing", "healthy", "provider_recovered"),
    ],
)
def test_replica_status_change_returns_event(
    clock: FakeClock, before: str, after: str, event: str | None
) -> None:
    replica = _replica(clock)
    replica.apply_status(StatusUpdate("openai", before, at=1.0))
    assert replica.apply_status(StatusUpdate("openai", after, at=2.0)) == event


def test_replica_ignores_older_status_update(clock: FakeClock) -> None:
    replica = _replica(clock)
    replica.apply_status(StatusUpdate("openai", "failed", at=5.0))
    assert replica.apply_status(StatusUpdate("openai", "healthy", at=4.0)) is None
    assert replica.describe("openai")["health"] == "failed"


def test_replica_ejects_after_consecutive_failures(clock: FakeClock) -> None:
    replica = _replica(clock, consecutive_failures=3)
    effects = [replica.record_failure("openai", retry_after=None) for _ in range(3)]
    assert effects[-1].ejection is not None
    assert replica.describe("openai")["ejected_until"] == pytest.approx(clock() + 30.0)


def test_replica_success_resets_failure_streak(clock: FakeClock) -> None:
    replica = _replica(clock, consecutive_failures=2)
    replica.record_failure("openai", retry_after=None)
    replica.record_success("openai")
    effects = replica.record_failure("openai", retry_after=None)
    assert effects.ejection is None


def test_replica_uncounted_failure_keeps_streak(clock: FakeClock) -> None:
    replica = _replica(clock, consecutive_failures=1)
    effects = replica.record_failure("openai", retry_after=None, counts=False)
    assert effects.ejection is None
    assert replica.describe("openai")["failure_streak"] == 0


def test_replica_cooldown_change_is_urgent(clock: FakeClock) -> None:
    replica = _replica(clock)
    replica.pop_changes()
    replica.record_failure("openai", retry_after=2.0)
    assert replica.pop_changes() == (True, True)


def test_replica_counter_change_is_not_urgent(clock: FakeClock) -> None:
    replica = _replica(clock)
    replica.record_success("openai")
    assert replica.pop_changes() == (True, False)
    assert replica.pop_changes() == (False, False)


def test_replica_same_cooldown_again_is_not_urgent(clock: FakeClock) -> None:
    replica = _replica(clock)
    replica.record_failure("openai", retry_after=10.0)
    replica.pop_changes()
    effects = replica.record_failure("openai", retry_after=1.0)
    assert effects.cooling_until is None
    assert replica.pop_changes() == (True, False)


def test_replica_state_round_trip(clock: FakeClock) -> None:
    replica = _replica(clock, consecutive_failures=1)
    replica.record_failure("openai", retry_after=7.0)
    replica.acquire("anthropic")
    replica.record_success("anthropic")
    replica.record_served("anthropic")

    restored = _replica(clock, consecutive_failures=1)
    restored.load_state(replica.to_state())
    assert restored.to_state() == replica.to_state()
    assert restored.skip_reason("openai") is not None
    assert restored.describe("anthropic")["totals"] == {
        "attempts": 1,
        "successes": 1,
        "failures": 0,
        "served": 1,
    }


def test_replica_state_drops_unconfigured_providers(clock: FakeClock) -> None:
    old = replica_of(clock, rules("openai"), rules("retired"))
    old.record_failure("retired", retry_after=5.0)
    replica = _replica(clock)
    replica.load_state(old.to_state())
    assert set(replica.to_state()["cooldowns"]["until"]) == set()
    assert set(replica.to_state()["totals"]) == {"openai", "anthropic"}


@pytest.mark.parametrize(
    "state",
    [
        {"version": 99},
        {"version": 1, "cooldowns": {"version": 2}},
        {"version": 1, "totals": {"openai": "many"}},
        {"version": 1, "ejection": {"openai": {"version": 1, "providers": "x"}}},
    ],
    ids=["version", "cooldowns", "totals", "ejection"],
)
def test_replica_rejects_invalid_state_unchanged(clock: FakeClock, state: dict) -> None:
    replica = _replica(clock)
    replica.record_failure("openai", retry_after=3.0)
    before = replica.to_state()
    with pytest.raises(ValueError):
        replica.load_state(state)
    assert replica.to_state() == before


def test_replica_describe_hides_expired_cooldown(clock: FakeClock) -> None:
    replica = _replica(clock)
    replica.record_failure("openai", retry_after=1.0)
    clock.advance(2.0)
    assert replica.describe("openai")["cooling_until"] is None
