"""Circuit breaker state machine: closed, open and half-open, with count or time windows.

A closed breaker opens when failures in a row reach `failure_threshold`, or when the failure
rate or the slow-call rate over the sliding window reaches its threshold, once the window
contains `minimum_calls` calls. An open breaker rejects calls until `open_duration` has passed.
It then turns half-open and admits up to `half_open_permitted_calls` probes at once. A failed
probe, or a slow one when slow-call settings are set, reopens it, and
`half_open_permitted_calls` successful probes close it. Time-driven transitions happen
lazily, on the next call to `state`, `try_acquire`, `retry_at`, `snapshot` or a release
method.

Every call needs a `Permit` from `CircuitBreaker.try_acquire`, and the caller releases each
permit once with `on_success`, `on_failure` or `on_ignored`. Releasing a permit twice before
the next transition raises ValueError, and after a transition, outcomes of older permits are
ignored. A permit that is never released keeps its half-open probe slot until
`max_wait_in_half_open` sends the breaker back to open, or forever when that is 0.

Clock: the breaker takes `clock`, a callable returning epoch seconds (default `time.time`).
`opened_at`, `retry_at` and the time window are saved by `to_state` in that scale, so a
breaker opened at t=0 with a 10 s open duration and rebuilt at t=5 still admits its probe at
t=10, not at t=15. NOTE: a step of the system clock moves those deadlines by the step size.
Call durations come from the caller, who should measure them with `time.monotonic`.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from enum import Enum, StrEnum
from typing import Any

__all__ = [
    "BREAKER_TRANSITIONS",
    "BreakerCause",
    "BreakerEvent",
    "BreakerSettings",
    "BreakerSnapshot",
    "BreakerState",
    "CircuitBreaker",
    "IllegalTransitionError",
    "Permit",
    "check_transition",
]

logger = logging.getLogger(__name__)

_MAX_PENDING_EVENTS = 1000
_TIME_WINDOW_BUCKETS = 20


class BreakerState(StrEnum):
    """State of a circuit breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerCause(StrEnum):
    """Reason for a breaker transition."""

    CONSECUTIVE_FAILURES = "consecutive_failures"
    FAILURE_RATE = "failure_rate"
    SLOW_CALL_RATE = "slow_call_rate"
    OPEN_DURATION_ELAPSED = "open_duration_elapsed"
    PROBE_FAILED = "probe_failed"
    PROBE_SLOW = "probe_slow"
    PROBES_SUCCEEDED = "probes_succeeded"
    HALF_OPEN_TIMEOUT = "half_open_timeout"
    RESET = "reset"


BREAKER_TRANSITIONS: Mapping[BreakerState, frozenset[BreakerState]] = {
    BreakerState.CLOSED: frozenset({BreakerState.OPEN}),
    # OPEN -> CLOSED only happens through an operator's reset().
    BreakerState.OPEN: frozenset({BreakerState.HALF_OPEN, BreakerState.CLOSED}),
    BreakerState.HALF_OPEN: frozenset({BreakerState.OPEN, BreakerState.CLOSED}),
}
"""Allowed transitions of `CircuitBreaker`, from each state to the states it may enter."""


class IllegalTransitionError(ValueError):
    """Raised when a state machine is asked for a transition its table does not allow."""

    def __init__(self, machine: str, from_state: Enum, to_state: Enum) -> None:
        super().__init__(
            f"illegal {machine} transition from {from_state.value} to {to_state.value}"
        )
        self.from_state = from_state
        self.to_state = to_state


