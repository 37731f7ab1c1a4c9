"""The ground truth of the demo: when each provider could serve calls.

The demo itself makes the provider simulators fail, so it can record at every moment which
providers serve normally. `ProviderTimeline` stores each change and reports whether a
failed call overlapped an outage, a time when no provider could serve. A call that
failed outside every outage failed while a healthy provider existed, which TPIR exists
to prevent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["Outage", "ProviderTimeline"]


@dataclass(frozen=True)
class Outage:
    """A time span in which no provider could serve, in seconds of the timeline's clock.

    ``end`` is None while the outage lasts.
    """

    start: float
    end: float | None

    def overlaps(self, start: float, end: float) -> bool:
        """Return whether the span [start, end] shares a moment with this outage."""
        return start <= (self.end if self.end is not None else end) and end >= self.start


class ProviderTimeline:
    """History of provider health: the providers that serve normally at each moment.

    Options:
        providers: the provider names; each starts healthy.
        clock: a callable returning seconds, `time.monotonic` by default. Calls are
            timed with the same clock.
    """

    def __init__(
        self, providers: Iterable[str], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._healthy = {name: True for name in providers}
        if not self._healthy:
            raise ValueError("providers: expected at least one provider name, got none")
        self._outages: list[Outage] = []

    def set_healthy(self, provider: str, healthy: bool) -> None:
        """Record that ``provider`` starts or stops serving normally now."""
        with self._lock:
            if provider not in self._healthy:
                known = ", ".join(sorted(self._healthy))
                raise KeyError(f"unknown provider {provider!r} (known: {known})")
            before = any(self._healthy.values())
            self._healthy[provider] = healthy
            after = any(self._healthy.values())
            now = self._clock()
            if before and not after:
                self._outages.append(Outage(now, None))
            elif after and not before:
                self._outages[-1] = Outage(self._outages[-1].start, now)

    def healthy_now(self) -> list[str]:
        """Return the providers that serve normally now, in the order given at creation."""
        with self._lock:
            return [name for name, healthy in self._healthy.items() if healthy]

    def overlaps_outage(self, start: float, end: float) -> bool:
        """Return whether some moment of [start, end] had no provider serving normally."""
        with self._lock:
            return any(outage.overlaps(start, end) for outage in self._outages)

    @property
    def outages(self) -> list[Outage]:
        """The outages so far, oldest first."""
        with self._lock:
            return list(self._outages)
