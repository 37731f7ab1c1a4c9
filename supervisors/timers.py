"""``TimerQueue``: an actor's timers, behind as few thespian wakeups as possible.

thespian 4.0.1 keeps the wakeups of an actor in one list and sorts it on every
``wakeupAfter``, and a wakeup cannot be cancelled: it stays in that list until it is
due. An actor on a call path sets a deadline timer and an attempt timer for every
call and cancels both when the call ends. Under load thousands of dead wakeups sat in
that list, and sorting it took about a fifth of the router's samples in a py-spy
profile with 64 calls in flight.

``TimerQueue`` keeps the timers in a heap of its own and requests a thespian wakeup
only when a new timer is due before every wakeup already requested. Cancelling a
timer removes it from the queue at once. The queue holds no clock: callers pass the
current time, so the logic is tested with plain numbers.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any

__all__ = ["TimerQueue"]

_COMPACT_MIN: int = 1024
"""Heap size from which cancelled entries are purged once they are the majority."""


class TimerQueue:
    """Timers by token, ordered by due time (seconds on the caller's monotonic clock)."""

    def __init__(self) -> None:
        self._payloads: dict[int, Any] = {}
        self._heap: list[tuple[float, int]] = []
        self._tokens = itertools.count(1)
        self._wakeups: list[float] = []

    def __len__(self) -> int:
        return len(self._payloads)

    def add(self, due: float, payload: Any) -> tuple[int, float | None]:
        """Add a timer due at ``due`` and return its token and the wakeup to request.

        The second value is the time at which the caller must request a thespian
        wakeup, or None when a wakeup already requested comes at or before ``due``.
        """
        token = next(self._tokens)
        self._payloads[token] = payload
        heapq.heappush(self._heap, (due, token))
        if self._wakeups and self._wakeups[0] <= due:
            return token, None
        heapq.heappush(self._wakeups, due)
        return token, due

    def cancel(self, token: int) -> bool:
        """Cancel the timer ``token``; return whether it was still pending."""
        if self._payloads.pop(token, None) is None:
            return False
        if len(self._heap) >= _COMPACT_MIN and len(self._payloads) * 2 < len(self._heap):
            self._heap = [entry for entry in self._heap if entry[1] in self._payloads]
            heapq.heapify(self._heap)
        return True

    def take(self, token: int) -> tuple[bool, Any]:
        """Remove the due timer ``token``; return whether it was still set, and its payload."""
        payload = self._payloads.pop(token, _CANCELLED)
        if payload is _CANCELLED:
            return False, None
        return True, payload

    def clear(self) -> None:
        """Cancel every timer. Wakeups already requested still arrive and find nothing."""
        self._payloads.clear()
        self._heap.clear()

    def on_wakeup(self, at: float, now: float) -> tuple[list[int], float | None]:
        """Find the timers that are due when the wakeup requested for ``at`` arrives.

        ``now`` is the current time. Timers due by ``at`` or ``now``, whichever is
        later, are due, so a wakeup that thespian delivers a little early (its delays
        have a resolution of one microsecond) still fires them. Returns their tokens
        in due order, and the time of the next wakeup to request, or None when a
        wakeup already requested covers the next timer or no timer is left. Each
        token's payload stays in the queue until `take`, so that the handler of one
        timer can still cancel another that is due at the same wakeup.
        """
        if at in self._wakeups:
            self._wakeups.remove(at)
            heapq.heapify(self._wakeups)
        limit = max(at, now)
        due = []
        while self._heap and self._heap[0][0] <= limit:
            _, token = heapq.heappop(self._heap)
            if token in self._payloads:
                due.append(token)
        while self._heap and self._heap[0][1] not in self._payloads:
            heapq.heappop(self._heap)
        if not self._heap:
            return due, None
        next_due = self._heap[0][0]
        if self._wakeups and self._wakeups[0] <= next_due:
            return due, None
        heapq.heappush(self._wakeups, next_due)
        return due, next_due


_CANCELLED = object()
