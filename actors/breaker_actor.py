"""``CircuitBreakerActor``: one provider's circuit breaker, kept across restarts.

The actor is a thin shell around `actors.policy.CircuitBreaker`. The router decides
admission from its own replica of the breaker state, so this actor hands out no permits
per call. Instead it maps each `OutcomeReport` from the provider actor onto the policy's
permit API as follows:

- ``success`` or ``failure``: the actor takes a permit and releases it at once with
  ``on_success`` or ``on_failure`` and the report's duration. In half-open every report
  is therefore one probe. The first failed or slow probe reopens the breaker, and
  ``half_open_permitted_calls`` successful probes close it.
- While the breaker is open, the policy issues no permit. A report that arrives then
  belongs to a call that started before the breaker opened, or that the router admitted
  from an outdated replica, so it is counted as ``while_open`` and changes nothing. The
  policy treats outcomes of permits issued before a transition the same way.
- ``ignored`` (a failure caused by the request itself, or a cancelled attempt) counts
  neither way.

After every change the actor saves the breaker's state through `actors.persistence`
(urgent on a transition). On a transition it sends a `BreakerUpdate` to the router and to
the provider's health checker. A timer fires at ``retry_at`` of an open breaker, and at
the end of ``max_wait_in_half_open`` of a half-open one, so those time-driven transitions
are announced without waiting for traffic.

On start the actor resumes from the newest valid recovery point. An open breaker keeps its
original ``retry_at``, and failure counts survive a crash. It announces its state at start
only when a transition fell due while it was down, because the router sends every breaker
a `StateRequest` when the router starts. At a node start the router is not running yet,
so the integration supervisor drops that announcement with a warning.

Calls it handles: `StateRequest` (the current `BreakerUpdate`), `Describe` (the snapshot
dict plus report counts) and `Restore` (reload the newest point at or before ``at`` and
reply its time, or None when there is none).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from actors.messages import BreakerUpdate, Describe, OutcomeReport, Restore, StateRequest
from actors.names import actor_key, health_path, router_path
from actors.persistence import Checkpointer, CheckpointFlush
from actors.policy import BreakerEvent, BreakerSettings, BreakerState, CircuitBreaker
from supervisors import NOREPLY, Caller, GenActor
from tpir.config import CircuitBreakerConfig, NodeConfig, Provider, WindowType

__all__ = ["CircuitBreakerActor", "breaker_settings", "CHECKPOINT_KIND"]

logger = logging.getLogger(__name__)

CHECKPOINT_KIND = "breaker"
"""The ``kind`` of the breaker's recovery points, whose actor key is
``<integration>/<provider>/breaker``."""

_DEADLINE = "breaker-deadline"
_OUTCOMES = ("success", "failure", "ignored")


def breaker_settings(config: CircuitBreakerConfig) -> BreakerSettings:
    """Build the policy's `BreakerSettings` from a provider's ``circuit_breaker`` section."""
    time_window = config.window_type is WindowType.TIME
    return BreakerSettings(
        failure_threshold=config.failure_threshold,
        failure_rate_threshold=config.failure_rate_threshold,
        window_size=config.window_size,
        window_seconds=config.window_seconds if time_window else None,
        minimum_calls=config.minimum_calls,
        slow_call_duration=config.slow_call_duration,
        slow_call_rate_threshold=config.slow_call_rate_threshold,
        open_duration=config.open_duration,
        half_open_permitted_calls=config.half_open_permitted_calls,
        max_wait_in_half_open=config.max_wait_in_half_open,
    )


class CircuitBreakerActor(CheckpointFlush, GenActor):
    """Circuit breaker of one provider. The module docstring describes its protocol.

    ``init(integration, provider, node)`` takes the integration's name, the `Provider`
    (its ``circuit_breaker`` section sets the thresholds) and the `NodeConfig` (the
    recovery-point store and checkpoint interval).
    """

    def init(self, integration: str, provider: Provider, node: NodeConfig) -> None:
        self.integration = integration
        self.provider_name = provider.name
        self.root = self.path.split("/")[0]
        self.settings = breaker_settings(provider.circuit_breaker)
        key = actor_key(integration, CHECKPOINT_KIND, provider.name)
        self.checkpointer = Checkpointer(node, integration, key, CHECKPOINT_KIND)
        self.reports = {"success": 0, "failure": 0, "ignored": 0, "while_open": 0, "invalid": 0}
        self.last_transition: dict[str, Any] | None = None
        self._flush_timer: int | None = None
        self._deadline_timer: int | None = None
        self._deadline: float | None = None

        saved = self.checkpointer.load()
        resumed = self._breaker_from(saved) if saved is not None else None
        if resumed is None:
            self.breaker = CircuitBreaker(self.settings, name=provider.name)
        else:
            self.breaker = resumed
            logger.info(
                "breaker %s resumed %s with %d consecutive failures",
                self.path,
                resumed.state.value,
                resumed.snapshot().consecutive_failures,
            )
        self._after_change()

    # -- messages ------------------------------------------------------------

    def handle_cast(self, message: Any, sender: Any) -> None:
        if isinstance(message, OutcomeReport):
            self._apply(message)
            self._after_change()
        else:
            super().handle_cast(message, sender)

    def handle_call(self, body: Any, caller: Caller) -> Any:
        if isinstance(body, StateRequest):
            return self._update()
        if isinstance(body, Describe):
            return self._describe()
        if isinstance(body, Restore):
            return self._restore(body.at, caller)
        return super().handle_call(body, caller)

    def handle_timeout(self, payload: Any) -> None:
        if self.flush_due(payload):
            return
        if payload == _DEADLINE:
            self._deadline_timer = None
            self._deadline = None
            self._after_change()

    def terminate(self, reason: str) -> None:
        self.checkpointer.close()

    # -- policy --------------------------------------------------------------

    def _apply(self, report: OutcomeReport) -> None:
        if report.provider != self.provider_name:
            logger.warning(
                "breaker %s dropped a report for provider %r (expected %r)",
                self.path,
                report.provider,
                self.provider_name,
            )
            self.reports["invalid"] += 1
            return
        duration = report.duration
        valid_duration = (
            isinstance(duration, int | float)
            and not isinstance(duration, bool)
            and math.isfinite(duration)
            and duration >= 0
        )
        if report.outcome not in _OUTCOMES or not valid_duration:
            logger.warning(
                "breaker %s dropped a report with outcome %r and duration %r "
                "(expected one of %s and finite seconds >= 0)",
                self.path,
                report.outcome,
                duration,
                ", ".join(_OUTCOMES),
            )
            self.reports["invalid"] += 1
            return
        if report.outcome == "ignored":
            self.reports["ignored"] += 1
            return

        permit = self.breaker.try_acquire()
        if permit is None:
            self.reports["while_open"] += 1
            return
        self.reports[report.outcome] += 1
        if report.outcome == "success":
            self.breaker.on_success(permit, float(duration))
        else:
            self.breaker.on_failure(permit, float(duration))

    def _after_change(self) -> None:
        """Save the state, announce transitions and set the timer for the next deadline."""
        events = self.breaker.drain_events()
        self.checkpointer.save(self.breaker.to_state(), urgent=bool(events))
        self.arm_flush()
        if events:
            self._announce(events)
        self._arm_deadline()

    def _announce(self, events: list[BreakerEvent]) -> None:
        if events:
            last = events[-1]
            self.last_transition = {
                "from": last.from_state.value,
                "to": last.to_state.value,
                "cause": last.cause.value,
                "at": last.at,
            }
        update = self._update()
        self.send_named(router_path(self.integration, root=self.root), update)
        self.send_named(health_path(self.integration, self.provider_name, root=self.root), update)

    def _arm_deadline(self) -> None:
        deadline = self._next_deadline()
        if deadline == self._deadline:
            return
        self.cancel_timer(self._deadline_timer)
        self._deadline_timer = None
        self._deadline = deadline
        if deadline is not None:
            self._deadline_timer = self.send_after(max(0.0, deadline - time.time()), _DEADLINE)

    def _next_deadline(self) -> float | None:
        """Return the epoch time of the next time-driven transition, or None."""
        state = self.breaker.state
        if state is BreakerState.OPEN:
            return self.breaker.retry_at
        max_wait = self.settings.max_wait_in_half_open
        if state is BreakerState.HALF_OPEN and max_wait > 0:
            since = self.breaker.to_state()["half_open_since"]
            return None if since is None else float(since) + max_wait
        return None

    # -- calls ---------------------------------------------------------------

    def _update(self) -> BreakerUpdate:
        snapshot = self.breaker.snapshot()
        return BreakerUpdate(
            provider=self.provider_name,
            state=snapshot.state.value,
            retry_at=snapshot.retry_at,
            snapshot=snapshot.to_dict(),
            at=time.time(),
        )

    def _describe(self) -> dict[str, Any]:
        described = self.breaker.snapshot().to_dict()
        described.update(
            integration=self.integration,
            provider=self.provider_name,
            reports=dict(self.reports),
            last_transition=self.last_transition,
            checkpoint=self.checkpointer.describe(),
        )
        return described

    def _restore(self, at: float, caller: Caller) -> Any:
        found = self.checkpointer.load_at(at)
        if found is None:
            return None
        state, created_at = found
        restored = self._breaker_from(state)
        if restored is None:
            self.reply_error(
                caller,
                "invalid_state",
                f"the recovery point of breaker {self.path} created at {created_at} is not a "
                "valid breaker state, so the breaker keeps its current state",
            )
            return NOREPLY
        before = self.breaker.state
        self.breaker = restored
        logger.warning(
            "breaker %s restored the point created at %.3f: %s -> %s",
            self.path,
            created_at,
            before.value,
            restored.state.value,
        )
        events = self.breaker.drain_events()
        self.checkpointer.save(self.breaker.to_state(), urgent=True)
        self.arm_flush()
        if events or restored.state is not before:
            self._announce(events)
        self._arm_deadline()
        return created_at

    def _breaker_from(self, state: dict[str, Any]) -> CircuitBreaker | None:
        try:
            return CircuitBreaker.from_state(state, self.settings, name=self.provider_name)
        except ValueError as exc:
            logger.error("breaker %s cannot use a saved state: %s", self.path, exc)
            return None
