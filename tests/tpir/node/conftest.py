"""Fixtures for the node tests: provider simulators and real ``tpir run`` nodes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.tpir.node.support import NodeUnderTest, write_config
from tpir.simulator import ProviderSimulator


@pytest.fixture(scope="module")
def simulators() -> Iterator[tuple[ProviderSimulator, ProviderSimulator]]:
    """Two simulators on 127.0.0.1: the primary (OpenAI) and the secondary (Anthropic)."""
    primary = ProviderSimulator("openai").start()
    secondary = ProviderSimulator("anthropic").start()
    try:
        yield primary, secondary
    finally:
        primary.stop()
        secondary.stop()


@pytest.fixture(scope="module")
def start_node(
    tmp_path_factory: pytest.TempPathFactory,
    simulators: tuple[ProviderSimulator, ProviderSimulator],
) -> Iterator[Callable[..., NodeUnderTest]]:
    """Start nodes on the simulators, each with its own data folder; stop them all after."""
    started: list[NodeUnderTest] = []

    def start(*extra_args: str, max_frame_bytes: int = 65536) -> NodeUnderTest:
        folder = tmp_path_factory.mktemp("node")
        config = write_config(
            folder / "node.toml",
            folder / "data",
            *simulators,
            max_frame_bytes=max_frame_bytes,
        )
        node = NodeUnderTest(config, folder / "node.stderr", *extra_args)
        started.append(node)
        node.wait_ready()
        return node

    yield start
    for node in started:
        leftover = node.stop()
        assert leftover == [], f"node processes had to be killed: {leftover}"


@pytest.fixture(scope="module")
def node(start_node: Callable[..., NodeUnderTest]) -> NodeUnderTest:
    """One node shared by the tests of a module that leave it running and unharmed."""
    return start_node()


@pytest.fixture
def fresh_node(
    tmp_path: Path, simulators: tuple[ProviderSimulator, ProviderSimulator]
) -> Iterator[NodeUnderTest]:
    """A node for one test that may stop or harm it; every process of it ends after."""
    config = write_config(tmp_path / "node.toml", tmp_path / "data", *simulators)
    node = NodeUnderTest(config, tmp_path / "node.stderr")
    try:
        node.wait_ready()
        yield node
    finally:
        leftover = node.stop()
        assert leftover == [], f"node processes had to be killed: {leftover}"
