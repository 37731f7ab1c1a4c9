"""Provider health status machine: healthy, failed, testing and permanently failed.

A provider's role (primary, secondary, fallback) is fixed by configuration. Its health
status moves through this table (`STATUS_TRANSITIONS`):

- healthy -> failed: `unhealthy_threshold` health checks failed in a row, or its circuit
  breaker opened.
- failed -> testing: a recovery probe succeeded. Probes are spaced by `probe_backoff`.
- failed -> permanently_failed: `max_attempts` recovery probes have failed.
- testing -> healthy: `recovery_threshold` checks in a row succeeded while testing. Requiring
  several successes keeps a provider that responds only intermittently from flapping.
- testing -> failed, or -> permanently_failed when that was the last allowed attempt: a check
  failed while testing or the breaker opened. This counts as a failed recovery probe.
- permanently_failed -> testing, and failed -> testing: an operator called `reset()`.

The count of failed recovery probes resets only when the provider becomes healthy again.

The clock returns epoch seconds (default `time.time`), because the next probe time is saved by
`to_state` and must mean the same after a process restart.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from actors.policy.backoff import Backoff, BackoffKind, Jitter
from actors.policy.breaker import IllegalTransitionError

__all__ = [
    "STATUS_TRANSITIONS",
    "HealthStatus",
    "ProviderStatus",
    "ProviderStatusSettings",
    "Role",
    "StatusCause",
    "StatusEvent",
    "check_status_transition",
]

logger = logging.getLogger(__name__)

_MAX_PENDING_EVENTS = 1000


class Role(StrEnum):
    """Role of a provider in selection order: primaries first, then secondaries, then fallbacks."""

    PRIMARY = "primary"
    SECONDARY = "secondary"
    FALLBACK = "fallback"


class HealthStatus(StrEnum):
    """Health status of a provider."""

    HEALTHY = "healthy"
    FAILED = "failed"
    TESTING = "testing"
    PERMANENTLY_FAILED = "permanently_failed"


class StatusCause(StrEnum):
    """Reason for a status transition."""

    HEALTH_CHECKS_FAILED = "health_checks_failed"
    BREAKER_OPENED = "breaker_opened"
    PROBE_SUCCEEDED = "probe_succeeded"
    PROBE_FAILED = "probe_failed"
    RECOVERED = "recovered"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    OPERATOR_RESET = "operator_reset"


STATUS_TRANSITIONS: Mapping[HealthStatus, frozenset[HealthStatus]] = {
    HealthStatus.HEALTHY: frozenset({HealthStatus.FAILED}),
    HealthStatus.FAILED: frozenset({HealthStatus.TESTING, HealthStatus.PERMANENTLY_FAILED}),
    HealthStatus.TESTING: frozenset(
        {HealthStatus.HEALTHY, HealthStatus.FAILED, HealthStatus.PERMANENTLY_FAILED}
    ),
    HealthStatus.PERMANENTLY_FAILED: frozenset({HealthStatus.TESTING}),
}
"""Allowed transitions of `ProviderStatus`, from each status to the statuses it may enter."""


def check_status_transition(from_status: HealthStatus, to_status: HealthStatus) -> None:
    """Raise IllegalTransitionError unless `STATUS_TRANSITIONS` allows the transition."""
    if to_status not in STATUS_TRANSITIONS[from_status]:
        raise IllegalTransitionError("provider status", from_status, to_status)


def _default_probe_backoff() -> Backoff:
    return Backoff(BackoffKind.EXPONENTIAL, initial_delay=5.0, max_delay=300.0, jitter=Jitter.EQUAL)


@dataclass(frozen=True, slots=True)
class ProviderStatusSettings:
    """Thresholds of the provider status machine.

    Options:
        unhealthy_threshold: failed health checks in a row that mark a healthy provider
            failed, an int in 1..10_000. Default 3.
        recovery_threshold: successful checks in a row that return a testing provider to
            healthy, an int in 1..10_000. Default 3.
        max_attempts: failed recovery probes after which the provider is permanently failed,
            an int in 1..1_000_000. Default 5.
        probe_backoff: spacing of recovery probes. The delay after the n-th failed probe is
            ``probe_backoff.delay(n)``, and the first probe waits ``delay(0)``.
            Default: exponential from 5 s, capped at 300 s, equal jitter.
    """

    unhealthy_threshold: int = 3
    recovery_threshold: int = 3
    max_attempts: int = 5
    probe_backoff: Backoff = field(default_factory=_default_probe_backoff)

    def __post_init__(self) -> None:
        for name, high in (
            ("unhealthy_threshold", 10_000),
            ("recovery_threshold", 10_000),
            ("max_attempts", 1_000_000),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
                raise ValueError(
                    f"ProviderStatusSettings.{name} must be an int in 1..{high}, got {value!r}"
                )
        if not isinstance(self.probe_backoff, Backoff):
            raise ValueError(
                "ProviderStatusSettings.probe_backoff must be a Backoff, "
                f"got {self.probe_backoff!r}"
            )


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """One status transition: provider, from-status, to-status, time (epoch seconds), cause."""

    provider: str
    from_status: HealthStatus
    to_status: HealthStatus
    at: float
    cause: StatusCause


class ProviderStatus:
    """Health status of one provider, driven by check results and breaker openings.

    Options:
        name: provider name used in events and logs.
        role: the provider's `Role` or its string value.
        settings: the `ProviderStatusSettings`. Default: 3 failed checks, 3 successes to
            recover, 5 recovery probes.
        clock: callable returning epoch seconds. Default `time.time`.
        rng: random generator for probe jitter. Default a new `random.Random()`.

    Transitions are collected as `StatusEvent`s until `drain_events` returns them. At most
    1000 undrained events are kept, and older ones are dropped.
    """

    def __init__(
        self,
        name: str,
        role: Role | str = Role.PRIMARY,
        settings: ProviderStatusSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        try:
            self._role = Role(role)
        except ValueError:
            valid = ", ".join(r.value for r in Role)
            raise ValueError(f"role must be one of {valid}, got {role!r}") from None
        self._name = name
        self._settings = settings if settings is not None else ProviderStatusSettings()
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._status = HealthStatus.HEALTHY
        self._check_failures = 0
        self._check_successes = 0
        self._failed_probes = 0
        self._next_probe_at: float | None = None
        self._events: deque[StatusEvent] = deque(maxlen=_MAX_PENDING_EVENTS)

    @property
    def name(self) -> str:
        """Provider name."""
        return self._name

    @property
    def role(self) -> Role:
        """Role in selection order."""
        return self._role

    @property
    def settings(self) -> ProviderStatusSettings:
        """Thresholds in use."""
        return self._settings

    @property
    def status(self) -> HealthStatus:
        """Current health status."""
        return self._status

    @property
    def failed_probes(self) -> int:
        """Failed recovery probes since the provider was last healthy."""
        return self._failed_probes

    @property
    def consecutive_check_failures(self) -> int:
        """Failed health checks in a row while healthy."""
        return self._check_failures

    @property
    def consecutive_check_successes(self) -> int:
        """Successful checks in a row while testing."""
        return self._check_successes

    @property
    def next_probe_at(self) -> float | None:
        """Epoch seconds of the next recovery probe while failed, otherwise None."""
        return self._next_probe_at if self._status is HealthStatus.FAILED else None

    def probe_due(self) -> bool:
        """Return whether the provider is failed and its next recovery probe is due."""
        return (
            self._status is HealthStatus.FAILED
            and self._next_probe_at is not None
            and self._clock() >= self._next_probe_at
        )

    def record_check(self, success: bool) -> None:
        """Record a health check or recovery probe result.

        A healthy provider counts failed checks toward `unhealthy_threshold`. For a failed
        provider the result is a recovery probe. A testing provider counts successes toward
        `recovery_threshold`. A permanently failed provider ignores checks until `reset()`.
        """
        now = self._clock()
        status = self._status
        if status is HealthStatus.HEALTHY:
            if success:
                self._check_failures = 0
                return
            self._check_failures += 1
            if self._check_failures >= self._settings.unhealthy_threshold:
                self._fail(StatusCause.HEALTH_CHECKS_FAILED, now)
        elif status is HealthStatus.FAILED:
            if success:
                self._transition(HealthStatus.TESTING, StatusCause.PROBE_SUCCEEDED, now)
            else:
                self._count_failed_probe(now)
        elif status is HealthStatus.TESTING:
            if not success:
                self._count_failed_probe(now)
                return
            self._check_successes += 1
            if self._check_successes >= self._settings.recovery_threshold:
                self._transition(HealthStatus.HEALTHY, StatusCause.RECOVERED, now)
        else:
            logger.debug("provider %s is permanently failed and ignores a check", self._name)

    def record_breaker_opened(self) -> None:
        """Record that the provider's circuit breaker opened.

        A healthy provider becomes failed. While testing this counts as a failed recovery
        probe. A failed or permanently failed provider is unaffected.
        """
        now = self._clock()
        if self._status is HealthStatus.HEALTHY:
            self._fail(StatusCause.BREAKER_OPENED, now)
        elif self._status is HealthStatus.TESTING:
            self._count_failed_probe(now, cause=StatusCause.BREAKER_OPENED)

    def reset(self) -> None:
        """Move a failed or permanently failed provider to testing, for operators.

        The count of failed recovery probes starts again from zero. Healthy and testing
        providers are left as they are.
        """
        if self._status in (HealthStatus.HEALTHY, HealthStatus.TESTING):
            return
        self._failed_probes = 0
        self._transition(HealthStatus.TESTING, StatusCause.OPERATOR_RESET, self._clock())

    def drain_events(self) -> list[StatusEvent]:
        """Return the transitions since the last call, oldest first, and forget them."""
        events = list(self._events)
        self._events.clear()
        return events

    def to_state(self) -> dict[str, Any]:
        """Return the status and counters as a dict of JSON-safe values."""
        return {
            "version": 1,
            "name": self._name,
            "role": self._role.value,
            "status": self._status.value,
            "check_failures": self._check_failures,
            "check_successes": self._check_successes,
            "failed_probes": self._failed_probes,
            "next_probe_at": self._next_probe_at,
        }

    @classmethod
    def from_state(
        cls,
        state: dict[str, Any],
        settings: ProviderStatusSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> ProviderStatus:
        """Build a ProviderStatus from a dict made by `to_state`."""
        version = state.get("version")
        if version != 1:
            raise ValueError(f"ProviderStatus state version must be 1, got {version!r}")
        try:
            provider = cls(str(state["name"]), state["role"], settings, clock=clock, rng=rng)
            provider._status = HealthStatus(state["status"])
            provider._check_failures = int(state["check_failures"])
            provider._check_successes = int(state["check_successes"])
            provider._failed_probes = int(state["failed_probes"])
            next_probe_at = state["next_probe_at"]
            provider._next_probe_at = None if next_probe_at is None else float(next_probe_at)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"ProviderStatus state is invalid: {exc!r}") from exc
        return provider

    def _fail(self, cause: StatusCause, now: float) -> None:
        """Move a healthy provider to failed and schedule its first recovery probe."""
        self._transition(HealthStatus.FAILED, cause, now)
        self._next_probe_at = now + self._settings.probe_backoff.delay(0, self._rng)

    def _count_failed_probe(
        self, now: float, cause: StatusCause = StatusCause.PROBE_FAILED
    ) -> None:
        self._failed_probes += 1
        if self._failed_probes >= self._settings.max_attempts:
            self._transition(HealthStatus.PERMANENTLY_FAILED, StatusCause.ATTEMPTS_EXHAUSTED, now)
            return
        if self._status is not HealthStatus.FAILED:
            self._transition(HealthStatus.FAILED, cause, now)
        delay = self._settings.probe_backoff.delay(self._failed_probes, self._rng)
        self._next_probe_at = now + delay

    def _transition(self, to_status: HealthStatus, cause: StatusCause, now: float) -> None:
        from_status = self._status
        check_status_transition(from_status, to_status)
        self._status = to_status
        self._check_failures = 0
        self._check_successes = 0
        if to_status is not HealthStatus.FAILED:
            self._next_probe_at = None
        if to_status is HealthStatus.HEALTHY:
            self._failed_probes = 0

        self._events.append(StatusEvent(self._name, from_status, to_status, now, cause))
        level = logging.INFO if to_status is HealthStatus.HEALTHY else logging.WARNING
        logger.log(level, "provider %s: %s -> %s (%s)", self._name, from_status, to_status, cause)
