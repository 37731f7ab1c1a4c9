"""The router's view of its providers: breaker state, health, cooldown and ejection.

The circuit breaker and health checker actors own the breaker state and the health
status. The router keeps a replica of both, updated from their `BreakerUpdate` and
`StatusUpdate` messages, and treats a provider it has not heard about yet as closed and
healthy. Cooldowns (`Retry-After`) and outlier ejection are the router's own state,
saved in its recovery points together with per-provider totals.

Admission follows the breaker: closed admits every call, open admits nothing until its
``retry_at``, and half-open (or open past ``retry_at``, which the breaker turns half-open
on its next call) admits up to ``half_open_permitted_calls`` concurrent probes.

The clock returns epoch seconds (`time.time` in the actor), because breaker retry times,
cooldown ends and ejection ends are epoch seconds that keep their meaning across
restarts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from actors.messages import BreakerUpdate, StatusUpdate
from actors.policy.breaker import BreakerState
from actors.policy.cooldown import Cooldowns
from actors.policy.ejection import EjectionEvent, OutlierEjector
from actors.policy.provider_status import HealthStatus
from actors.policy.selection import Candidate
from actors.router.rules import ProviderRules

__all__ = ["STATE_VERSION", "FailureEffects", "Replica"]

logger = logging.getLogger(__name__)

STATE_VERSION: Final = 1

_BREAKER_EVENTS: Final = {
    BreakerState.OPEN: "circuit_opened",
    BreakerState.HALF_OPEN: "circuit_half_open",
    BreakerState.CLOSED: "circuit_closed",
}
_FAILED_STATUSES: Final = frozenset({HealthStatus.FAILED, HealthStatus.PERMANENTLY_FAILED})
_TOTAL_KEYS: Final = ("attempts", "successes", "failures", "served")


@dataclass(frozen=True)
class FailureEffects:
    """Effects of one recorded failure: the new cooldown end and a new ejection, if any."""

    cooling_until: float | None = None
    ejection: EjectionEvent | None = None

    @property
    def changed(self) -> bool:
        """Whether the failure started or extended a cooldown or ejected the provider."""
        return self.cooling_until is not None or self.ejection is not None


@dataclass
class _View:
    rules: ProviderRules
    ejector: OutlierEjector
    breaker: BreakerState = BreakerState.CLOSED
    retry_at: float | None = None
    breaker_at: float = 0.0
    breaker_known: bool = False
    health: HealthStatus = HealthStatus.HEALTHY
    health_at: float = 0.0
    health_known: bool = False
    probes_in_flight: int = 0
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_TOTAL_KEYS, 0))


class Replica:
    """Availability of each provider of one integration, shared by all of its calls.

    Options:
        rules: the `ProviderRules` of every provider, keyed by name, in configuration
            order.
        clock: callable returning epoch seconds. Required, so tests pass a fake clock.
    """

    def __init__(self, rules: Mapping[str, ProviderRules], *, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._cooldowns = Cooldowns()
        self._views = {
            name: _View(item, OutlierEjector(item.ejection, clock=clock))
            for name, item in rules.items()
        }
        self._changed = False
        self._urgent = False

    def pop_changes(self) -> tuple[bool, bool]:
        """Return whether the saved state changed since the last call, and whether urgently.

        A new or longer cooldown and a new ejection are urgent, so the actor saves them
        at once. Counter and streak changes are not.
        """
        changes = (self._changed, self._urgent)
        self._changed = False
        self._urgent = False
        return changes

    @property
    def names(self) -> tuple[str, ...]:
        """Provider names in configuration order."""
        return tuple(self._views)

    def rules(self, name: str) -> ProviderRules:
        """Return the rules of provider ``name``; raises KeyError for an unknown name."""
        return self._views[name].rules

    # -- admission ---------------------------------------------------------------------

    def breaker_admits(self, name: str) -> bool:
        """Return whether the replica of ``name``'s breaker admits one more call now."""
        view = self._views[name]
        if view.breaker is BreakerState.CLOSED:
            return True
        if self._probing(view):
            return view.probes_in_flight < view.rules.half_open_permitted_calls
        return False

    def _probing(self, view: _View) -> bool:
        """Return whether the breaker is half-open, or open past ``retry_at`` and so due for it."""
        if view.breaker is BreakerState.HALF_OPEN:
            return True
        return (
            view.breaker is BreakerState.OPEN
            and view.retry_at is not None
            and self._clock() >= view.retry_at
        )

    def candidate(self, name: str) -> Candidate:
        """Return the selection input of provider ``name`` at the current time."""
        view = self._views[name]
        now = self._clock()
        return Candidate(
            name=name,
            role=view.rules.role,
            weight=view.rules.weight,
            status=view.health,
            breaker_admits=self.breaker_admits(name),
            cooling=self._cooldowns.is_cooling(name, now),
            ejected=view.ejector.is_ejected(name),
            retry_budget=view.rules.retry_budget,
        )

    def candidates(self, names: Iterable[str]) -> list[Candidate]:
        """Return the selection inputs of ``names``, in configuration order."""
        selected = set(names)
        return [self.candidate(name) for name in self._views if name in selected]

    def skip_reason(self, name: str) -> str | None:
        """Return why ``name`` cannot take a call now, or None when it can."""
        view = self._views[name]
        now = self._clock()
        if view.health is not HealthStatus.HEALTHY:
            return f"health status is {view.health.value}"
        if not self.breaker_admits(name):
            if self._probing(view):
                limit = view.rules.half_open_permitted_calls
                return f"circuit breaker is half-open with {limit} of {limit} probes in flight"
            if view.retry_at is not None:
                return f"circuit breaker is open until {view.retry_at:.3f}"
            return "circuit breaker is open"
        if self._cooldowns.is_cooling(name, now):
            return f"cooling down until {self._cooldowns.until(name):.3f} (Retry-After)"
        ejected_until = view.ejector.ejected_until(name)
        if ejected_until is not None:
            return f"ejected until {ejected_until:.3f} after consecutive failures"
        return None

    def available_at(self, name: str) -> float | None:
        """Return the earliest epoch time ``name`` can take a call if nothing else changes.

        Returns the current time when it can take one now, and None when no time is
        known: the health status is not healthy, the breaker is open without a retry
        time, or every half-open probe slot is taken.
        """
        view = self._views[name]
        now = self._clock()
        if view.health is not HealthStatus.HEALTHY:
            return None
        times = [now]
        if view.breaker is BreakerState.OPEN and not self._probing(view):
            if view.retry_at is None:
                return None
            times.append(view.retry_at)
        elif not self.breaker_admits(name):
            return None
        cooling_until = self._cooldowns.until(name)
        if cooling_until is not None:
            times.append(cooling_until)
        ejected_until = view.ejector.ejected_until(name)
        if ejected_until is not None:
            times.append(ejected_until)
        return max(times)

    def acquire(self, name: str) -> bool:
        """Count one call sent to ``name``; return whether it took a half-open probe slot."""
        view = self._views[name]
        view.totals["attempts"] += 1
        self._changed = True
        if view.breaker is BreakerState.CLOSED:
            return False
        view.probes_in_flight += 1
        return True

    def release(self, name: str, probe: bool) -> None:
        """Free the half-open probe slot that `acquire` returned True for."""
        view = self._views[name]
        if probe and view.probes_in_flight > 0:
            view.probes_in_flight -= 1

    # -- outcomes ----------------------------------------------------------------------

    def record_success(self, name: str) -> None:
        """Count a successful attempt, which ends the provider's failure streak."""
        view = self._views[name]
        view.totals["successes"] += 1
        view.ejector.record_success(name)
        self._changed = True

    def record_served(self, name: str) -> None:
        """Count a call that ``name`` served successfully."""
        self._views[name].totals["served"] += 1
        self._changed = True

    def record_failure(
        self, name: str, *, retry_after: float | None, counts: bool = True
    ) -> FailureEffects:
        """Count a failed attempt of ``name``.

        ``retry_after`` (seconds) starts or extends the provider's cooldown, which never
        shortens. ``counts`` False keeps the failure out of the ejection streak, for
        failures that blame the request rather than the provider.
        """
        view = self._views[name]
        view.totals["failures"] += 1
        cooling_until = None
        if retry_after is not None:
            before = self._cooldowns.until(name)
            until = self._cooldowns.extend_for(name, retry_after, self._clock())
            if before is None or until > before:
                cooling_until = until
        ejection = view.ejector.record_failure(name) if counts else None
        effects = FailureEffects(cooling_until, ejection)
        self._changed = True
        self._urgent = self._urgent or effects.changed
        return effects

    # -- updates from the breaker and health checker actors -------------------------------

    def apply_breaker(self, update: BreakerUpdate) -> str | None:
        """Apply a breaker's update; return the event kind when its state changed.

        Updates for unknown providers, with an unknown state, or older (by ``at``) than
        the last one applied are ignored.
        """
        view = self._views.get(update.provider)
        if view is None:
            logger.warning("ignoring breaker update for unknown provider %r", update.provider)
            return None
        try:
            state = BreakerState(update.state)
        except ValueError:
            logger.warning(
                "ignoring breaker update of %s with unknown state %r", update.provider, update.state
            )
            return None
        if update.at and update.at < view.breaker_at:
            return None

        previous = view.breaker
        view.breaker = state
        view.retry_at = update.retry_at
        view.breaker_at = update.at or view.breaker_at
        view.breaker_known = True
        if state is previous:
            return None
        view.probes_in_flight = 0
        return _BREAKER_EVENTS[state]

    def apply_status(self, update: StatusUpdate) -> str | None:
        """Apply a health checker's update; return the event kind for a failure or recovery.

        ``provider_failed`` is returned on entering failed or permanently_failed, and
        ``provider_recovered`` on returning to healthy. Updates for unknown providers,
        with an unknown status, or older (by ``at``) than the last one applied are ignored.
        """
        view = self._views.get(update.provider)
        if view is None:
            logger.warning("ignoring status update for unknown provider %r", update.provider)
            return None
        try:
            status = HealthStatus(update.status)
        except ValueError:
            logger.warning(
                "ignoring status update of %s with unknown status %r",
                update.provider,
                update.status,
            )
            return None
        if update.at and update.at < view.health_at:
            return None

        previous = view.health
        view.health = status
        view.health_at = update.at or view.health_at
        view.health_known = True
        if status is previous:
            return None
        if status in _FAILED_STATUSES:
            return "provider_failed"
        if status is HealthStatus.HEALTHY:
            return "provider_recovered"
        return None

    # -- recovery points and status ---------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Return cooldowns, ejection state and totals as a dict of JSON-safe values."""
        return {
            "version": STATE_VERSION,
            "cooldowns": self._cooldowns.to_state(),
            "ejection": {name: view.ejector.to_state() for name, view in self._views.items()},
            "totals": {name: dict(view.totals) for name, view in self._views.items()},
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Replace cooldowns, ejection state and totals with those of a `to_state` dict.

        Entries of providers that are no longer configured are dropped. Raises
        ValueError, leaving this replica unchanged, when the dict is malformed.
        """
        version = state.get("version")
        if version != STATE_VERSION:
            raise ValueError(f"router state version must be {STATE_VERSION}, got {version!r}")
        saved = Cooldowns.from_state(dict(state.get("cooldowns") or {"version": 1, "until": {}}))
        cooldowns = Cooldowns()
        for name in self._views:
            until = saved.until(name)
            if until is not None:
                cooldowns.extend(name, until)
        ejection = state.get("ejection") or {}
        totals = state.get("totals") or {}
        if not isinstance(ejection, Mapping) or not isinstance(totals, Mapping):
            raise ValueError("router state 'ejection' and 'totals' must be dicts")

        ejectors: dict[str, OutlierEjector] = {}
        counts: dict[str, dict[str, int]] = {}
        for name, view in self._views.items():
            if name in ejection:
                ejectors[name] = OutlierEjector.from_state(
                    dict(ejection[name]), view.rules.ejection, clock=self._clock
                )
            entry = totals.get(name, {})
            if not isinstance(entry, Mapping):
                raise ValueError(f"router state totals of {name!r} must be a dict, got {entry!r}")
            counts[name] = {key: int(entry.get(key, 0)) for key in _TOTAL_KEYS}

        self._cooldowns = cooldowns
        for name, view in self._views.items():
            if name in ejectors:
                view.ejector = ejectors[name]
            view.totals = counts[name]

    def describe(self, name: str) -> dict[str, Any]:
        """Return the status of provider ``name`` for `Describe`."""
        view = self._views[name]
        now = self._clock()
        cooling_until = self._cooldowns.until(name)
        return {
            "role": view.rules.role,
            "weight": view.rules.weight,
            "health": view.health.value,
            "health_known": view.health_known,
            "breaker": view.breaker.value,
            "breaker_known": view.breaker_known,
            "retry_at": view.retry_at,
            "probes_in_flight": view.probes_in_flight,
            "cooling_until": cooling_until
            if cooling_until is not None and cooling_until > now
            else None,
            "ejected_until": view.ejector.ejected_until(name),
            "failure_streak": view.ejector.failure_streak(name),
            "totals": dict(view.totals),
        }
