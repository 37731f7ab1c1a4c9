"""The demo's output: timed lines, the node's events, and the summary at the end.

`Console` prints lines stamped with the seconds since the traffic started. `EventLog`
turns the node's events into lines (breaker transitions, health changes, restarts, the
first failover of each phase) and counts them. `summarize` builds the per-phase table
and the final verdict from the call records and the provider timeline.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TextIO

from tpir.demo.availability import ProviderTimeline
from tpir.demo.traffic import CallRecord

__all__ = ["Console", "EventLog", "Summary", "summarize"]

_BREAKER_EVENTS: Final = {
    "circuit_opened": "opened",
    "circuit_half_open": "half-open, letting a probe call through",
    "circuit_closed": "closed",
}
# Events that happen once per call; only the first of each phase gets a line.
_FIRST_PER_PHASE: Final = ("failover", "no_provider_available")
_MAX_FAILURES_LISTED: Final = 5


class Console:
    """Prints lines to ``out`` for a person, from any thread.

    ``clock`` returns seconds (`time.monotonic` by default); `mark_start` sets the zero
    of the stamps that `line` prints.
    """

    def __init__(self, out: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self._out = out
        self._clock = clock
        self._lock = threading.Lock()
        self._start: float | None = None

    def mark_start(self) -> None:
        self._start = self._clock()

    def say(self, text: str = "") -> None:
        """Print ``text`` as it is."""
        with self._lock:
            print(text, file=self._out, flush=True)

    def line(self, text: str) -> None:
        """Print ``text`` after the seconds since `mark_start`."""
        elapsed = 0.0 if self._start is None else self._clock() - self._start
        self.say(f"{elapsed:6.1f} s  {text}")


@dataclass(frozen=True)
class _Kill:
    """A SIGKILL the demo sent, waiting for the restart of its actor: the pid and the
    epoch time of the kill."""

    pid: int
    at: float


class EventLog:
    """Prints and counts the node's events; see the module docstring.

    ``phase`` is the index of the current demo phase, set by the demo.
    """

    def __init__(self, console: Console) -> None:
        self._console = console
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.phase = 0
        self._first_seen: set[tuple[int, str]] = set()
        self._kills: dict[str, _Kill] = {}
        self._muted = False

    def mute(self) -> None:
        """Keep counting events but print no more lines, for the summary at the end."""
        self._muted = True

    def expect_restart(self, path: str, pid: int) -> None:
        """Record a SIGKILL sent to the actor at ``path``, so that the line about its
        restart shows how long the restart took."""
        with self._lock:
            self._kills[path] = _Kill(pid, time.time())

    def missing_restarts(self) -> list[str]:
        """Return the paths of killed actors whose restart the node has not reported."""
        with self._lock:
            return sorted(self._kills)

    def handle(self, event: dict[str, Any]) -> None:
        """Count ``event`` and print a line when it is notable."""
        kind = str(event.get("event"))
        with self._lock:
            self.counts[kind] += 1
            first_in_phase = (self.phase, kind) not in self._first_seen
            self._first_seen.add((self.phase, kind))
        text = self._describe(kind, event, first_in_phase)
        if text is not None and not self._muted:
            self._console.line(f"  {text}")

    def _describe(self, kind: str, event: dict[str, Any], first_in_phase: bool) -> str | None:
        provider = event.get("provider")
        details = event.get("details") if isinstance(event.get("details"), dict) else {}
        if kind in _BREAKER_EVENTS:
            return f"breaker of {provider} {_BREAKER_EVENTS[kind]}"
        if kind == "provider_failed":
            return f"health checker marks {provider} {details.get('status', 'failed')}"
        if kind == "provider_recovered":
            return f"health checker marks {provider} healthy again"
        if kind == "child_restarted":
            return self._describe_restart(event)
        if kind in _FIRST_PER_PHASE and first_in_phase:
            if kind == "failover":
                return (
                    f"calls fail over from {details.get('from')} to {details.get('to')} "
                    "(first failover of this phase)"
                )
            return "no provider available for a call (first of this phase)"
        return None

    def _describe_restart(self, event: dict[str, Any]) -> str:
        path = str(event.get("path"))
        with self._lock:
            kill = self._kills.pop(path, None)
        text = f"supervisor restarted {path} as pid {event.get('pid')}"
        if kill is None:
            return text
        at = event.get("at")
        if isinstance(at, int | float):
            text += f", {(at - kill.at) * 1000:.0f} ms after the SIGKILL"
        return text

    @property
    def breaker_transitions(self) -> int:
        return sum(self.counts[kind] for kind in _BREAKER_EVENTS)


@dataclass(frozen=True)
class Summary:
    """The verdict of a run and the lines that explain it.

    ``unexcused`` counts calls that failed at the caller while a healthy provider
    existed. The demo passes only when it is 0 and every call got a reply.
    """

    passed: bool
    sent: int
    answered: int
    failed: int
    unexcused: int
    unanswered: int
    failovers: int
    resent: int
    lines: tuple[str, ...]


def summarize(
    records: Sequence[CallRecord],
    phase_titles: Sequence[str],
    timeline: ProviderTimeline,
    providers: Sequence[str],
) -> Summary:
    """Return the per-phase table and the totals of ``records``.

    A failed call is excused when its span from sending to reply overlaps an outage of
    ``timeline``. Every other failure counts against the demo.
    """
    unanswered = [r for r in records if r.outcome is None or r.answered_at is None]
    failed = [r for r in records if r.outcome is not None and not r.outcome.ok]
    unexcused = [
        r
        for r in failed
        if r.answered_at is not None and not timeline.overlaps_outage(r.sent_at, r.answered_at)
    ]

    header = ["phase", "sent", *providers, "failovers", "failed", "resent"]
    rows = [header]
    for index, title in enumerate(phase_titles):
        in_phase = [r for r in records if r.phase == index]
        by_provider = Counter(r.provider for r in in_phase)
        rows.append(
            [
                f"{index + 1:>2} {title}",
                str(len(in_phase)),
                *(str(by_provider[name]) for name in providers),
                str(sum(1 for r in in_phase if r.failed_over)),
                str(sum(1 for r in in_phase if r.outcome is not None and not r.outcome.ok)),
                str(sum(1 for r in in_phase if r.resent_after is not None)),
            ]
        )
    lines = ["calls by the phase they were sent in:", *_table(rows)]

    for record in unexcused[:_MAX_FAILURES_LISTED]:
        assert record.outcome is not None
        lines.append(
            f"  call {record.number} failed while a healthy provider existed: "
            f"{record.outcome.code}: {record.outcome.message[:160]}"
        )
    if len(unexcused) > _MAX_FAILURES_LISTED:
        lines.append(f"  ... and {len(unexcused) - _MAX_FAILURES_LISTED} more")
    if unanswered:
        numbers = ", ".join(str(r.number) for r in unanswered[:10])
        lines.append(f"  {len(unanswered)} calls never got a reply: {numbers}")

    answered = [r for r in records if r.outcome is not None and r.outcome.ok]
    return Summary(
        passed=bool(records) and not unexcused and not unanswered,
        sent=len(records),
        answered=len(answered),
        failed=len(failed),
        unexcused=len(unexcused),
        unanswered=len(unanswered),
        failovers=sum(1 for r in records if r.failed_over),
        resent=sum(1 for r in records if r.resent_after is not None),
        lines=tuple(lines),
    )


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  " + "  ".join(cells))
    return lines
