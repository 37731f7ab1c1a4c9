"""The observer shared by both scenario runners: raw events in, output lines out.

Each runner reports what happened as :class:`RawEvent` values, each with a
monotonic timestamp taken where the event happened, because reports from
different processes can reach the runner out of order. When a step's quiet
period ends, the runner calls :meth:`Observer.flush`, which sorts the
collected events by timestamp, tracks which ids are alive, applies the two
canonical rules below and returns the output lines; :meth:`Observer.step_line`
then gives the step's summary line.

Canonical rule 1 (killed supervisors): when a supervisor is reported
terminated with reason ``killed``, every descendant still alive is reported
terminated with reason ``killed`` right after it, the latest started first,
and later reports about those process instances are ignored. OTP kills the
descendants a little later, some with other reasons. A SIGKILLed process tree
on the Python side reports nothing. This rule makes the two agree.

Canonical rule 2 (simple_one_for_one shutdown): OTP stops the dynamic
children of a simple_one_for_one supervisor in parallel, so every maximal run
of consecutive ``terminated`` lines whose ids are all children of the same
simple_one_for_one supervisor is sorted by id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import count
from typing import Any

from supervisors.scenario.model import Scenario

__all__ = ["EVENT_KINDS", "OUTPUT_REASONS", "Observer", "RawEvent", "canonical_reason"]

logger = logging.getLogger(__name__)

EVENT_KINDS = ("started", "terminated")
OUTPUT_REASONS = ("normal", "shutdown", "killed", "crash")


def canonical_reason(reason: Any) -> str:
    """Map an exit reason to its output form.

    ``normal`` and ``killed`` stay as they are. ``shutdown`` and
    ``("shutdown", detail)`` become ``shutdown``. Anything else becomes
    ``crash``.
    """
    if reason in ("normal", "shutdown", "killed"):
        return str(reason)
    if isinstance(reason, tuple) and len(reason) == 2 and reason[0] == "shutdown":
        return "shutdown"
    return "crash"


@dataclass(frozen=True)
class RawEvent:
    """One report from a runner.

    ``timestamp`` is a monotonic time in any unit, the same unit for every event
    of one run. ``kind`` is 'started' or 'terminated'. A terminated event has a
    ``reason`` from :data:`OUTPUT_REASONS`, and a started event has none.
    ``instance`` (optional) identifies the process instance, for example a pid.
    A terminated event whose instance differs from the instance alive under
    that id is about an older process, so the observer ignores it.
    """

    timestamp: float
    kind: str
    id: str
    reason: str | None = None
    instance: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"RawEvent.kind: invalid value {self.kind!r}; expected {EVENT_KINDS}")
        if self.kind == "terminated" and self.reason not in OUTPUT_REASONS:
            raise ValueError(
                f"RawEvent.reason: invalid value {self.reason!r} for a terminated event; "
                f"expected one of {OUTPUT_REASONS}"
            )
        if self.kind == "started" and self.reason is not None:
            raise ValueError(
                f"RawEvent.reason: invalid value {self.reason!r} for a started event; expected None"
            )

    @classmethod
    def started(cls, timestamp: float, node_id: str, instance: str | None = None) -> RawEvent:
        return cls(timestamp, "started", node_id, None, instance)

    @classmethod
    def terminated(
        cls, timestamp: float, node_id: str, reason: str, instance: str | None = None
    ) -> RawEvent:
        return cls(timestamp, "terminated", node_id, reason, instance)


@dataclass(frozen=True)
class _Alive:
    instance: str | None
    start_sequence: int


class Observer:
    """Collect raw events of one scenario run and turn them into output lines.

    Not thread-safe: a runner that receives events on several threads must
    serialize its calls.
    """

    def __init__(self, scenario: Scenario) -> None:
        self._scenario = scenario
        self._simple_parent: dict[str, str] = {
            child: supervisor
            for supervisor, children in scenario.simple_one_for_one_children().items()
            for child in children
        }
        self._pending: list[RawEvent] = []
        self._alive: dict[str, _Alive] = {}
        self._start_sequence = count()

    @property
    def alive(self) -> frozenset[str]:
        """Ids alive after the last :meth:`flush`."""
        return frozenset(self._alive)

    @property
    def pending(self) -> int:
        """Number of events collected since the last :meth:`flush`."""
        return len(self._pending)

    def add(self, event: RawEvent) -> None:
        """Collect ``event`` for the next :meth:`flush`.

        Raises ValueError when the event's id is not in the scenario tree.
        """
        if not self._scenario.has_id(event.id):
            raise ValueError(f"RawEvent.id: {event.id!r} not found in the scenario tree")
        self._pending.append(event)

    def flush(self) -> list[dict[str, Any]]:
        """Sort the collected events by timestamp, apply them and return the output lines.

        Events with equal timestamps keep the order in which they were added.
        """
        events = sorted(self._pending, key=lambda event: event.timestamp)
        self._pending.clear()
        lines: list[dict[str, Any]] = []
        for event in events:
            lines.extend(self._apply(event))
        return _sort_simple_runs(lines, self._simple_parent)

    def step_line(self, step: int) -> dict[str, Any]:
        """Return the summary line of step ``step`` (counting from 0), to call after flush."""
        return {"step": step, "alive": sorted(self._alive)}

    def _apply(self, event: RawEvent) -> list[dict[str, Any]]:
        if event.kind == "started":
            if event.id in self._alive:
                logger.warning(
                    "started reported for %r, which is still alive; the old instance is dropped",
                    event.id,
                )
            self._alive[event.id] = _Alive(event.instance, next(self._start_sequence))
            return [{"event": "started", "id": event.id}]

        current = self._alive.get(event.id)
        if current is None:
            logger.debug("ignored terminated report for %r, which is not alive", event.id)
            return []
        if (
            event.instance is not None
            and current.instance is not None
            and event.instance != current.instance
        ):
            logger.debug(
                "ignored terminated report for %r instance %s; alive instance is %s",
                event.id,
                event.instance,
                current.instance,
            )
            return []

        del self._alive[event.id]
        lines: list[dict[str, Any]] = [
            {"event": "terminated", "id": event.id, "reason": event.reason}
        ]
        if event.reason == "killed" and self._scenario.is_supervisor(event.id):
            lines.extend(self._kill_descendants(event.id))
        return lines

    def _kill_descendants(self, supervisor_id: str) -> list[dict[str, Any]]:
        victims = [
            node_id
            for node_id in self._scenario.descendants_of(supervisor_id)
            if node_id in self._alive
        ]
        victims.sort(key=lambda node_id: self._alive[node_id].start_sequence, reverse=True)
        for node_id in victims:
            del self._alive[node_id]
        return [{"event": "terminated", "id": node_id, "reason": "killed"} for node_id in victims]


def _sort_simple_runs(
    lines: list[dict[str, Any]], simple_parent: dict[str, str]
) -> list[dict[str, Any]]:
    """Sort by id each maximal run of terminated lines of one simple_one_for_one
    supervisor's children (canonical rule 2)."""
    result: list[dict[str, Any]] = []
    position = 0
    while position < len(lines):
        parent = _simple_parent_of_terminated(lines[position], simple_parent)
        if parent is None:
            result.append(lines[position])
            position += 1
            continue
        end = position + 1
        while end < len(lines):
            if _simple_parent_of_terminated(lines[end], simple_parent) != parent:
                break
            end += 1
        result.extend(sorted(lines[position:end], key=lambda line: line["id"]))
        position = end
    return result


def _simple_parent_of_terminated(line: dict[str, Any], simple_parent: dict[str, str]) -> str | None:
    if line.get("event") != "terminated":
        return None
    return simple_parent.get(line["id"])