def check_transition(from_state: BreakerState, to_state: BreakerState) -> None:
    """Raise IllegalTransitionError unless `BREAKER_TRANSITIONS` allows the transition."""
    if to_state not in BREAKER_TRANSITIONS[from_state]:
        raise IllegalTransitionError("circuit breaker", from_state, to_state)


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """Thresholds and durations of a circuit breaker.

    At least one of failure_threshold, failure_rate_threshold and slow_call_rate_threshold
    must be set. Rates are judged over a count-based window of the last `window_size` calls,
    or over a time-based window of the last `window_seconds` when that is set.

    Options:
        failure_threshold: failures in a row that open the breaker, an int in 1..1_000_000,
            or None to disable. Default 5.
        failure_rate_threshold: failure percentage in the window that opens the breaker,
            in (0, 100], or None to disable. Default None.
        window_size: calls in the count-based window, an int in 1..1_000_000. Ignored when
            window_seconds is set. Default 100.
        window_seconds: length in seconds of the time-based window, finite and > 0, or None
            for a count-based window. Calls are grouped into 20 buckets, so a call counts
            for between 95% and 100% of window_seconds. Default None.
        minimum_calls: calls the window must hold before rates are judged, an int >= 1, and
            at most window_size for a count-based window. Default 10.
        slow_call_duration: seconds at or above which a call counts as slow, finite and > 0,
            or None. Set together with slow_call_rate_threshold. Default None.
        slow_call_rate_threshold: slow-call percentage in the window that opens the breaker,
            in (0, 100], or None. A slow probe in half-open reopens the breaker.
            Default None.
        open_duration: seconds an open breaker rejects calls, finite and > 0. Default 30.0.
        half_open_permitted_calls: probes allowed at once in half-open, and successes
            needed to close, an int in 1..10_000. Default 1.
        max_wait_in_half_open: seconds after which a breaker still half-open goes back to
            open, finite and >= 0. 0 waits forever. Default 0.0.
    """

    failure_threshold: int | None = 5
    failure_rate_threshold: float | None = None
    window_size: int = 100
    window_seconds: float | None = None
    minimum_calls: int = 10
    slow_call_duration: float | None = None
    slow_call_rate_threshold: float | None = None
    open_duration: float = 30.0
    half_open_permitted_calls: int = 1
    max_wait_in_half_open: float = 0.0

    def __post_init__(self) -> None:
        _check_int("failure_threshold", self.failure_threshold, 1, 1_000_000, optional=True)
        _check_percent("failure_rate_threshold", self.failure_rate_threshold)
        _check_int("window_size", self.window_size, 1, 1_000_000)
        _check_seconds("window_seconds", self.window_seconds, allow_zero=False, optional=True)
        _check_int("minimum_calls", self.minimum_calls, 1, 1_000_000_000)
        _check_seconds(
            "slow_call_duration", self.slow_call_duration, allow_zero=False, optional=True
        )
        _check_percent("slow_call_rate_threshold", self.slow_call_rate_threshold)
        _check_seconds("open_duration", self.open_duration, allow_zero=False)
        _check_int("half_open_permitted_calls", self.half_open_permitted_calls, 1, 10_000)
        _check_seconds("max_wait_in_half_open", self.max_wait_in_half_open, allow_zero=True)

        if (self.slow_call_duration is None) != (self.slow_call_rate_threshold is None):
            raise ValueError(
                "BreakerSettings.slow_call_duration and slow_call_rate_threshold must be set "
                f"together, got {self.slow_call_duration!r} and {self.slow_call_rate_threshold!r}"
            )
        judges_rates = (
            self.failure_rate_threshold is not None or self.slow_call_rate_threshold is not None
        )
        if self.failure_threshold is None and not judges_rates:
            raise ValueError(
                "BreakerSettings needs failure_threshold, failure_rate_threshold or "
                "slow_call_rate_threshold, got none of them"
            )
        if judges_rates and self.window_seconds is None and self.minimum_calls > self.window_size:
            raise ValueError(
                f"BreakerSettings.minimum_calls must be <= window_size ({self.window_size}) "
                f"for a count-based window, got {self.minimum_calls}"
            )

    def is_slow(self, duration: float) -> bool:
        """Return whether a call of `duration` seconds counts as slow."""
        return self.slow_call_duration is not None and duration >= self.slow_call_duration


