"""An outage run shared by the failover benchmark's implementations.

A run sends calls open loop on a `Schedule`, injects one failure mode into the primary
simulator (`inject`), and records each call as a `CallRecord`. `ModeResult` derives the
figures that `benchmarks.failover` reports.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import httpx

from benchmarks.simulators import SimulatorProcess

__all__ = [
    "CALL_TIMEOUT_SECONDS",
    "DRAIN_SECONDS",
    "FAILURE_THRESHOLD",
    "HANG_SLACK_SECONDS",
    "MODES",
    "OPEN_SECONDS",
    "CallRecord",
    "ModeResult",
    "Schedule",
    "heal",
    "inject",
    "run_schedule",
]

MODES: Final = ("503", "refused", "hang")
FAILURE_THRESHOLD: Final = 5
OPEN_SECONDS: Final = 30.0
HANG_SLACK_SECONDS: Final = 0.05
"""Seconds a hanging primary may add beyond the per-try timeout (the target)."""

CALL_TIMEOUT_SECONDS: Final = 5.0
"""Deadline of one whole call, in seconds."""
DRAIN_SECONDS: Final = 10.0
"""Seconds to wait for the last replies after the last call was sent."""


@dataclass(frozen=True)
class CallRecord:
    """One call: its send time in seconds from the fault (negative before it), its
    latency in seconds, whether it tried the primary, its error or None, and its
    attempts as TPIR listed them (empty for the baselines)."""

    sent_at: float
    latency: float
    tried_primary: bool
    error: str | None
    attempts: str = ""


@dataclass(frozen=True)
class ModeResult:
    """The calls of one implementation in one failure mode."""

    implementation: str
    mode: str
    calls: tuple[CallRecord, ...]

    @property
    def failed(self) -> list[CallRecord]:
        return [call for call in self.calls if call.error is not None]

    @property
    def healthy_p50(self) -> float:
        return statistics.median(call.latency for call in self.calls if call.sent_at < 0)

    @property
    def outage_p50(self) -> float:
        return statistics.median(call.latency for call in self.calls if call.sent_at >= 0)

    @property
    def outage_max(self) -> float:
        return max(call.latency for call in self.calls if call.sent_at >= 0)

    @property
    def max_added(self) -> float:
        return self.outage_max - self.healthy_p50

    @property
    def slowest(self) -> CallRecord:
        """The call sent during the outage with the highest latency."""
        return max((call for call in self.calls if call.sent_at >= 0), key=_latency)

    @property
    def primary_tries(self) -> int:
        """Calls sent after the fault that tried the primary."""
        return sum(1 for call in self.calls if call.sent_at >= 0 and call.tried_primary)

    @property
    def switch_time(self) -> float | None:
        """Seconds from the fault to the first call after which no call tried the primary.

        None when the last call sent still tried the primary.
        """
        after = sorted((call for call in self.calls if call.sent_at >= 0), key=_sent)
        last_try = max((i for i, call in enumerate(after) if call.tried_primary), default=-1)
        if last_try + 1 >= len(after):
            return None
        return after[last_try + 1].sent_at


def _sent(call: CallRecord) -> float:
    return call.sent_at


def _latency(call: CallRecord) -> float:
    return call.latency


# -- faults --------------------------------------------------------------------------------


def inject(primary: SimulatorProcess, mode: str, outage: float) -> None:
    """Make the primary fail in ``mode`` from now on."""
    if mode == "503":
        primary.control(mode=503)
    elif mode == "hang":
        primary.control(mode="hang")
    else:
        # The control endpoint closes with the listener, so the refusal ends by itself.
        primary.control(mode="refuse", duration=outage)


def heal(primary: SimulatorProcess, secondary: SimulatorProcess, outage: float) -> None:
    """Return both simulators to normal behavior and zero counts.

    A refusing primary is unreachable until its refusal ends, so this retries for up to
    ``outage`` plus 5 seconds.
    """
    deadline = time.monotonic() + outage + 5.0
    while True:
        try:
            primary.control(reset=True)
            break
        except httpx.TransportError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)
    secondary.control(reset=True)


@dataclass(frozen=True)
class Schedule:
    """Open-loop send times: ``total`` calls at ``rate`` per second, the fault before
    call number ``fault_index``."""

    rate: float
    total: int
    fault_index: int

    @classmethod
    def of(cls, rate: float, healthy: float, outage: float) -> Schedule:
        return cls(rate, round(rate * (healthy + outage)), round(rate * healthy))

    def due(self, start: float, index: int) -> float:
        return start + index / self.rate


def run_schedule(
    schedule: Schedule,
    primary: SimulatorProcess,
    mode: str,
    outage: float,
    send: Callable[[], None],
) -> float:
    """Call ``send`` at each time of ``schedule``, and make the primary fail in ``mode``
    before the call at the fault index. Returns the `time.monotonic` time of the fault.
    """
    fault_at = 0.0
    start = time.monotonic() + 0.05
    for index in range(schedule.total):
        delay = schedule.due(start, index) - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if index == schedule.fault_index:
            inject(primary, mode, outage)
            fault_at = time.monotonic()
        send()
    return fault_at
