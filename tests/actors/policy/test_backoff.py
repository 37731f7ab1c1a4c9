"""Tests for actors.policy.backoff."""

from __future__ import annotations

import json
import math
import random

import pytest

from actors.policy.backoff import Backoff, BackoffKind, Jitter

pytestmark = pytest.mark.timeout(60)

JITTERS: list[Jitter | float] = [Jitter.NONE, Jitter.FULL, Jitter.EQUAL, 0.0, 0.25, 1.0]

# Schedules that stress the overflow guards: fast growth, growth so slow that the cap is
# reached only after ~10**13 attempts, a huge multiplier, a tiny initial delay, a cap equal
# to the initial delay, and zero delays.
SCHEDULES = [
    {"initial_delay": 0.1, "max_delay": 30.0, "multiplier": 2.0},
    {"initial_delay": 1e-9, "max_delay": 1e9, "multiplier": 1.000000001},
    {"initial_delay": 1.0, "max_delay": 1e300, "multiplier": 1e300},
    {"initial_delay": 5e-324, "max_delay": 1e308, "multiplier": 10.0},
    {"initial_delay": 2.5, "max_delay": 2.5, "multiplier": 3.0},
    {"initial_delay": 0.0, "max_delay": 0.0, "multiplier": 2.0},
    {"initial_delay": 0.0, "max_delay": 10.0, "multiplier": 2.0},
]

ATTEMPTS = [
    *range(0, 2000),
    *range(2000, 10**6 + 1, 4999),
    10**6,
    10**9,
    2**63,
    10**18,
    10**100,
    10**400,
]


@pytest.mark.parametrize("kind", list(BackoffKind))
@pytest.mark.parametrize("jitter", JITTERS, ids=str)
def test_backoff_delay_finite_and_capped_for_huge_attempts(
    kind: BackoffKind, jitter: Jitter | float
) -> None:
    rng = random.Random(7)
    for schedule in SCHEDULES:
        backoff = Backoff(kind=kind, jitter=jitter, **schedule)
        for attempt in ATTEMPTS:
            delay = backoff.delay(attempt, rng)
            context = f"{schedule} attempt={attempt}"
            assert math.isfinite(delay), context
            assert delay >= 0.0, context
            assert delay <= backoff.max_delay, context


def test_backoff_exponential_doubles_until_cap(rng: random.Random) -> None:
    backoff = Backoff("exponential", initial_delay=0.5, max_delay=5.0, jitter="none")
    delays = [backoff.delay(attempt, rng) for attempt in range(6)]
    assert delays == pytest.approx([0.5, 1.0, 2.0, 4.0, 5.0, 5.0])


def test_backoff_exponential_uses_multiplier(rng: random.Random) -> None:
    backoff = Backoff("exponential", initial_delay=1.0, max_delay=100.0, multiplier=3.0, jitter=0)
    assert backoff.delay(3, rng) == pytest.approx(27.0)


def test_backoff_linear_grows_by_initial_delay(rng: random.Random) -> None:
    backoff = Backoff("linear", initial_delay=2.0, max_delay=7.0, jitter="none")
    delays = [backoff.delay(attempt, rng) for attempt in range(5)]
    assert delays == pytest.approx([2.0, 4.0, 6.0, 7.0, 7.0])


def test_backoff_constant_ignores_attempt(rng: random.Random) -> None:
    backoff = Backoff("constant", initial_delay=1.5, max_delay=10.0, jitter="none")
    assert backoff.delay(0, rng) == 1.5
    assert backoff.delay(10**9, rng) == 1.5


def test_backoff_exponential_saturates_at_huge_attempt(rng: random.Random) -> None:
    backoff = Backoff("exponential", initial_delay=0.1, max_delay=30.0, jitter="none")
    assert backoff.delay(10**6, rng) == 30.0


