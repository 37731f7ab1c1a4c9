"""The per-call state machine of the router: which provider to try next, when, and when to stop.

A `CallPlan` is created for each `IntegrationCall` and driven by its actor. Each method
returns the next action, or None when the event is stale (a late reply, a timer of a
finished call):

- `SendAttempt`: send the attempt to the provider actor, and set a timer at the per-try
  timeout plus a grace period that calls `on_no_reply` if no reply arrives;
- `WaitUntil`: set a timer that calls `on_wait_elapsed` at the given epoch time;
- `Finish`: answer the caller with a value or an error.

Any action may carry ``cancel``, a provider whose attempt in flight the actor must
cancel with `CancelAttempt` before acting.

Rules, in the order they apply after a failed attempt on provider P:

1. An ``invalid_request`` failure ends the call with ``invalid_request``.
2. A 4xx status that P's retry policy does not retry (400, 401, 404 and so on) ends the
   call at once with ``provider_error``: the request is at fault, so another provider
   would reject it too. It does not count towards P's ejection.
3. Every other failure counts towards P's outlier ejection, and a ``Retry-After`` extends
   P's cooldown (never shortens it).
4. When the request is not idempotent and the failure may have reached the provider,
   the call ends with ``not_retried``: it is sent neither again nor elsewhere.
5. A failure that P's policy does not retry (for example ``invalid_response`` or a 501)
   takes P out of this call, and the call fails over to the next provider.
6. A retryable failure makes P ready again after the backoff delay of
   `actors.policy.retry.decide` (at least the ``Retry-After``), or takes P out of this
   call when its retry budget is spent or the delay would pass the deadline.

Selection takes the first provider in `order_candidates` order (primaries, then
secondaries, then fallbacks, weighted within a role when weights are set) that the
replica admits and whose backoff has passed. So a failure moves the call to the next
provider at once, and P is tried again only after its backoff. Each provider is tried
at most its retry budget + 1 times in one call. When no provider is ready but one will
be before the deadline (backoff, cooldown, ejection end, breaker retry time), the plan
waits for it. Otherwise the call ends with ``no_provider_available`` when nothing was
tried, or ``all_providers_failed`` listing every attempt.

The deadline is absolute: each attempt's timeout is ``min(provider timeout, time left)``,
and when the deadline passes the call ends with ``deadline_exceeded`` and the attempt in
flight is cancelled. Nothing is retried after the deadline.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from actors.policy.retry import decide, is_safe_to_resend
from actors.policy.selection import order_candidates
from actors.router.attempts import (
    NO_REPLY,
    PROVIDER_CRASHED,
    PROVIDER_UNAVAILABLE,
    AttemptFailure,
    AttemptRecord,
)
from actors.router.replica import Replica

__all__ = [
    "MIN_ATTEMPT_TIMEOUT",
    "Action",
    "CallPlan",
    "Finish",
    "SendAttempt",
    "WaitUntil",
]

logger = logging.getLogger(__name__)

MIN_ATTEMPT_TIMEOUT: Final = 0.01
"""Seconds: with less time left before the deadline, no new attempt starts."""


@dataclass(frozen=True)
class SendAttempt:
    """Send attempt number ``attempt_no`` to ``provider`` with a per-try ``timeout`` (s)."""

    provider: str
    attempt_no: int
    timeout: float
    cancel: str | None = None


@dataclass(frozen=True)
class WaitUntil:
    """Wait until epoch time ``at``, then call `CallPlan.on_wait_elapsed`."""

    at: float
    cancel: str | None = None


@dataclass(frozen=True)
class Finish:
    """Reply to the caller: with ``value`` when ``code`` is None, else with an error.

    ``provider`` is the provider that served a successful call, and ``first_provider``
    the first one tried (None when nothing was tried).
    """

    value: Any = None
    code: str | None = None
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    provider: str | None = None
    first_provider: str | None = None
    cancel: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the call succeeded."""
        return self.code is None

    @property
    def failover(self) -> bool:
        """Whether a provider other than the first one tried served the call."""
        return self.ok and self.provider is not None and self.provider != self.first_provider


Action = SendAttempt | WaitUntil | Finish


