"""The phases of the demo: what fails, in which order, and for how long.

While traffic flows, the primary provider (openai) returns status 503, then hangs, then
refuses connections, with a recovery after each. Then the demo kills, with SIGKILL,
openai's provider actor, its circuit breaker actor and the router. Last, both providers
return status 503, so that no provider can serve and calls may fail.

Each failure is recorded in the `ProviderTimeline` as it is switched: a provider counts
as unhealthy only once its simulator fails, and as healthy again before its simulator
recovers, so the timeline never excuses a failure that a healthy provider could have
prevented.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from actors.names import breaker_path, provider_path, router_path
from tpir.demo.availability import ProviderTimeline
from tpir.demo.drivers import NodeDriver
from tpir.demo.processes import find_child
from tpir.demo.report import Console, EventLog
from tpir.demo.traffic import Traffic
from tpir.simulator import ProviderSimulator

__all__ = ["NORMAL_DELAY_SECONDS", "Phase", "Scenario"]

logger = logging.getLogger(__name__)

NORMAL_DELAY_SECONDS: Final = 0.1
"""Seconds a healthy simulator takes per request, so that several calls are in flight.

It stays below the demo configuration's per-attempt timeout (0.5 s), health-check timeout
(0.25 s) and slow-call duration (0.4 s), so a healthy provider never looks slow."""

_FIRST_SECONDS: Final = 2.0
_FAILURE_SECONDS: Final = 2.5
_KILL_SECONDS: Final = 2.5
_OUTAGE_SECONDS: Final = 2.0
_MAX_RECOVERY_SECONDS: Final = 10.0
"""Maximum wait in seconds for the primary to serve calls again after its simulator
recovers.