@dataclass(frozen=True, slots=True)
class Permit:
    """Permission for one call. Release it once with on_success, on_failure or on_ignored."""

    id: int
    generation: int
    state: BreakerState
    issued_at: float


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    """One transition: breaker name, from-state, to-state, time in epoch seconds and cause."""

    breaker: str
    from_state: BreakerState
    to_state: BreakerState
    at: float
    cause: BreakerCause


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """Point-in-time view of a breaker for status displays. Rates are percentages."""

    name: str
    state: BreakerState
    consecutive_failures: int
    calls_in_window: int
    failures_in_window: int
    slow_calls_in_window: int
    failure_rate: float | None
    slow_call_rate: float | None
    opened_at: float | None
    retry_at: float | None
    half_open_in_flight: int
    half_open_successes: int

    def to_dict(self) -> dict[str, Any]:
        """Return the snapshot as a dict of JSON-safe values."""
        data = asdict(self)
        data["state"] = self.state.value
        return data


@dataclass(frozen=True, slots=True)
class _Totals:
    calls: int
    failures: int
    slow: int


_FAILED_FLAG = 1
_SLOW_FLAG = 2


class _CountWindow:
    """Outcomes of the last `size` calls, each stored as failure and slow flags."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._flags: deque[int] = deque()
        self._failures = 0
        self._slow = 0

    def record(self, failed: bool, slow: bool, now: float) -> None:
        flags = 0
        if failed:
            flags |= _FAILED_FLAG
        if slow:
            flags |= _SLOW_FLAG
        self._flags.append(flags)
        self._count(flags, +1)
        if len(self._flags) > self._size:
            self._count(self._flags.popleft(), -1)

    def totals(self, now: float) -> _Totals:
        return _Totals(len(self._flags), self._failures, self._slow)

    def clear(self) -> None:
        self._flags.clear()
        self._failures = 0
        self._slow = 0

    def to_state(self) -> dict[str, Any]:
        return {"kind": "count", "size": self._size, "calls": list(self._flags)}

    def load(self, state: dict[str, Any]) -> None:
        if state.get("kind") != "count":
            logger.info("discarding saved breaker window: the window kind changed")
            return
        for flags in list(state["calls"])[-self._size :]:
            value = int(flags)
            self._flags.append(value)
            self._count(value, +1)

    def _count(self, flags: int, sign: int) -> None:
        if flags & _FAILED_FLAG:
            self._failures += sign
        if flags & _SLOW_FLAG:
            self._slow += sign


class _TimeWindow:
    """Call totals of the last `seconds`, in fixed buckets of seconds / 20 each.

    Buckets are aligned to multiples of the bucket width on the clock's scale, so a saved
    window lines up again after a restart on the same wall clock.
    """

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._width = seconds / _TIME_WINDOW_BUCKETS
        # Each bucket is [index, calls, failures, slow calls], oldest first.
        self._buckets: deque[list[int]] = deque()

    def record(self, failed: bool, slow: bool, now: float) -> None:
        self._evict(now)
        index = math.floor(now / self._width)
        # A clock that stepped back adds to the newest bucket instead of reordering buckets.
        if not self._buckets or self._buckets[-1][0] < index:
            self._buckets.append([index, 0, 0, 0])
        bucket = self._buckets[-1]
        bucket[1] += 1
        bucket[2] += int(failed)
        bucket[3] += int(slow)

    def totals(self, now: float) -> _Totals:
        self._evict(now)
        calls = sum(bucket[1] for bucket in self._buckets)
        failures = sum(bucket[2] for bucket in self._buckets)
        slow = sum(bucket[3] for bucket in self._buckets)
        return _Totals(calls, failures, slow)

    def clear(self) -> None:
        self._buckets.clear()

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": "time",
            "seconds": self._seconds,
            "buckets": [list(bucket) for bucket in self._buckets],
        }

    def load(self, state: dict[str, Any]) -> None:
        if state.get("kind") != "time" or state.get("seconds") != self._seconds:
            logger.info("discarding saved breaker window: the window kind or length changed")
            return
        for bucket in state["buckets"]:
            index, calls, failures, slow = (int(value) for value in bucket)
            self._buckets.append([index, calls, failures, slow])

    def _evict(self, now: float) -> None:
        oldest_kept = math.floor(now / self._width) - _TIME_WINDOW_BUCKETS + 1
        while self._buckets and self._buckets[0][0] < oldest_kept:
            self._buckets.popleft()


class CircuitBreaker:
    """Circuit breaker for one provider or endpoint. Not thread-safe: one actor owns it.

    Options:
        settings: the `BreakerSettings`. Default: opens after 5 failures in a row for 30 s.
        name: name used in events and logs. Default "breaker".
        clock: callable returning epoch seconds. Default `time.time`.

    Transitions are collected as `BreakerEvent`s until `drain_events` returns them. At most
    1000 undrained events are kept, and older ones are dropped. Permits from before a
    transition are stale, so their outcomes are ignored.
    """

    def __init__(
        self,
        settings: BreakerSettings | None = None,
        *,
        name: str = "breaker",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings if settings is not None else BreakerSettings()
        self._name = name
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._generation = 0
        self._next_permit_id = 1
        self._outstanding: set[int] = set()
        self._consecutive_failures = 0
        self._window: _CountWindow | _TimeWindow = (
            _TimeWindow(self._settings.window_seconds)
            if self._settings.window_seconds is not None
            else _CountWindow(self._settings.window_size)
        )
        self._opened_at: float | None = None
        self._retry_at: float | None = None
        self._half_open_since: float | None = None
        self._half_open_successes = 0
        self._events: deque[BreakerEvent] = deque(maxlen=_MAX_PENDING_EVENTS)

    @property
    def name(self) -> str:
        """Name used in events and logs."""
        return self._name

    @property
    def settings(self) -> BreakerSettings:
        """Thresholds and durations in use."""
        return self._settings

    @property
    def state(self) -> BreakerState:
        """Current state, after applying any transition that time has made due."""
        self._advance(self._clock())
        return self._state

    @property
    def retry_at(self) -> float | None:
        """Epoch seconds at which an open breaker admits a probe, or None when not open."""
        self._advance(self._clock())
        return self._retry_at if self._state is BreakerState.OPEN else None

    def try_acquire(self) -> Permit | None:
        """Return a permit for one call, or None when the breaker rejects the call."""
        now = self._clock()
        self._advance(now)
        if self._state is BreakerState.OPEN:
            return None
        if self._state is BreakerState.HALF_OPEN:
            # Issue no more probes than the successes still needed to close.
            probes_used = len(self._outstanding) + self._half_open_successes
            if probes_used >= self._settings.half_open_permitted_calls:
                return None
        permit = Permit(self._next_permit_id, self._generation, self._state, now)
        self._next_permit_id += 1
        self._outstanding.add(permit.id)
        return permit

    def on_success(self, permit: Permit, duration: float) -> None:
        """Record that the call of `permit` succeeded after `duration` seconds."""
        _check_duration(duration)
        now = self._clock()
        self._advance(now)
        if not self._release(permit):
            return
        slow = self._settings.is_slow(duration)
        if self._state is BreakerState.HALF_OPEN:
            if slow:
                self._transition(BreakerState.OPEN, BreakerCause.PROBE_SLOW, now)
                return
            self._half_open_successes += 1
            if self._half_open_successes >= self._settings.half_open_permitted_calls:
                self._transition(BreakerState.CLOSED, BreakerCause.PROBES_SUCCEEDED, now)
            return
        self._consecutive_failures = 0
        self._window.record(False, slow, now)
        self._judge_closed(now)

    def on_failure(self, permit: Permit, duration: float) -> None:
        """Record that the call of `permit` failed after `duration` seconds."""
        _check_duration(duration)
        now = self._clock()
        self._advance(now)
        if not self._release(permit):
            return
        if self._state is BreakerState.HALF_OPEN:
            self._transition(BreakerState.OPEN, BreakerCause.PROBE_FAILED, now)
            return
        self._consecutive_failures += 1
        self._window.record(True, self._settings.is_slow(duration), now)
        self._judge_closed(now)

    def on_ignored(self, permit: Permit) -> None:
        """Release `permit` without counting its call as a success or a failure.

        In half-open this frees the probe slot, so the next call is admitted as a probe.
        """
        self._advance(self._clock())
        self._release(permit)

    def reset(self) -> None:
        """Close the breaker and clear its counts, for operators."""
        now = self._clock()
        self._advance(now)
        if self._state is BreakerState.CLOSED:
            self._consecutive_failures = 0
            self._window.clear()
            return
        self._transition(BreakerState.CLOSED, BreakerCause.RESET, now)

    def drain_events(self) -> list[BreakerEvent]:
        """Return the transitions since the last call, oldest first, and forget them."""
        self._advance(self._clock())
        events = list(self._events)
        self._events.clear()
        return events

    def snapshot(self) -> BreakerSnapshot:
        """Return the state and counts for status displays."""
        now = self._clock()
        self._advance(now)
        totals = self._window.totals(now)
        return BreakerSnapshot(
            name=self._name,
            state=self._state,
            consecutive_failures=self._consecutive_failures,
            calls_in_window=totals.calls,
            failures_in_window=totals.failures,
            slow_calls_in_window=totals.slow,
            failure_rate=_percent(totals.failures, totals.calls),
            slow_call_rate=_percent(totals.slow, totals.calls),
            opened_at=self._opened_at,
            retry_at=self._retry_at if self._state is BreakerState.OPEN else None,
            half_open_in_flight=(
                len(self._outstanding) if self._state is BreakerState.HALF_OPEN else 0
            ),
            half_open_successes=self._half_open_successes,
        )

    def to_state(self) -> dict[str, Any]:
        """Return the breaker's state as a dict of JSON-safe values.

        Outstanding permits are not saved: their calls ended with the process, so a
        restored half-open breaker has all its probe slots free.
        """
        self._advance(self._clock())
        return {
            "version": 1,
            "state": self._state.value,
            "generation": self._generation,
            "consecutive_failures": self._consecutive_failures,
            "window": self._window.to_state(),
            "opened_at": self._opened_at,
            "retry_at": self._retry_at,
            "half_open_since": self._half_open_since,
            "half_open_successes": self._half_open_successes,
        }

    @classmethod
    def from_state(
        cls,
        state: dict[str, Any],
        settings: BreakerSettings | None = None,
        *,
        name: str = "breaker",
        clock: Callable[[], float] = time.time,
    ) -> CircuitBreaker:
        """Build a breaker from a dict made by `to_state`.

        A saved window whose kind or length differs from `settings` is discarded.
        """
        version = state.get("version")
        if version != 1:
            raise ValueError(f"CircuitBreaker state version must be 1, got {version!r}")
        breaker = cls(settings, name=name, clock=clock)
        try:
            breaker._state = BreakerState(state["state"])
            # Continue the generation count so that no permit id pair repeats.
            breaker._generation = int(state["generation"]) + 1
            breaker._consecutive_failures = int(state["consecutive_failures"])
            breaker._opened_at = _optional_float(state["opened_at"])
            breaker._retry_at = _optional_float(state["retry_at"])
            breaker._half_open_since = _optional_float(state["half_open_since"])
            breaker._half_open_successes = int(state["half_open_successes"])
            breaker._window.load(state["window"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"CircuitBreaker state for {name!r} is invalid: {exc!r}") from exc

        if breaker._state is BreakerState.OPEN and breaker._retry_at is None:
            raise ValueError(f"CircuitBreaker state for {name!r} is open but has no retry_at")
        if breaker._state is BreakerState.HALF_OPEN and breaker._half_open_since is None:
            raise ValueError(
                f"CircuitBreaker state for {name!r} is half_open but has no half_open_since"
            )
        return breaker

    def _release(self, permit: Permit) -> bool:
        """Remove `permit` from the outstanding set. Returns whether its outcome counts."""
        if permit.generation != self._generation:
            logger.debug(
                "breaker %s ignores stale permit %d from %s", self._name, permit.id, permit.state
            )
            return False
        if permit.id not in self._outstanding:
            raise ValueError(
                f"permit {permit.id} of breaker {self._name!r} was already released or was "
                "not issued by this breaker"
            )
        self._outstanding.discard(permit.id)
        return True

    def _advance(self, now: float) -> None:
        """Apply the transitions that time has made due."""
        if (
            self._state is BreakerState.OPEN
            and self._retry_at is not None
            and now >= self._retry_at
        ):
            self._transition(BreakerState.HALF_OPEN, BreakerCause.OPEN_DURATION_ELAPSED, now)
        max_wait = self._settings.max_wait_in_half_open
        if (
            self._state is BreakerState.HALF_OPEN
            and max_wait > 0
            and self._half_open_since is not None
            and now >= self._half_open_since + max_wait
        ):
            self._transition(BreakerState.OPEN, BreakerCause.HALF_OPEN_TIMEOUT, now)

    def _judge_closed(self, now: float) -> None:
        settings = self._settings
        threshold = settings.failure_threshold
        if threshold is not None and self._consecutive_failures >= threshold:
            self._transition(BreakerState.OPEN, BreakerCause.CONSECUTIVE_FAILURES, now)
            return

        totals = self._window.totals(now)
        if totals.calls < settings.minimum_calls:
            return
        rate_threshold = settings.failure_rate_threshold
        if rate_threshold is not None and 100.0 * totals.failures / totals.calls >= rate_threshold:
            self._transition(BreakerState.OPEN, BreakerCause.FAILURE_RATE, now)
            return
        slow_threshold = settings.slow_call_rate_threshold
        if slow_threshold is not None and 100.0 * totals.slow / totals.calls >= slow_threshold:
            self._transition(BreakerState.OPEN, BreakerCause.SLOW_CALL_RATE, now)

    def _transition(self, to_state: BreakerState, cause: BreakerCause, now: float) -> None:
        from_state = self._state
        check_transition(from_state, to_state)
        self._state = to_state
        self._generation += 1
        self._outstanding.clear()
        self._half_open_successes = 0

        if to_state is BreakerState.OPEN:
            self._opened_at = now
            self._retry_at = now + self._settings.open_duration
            self._half_open_since = None
        elif to_state is BreakerState.HALF_OPEN:
            self._half_open_since = now
        else:
            self._opened_at = None
            self._retry_at = None
            self._half_open_since = None
            self._consecutive_failures = 0
            self._window.clear()

        event = BreakerEvent(self._name, from_state, to_state, now, cause)
        self._events.append(event)
        level = logging.WARNING if to_state is BreakerState.OPEN else logging.INFO
        logger.log(level, "breaker %s: %s -> %s (%s)", self._name, from_state, to_state, cause)


def _percent(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole


def _optional_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_duration(duration: object) -> None:
    if not _is_number(duration) or not math.isfinite(duration) or duration < 0:  # type: ignore[arg-type,operator]
        raise ValueError(f"duration must be a finite number of seconds >= 0, got {duration!r}")


def _check_int(field: str, value: object, low: int, high: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"BreakerSettings.{field} must be an int in {low}..{high}, got {value!r}")


def _check_percent(field: str, value: object) -> None:
    if value is None:
        return
    if not _is_number(value) or not 0 < value <= 100:  # type: ignore[operator]
        raise ValueError(
            f"BreakerSettings.{field} must be a percentage in (0, 100] or None, got {value!r}"
        )


def _check_seconds(field: str, value: object, *, allow_zero: bool, optional: bool = False) -> None:
    if value is None and optional:
        return
    valid = _is_number(value) and math.isfinite(value)  # type: ignore[arg-type]
    if valid:
        valid = value >= 0 if allow_zero else value > 0  # type: ignore[operator]
    if not valid:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"BreakerSettings.{field} must be finite seconds {bound}, got {value!r}")
