"""Restart intensity: at most ``intensity`` restarts within ``period`` seconds.

The window keeps the times of recent restarts. A restart at ``now`` is
admitted when, counting it, no more than ``intensity`` restarts happened in
``[now - period, now]``; otherwise the supervisor gives up. OTP counts in
whole seconds (``erlang:monotonic_time(second)``), so near the edge of the
period OTP may round either way; this window uses the clock's full
resolution.
"""

from __future__ import annotations

from collections import deque

__all__ = ["RestartWindow"]


class RestartWindow:
    """Sliding window of restart times, with ``intensity >= 0`` and ``period > 0`` seconds."""

    def __init__(self, intensity: int, period: float) -> None:
        self.intensity = intensity
        self.period = period
        self._times: deque[float] = deque()

    def _slide(self, now: float) -> None:
        while self._times and now > self._times[0] + self.period:
            self._times.popleft()

    def admit(self, now: float) -> bool:
        """Record a restart at ``now``; return False when it exceeds the intensity."""
        self._times.append(now)
        self._slide(now)
        return len(self._times) <= self.intensity

    def recent(self, now: float) -> int:
        """Return how many restarts are still inside the window at ``now``."""
        self._slide(now)
        return len(self._times)