def test_backoff_full_jitter_spans_zero_to_base() -> None:
    rng = random.Random(3)
    backoff = Backoff("constant", initial_delay=4.0, max_delay=4.0, jitter="full")
    delays = [backoff.delay(0, rng) for _ in range(2000)]
    assert min(delays) >= 0.0
    assert max(delays) <= 4.0
    assert min(delays) < 0.5
    assert max(delays) > 3.5


def test_backoff_equal_jitter_spans_half_to_base() -> None:
    rng = random.Random(3)
    backoff = Backoff("constant", initial_delay=4.0, max_delay=4.0, jitter="equal")
    delays = [backoff.delay(0, rng) for _ in range(2000)]
    assert min(delays) >= 2.0
    assert max(delays) <= 4.0
    assert min(delays) < 2.25


def test_backoff_proportional_jitter_spans_fraction() -> None:
    rng = random.Random(3)
    backoff = Backoff("constant", initial_delay=10.0, max_delay=100.0, jitter=0.2)
    delays = [backoff.delay(0, rng) for _ in range(2000)]
    assert min(delays) >= 8.0
    assert max(delays) <= 12.0
    assert min(delays) < 8.5
    assert max(delays) > 11.5


def test_backoff_proportional_jitter_clamped_at_cap() -> None:
    rng = random.Random(3)
    backoff = Backoff("exponential", initial_delay=1.0, max_delay=10.0, jitter=0.5)
    delays = [backoff.delay(50, rng) for _ in range(500)]
    assert max(delays) == 10.0
    assert min(delays) >= 5.0


def test_backoff_jitter_none_ignores_rng() -> None:
    backoff = Backoff("exponential", initial_delay=1.0, max_delay=8.0, jitter="none")
    assert backoff.delay(2, random.Random(1)) == backoff.delay(2, random.Random(2))


def test_backoff_rejects_negative_attempt(rng: random.Random) -> None:
    backoff = Backoff()
    with pytest.raises(ValueError, match="attempt must be an int >= 0, got -1"):
        backoff.delay(-1, rng)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"kind": "quadratic"}, r"Backoff\.kind must be one of constant, linear, exponential"),
        ({"initial_delay": -1.0}, r"Backoff\.initial_delay must be >= 0.0 s, got -1\.0"),
        ({"initial_delay": math.inf}, r"Backoff\.initial_delay must be a finite number"),
        ({"initial_delay": 5.0, "max_delay": 1.0}, r"Backoff\.max_delay must be >= 5\.0 s"),
        ({"max_delay": math.nan}, r"Backoff\.max_delay must be a finite number.*nan"),
        ({"multiplier": 0.5}, r"Backoff\.multiplier must be >= 1\.0, got 0\.5"),
        ({"jitter": "half"}, r"Backoff\.jitter must be one of .* or a number in \[0, 1\]"),
        ({"jitter": 1.5}, r"Backoff\.jitter .*got 1\.5"),
        ({"jitter": True}, r"Backoff\.jitter .*got True"),
    ],
)
def test_backoff_validation_names_field_and_value(kwargs: dict, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        Backoff(**kwargs)


def test_backoff_accepts_string_kind_and_jitter() -> None:
    backoff = Backoff(kind="linear", jitter="equal")
    assert backoff.kind is BackoffKind.LINEAR
    assert backoff.jitter is Jitter.EQUAL


@pytest.mark.parametrize("jitter", JITTERS, ids=str)
def test_backoff_state_round_trip(jitter: Jitter | float) -> None:
    backoff = Backoff("linear", initial_delay=0.2, max_delay=9.0, multiplier=1.5, jitter=jitter)
    restored = Backoff.from_state(json.loads(json.dumps(backoff.to_state())))
    assert restored == backoff


def test_backoff_from_state_rejects_unknown_key() -> None:
    with pytest.raises(ValueError, match=r"unknown keys \['factor'\]"):
        Backoff.from_state({"factor": 2.0})
