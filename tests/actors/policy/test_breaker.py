"""Tests for actors.policy.breaker, driven by a fake clock."""

from __future__ import annotations

import json

import pytest

from actors.policy.breaker import (
    BREAKER_TRANSITIONS,
    BreakerCause,
    BreakerSettings,
    BreakerState,
    CircuitBreaker,
    IllegalTransitionError,
    Permit,
    check_transition,
)
from tests.actors.policy.conftest import FakeClock

pytestmark = pytest.mark.timeout(30)


def _succeed(breaker: CircuitBreaker, duration: float = 0.01) -> None:
    permit = breaker.try_acquire()
    assert permit is not None
    breaker.on_success(permit, duration)


def _fail(breaker: CircuitBreaker, duration: float = 0.01) -> None:
    permit = breaker.try_acquire()
    assert permit is not None
    breaker.on_failure(permit, duration)


def _acquire(breaker: CircuitBreaker) -> Permit:
    permit = breaker.try_acquire()
    assert permit is not None
    return permit


def _rebuild(
    breaker: CircuitBreaker, settings: BreakerSettings, clock: FakeClock
) -> CircuitBreaker:
    """Serialize through JSON and rebuild, as a restarted actor would."""
    saved = json.loads(json.dumps(breaker.to_state()))
    return CircuitBreaker.from_state(saved, settings, name=breaker.name, clock=clock)


def test_breaker_starts_closed(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    assert breaker.state is BreakerState.CLOSED


def test_breaker_opens_at_failure_threshold(clock: FakeClock) -> None:
    breaker = CircuitBreaker(BreakerSettings(failure_threshold=3), clock=clock)
    _fail(breaker)
    _fail(breaker)
    assert breaker.state is BreakerState.CLOSED
    _fail(breaker)
    assert breaker.state is BreakerState.OPEN


def test_breaker_success_resets_failure_streak(clock: FakeClock) -> None:
    breaker = CircuitBreaker(BreakerSettings(failure_threshold=3), clock=clock)
    _fail(breaker)
    _fail(breaker)
    _succeed(breaker)
    _fail(breaker)
    _fail(breaker)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot().consecutive_failures == 2


def test_breaker_ignored_outcome_keeps_failure_streak(clock: FakeClock) -> None:
    breaker = CircuitBreaker(BreakerSettings(failure_threshold=2), clock=clock)
    _fail(breaker)
    breaker.on_ignored(_acquire(breaker))
    _fail(breaker)
    assert breaker.state is BreakerState.OPEN


def test_breaker_open_rejects_calls(clock: FakeClock) -> None:
    breaker = CircuitBreaker(BreakerSettings(failure_threshold=1, open_duration=10.0), clock=clock)
    _fail(breaker)
    clock.advance(9.9)
    assert breaker.try_acquire() is None
    assert breaker.retry_at == pytest.approx(10.0)


def test_breaker_half_open_after_open_duration(clock: FakeClock) -> None:
    breaker = CircuitBreaker(BreakerSettings(failure_threshold=1, open_duration=10.0), clock=clock)
    _fail(breaker)
    clock.advance(10.0)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.retry_at is None


def test_breaker_events_carry_states_time_and_cause(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        BreakerSettings(failure_threshold=1, open_duration=10.0), name="openai", clock=clock
    )
    clock.set(100.0)
    _fail(breaker)
    clock.set(112.0)
    _succeed(breaker)

    events = breaker.drain_events()
    transitions = [(e.from_state, e.to_state, e.at, e.cause) for e in events]
    assert transitions == [
        (BreakerState.CLOSED, BreakerState.OPEN, 100.0, BreakerCause.CONSECUTIVE_FAILURES),
        (BreakerState.OPEN, BreakerState.HALF_OPEN, 112.0, BreakerCause.OPEN_DURATION_ELAPSED),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED, 112.0, BreakerCause.PROBES_SUCCEEDED),
    ]
    assert {e.breaker for e in events} == {"openai"}
    assert breaker.drain_events() == []


def test_breaker_half_open_failure_reopens(clock: FakeClock) -> None:
    breaker = CircuitBreaker(BreakerSettings(failure_threshold=1, open_duration=10.0), clock=clock)
    _fail(breaker)
    clock.advance(10.0)
    _fail(breaker)
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_at == pytest.approx(20.0)
    assert breaker.drain_events()[-1].cause is BreakerCause.PROBE_FAILED


def test_breaker_half_open_limits_permits(clock: FakeClock) -> None:
    settings = BreakerSettings(failure_threshold=1, open_duration=1.0, half_open_permitted_calls=2)
    breaker = CircuitBreaker(settings, clock=clock)
    _fail(breaker)
    clock.advance(1.0)
    first = _acquire(breaker)
    second = _acquire(breaker)
    assert breaker.try_acquire() is None

    breaker.on_success(first, 0.01)
    assert breaker.state is BreakerState.HALF_OPEN
    # One success is in, one probe is out: no third probe is needed.
    assert breaker.try_acquire() is None

    breaker.on_success(second, 0.01)
    assert breaker.state is BreakerState.CLOSED


