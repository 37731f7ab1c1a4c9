"""The baselines of the failover benchmark: caller-side failover with pybreaker.

This is what a user writes without TPIR: a pybreaker ``CircuitBreaker(fail_max=5)``
around "POST to the primary with httpx", and a POST to the secondary as the "else".
Two readings of "try A, else B" run, because they fail very differently:

- ``open``: the secondary is used only when the breaker rejects the call
  (`pybreaker.CircuitBreakerError`). The primary's errors reach the caller until the
  breaker opens. With ``fail_max=5`` four calls fail, and the fifth failure itself
  raises ``CircuitBreakerError`` and goes to the secondary.
- ``any_error``: the secondary is used on any error of the primary as well. No call
  fails while the secondary is healthy, but every call still pays for its try of the
  primary until the breaker opens.

pybreaker 1.4.1's ``CircuitBreaker.call`` holds the breaker's lock while the wrapped
function runs, so concurrent calls reach the primary one at a time. A thread pool runs
the calls.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import httpx

from benchmarks.outage import (
    FAILURE_THRESHOLD,
    OPEN_SECONDS,
    CallRecord,
    ModeResult,
    Schedule,
    heal,
    run_schedule,
)
from benchmarks.simulators import ANTHROPIC_MODEL, CHAT_REQUEST, SimulatorProcess, direct_body

__all__ = ["FALLBACK_RULES", "CallerSideFailover", "run_pybreaker"]

FALLBACK_RULES: Final = {
    "open": "pybreaker, B when open",
    "any_error": "pybreaker, B on any error",
}
"""When the caller turns to the secondary, and the implementation's name in reports."""

_POOL_THREADS: Final = 128


class CallerSideFailover:
    """The primary through a pybreaker breaker, else the secondary.

    ``fallback`` is a key of `FALLBACK_RULES`.
    """

    def __init__(
        self,
        primary: SimulatorProcess,
        secondary: SimulatorProcess,
        per_try: float,
        fallback: str,
    ) -> None:
        import pybreaker

        if fallback not in FALLBACK_RULES:
            raise ValueError(
                f"invalid fallback {fallback!r}; expected one of {', '.join(FALLBACK_RULES)}"
            )
        self._pybreaker = pybreaker
        self.fallback = fallback
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=FAILURE_THRESHOLD, reset_timeout=OPEN_SECONDS
        )
        limits = httpx.Limits(max_connections=_POOL_THREADS, max_keepalive_connections=64)
        self.primary = httpx.Client(timeout=per_try, limits=limits, trust_env=False)
        self.secondary = httpx.Client(timeout=per_try, limits=limits, trust_env=False)
        self.primary_url = primary.api_url + "/chat/completions"
        self.secondary_url = secondary.api_url + "/messages"
        self.primary_body = json.dumps(direct_body()).encode()
        self.secondary_body = json.dumps(
            {"model": ANTHROPIC_MODEL, "max_tokens": 1024, "messages": CHAT_REQUEST["messages"]}
        ).encode()

    def close(self) -> None:
        self.primary.close()
        self.secondary.close()

    def call(self) -> tuple[bool, str | None]:
        """Make one call; return whether it tried the primary, and its error or None."""
        tried = False

        def on_primary() -> Any:
            nonlocal tried
            tried = True
            response = self.primary.post(
                self.primary_url,
                content=self.primary_body,
                headers={"Content-Type": "application/json"},
            )
            response.raise_for_status()
            return response.json()

        try:
            self.breaker.call(on_primary)
            return tried, None
        except self._pybreaker.CircuitBreakerError:
            pass
        except (httpx.HTTPError, ValueError) as exc:
            if self.fallback == "open":
                return tried, f"{type(exc).__name__}: {exc}"
        try:
            response = self.secondary.post(
                self.secondary_url,
                content=self.secondary_body,
                headers={"Content-Type": "application/json", "anthropic-version": "2023-06-01"},
            )
            response.raise_for_status()
            response.json()
        except (httpx.HTTPError, ValueError) as exc:
            return tried, f"{type(exc).__name__}: {exc}"
        return tried, None


def run_pybreaker(
    primary: SimulatorProcess,
    secondary: SimulatorProcess,
    mode: str,
    schedule: Schedule,
    per_try: float,
    outage: float,
    fallback: str,
) -> ModeResult:
    """Run one mode with caller-side failover under the rule ``fallback``."""
    failover = CallerSideFailover(primary, secondary, per_try, fallback)
    results: list[tuple[float, float, bool, str | None]] = []
    lock = threading.Lock()

    def one_call() -> None:
        sent = time.monotonic()
        tried, error = failover.call()
        finished = time.monotonic()
        with lock:
            results.append((sent, finished - sent, tried, error))

    try:
        for _ in range(5):
            failover.call()
        with ThreadPoolExecutor(max_workers=_POOL_THREADS) as pool:

            def submit_one() -> None:
                pool.submit(one_call)

            fault_at = run_schedule(schedule, primary, mode, outage, submit_one)
    finally:
        failover.close()
    records = tuple(
        CallRecord(sent - fault_at, latency, tried, error)
        for sent, latency, tried, error in results
    )
    heal(primary, secondary, outage)
    return ModeResult(FALLBACK_RULES[fallback], mode, records)
