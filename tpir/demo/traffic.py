"""Steady call traffic to one integration, as erlmcp would send it, with every outcome kept.

`Traffic` sends ``call`` requests at a fixed rate from its own thread without waiting for
earlier replies, so several calls are in flight at once, and records each call's
`CallRecord`. Each call carries its own idempotency key, which makes it safe for TPIR
to retry and fail over (a chat completion without a key is never sent twice).

The caller resends a call once, with the same key, when the node replies to it with
``actor_crashed`` or ``lost``. Those codes mean that the actor that held the call died
(the demo kills the router), so the call may not have been handled. The record keeps
the first reply's code in ``resent_after``, and the demo reports these calls separately.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Final

from tpir.demo.drivers import NodeDriver, Outcome

__all__ = ["RESEND_CODES", "CallRecord", "Traffic"]

logger = logging.getLogger(__name__)

RESEND_CODES: Final = frozenset({"actor_crashed", "lost"})
"""Error codes after which the caller sends a call again, once, with the same key."""

_POLL_SECONDS: Final = 0.02


@dataclass
class CallRecord:
    """One call of the traffic, completed when its final reply arrives.

    Fields:
        number: the call's sequence number, from 1.
        phase: the index of the demo phase in which it was sent.
        sent_at: seconds on the traffic's clock when it was first sent.
        answered_at: seconds when the final reply arrived, or None while in flight.
        outcome: the final reply, or None while in flight.
        resent_after: the error code of the first reply when the caller resent the call
            (see the module docstring), else None.
    """

    number: int
    phase: int
    sent_at: float
    answered_at: float | None = None
    outcome: Outcome | None = None
    resent_after: str | None = None

    @property
    def provider(self) -> str | None:
        """The provider that served a successful call."""
        if self.outcome is None or not self.outcome.ok or not isinstance(self.outcome.value, dict):
            return None
        provider = self.outcome.value.get("provider")
        return provider if isinstance(provider, str) else None

    @property
    def failed_over(self) -> bool:
        """Whether a successful call was answered by another provider than its first try."""
        if self.provider is None:
            return False
        attempts = self.outcome.value.get("attempts") if self.outcome is not None else None
        if not isinstance(attempts, list) or not attempts or not isinstance(attempts[0], dict):
            return False
        return attempts[0].get("provider") != self.provider


class Traffic:
    """Calls to ``integration`` at ``rate`` per second; see the module docstring.

    Options:
        driver: the started `NodeDriver` that sends the calls.
        integration: the integration to call.
        rate: calls per second, greater than 0 and at most 1000.
        call_timeout: seconds the caller waits for each answer, greater than 0.
        on_resend: called with the record and the first answer when a call is resent.
        clock: a callable returning seconds, `time.monotonic` by default.
    """

    def __init__(
        self,
        driver: NodeDriver,
        integration: str,
        *,
        rate: float,
        call_timeout: float,
        on_resend: Callable[[CallRecord, Outcome], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < rate <= 1000:
            raise ValueError(f"rate: {rate!r} calls per second is out of range (0, 1000]")
        if not call_timeout > 0:
            raise ValueError(f"call_timeout: {call_timeout!r} s must be greater than 0")
        self._driver = driver
        self._integration = integration
        self._interval = 1.0 / rate
        self._call_timeout = call_timeout
        self._on_resend = on_resend
        self._clock = clock
        self._lock = threading.Lock()
        self._records: list[CallRecord] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._run_id = f"{int(time.time() * 1000):x}"
        self.phase = 0

    @property
    def records(self) -> list[CallRecord]:
        """Every call sent so far, in order."""
        with self._lock:
            return list(self._records)

    def in_flight(self) -> int:
        """Return the number of calls without a final answer."""
        with self._lock:
            return sum(1 for record in self._records if record.outcome is None)

    def start(self) -> None:
        """Start sending from a new thread."""
        self._thread = threading.Thread(target=self._send_loop, name="tpir-demo-traffic")
        self._thread.start()

    def stop(self) -> None:
        """Stop sending new calls; calls in flight keep running."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def wait_answered(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for every call to be answered; return how many
        are still in flight."""
        deadline = self._clock() + timeout
        while self.in_flight() and self._clock() < deadline:
            time.sleep(_POLL_SECONDS)
        return self.in_flight()

    def _send_loop(self) -> None:
        next_at = self._clock()
        while not self._stop.is_set():
            delay = next_at - self._clock()
            if delay > 0 and self._stop.wait(delay):
                return
            self._send_new()
            # After a stall (a loaded machine), continue at the rate instead of catching up
            # with a burst.
            next_at = max(next_at + self._interval, self._clock() - self._interval)

    def _send_new(self) -> None:
        with self._lock:
            record = CallRecord(len(self._records) + 1, self.phase, self._clock())
            self._records.append(record)
        self._send(record)

    def _send(self, record: CallRecord) -> None:
        args: dict[str, Any] = {
            "integration": self._integration,
            "request": {"messages": [{"role": "user", "content": f"demo call {record.number}"}]},
            "idempotency_key": f"tpir-demo-{self._run_id}-{record.number}",
        }
        future = self._driver.submit("call", args, timeout=self._call_timeout)
        future.add_done_callback(lambda done: self._on_answer(record, done))

    def _on_answer(self, record: CallRecord, future: Future) -> None:
        outcome: Outcome = future.result()
        if not outcome.ok and outcome.code in RESEND_CODES and record.resent_after is None:
            record.resent_after = outcome.code
            logger.info("call %d failed with %s; resending it", record.number, outcome.code)
            if self._on_resend is not None:
                self._on_resend(record, outcome)
            self._send(record)
            return
        with self._lock:
            record.answered_at = self._clock()
            record.outcome = outcome