def test_breaker_half_open_closes_after_permitted_successes(clock: FakeClock) -> None:
    settings = BreakerSettings(failure_threshold=1, open_duration=1.0, half_open_permitted_calls=3)
    breaker = CircuitBreaker(settings, clock=clock)
    _fail(breaker)
    clock.advance(1.0)
    _succeed(breaker)
    _succeed(breaker)
    assert breaker.state is BreakerState.HALF_OPEN
    _succeed(breaker)
    assert breaker.state is BreakerState.CLOSED


def test_breaker_ignored_probe_frees_half_open_slot(clock: FakeClock) -> None:
    """S1: a probe ending in an ignored error (a ValueError here) frees its slot."""
    settings = BreakerSettings(failure_threshold=2, open_duration=10.0)
    breaker = CircuitBreaker(settings, clock=clock)
    _fail(breaker)
    _fail(breaker)
    assert breaker.state is BreakerState.OPEN
    clock.advance(10.5)

    probe = _acquire(breaker)
    try:
        raise ValueError("response did not match the schema")
    except ValueError:
        breaker.on_ignored(probe)
    assert breaker.state is BreakerState.HALF_OPEN

    next_call = breaker.try_acquire()
    assert next_call is not None
    breaker.on_success(next_call, 0.05)
    assert breaker.state is BreakerState.CLOSED


def test_breaker_max_wait_in_half_open_reopens(clock: FakeClock) -> None:
    settings = BreakerSettings(failure_threshold=1, open_duration=10.0, max_wait_in_half_open=5.0)
    breaker = CircuitBreaker(settings, clock=clock)
    _fail(breaker)
    clock.set(10.0)
    probe = _acquire(breaker)
    clock.set(14.9)
    assert breaker.state is BreakerState.HALF_OPEN
    clock.set(15.0)
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_at == pytest.approx(25.0)
    assert breaker.drain_events()[-1].cause is BreakerCause.HALF_OPEN_TIMEOUT

    # The abandoned probe's late result comes from a stale permit and changes nothing.
    breaker.on_success(probe, 0.01)
    assert breaker.state is BreakerState.OPEN


def test_breaker_zero_max_wait_waits_forever(clock: FakeClock) -> None:
    settings = BreakerSettings(failure_threshold=1, open_duration=1.0, max_wait_in_half_open=0.0)
    breaker = CircuitBreaker(settings, clock=clock)
    _fail(breaker)
    clock.advance(1.0)
    probe = _acquire(breaker)
    clock.advance(10**6)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.on_success(probe, 0.01)
    assert breaker.state is BreakerState.CLOSED


def test_breaker_count_window_failure_rate_opens(clock: FakeClock) -> None:
    settings = BreakerSettings(
        failure_threshold=None, failure_rate_threshold=50.0, window_size=4, minimum_calls=4
    )
    breaker = CircuitBreaker(settings, clock=clock)
    _succeed(breaker)
    _fail(breaker)
    _succeed(breaker)
    assert breaker.state is BreakerState.CLOSED
    _fail(breaker)
    assert breaker.state is BreakerState.OPEN
    assert breaker.drain_events()[-1].cause is BreakerCause.FAILURE_RATE


def test_breaker_count_window_drops_oldest_call(clock: FakeClock) -> None:
    settings = BreakerSettings(
        failure_threshold=None, failure_rate_threshold=60.0, window_size=4, minimum_calls=4
    )
    breaker = CircuitBreaker(settings, clock=clock)
    _fail(breaker)
    _fail(breaker)
    _succeed(breaker)
    _succeed(breaker)
    _succeed(breaker)
    snapshot = breaker.snapshot()
    assert snapshot.calls_in_window == 4
    assert snapshot.failures_in_window == 1
    assert snapshot.failure_rate == pytest.approx(25.0)


def test_breaker_minimum_calls_defers_rate(clock: FakeClock) -> None:
    settings = BreakerSettings(
        failure_threshold=None, failure_rate_threshold=50.0, window_size=10, minimum_calls=5
    )
    breaker = CircuitBreaker(settings, clock=clock)
    for _ in range(4):
        _fail(breaker)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot().failure_rate == pytest.approx(100.0)
    _fail(breaker)
    assert breaker.state is BreakerState.OPEN


