"""Tests for actors.policy.ejection, driven by a fake clock."""

from __future__ import annotations

import json

import pytest

from actors.policy.ejection import EjectionSettings, OutlierEjector
from tests.actors.policy.conftest import FakeClock

pytestmark = pytest.mark.timeout(30)


def _fail_times(ejector: OutlierEjector, provider: str, count: int) -> None:
    for _ in range(count):
        ejector.record_failure(provider)


def test_ejection_after_consecutive_failures(clock: FakeClock) -> None:
    ejector = OutlierEjector(clock=clock)
    _fail_times(ejector, "openai", 4)
    assert not ejector.is_ejected("openai")
    event = ejector.record_failure("openai")
    assert event is not None
    assert event.until == 30.0
    assert ejector.is_ejected("openai")


def test_ejection_streak_resets_after_readmission(clock: FakeClock) -> None:
    """S3: 5 failures eject for 30 s, and 5 more after re-admission eject for 60 s."""
    ejector = OutlierEjector(EjectionSettings(5, 30.0, 300.0), clock=clock)
    _fail_times(ejector, "openai", 5)
    assert ejector.ejected_until("openai") == 30.0

    clock.set(30.0)
    assert not ejector.is_ejected("openai")

    # A streak that survived the ejection would eject again here, after one failure.
    ejector.record_failure("openai")
    assert not ejector.is_ejected("openai")
    _fail_times(ejector, "openai", 3)
    assert not ejector.is_ejected("openai")

    # A streak that only a success resets would not eject here.
    event = ejector.record_failure("openai")
    assert event is not None
    assert event.ejection_count == 2
    assert ejector.ejected_until("openai") == 90.0


def test_ejection_success_resets_streak(clock: FakeClock) -> None:
    ejector = OutlierEjector(clock=clock)
    _fail_times(ejector, "openai", 4)
    ejector.record_success("openai")
    _fail_times(ejector, "openai", 4)
    assert not ejector.is_ejected("openai")
    assert ejector.failure_streak("openai") == 4


def test_ejection_ignores_failures_while_ejected(clock: FakeClock) -> None:
    ejector = OutlierEjector(clock=clock)
    _fail_times(ejector, "openai", 5)
    clock.set(10.0)
    _fail_times(ejector, "openai", 3)
    assert ejector.failure_streak("openai") == 0
    assert ejector.ejected_until("openai") == 30.0


def test_ejection_duration_capped(clock: FakeClock) -> None:
    ejector = OutlierEjector(EjectionSettings(1, 30.0, 75.0), clock=clock)
    durations = []
    for _ in range(4):
        event = ejector.record_failure("openai")
        assert event is not None
        durations.append(event.until - event.at)
        clock.set(event.until)
    assert durations == [30.0, 60.0, 75.0, 75.0]


def test_ejection_count_decays_after_quiet_period(clock: FakeClock) -> None:
    ejector = OutlierEjector(EjectionSettings(1, 30.0, 300.0), clock=clock)
    ejector.record_failure("openai")
    clock.set(30.0)
    ejector.record_failure("openai")
    assert ejector.ejection_count("openai") == 2
    assert ejector.ejected_until("openai") == 90.0

    # The second ejection ends at 90. Each 30 s without ejection removes one count.
    clock.set(119.9)
    assert ejector.ejection_count("openai") == 2
    clock.set(120.0)
    assert ejector.ejection_count("openai") == 1
    clock.set(150.0)
    assert ejector.ejection_count("openai") == 0

    event = ejector.record_failure("openai")
    assert event is not None
    assert event.until - event.at == 30.0


def test_ejection_providers_are_independent(clock: FakeClock) -> None:
    ejector = OutlierEjector(clock=clock)
    _fail_times(ejector, "openai", 5)
    assert not ejector.is_ejected("anthropic")
    assert ejector.ejected_until("anthropic") is None


def test_ejection_state_survives_restart(clock: FakeClock) -> None:
    clock.set(1_700_000_000.0)
    ejector = OutlierEjector(clock=clock)
    _fail_times(ejector, "openai", 5)
    _fail_times(ejector, "anthropic", 3)

    clock.advance(10.0)
    saved = json.loads(json.dumps(ejector.to_state()))
    restored = OutlierEjector.from_state(saved, clock=clock)
    assert restored.ejected_until("openai") == 1_700_000_030.0
    assert restored.failure_streak("anthropic") == 3
    _fail_times(restored, "anthropic", 2)
    assert restored.is_ejected("anthropic")


def test_ejection_from_state_rejects_bad_entry(clock: FakeClock) -> None:
    state = {"version": 1, "providers": {"openai": {"streak": 1}}}
    with pytest.raises(ValueError, match="state for provider 'openai' is invalid"):
        OutlierEjector.from_state(state, clock=clock)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"consecutive_failures": 0}, r"consecutive_failures must be an int in 1\.\.1000000"),
        ({"base_ejection_time": 0.0}, r"base_ejection_time must be finite seconds > 0, got 0\.0"),
        (
            {"base_ejection_time": 30.0, "max_ejection_time": 10.0},
            r"max_ejection_time must be finite seconds >= base_ejection_time \(30\.0\)",
        ),
    ],
)
def test_ejection_settings_validation_names_field(kwargs: dict, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        EjectionSettings(**kwargs)