With the embedded default configuration the health checker needs up to about 6 s. Its
recovery probes back off to 2 s apart during a failure, and it requires 2 more passed
checks, 2 s apart, before the provider is healthy again."""
_SETTLE_SECONDS: Final = 1.0
_POLL_SECONDS: Final = 0.05


@dataclass(frozen=True)
class Phase:
    """One step of the demo.

    Fields:
        title: what happens, for the printed line.
        seconds: the length of the phase, or its maximum length when ``ends_when`` is set.
        begin: starts the phase (switches a simulator, kills an actor).
        ends_when: None, or a check run every 50 ms. The phase ends 1 s after the check
            first returns True, so that calls keep flowing for a moment in the new state.
    """

    title: str
    seconds: float
    begin: Callable[[], None]
    ends_when: Callable[[], bool] | None = None


class Scenario:
    """Runs the phases of the module docstring against a running node.

    ``integration`` is the integration the traffic calls; ``primary`` and ``secondary``
    are the simulators of its providers ``openai`` and ``anthropic``. ``on_tree`` is
    called with every ``tree`` result the scenario fetches, so that the caller can record
    the pids of new actor processes.
    """

    def __init__(
        self,
        *,
        driver: NodeDriver,
        integration: str,
        primary: ProviderSimulator,
        secondary: ProviderSimulator,
        timeline: ProviderTimeline,
        console: Console,
        events: EventLog,
        traffic: Traffic,
        on_tree: Callable[[dict[str, Any]], None],
    ) -> None:
        self._driver = driver
        self._integration = integration
        self._primary = primary
        self._secondary = secondary
        self._timeline = timeline
        self._console = console
        self._events = events
        self._traffic = traffic
        self._on_tree = on_tree
        self.phases = self._build_phases()

    def _build_phases(self) -> list[Phase]:
        name = self._primary.name
        primary = self._primary

        def recovery() -> Phase:
            return Phase(
                f"{name} recovers",
                _MAX_RECOVERY_SECONDS,
                lambda: self._recover(primary),
                ends_when=self._primary_serves_again,
            )

        return [
            Phase("both providers serve normally", _FIRST_SECONDS, lambda: None),
            Phase(f"{name} returns 503", _FAILURE_SECONDS, lambda: self._fail(primary, 503)),
            recovery(),
            Phase(
                f"{name} hangs (never answers)",
                _FAILURE_SECONDS,
                lambda: self._fail(primary, "hang"),
            ),
            recovery(),
            Phase(
                f"{name} refuses connections",
                _FAILURE_SECONDS,
                lambda: self._fail(primary, "refuse"),
            ),
            recovery(),
            Phase(
                f"SIGKILL {name}'s provider actor",
                _KILL_SECONDS,
                lambda: self._kill(provider_path(self._integration, name)),
            ),
            Phase(
                f"SIGKILL {name}'s breaker actor",
                _KILL_SECONDS,
                lambda: self._kill(breaker_path(self._integration, name)),
            ),
            Phase(
                "SIGKILL the router",
                _KILL_SECONDS,
                lambda: self._kill(router_path(self._integration)),
            ),
            Phase("both return 503 (calls may fail)", _OUTAGE_SECONDS, self._fail_both),
        ]

    @property
    def titles(self) -> list[str]:
        return [phase.title for phase in self.phases]

    def run(self) -> None:
        """Run every phase in order while the traffic flows; print one line per phase."""
        for index, phase in enumerate(self.phases):
            started = time.monotonic()
            self._traffic.phase = index
            self._events.phase = index
            self._console.line(
                f"phase {index + 1}/{len(self.phases)}: {phase.title}  [{_progress(self._traffic)}]"
            )
            phase.begin()
            if phase.ends_when is None:
                _sleep_until(started + phase.seconds)
            else:
                self._wait_for_end(phase, started)

    def _wait_for_end(self, phase: Phase, started: float) -> None:
        assert phase.ends_when is not None
        deadline = started + phase.seconds
        while not phase.ends_when():
            if time.monotonic() >= deadline:
                self._console.line(f"  still not back after {phase.seconds:g} s; moving on")
                return
            time.sleep(_POLL_SECONDS)
        self._console.line(
            f"  {self._primary.name} serves calls again, "
            f"{time.monotonic() - started:.1f} s after its recovery"
        )
        _sleep_until(time.monotonic() + _SETTLE_SECONDS)

    def _primary_serves_again(self) -> bool:
        """Return whether the primary served a call sent in the current phase."""
        phase = self._traffic.phase
        return any(
            record.phase == phase and record.provider == self._primary.name
            for record in self._traffic.records
        )

    def recover_all(self) -> None:
        """Make both simulators serve normally again, releasing any hanging request."""
        for simulator in (self._primary, self._secondary):
            self._recover(simulator)

    # -- actions -------------------------------------------------------------------------

    def _fail(self, simulator: ProviderSimulator, mode: str | int) -> None:
        simulator.set_mode(mode)
        self._timeline.set_healthy(simulator.name, False)

    def _fail_both(self) -> None:
        self._fail(self._primary, 503)
        self._fail(self._secondary, 503)

    def _recover(self, simulator: ProviderSimulator) -> None:
        self._timeline.set_healthy(simulator.name, True)
        serve_normally(simulator)

    def _kill(self, path: str) -> None:
        tree = self._driver.request("tree")
        if not tree.ok or not isinstance(tree.value, dict):
            self._console.line(f"  cannot kill {path}: the tree request failed: {tree.code}")
            return
        self._on_tree(tree.value)
        entry = find_child(tree.value, path)
        pid = entry.get("pid") if entry is not None else None
        if not isinstance(pid, int):
            self._console.line(f"  cannot kill {path}: no running process in the tree")
            return
        self._events.expect_restart(path, pid)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            self._console.line(f"  cannot kill {path}: pid {pid} has already exited")
            return
        logger.info("sent SIGKILL to %s (pid %d)", path, pid)
        self._console.line(f"  SIGKILL sent to {path} (pid {pid})")


def serve_normally(simulator: ProviderSimulator) -> None:
    """Make ``simulator`` respond normally to every request after `NORMAL_DELAY_SECONDS`."""
    simulator.set_mode("normal", delay=NORMAL_DELAY_SECONDS)


def _sleep_until(moment: float) -> None:
    remaining = moment - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)


def _progress(traffic: Traffic) -> str:
    records = traffic.records
    answered = sum(1 for r in records if r.outcome is not None and r.outcome.ok)
    failed = sum(1 for r in records if r.outcome is not None and not r.outcome.ok)
    return f"so far {len(records)} sent, {answered} answered, {failed} failed"
