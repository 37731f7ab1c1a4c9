"""Fixtures for the adapter tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.actors.adapters.support import API_KEY
from tpir.simulator import ProviderSimulator


@pytest.fixture
def simulator() -> Iterator[ProviderSimulator]:
    """A simulator on 127.0.0.1 that requires API_KEY, stopped after the test."""
    sim = ProviderSimulator("adapter-tests", api_key=API_KEY).start()
    try:
        yield sim
    finally:
        sim.stop()
