"""``ProviderActor``: sends one provider's attempts over HTTP without blocking its actor thread.

One provider actor runs per configured provider, at
``<root>/integrations/<integration>/providers/<provider>``. It receives ``Call(Attempt)``
from the router, runs the adapter's ``send`` on a private asyncio loop thread (an
:class:`~actors.provider.runner.AttemptRunner`) and keeps handling messages meanwhile.
When an attempt finishes, the loop thread writes to a pipe that the actor watches, and
the actor then:

1. replies to the attempt's caller with an ``AttemptResult``: always a value, with a
   ``failure`` dict from ``Failure.to_dict()`` when the attempt failed;
2. sends an ``OutcomeReport`` to the provider's circuit breaker by name
   (``success``, ``failure`` or ``ignored``, by
   :func:`actors.provider.outcomes.breaker_outcome`).

Other messages:

- ``CancelAttempt(call_id)``, one-way or in a ``Call``: cancels that call's attempts in
  flight at once. Their callers get no ``AttemptResult``, and the breaker hears
  ``ignored`` with kind ``cancelled``. In a ``Call`` the reply is the number cancelled.
- ``Call(Describe())``: a dict with the provider's name, kind, base URL and model, the
  number of attempts in flight, the totals of :class:`~actors.provider.stats.AttemptTotals`
  and the actor's process id. It never contains the API key.

The actor keeps no state that must survive a restart, so it writes no recovery points.
Attempts in flight when it stops are cancelled without an ``AttemptResult``, so the
router must bound every attempt by its own deadline. Because it runs a thread, the actor
never creates child actors.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from actors.adapters import Adapter, create_adapter
from actors.messages import (
    Attempt,
    AttemptResult,
    CancelAttempt,
    Describe,
    OutcomeReport,
    StateRequest,
)
from actors.names import breaker_path
from actors.provider.outcomes import (
    breaker_outcome,
    check_attempt_timeout,
    invalid_attempt_failure,
    unexpected_error_failure,
)
from actors.provider.runner import DEFAULT_MAX_CONNECTIONS, AttemptRunner, Finished
from actors.provider.stats import AttemptTotals
from supervisors import NOREPLY, Call, Caller, GenActor, Reply
from tpir.config import NodeConfig, Provider

__all__ = ["CLOSE_TIMEOUT", "ProviderActor", "build_adapter"]

logger = logging.getLogger(__name__)

_LOCATE_BREAKER = ("locate", "breaker")
_LOCATE_BREAKER_SECONDS = 2.0

CLOSE_TIMEOUT = 0.9
"""Seconds ``terminate`` may spend cancelling attempts, closing the client and stopping the
loop thread. Under 1 s, so a stop finishes well within the default worker shutdown timeout
of 5 s and the supervisor does not have to kill the process."""


@dataclass(frozen=True)
class _InFlight:
    """One attempt on the loop thread: its call, its caller and its ``time.monotonic()`` start."""

    call_id: str
    attempt_no: int
    caller: Caller
    started: float


def build_adapter(provider: Provider) -> Adapter:
    """Build the adapter for ``provider``'s kind, base URL, model, API key and headers."""
    api_key = provider.api_key.get_secret_value() if provider.api_key else None
    return create_adapter(
        str(provider.kind),
        base_url=provider.base_url,
        model=provider.model,
        api_key=api_key,
        headers=provider.header_dict,
        name=provider.name,
    )


