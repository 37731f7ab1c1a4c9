"""Tests for actors.policy.cooldown."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest

from actors.policy.cooldown import MAX_RETRY_AFTER, Cooldowns, parse_retry_after
from actors.policy.selection import Candidate, order_candidates

pytestmark = pytest.mark.timeout(30)

# 1994-11-06 08:49:37 UTC, the example date of the HTTP specifications.
EXAMPLE_DATE = datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 5 ", 5.0),
        (b"7", 7.0),
        ("9" * 400, MAX_RETRY_AFTER),
    ],
)
def test_parse_retry_after_seconds(value: str | bytes, expected: float) -> None:
    assert parse_retry_after(value, now=0.0) == expected


@pytest.mark.parametrize(
    "value",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    ],
)
def test_parse_retry_after_http_date_forms(value: str) -> None:
    assert parse_retry_after(value, now=EXAMPLE_DATE - 30.0) == pytest.approx(30.0)


def test_parse_retry_after_past_date_is_zero() -> None:
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now=EXAMPLE_DATE + 60.0) == 0.0


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "soon", "-1", "1.5", "1e3", "+5", "Sun, 31 Feb 1994 08:49:37 GMT", b"\xff"],
)
def test_parse_retry_after_garbage_is_none(value: str | bytes | None) -> None:
    assert parse_retry_after(value, now=0.0) is None


def test_cooldown_extend_never_shortens() -> None:
    cooldowns = Cooldowns()
    assert cooldowns.extend("openai", 10.0) == 10.0
    assert cooldowns.extend("openai", 4.0) == 10.0
    assert cooldowns.until("openai") == 10.0


def test_cooldown_is_cooling_until_end() -> None:
    cooldowns = Cooldowns()
    cooldowns.extend("openai", 10.0)
    assert cooldowns.is_cooling("openai", 9.99)
    assert not cooldowns.is_cooling("openai", 10.0)


def test_cooldown_unknown_provider_not_cooling() -> None:
    cooldowns = Cooldowns()
    assert not cooldowns.is_cooling("anthropic", 0.0)
    assert cooldowns.until("anthropic") is None


def test_cooldown_only_extends_and_selection_skips() -> None:
    """S6: Retry-After 1 at t=0, then a 5 s cooldown at t=0.25, so still skipped at t=2."""
    cooldowns = Cooldowns()
    delay = parse_retry_after("1", now=0.0)
    assert delay == 1.0
    cooldowns.extend("openai", 0.0 + delay)
    assert cooldowns.until("openai") == 1.0

    cooldowns.extend_for("openai", 5.0, now=0.25)
    assert cooldowns.until("openai") == 5.25

    now = 2.0
    candidates = [
        Candidate("openai", cooling=cooldowns.is_cooling("openai", now)),
        Candidate("anthropic", cooling=cooldowns.is_cooling("anthropic", now)),
    ]
    chosen = [c.name for c in order_candidates(candidates, rng=random.Random(0))]
    assert chosen == ["anthropic"]


def test_cooldown_records_two_failures_in_one_request() -> None:
    """S6: both providers that failed within one request are cooling down."""
    cooldowns = Cooldowns()
    now = 100.0
    cooldowns.extend_for("openai", 1.0, now)
    cooldowns.extend_for("anthropic", 2.0, now + 0.1)

    assert cooldowns.is_cooling("openai", now + 0.5)
    assert cooldowns.is_cooling("anthropic", now + 0.5)

    candidates = [
        Candidate(name, cooling=cooldowns.is_cooling(name, now + 0.5))
        for name in ("openai", "anthropic", "mistral")
    ]
    chosen = [c.name for c in order_candidates(candidates, rng=random.Random(0))]
    assert chosen == ["mistral"]


def test_cooldown_prune_drops_ended_entries() -> None:
    cooldowns = Cooldowns()
    cooldowns.extend("openai", 5.0)
    cooldowns.extend("anthropic", 50.0)
    cooldowns.prune(10.0)
    assert cooldowns.until("openai") is None
    assert cooldowns.until("anthropic") == 50.0


def test_cooldown_state_round_trip() -> None:
    cooldowns = Cooldowns()
    cooldowns.extend("openai", 1_700_000_100.5)
    restored = Cooldowns.from_state(json.loads(json.dumps(cooldowns.to_state())))
    assert restored.until("openai") == 1_700_000_100.5
    assert restored.is_cooling("openai", 1_700_000_100.0)


def test_cooldown_from_state_rejects_bad_version() -> None:
    with pytest.raises(ValueError, match="version must be 1, got None"):
        Cooldowns.from_state({"until": {}})


def test_cooldown_extend_rejects_infinite_end() -> None:
    with pytest.raises(ValueError, match="until must be finite epoch seconds, got inf"):
        Cooldowns().extend("openai", float("inf"))


def test_cooldown_extend_for_rejects_negative_seconds() -> None:
    with pytest.raises(ValueError, match="seconds must be a finite number >= 0, got -1"):
        Cooldowns().extend_for("openai", -1, now=0.0)