@dataclass(frozen=True)
class _InFlight:
    provider: str
    attempt_no: int
    probe: bool
    sent_at: float


class CallPlan:
    """The state of one call: tries per provider, backoffs, attempts and the deadline.

    Options:
        call_id: the call's id, used in log lines.
        replica: the router's `Replica`, shared with the other calls.
        eligible: providers whose adapter accepts the request, in configuration order.
        rejected: the other providers, mapped to the reason their adapter gave.
        idempotent: whether the request may be sent again after it may have reached a
            provider (see `actors.router.rules.is_idempotent`).
        deadline: the call's overall budget in seconds, from now, greater than 0.
        clock: callable returning epoch seconds, the replica's clock.
        rng: random generator for weighted selection and backoff jitter.
        integration: integration name for messages. Default "".
    """

    def __init__(
        self,
        call_id: str,
        replica: Replica,
        *,
        eligible: Sequence[str],
        rejected: Mapping[str, str] | None = None,
        idempotent: bool,
        deadline: float,
        clock: Callable[[], float],
        rng: random.Random,
        integration: str = "",
    ) -> None:
        if not deadline > 0:
            raise ValueError(f"deadline must be seconds greater than 0, got {deadline!r}")
        self.call_id = call_id
        self.idempotent = idempotent
        self.deadline = float(deadline)
        self._replica = replica
        self._eligible = tuple(eligible)
        self._rejected = dict(rejected or {})
        self._clock = clock
        self._rng = rng
        self._integration = integration
        self.started_at = clock()
        self.deadline_at = self.started_at + self.deadline

        self._tries: dict[str, int] = {}
        self._ready_at: dict[str, float] = {}
        self._out: dict[str, str] = {}
        self._attempts: list[AttemptRecord] = []
        self._in_flight: _InFlight | None = None
        self._waiting = False
        self._first_provider: str | None = None
        self._attempt_seq = 0
        self.finished: Finish | None = None

    # -- inspection ------------------------------------------------------------------------

    @property
    def attempts(self) -> list[dict[str, Any]]:
        """The finished attempts so far, as dicts, oldest first."""
        return [record.to_dict() for record in self._attempts]

    @property
    def in_flight(self) -> tuple[str, int] | None:
        """The provider and number of the attempt in flight, or None."""
        if self._in_flight is None:
            return None
        return self._in_flight.provider, self._in_flight.attempt_no

    def tries(self, provider: str) -> int:
        """Return how often this call has tried ``provider``."""
        return self._tries.get(provider, 0)

    # -- events ----------------------------------------------------------------------------

    def start(self) -> Action:
        """Pick the first provider, or finish when none can take the call."""
        return self._next()

    def on_result(
        self,
        attempt_no: int,
        *,
        ok: bool,
        duration: float,
        value: Any = None,
        failure: Mapping[str, Any] | None = None,
    ) -> Action | None:
        """Handle the provider's `AttemptResult` for attempt ``attempt_no``."""
        flight = self._current(attempt_no)
        if flight is None:
            return None
        if ok:
            return self._succeed(flight, value, duration)
        return self._fail(flight, AttemptFailure.from_dict(failure), duration)

    def on_error_reply(self, attempt_no: int, code: str, message: str) -> Action | None:
        """Handle an error reply in place of an `AttemptResult` for attempt ``attempt_no``.

        ``not_running`` means the provider actor never got the attempt, so nothing was
        sent. ``lost`` (the supervisor saw the provider actor killed with the attempt
        forwarded to it) counts as ``no_reply``. Any other code (``actor_crashed`` and so
        on) counts as ``provider_crashed``. Both may have come after sending.
        """
        flight = self._current(attempt_no)
        if flight is None:
            return None
        if code == "not_running":
            failure = AttemptFailure(PROVIDER_UNAVAILABLE, message, may_have_reached_provider=False)
        elif code == "lost":
            failure = AttemptFailure(NO_REPLY, f"{code}: {message}")
        else:
            failure = AttemptFailure(PROVIDER_CRASHED, f"{code}: {message}")
        return self._fail(flight, failure, self._clock() - flight.sent_at)

    def on_no_reply(self, attempt_no: int) -> Action | None:
        """Handle the router's timer for attempt ``attempt_no``: no reply arrived in time.

        The attempt counts as a timeout that may have reached the provider, and the
        returned action cancels it at the provider actor.
        """
        flight = self._current(attempt_no)
        if flight is None:
            return None
        failure = AttemptFailure(
            NO_REPLY, "the provider actor did not reply within the per-try timeout and grace period"
        )
        action = self._fail(flight, failure, self._clock() - flight.sent_at)
        return replace(action, cancel=flight.provider)

    def on_wait_elapsed(self) -> Action | None:
        """Handle the timer of a `WaitUntil`: pick a provider again."""
        if self.finished is not None or not self._waiting:
            return None
        self._waiting = False
        return self._next()

    def on_deadline(self) -> Action | None:
        """Handle the deadline timer: finish with ``deadline_exceeded``."""
        if self.finished is not None:
            return None
        return self._deadline_exceeded()

    def cancel(self, reason: str = "the caller cancelled the call") -> Action | None:
        """End the call because its caller is gone, cancelling the attempt in flight."""
        if self.finished is not None:
            return None
        return self._finish(Finish(code="cancelled", message=reason, details=self._details()))

    # -- steps -----------------------------------------------------------------------------

    def _current(self, attempt_no: int) -> _InFlight | None:
        flight = self._in_flight
        if self.finished is not None or flight is None or flight.attempt_no != attempt_no:
            return None
        self._in_flight = None
        self._replica.release(flight.provider, flight.probe)
        return flight

    def _next(self) -> Action:
        now = self._clock()
        if self.deadline_at - now < MIN_ATTEMPT_TIMEOUT:
            return self._deadline_exceeded()

        usable = [name for name in self._eligible if name not in self._out]
        ordered = order_candidates(
            self._replica.candidates(usable), tries=self._tries, rng=self._rng
        )
        for candidate in ordered:
            if self._ready_at.get(candidate.name, now) <= now:
                return self._send(candidate.name, now)

        wake = self._earliest_ready(usable)
        if wake is not None and self.deadline_at - wake >= MIN_ATTEMPT_TIMEOUT:
            self._waiting = True
            return WaitUntil(wake)
        return self._give_up()

    def _earliest_ready(self, usable: list[str]) -> float | None:
        earliest: float | None = None
        for name in usable:
            if self.tries(name) > self._replica.rules(name).retry_budget:
                continue
            available = self._replica.available_at(name)
            if available is None:
                continue
            ready = max(available, self._ready_at.get(name, available))
            earliest = ready if earliest is None else min(earliest, ready)
        return earliest

    def _send(self, name: str, now: float) -> SendAttempt:
        self._tries[name] = self.tries(name) + 1
        self._attempt_seq += 1
        probe = self._replica.acquire(name)
        self._in_flight = _InFlight(name, self._attempt_seq, probe, now)
        if self._first_provider is None:
            self._first_provider = name
        timeout = min(self._replica.rules(name).timeout, self.deadline_at - now)
        logger.debug(
            "call %s: attempt %d to %s with timeout %.3f s",
            self.call_id,
            self._attempt_seq,
            name,
            timeout,
        )
        return SendAttempt(name, self._attempt_seq, timeout)

    def _record(self, flight: _InFlight, outcome: str, status: int | None, duration: float) -> None:
        self._attempts.append(
            AttemptRecord(flight.provider, flight.attempt_no, outcome, status, max(duration, 0.0))
        )

    def _succeed(self, flight: _InFlight, value: Any, duration: float) -> Finish:
        status = value.get("status") if isinstance(value, Mapping) else None
        if isinstance(status, bool) or not isinstance(status, int):
            status = None
        self._record(flight, "ok", status, duration)
        self._replica.record_success(flight.provider)
        self._replica.record_served(flight.provider)
        result = {"result": value, "provider": flight.provider, "attempts": self.attempts}
        return self._finish(Finish(value=result, provider=flight.provider))

    def _fail(self, flight: _InFlight, failure: AttemptFailure, duration: float) -> Action:
        name = flight.provider
        self._record(flight, failure.kind, failure.status, duration)
        logger.info(
            "call %s: attempt %d to %s failed: %s%s: %s",
            self.call_id,
            flight.attempt_no,
            name,
            failure.kind,
            "" if failure.status is None else f" {failure.status}",
            failure.message,
        )
        if failure.is_invalid_request:
            self._replica.record_failure(name, retry_after=None, counts=False)
            return self._finish(
                Finish(
                    code="invalid_request",
                    message=f"provider {name} rejected the request as invalid: {failure.message}",
                    details=self._details(provider=name, message=failure.message),
                )
            )

        outcome = failure.to_outcome()
        policy = self._replica.rules(name).retry
        if failure.is_client_error and not policy.is_retryable(outcome):
            self._replica.record_failure(name, retry_after=failure.retry_after, counts=False)
            return self._finish(
                Finish(
                    code="provider_error",
                    message=f"provider {name} rejected the request with HTTP {failure.status}: "
                    f"{failure.message}",
                    details=self._details(provider=name, **failure.to_details()),
                )
            )

        # A missing reply is the router's own observation (a killed or overloaded
        # provider actor), not the provider's answer, so it does not count
        # towards ejection: counting it let one slow moment eject a healthy
        # secondary for the whole ejection time.
        counts = failure.kind != NO_REPLY
        self._replica.record_failure(name, retry_after=failure.retry_after, counts=counts)
        if not is_safe_to_resend(outcome, idempotent=self.idempotent):
            return self._finish(
                Finish(
                    code="not_retried",
                    message=f"the request is not idempotent and the {failure.kind} failure "
                    f"on provider {name} may have come after the provider received it, so it "
                    "was not sent again. Send an idempotency key to allow retries.",
                    details=self._details(provider=name, **failure.to_details()),
                )
            )
        if not policy.is_retryable(outcome):
            self._out[name] = f"{failure.kind} is not retried"
            return self._next()

        now = self._clock()
        decision = decide(
            self.tries(name),
            outcome,
            idempotent=self.idempotent,
            deadline_remaining=self.deadline_at - now,
            policy=policy,
            rng=self._rng,
        )
        if decision.retry:
            self._ready_at[name] = now + decision.delay
        else:
            reason = decision.reason.value if decision.reason is not None else "gave up"
            self._out[name] = reason
        return self._next()

    def _give_up(self) -> Finish:
        skipped = self._skip_reasons()
        if not self._attempts:
            reasons = "; ".join(f"{name}: {reason}" for name, reason in skipped.items())
            where = f"integration {self._integration}" if self._integration else "the integration"
            return self._finish(
                Finish(
                    code="no_provider_available",
                    message=f"no provider of {where} can take the call ({reasons})",
                    details={"providers": skipped, "attempts": []},
                )
            )
        listed = "; ".join(record.describe() for record in self._attempts)
        return self._finish(
            Finish(
                code="all_providers_failed",
                message=f"all providers failed: {listed}",
                details=self._details(skipped=skipped),
            )
        )

    def _skip_reasons(self) -> dict[str, str]:
        reasons: dict[str, str] = {}
        for name in self._replica.names:
            if name in self._rejected:
                reasons[name] = self._rejected[name]
            elif name in self._out:
                reasons[name] = self._out[name]
            elif self.tries(name) > self._replica.rules(name).retry_budget:
                reasons[name] = "retries_exhausted"
            else:
                reasons[name] = (
                    self._replica.skip_reason(name) or "not available before the deadline"
                )
        return reasons

    def _deadline_exceeded(self) -> Finish:
        count = len(self._attempts) + (1 if self._in_flight is not None else 0)
        return self._finish(
            Finish(
                code="deadline_exceeded",
                message=f"the call's deadline of {self.deadline:g} s passed after {count} "
                f"attempt(s)",
                details=self._details(deadline=self.deadline),
            )
        )

    def _details(self, **extra: Any) -> dict[str, Any]:
        return {**extra, "attempts": self.attempts}

    def _finish(self, finish: Finish) -> Finish:
        flight = self._in_flight
        if flight is not None:
            self._in_flight = None
            self._replica.release(flight.provider, flight.probe)
            finish = replace(finish, cancel=flight.provider)
        self._waiting = False
        finish = replace(finish, first_provider=self._first_provider)
        self.finished = finish
        return finish
