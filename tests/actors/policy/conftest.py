"""Fixtures shared by the policy tests: a fake clock and a seeded random generator."""

from __future__ import annotations

import random

import pytest


class FakeClock:
    """Clock returning `now` in seconds, moved only by the test."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def set(self, now: float) -> None:
        self.now = now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def rng() -> random.Random:
    return random.Random(1234)