def test_breaker_time_window_expires_old_calls(clock: FakeClock) -> None:
    settings = BreakerSettings(
        failure_threshold=None, failure_rate_threshold=50.0, window_seconds=10.0, minimum_calls=3
    )
    breaker = CircuitBreaker(settings, clock=clock)
    clock.set(0.0)
    _fail(breaker)
    clock.set(1.0)
    _fail(breaker)
    clock.set(9.9)
    assert breaker.snapshot().calls_in_window == 2

    clock.set(10.0)
    assert breaker.snapshot().calls_in_window == 1
    clock.set(11.0)
    assert breaker.snapshot().calls_in_window == 0

    # Only fresh calls count now: one failure among three is below 50%.
    _fail(breaker)
    _succeed(breaker)
    _succeed(breaker)
    assert breaker.state is BreakerState.CLOSED


def test_breaker_time_window_opens_on_rate(clock: FakeClock) -> None:
    settings = BreakerSettings(
        failure_threshold=None, failure_rate_threshold=50.0, window_seconds=10.0, minimum_calls=4
    )
    breaker = CircuitBreaker(settings, clock=clock)
    for second in range(4):
        clock.set(float(second))
        if second % 2:
            _fail(breaker)
        else:
            _succeed(breaker)
    assert breaker.state is BreakerState.OPEN


def test_breaker_slow_call_rate_opens(clock: FakeClock) -> None:
    settings = BreakerSettings(
        failure_threshold=None,
        window_size=4,
        minimum_calls=4,
        slow_call_duration=2.0,
        slow_call_rate_threshold=50.0,
    )
    breaker = CircuitBreaker(settings, clock=clock)
    _succeed(breaker, duration=0.1)
    _succeed(breaker, duration=2.5)
    _succeed(breaker, duration=0.1)
    assert breaker.state is BreakerState.CLOSED
    _succeed(breaker, duration=2.0)
    assert breaker.state is BreakerState.OPEN
    assert breaker.drain_events()[-1].cause is BreakerCause.SLOW_CALL_RATE


def test_breaker_slow_probe_reopens(clock: FakeClock) -> None:
    settings = BreakerSettings(
        failure_threshold=1,
        window_size=10,
        minimum_calls=10,
        slow_call_duration=2.0,
        slow_call_rate_threshold=50.0,
        open_duration=1.0,
    )
    breaker = CircuitBreaker(settings, clock=clock)
    _fail(breaker)
    clock.advance(1.0)
    _succeed(breaker, duration=3.0)
    assert breaker.state is BreakerState.OPEN
    assert breaker.drain_events()[-1].cause is BreakerCause.PROBE_SLOW


def test_breaker_state_survives_rebuild(clock: FakeClock) -> None:
    """S2: two of three failures survive a restart, and the third opens the breaker."""
    settings = BreakerSettings(failure_threshold=3)
    breaker = CircuitBreaker(settings, name="stripe", clock=clock)
    _fail(breaker)
    _fail(breaker)

    rebuilt = _rebuild(breaker, settings, clock)
    assert rebuilt.snapshot().consecutive_failures == 2
    assert rebuilt.state is BreakerState.CLOSED
    _fail(rebuilt)
    assert rebuilt.state is BreakerState.OPEN


def test_breaker_rebuilt_open_keeps_retry_time(clock: FakeClock) -> None:
    """S2: opened at t=0 for 10 s and rebuilt at t=5, it admits a probe at t=10.1."""
    settings = BreakerSettings(failure_threshold=1, open_duration=10.0)
    breaker = CircuitBreaker(settings, clock=clock)
    clock.set(0.0)
    _fail(breaker)

    clock.set(5.0)
    rebuilt = _rebuild(breaker, settings, clock)
    assert rebuilt.state is BreakerState.OPEN
    assert rebuilt.retry_at == pytest.approx(10.0)
    clock.set(9.9)
    assert rebuilt.try_acquire() is None
    clock.set(10.1)
    assert rebuilt.try_acquire() is not None


def test_breaker_rebuilt_half_open_frees_probe_slots(clock: FakeClock) -> None:
    settings = BreakerSettings(failure_threshold=1, open_duration=1.0)
    breaker = CircuitBreaker(settings, clock=clock)
    _fail(breaker)
    clock.advance(1.0)
    _acquire(breaker)
    assert breaker.try_acquire() is None

    rebuilt = _rebuild(breaker, settings, clock)
    assert rebuilt.state is BreakerState.HALF_OPEN
    _succeed(rebuilt)
    assert rebuilt.state is BreakerState.CLOSED


def test_breaker_rebuilt_time_window_keeps_calls(clock: FakeClock) -> None:
    settings = BreakerSettings(
        failure_threshold=None, failure_rate_threshold=50.0, window_seconds=10.0, minimum_calls=2
    )
    clock.set(1_700_000_000.0)
    breaker = CircuitBreaker(settings, clock=clock)
    _fail(breaker)

    clock.advance(3.0)
    rebuilt = _rebuild(breaker, settings, clock)
    assert rebuilt.snapshot().failures_in_window == 1
    _fail(rebuilt)
    assert rebuilt.state is BreakerState.OPEN