class ProviderActor(GenActor):
    """The actor that sends one provider's attempts; see the module docstring.

    ``init`` options:

    - ``integration``: name of the integration the provider belongs to. Required.
    - ``provider``: the provider's configuration. Required.
    - ``node``: the node configuration. Required by the tree's common start signature;
      this actor saves no recovery points, so it reads nothing from it.
    - ``max_connections``: open connections to the provider, 1 to 10000. Default 100.
    """

    def init(
        self,
        integration: str,
        provider: Provider,
        node: NodeConfig,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self.integration = integration
        self.provider = provider
        self.node = node
        self.breaker = breaker_path(integration, provider.name, root=self.path.split("/")[0])
        self.totals = AttemptTotals()
        self.in_flight: dict[int, _InFlight] = {}
        runner = AttemptRunner(build_adapter(provider), max_connections=max_connections)
        try:
            runner.start()
        except BaseException:
            # A failed init gets no terminate call, so the thread is stopped here.
            runner.close(CLOSE_TIMEOUT)
            raise
        self.runner = runner
        self.watch(runner.fileno())
        self._locate_breaker()
        logger.info(
            "provider actor %s started: kind %s, base URL %s, max %d connections",
            self.path,
            provider.kind,
            provider.base_url,
            max_connections,
        )

    # -- messages ------------------------------------------------------------------

    def handle_call(self, body: Any, caller: Caller) -> Any:
        if isinstance(body, Attempt):
            return self._start_attempt(body, caller)
        if isinstance(body, CancelAttempt):
            return self._cancel(body.call_id)
        if isinstance(body, Describe):
            return self.describe()
        return super().handle_call(body, caller)

    def handle_cast(self, message: Any, sender: Any) -> None:
        if isinstance(message, CancelAttempt):
            self._cancel(message.call_id)
            return
        if isinstance(message, Reply) and message.ref == _LOCATE_BREAKER:
            if message.error is None:
                self.learn_address(self.breaker, sender)
            return
        super().handle_cast(message, sender)

    def handle_timeout(self, payload: Any) -> None:
        if payload == _LOCATE_BREAKER:
            self._locate_breaker()
            return
        super().handle_timeout(payload)

    def _locate_breaker(self) -> None:
        """Ask the breaker for its address now and every few seconds.

        Outcome reports then go to it directly. After a breaker restart, reports
        sent to the old address come back as dead letters and are routed by name
        until the next answer brings the new address.
        """
        self.send_named(self.breaker, Call(_LOCATE_BREAKER, StateRequest(), self.myAddress))
        self.send_after(_LOCATE_BREAKER_SECONDS, _LOCATE_BREAKER)

    def handle_watch(self, ready: list[int]) -> None:
        for finished in self.runner.drain():
            self._finish(finished)

    def terminate(self, reason: str) -> None:
        runner = getattr(self, "runner", None)
        if runner is None:
            return
        cancelled = len(self.in_flight)
        self.in_flight.clear()
        self.unwatch(runner.fileno())
        # The loop thread logs a warning itself when it outlives CLOSE_TIMEOUT.
        runner.close(CLOSE_TIMEOUT)
        logger.info(
            "provider actor %s stopped (%s), %d attempts in flight cancelled",
            self.path,
            reason,
            cancelled,
        )

    def describe(self) -> dict[str, Any]:
        """Return the provider's identity, the attempts in flight and the totals."""
        return {
            "integration": self.integration,
            "provider": self.provider.name,
            "kind": str(self.provider.kind),
            "base_url": self.provider.base_url,
            "model": self.provider.model,
            "in_flight": len(self.in_flight),
            **self.totals.to_dict(),
            "pid": os.getpid(),
        }

    # -- attempts ------------------------------------------------------------------

    def _start_attempt(self, attempt: Attempt, caller: Caller) -> Any:
        problem = check_attempt_timeout(attempt.timeout)
        if problem is not None:
            logger.warning(
                "provider actor %s: attempt %d of call %s not sent: %s",
                self.path,
                attempt.attempt_no,
                attempt.call_id,
                problem,
            )
            failure = invalid_attempt_failure(self.provider.name, problem)
            self._record(failure, 0.0)
            return self._result(attempt.call_id, attempt.attempt_no, 0.0, None, failure)

        token = self.runner.submit(
            attempt.request, timeout=attempt.timeout, idempotency_key=attempt.idempotency_key
        )
        self.in_flight[token] = _InFlight(
            attempt.call_id, attempt.attempt_no, caller, time.monotonic()
        )
        logger.debug(
            "provider actor %s: attempt %d of call %s sent (timeout %.3f s, idempotent %s)",
            self.path,
            attempt.attempt_no,
            attempt.call_id,
            attempt.timeout,
            attempt.idempotent,
        )
        return NOREPLY

    def _finish(self, finished: Finished) -> None:
        entry = self.in_flight.pop(finished.token, None)
        if entry is None:
            return
        outcome = finished.outcome
        if outcome is None:
            error = finished.error or "unknown error"
            logger.error(
                "provider actor %s: attempt %d of call %s failed because the adapter raised %s",
                self.path,
                entry.attempt_no,
                entry.call_id,
                error,
            )
            failure: dict[str, Any] | None = unexpected_error_failure(self.provider.name, error)
            value = None
        elif outcome.ok:
            failure = None
            value = outcome.value
        else:
            failure = outcome.to_dict()
            value = None
        self._record(failure, finished.duration)
        self.reply(
            entry.caller,
            self._result(entry.call_id, entry.attempt_no, finished.duration, value, failure),
        )

    def _cancel(self, call_id: str) -> int:
        tokens = [token for token, entry in self.in_flight.items() if entry.call_id == call_id]
        for token in tokens:
            entry = self.in_flight.pop(token)
            self.runner.cancel(token)
            logger.debug(
                "provider actor %s: attempt %d of call %s cancelled",
                self.path,
                entry.attempt_no,
                call_id,
            )
            self._report("ignored", time.monotonic() - entry.started, "cancelled", None)
        self.totals.record_cancelled(len(tokens))
        return len(tokens)

    def _result(
        self,
        call_id: str,
        attempt_no: int,
        duration: float,
        value: Any,
        failure: dict[str, Any] | None,
    ) -> AttemptResult:
        return AttemptResult(
            provider=self.provider.name,
            call_id=call_id,
            attempt_no=attempt_no,
            ok=failure is None,
            duration=duration,
            value=value,
            failure=failure,
        )

    def _record(self, failure: dict[str, Any] | None, duration: float) -> None:
        """Count the attempt and tell the breaker its outcome."""
        if failure is None:
            self.totals.record_success()
            self._report("success", duration, None, None)
            return
        kind = str(failure.get("kind"))
        status = failure.get("status")
        self.totals.record_failure(kind, status, time.time())
        self._report(breaker_outcome(failure), duration, kind, status)

    def _report(self, outcome: str, duration: float, kind: str | None, status: int | None) -> None:
        report = OutcomeReport(self.provider.name, outcome, duration, kind, status)
        self.send_cached(self.breaker, report)
