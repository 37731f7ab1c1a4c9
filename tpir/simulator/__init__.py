"""A controllable provider simulator for the demo, the benchmarks and the tests.

`ProviderSimulator` is a real HTTP/1.1 server on 127.0.0.1 that speaks OpenAI chat
completions, Anthropic messages and plain HTTP. It fails on command with error statuses,
malformed bodies, slow or hanging responses, refused connections and connections closed
in the middle of a response. `python -m tpir.simulator --help` runs one from a shell.
"""

from __future__ import annotations

from tpir.simulator.engine import ANTHROPIC_PATH, HEALTH_PATH, OPENAI_PATH, RecordedRequest
from tpir.simulator.handler import CONTROL_PATH
from tpir.simulator.modes import MODE_NAMES, TARGETS, Behavior, parse_behavior
from tpir.simulator.server import ProviderSimulator

__all__ = [
    "ANTHROPIC_PATH",
    "CONTROL_PATH",
    "HEALTH_PATH",
    "MODE_NAMES",
    "OPENAI_PATH",
    "TARGETS",
    "Behavior",
    "ProviderSimulator",
    "RecordedRequest",
    "parse_behavior",
]