def test_breaker_rebuild_discards_window_of_other_kind(clock: FakeClock) -> None:
    count_settings = BreakerSettings(failure_threshold=None, failure_rate_threshold=50.0)
    breaker = CircuitBreaker(count_settings, clock=clock)
    _fail(breaker)

    time_settings = BreakerSettings(
        failure_threshold=None, failure_rate_threshold=50.0, window_seconds=10.0
    )
    rebuilt = _rebuild(breaker, time_settings, clock)
    assert rebuilt.snapshot().calls_in_window == 0


def test_breaker_from_state_rejects_bad_version(clock: FakeClock) -> None:
    state = CircuitBreaker(clock=clock).to_state()
    state["version"] = 2
    with pytest.raises(ValueError, match="version must be 1, got 2"):
        CircuitBreaker.from_state(state, clock=clock)


def test_breaker_from_state_rejects_unknown_state(clock: FakeClock) -> None:
    state = CircuitBreaker(clock=clock).to_state()
    state["state"] = "ajar"
    with pytest.raises(ValueError, match="'ajar' is not a valid BreakerState"):
        CircuitBreaker.from_state(state, clock=clock)


def test_breaker_double_release_raises(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    permit = _acquire(breaker)
    breaker.on_success(permit, 0.01)
    with pytest.raises(ValueError, match="already released"):
        breaker.on_failure(permit, 0.01)


def test_breaker_stale_permit_ignored_after_trip(clock: FakeClock) -> None:
    breaker = CircuitBreaker(BreakerSettings(failure_threshold=1, open_duration=1.0), clock=clock)
    slow_call = _acquire(breaker)
    _fail(breaker)
    clock.advance(1.0)
    probe = _acquire(breaker)

    breaker.on_failure(slow_call, 5.0)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.on_success(probe, 0.01)
    assert breaker.state is BreakerState.CLOSED


def test_breaker_reset_closes_open_breaker(clock: FakeClock) -> None:
    breaker = CircuitBreaker(BreakerSettings(failure_threshold=1), clock=clock)
    _fail(breaker)
    breaker.reset()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.drain_events()[-1].cause is BreakerCause.RESET


def test_breaker_snapshot_reports_open_times(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        BreakerSettings(failure_threshold=2, open_duration=30.0), name="anthropic", clock=clock
    )
    clock.set(50.0)
    _fail(breaker)
    _fail(breaker)
    snapshot = breaker.snapshot().to_dict()
    assert snapshot["name"] == "anthropic"
    assert snapshot["state"] == "open"
    assert snapshot["consecutive_failures"] == 2
    assert snapshot["calls_in_window"] == 2
    assert snapshot["failure_rate"] == pytest.approx(100.0)
    assert snapshot["opened_at"] == 50.0
    assert snapshot["retry_at"] == 80.0
    assert json.loads(json.dumps(snapshot)) == snapshot


def test_check_transition_rejects_closed_to_half_open() -> None:
    with pytest.raises(IllegalTransitionError, match="from closed to half_open"):
        check_transition(BreakerState.CLOSED, BreakerState.HALF_OPEN)


def test_transition_table_covers_every_state() -> None:
    assert set(BREAKER_TRANSITIONS) == set(BreakerState)


def test_breaker_rejects_negative_duration(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    permit = _acquire(breaker)
    with pytest.raises(ValueError, match="duration must be a finite number of seconds >= 0"):
        breaker.on_success(permit, -1.0)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"failure_threshold": 0}, r"failure_threshold must be an int in 1\.\.1000000, got 0"),
        ({"failure_rate_threshold": 150.0}, r"failure_rate_threshold must be a percentage"),
        ({"window_size": 0}, r"window_size must be an int in 1\.\.1000000, got 0"),
        ({"window_seconds": -1.0}, r"window_seconds must be finite seconds > 0, got -1\.0"),
        ({"open_duration": 0.0}, r"open_duration must be finite seconds > 0, got 0\.0"),
        ({"half_open_permitted_calls": 0}, r"half_open_permitted_calls must be an int"),
        ({"max_wait_in_half_open": -0.5}, r"max_wait_in_half_open must be finite seconds >= 0"),
        ({"slow_call_duration": 1.0}, r"must be set together"),
        ({"failure_threshold": None}, r"needs failure_threshold, failure_rate_threshold"),
        (
            {"failure_rate_threshold": 50.0, "window_size": 5, "minimum_calls": 10},
            r"minimum_calls must be <= window_size \(5\) .*got 10",
        ),
    ],
)
def test_breaker_settings_validation_names_field(kwargs: dict, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        BreakerSettings(**kwargs)
