"""Fixtures and builders for the router's pure-logic tests: a fake clock and plain rules."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import pytest

from actors.policy.backoff import Backoff
from actors.policy.ejection import EjectionSettings
from actors.policy.retry import RetryPolicy
from actors.router import CallPlan, ProviderRules, Replica

START = 1_700_000_000.0
"""Epoch seconds the fake clock starts at, so that times look like real epoch values."""


class FakeClock:
    """Clock returning `now` in epoch seconds, moved only by the test."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def rng() -> random.Random:
    return random.Random(1234)


def rules(
    name: str,
    role: str = "primary",
    *,
    kind: str = "openai",
    timeout: float = 1.0,
    max_retries: int = 1,
    initial_delay: float = 0.1,
    max_delay: float = 0.4,
    consecutive_failures: int = 5,
    half_open_permitted_calls: int = 1,
    weight: float | None = None,
) -> ProviderRules:
    """Return provider rules with a backoff without jitter, so delays are exact."""
    return ProviderRules(
        name=name,
        kind=kind,
        role=role,
        timeout=timeout,
        retry=RetryPolicy(
            max_retries=max_retries,
            backoff=Backoff("exponential", initial_delay, max_delay, 2.0, "none"),
        ),
        ejection=EjectionSettings(consecutive_failures, 30.0, 300.0),
        half_open_permitted_calls=half_open_permitted_calls,
        weight=weight,
    )


def replica_of(clock: FakeClock, *items: ProviderRules) -> Replica:
    return Replica({item.name: item for item in items}, clock=clock)


def plan_for(
    replica: Replica,
    clock: FakeClock,
    *,
    eligible: Iterable[str] | None = None,
    idempotent: bool = True,
    deadline: float = 10.0,
    rng: random.Random | None = None,
    call_id: str = "call-1",
    **kwargs: Any,
) -> CallPlan:
    return CallPlan(
        call_id,
        replica,
        eligible=tuple(replica.names if eligible is None else eligible),
        idempotent=idempotent,
        deadline=deadline,
        clock=clock,
        rng=rng or random.Random(7),
        **kwargs,
    )


def http_failure(status: int, retry_after: float | None = None) -> dict[str, Any]:
    """Return the failure dict a provider actor sends for an HTTP error status."""
    return {
        "kind": "http_status",
        "message": f"HTTP {status}",
        "may_have_reached_provider": True,
        "retryable": status in (429, 500, 502, 503, 504, 529),
        "status": status,
        "retry_after": retry_after,
        "error_type": "server_error" if status >= 500 else "invalid_request_error",
    }


def failure(kind: str, *, reached: bool | None = None) -> dict[str, Any]:
    """Return the failure dict of a transport failure of ``kind``."""
    if reached is None:
        reached = kind not in ("connect_error", "connect_timeout", "invalid_request")
    return {
        "kind": kind,
        "message": kind.replace("_", " "),
        "may_have_reached_provider": reached,
        "retryable": kind in ("connect_error", "connect_timeout", "read_timeout"),
        "status": None,
        "retry_after": None,
    }
