"""Tests for actors.policy.selection."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from actors.policy.provider_status import HealthStatus, Role
from actors.policy.selection import Candidate, order_candidates

pytestmark = pytest.mark.timeout(30)


def _names(candidates: list[Candidate], **kwargs: object) -> list[str]:
    rng = kwargs.pop("rng", random.Random(0))
    return [c.name for c in order_candidates(candidates, rng=rng, **kwargs)]  # type: ignore[arg-type]


def test_selection_orders_roles() -> None:
    candidates = [
        Candidate("backup", Role.FALLBACK),
        Candidate("azure", Role.SECONDARY),
        Candidate("openai", Role.PRIMARY),
    ]
    assert _names(candidates) == ["openai", "azure", "backup"]


def test_selection_keeps_configuration_order_without_weights() -> None:
    candidates = [Candidate(name) for name in ("c", "a", "b")]
    assert _names(candidates) == ["c", "a", "b"]


@pytest.mark.parametrize(
    "unavailable",
    [
        Candidate("x", status=HealthStatus.FAILED),
        Candidate("x", status=HealthStatus.PERMANENTLY_FAILED),
        Candidate("x", breaker_admits=False),
        Candidate("x", cooling=True),
        Candidate("x", ejected=True),
    ],
)
def test_selection_skips_unavailable_provider(unavailable: Candidate) -> None:
    assert _names([unavailable, Candidate("y")]) == ["y"]


def test_selection_puts_testing_provider_after_healthy_ones() -> None:
    candidates = [
        Candidate("x", status=HealthStatus.TESTING),
        Candidate("y", role=Role.FALLBACK),
    ]
    assert _names(candidates) == ["y", "x"]


def test_selection_uses_testing_provider_when_none_is_healthy() -> None:
    candidates = [
        Candidate("x", status=HealthStatus.TESTING),
        Candidate("y", status=HealthStatus.FAILED),
    ]
    assert _names(candidates) == ["x"]


def test_selection_falls_back_when_primaries_unavailable() -> None:
    candidates = [
        Candidate("openai", Role.PRIMARY, breaker_admits=False),
        Candidate("anthropic", Role.PRIMARY, cooling=True),
        Candidate("local", Role.FALLBACK),
    ]
    assert _names(candidates) == ["local"]


def test_selection_skips_provider_over_retry_budget() -> None:
    candidates = [Candidate("a"), Candidate("b", retry_budget=1)]
    assert _names(candidates, tries={"a": 1, "b": 1}) == ["b"]
    assert _names(candidates, tries={"a": 1, "b": 2}) == []


def test_selection_weighted_order_follows_weights() -> None:
    rng = random.Random(42)
    candidates = [Candidate("light", weight=1.0), Candidate("heavy", weight=3.0)]
    firsts = Counter(_names(candidates, rng=rng)[0] for _ in range(4000))
    share = firsts["heavy"] / 4000
    assert 0.72 <= share <= 0.78


def test_selection_weighted_order_contains_every_provider() -> None:
    candidates = [Candidate(name, weight=w) for name, w in (("a", 1.0), ("b", 2.0), ("c", 5.0))]
    for seed in range(50):
        assert sorted(_names(candidates, rng=random.Random(seed))) == ["a", "b", "c"]


def test_selection_weighted_order_repeats_with_seed() -> None:
    candidates = [Candidate(name, weight=1.0) for name in "abcdef"]
    first = _names(candidates, rng=random.Random(9))
    second = _names(candidates, rng=random.Random(9))
    assert first == second


def test_selection_zero_weight_goes_last() -> None:
    candidates = [Candidate("idle", weight=0.0), Candidate("a", weight=1.0), Candidate("b")]
    for seed in range(20):
        assert _names(candidates, rng=random.Random(seed))[-1] == "idle"


def test_selection_weights_apply_within_role_only() -> None:
    candidates = [
        Candidate("fallback", Role.FALLBACK, weight=100.0),
        Candidate("primary", Role.PRIMARY, weight=0.001),
    ]
    assert _names(candidates) == ["primary", "fallback"]


def test_selection_rejects_duplicate_names() -> None:
    with pytest.raises(ValueError, match="candidate names must be unique, got 'a' twice"):
        _names([Candidate("a"), Candidate("a")])


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"role": "backup"}, r"Candidate\.role must be one of .*got 'backup'"),
        ({"status": "ok"}, r"Candidate\.status must be one of .*got 'ok'"),
        ({"weight": -1.0}, r"Candidate\.weight must be a finite number >= 0 or None, got -1\.0"),
        ({"retry_budget": -1}, r"Candidate\.retry_budget must be an int >= 0, got -1"),
    ],
)
def test_candidate_validation_names_field(kwargs: dict, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        Candidate("openai", **kwargs)
