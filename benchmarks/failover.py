"""Failover from a failing primary under steady load: TPIR's router against pybreaker.

Run: ``python -m benchmarks.failover [--rate 50] [--healthy 2] [--outage 4]``.

Two provider simulators run in their own processes on 127.0.0.1: the primary (OpenAI
dialect) and a healthy secondary (Anthropic dialect). For each failure mode of the
primary (``503``: every request gets status 503; ``refused``: the listener is closed;
``hang``: requests never get a response), calls are sent open loop at ``--rate`` calls
per second: ``--healthy`` seconds with both providers healthy, then ``--outage``
seconds with the primary failing. Then the senders stop and wait for the last replies.

Two implementations run on the same simulators, one after the other:

- TPIR: the integration tree of `actors.tree` in a `SupervisionSystem` of this process,
  fresh for each mode (its own data folder, so no breaker state carries over). One
  thespian client sends the calls with ``send_to`` and collects the replies. Each call
  carries its own idempotency key, which a chat request needs before the router sends
  it again after a failure that may have reached the provider.
- pybreaker, the baseline: the caller-side failover a user would write, a
  ``CircuitBreaker(fail_max=5)`` around "POST to the primary with httpx", and on any
  error or an open breaker "POST to the secondary". A thread pool runs the calls.

Both use the same per-try timeout (``--per-try``) and open the breaker after 5 failures
in a row. The breaker stays open for 30 s, longer than the outage (at most 25 s), so no
probe call reaches the primary during the measurement.

Figures per mode and implementation:

- failed: calls whose caller got an error, with the errors.
- switch: seconds from the fault until all traffic is on the secondary, that is until
  the send time of the first call after which no call tried the primary.
- added: the maximum latency of a call sent during the outage minus the median latency
  of the calls sent while both providers were healthy (the in-run baseline). The
  target for ``hang`` is at most the per-try timeout plus 50 ms.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from benchmarks.common import machine
from benchmarks.overhead import (
    ANTHROPIC_MODEL,
    CHAT_REQUEST,
    IntegrationTree,
    SimulatorProcess,
    config_text,
    direct_body,
    load_average,
    simulator_pair,
)

__all__ = ["MODES", "CallRecord", "ModeResult", "run_pybreaker", "run_tpir"]

MODES: Final = ("503", "refused", "hang")
FAILURE_THRESHOLD: Final = 5
OPEN_SECONDS: Final = 30.0
HANG_SLACK_SECONDS: Final = 0.05
"""Seconds a hanging primary may add beyond the per-try timeout (the target)."""

_CALL_TIMEOUT_SECONDS: Final = 5.0
_DRAIN_SECONDS: Final = 10.0
_POOL_THREADS: Final = 128


@dataclass(frozen=True)
class CallRecord:
    """One call: its send time in seconds from the fault (negative before it), its
    latency in seconds, whether it tried the primary, its error or None, and its
    attempts as the router listed them (empty for pybreaker)."""

    sent_at: float
    latency: float
    tried_primary: bool
    error: str | None
    attempts: str = ""


@dataclass(frozen=True)
class ModeResult:
    """The calls of one implementation in one failure mode."""

    implementation: str
    mode: str
    calls: tuple[CallRecord, ...]

    @property
    def failed(self) -> list[CallRecord]:
        return [call for call in self.calls if call.error is not None]

    @property
    def healthy_p50(self) -> float:
        return statistics.median(call.latency for call in self.calls if call.sent_at < 0)

    @property
    def outage_p50(self) -> float:
        return statistics.median(call.latency for call in self.calls if call.sent_at >= 0)

    @property
    def outage_max(self) -> float:
        return max(call.latency for call in self.calls if call.sent_at >= 0)

    @property
    def max_added(self) -> float:
        return self.outage_max - self.healthy_p50

    @property
    def slowest(self) -> CallRecord:
        """The call sent during the outage with the highest latency."""
        return max((call for call in self.calls if call.sent_at >= 0), key=_latency)

    @property
    def primary_tries(self) -> int:
        """Calls sent after the fault that tried the primary."""
        return sum(1 for call in self.calls if call.sent_at >= 0 and call.tried_primary)

    @property
    def switch_time(self) -> float | None:
        """Seconds from the fault to the first call after which no call tried the primary.

        None when the last call sent still tried the primary.
        """
        after = sorted((call for call in self.calls if call.sent_at >= 0), key=_sent)
        last_try = max((i for i, call in enumerate(after) if call.tried_primary), default=-1)
        if last_try + 1 >= len(after):
            return None
        return after[last_try + 1].sent_at


def _sent(call: CallRecord) -> float:
    return call.sent_at


def _latency(call: CallRecord) -> float:
    return call.latency


# -- faults --------------------------------------------------------------------------------


def inject(primary: SimulatorProcess, mode: str, outage: float) -> None:
    """Make the primary fail in ``mode`` from now on."""
    if mode == "503":
        primary.control(mode=503)
    elif mode == "hang":
        primary.control(mode="hang")
    else:
        # The control endpoint closes with the listener, so the refusal ends by itself.
        primary.control(mode="refuse", duration=outage)


def heal(primary: SimulatorProcess, secondary: SimulatorProcess, outage: float) -> None:
    """Return both simulators to normal behavior and zero counts.

    A refusing primary is unreachable until its refusal ends, so this retries for up to
    ``outage`` plus 5 seconds.
    """
    deadline = time.monotonic() + outage + 5.0
    while True:
        try:
            primary.control(reset=True)
            break
        except httpx.TransportError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)
    secondary.control(reset=True)


@dataclass(frozen=True)
class _Schedule:
    """Open-loop send times: ``total`` calls at ``rate`` per second, the fault before
    call number ``fault_index``."""

    rate: float
    total: int
    fault_index: int

    @classmethod
    def of(cls, rate: float, healthy: float, outage: float) -> _Schedule:
        return cls(rate, round(rate * (healthy + outage)), round(rate * healthy))

    def due(self, start: float, index: int) -> float:
        return start + index / self.rate


# -- TPIR ----------------------------------------------------------------------------------


def _tpir_record(value: Any, error: Any, latency: float, sent_at: float) -> CallRecord:
    if error is None:
        attempts = value.get("attempts", [])
        message = None
    else:
        details = error.details if isinstance(error.details, dict) else {}
        attempts = details.get("attempts", [])
        message = f"{error.code}: {error.message}"
    tried = any(attempt.get("provider") == "openai" for attempt in attempts)
    listed = ", ".join(
        f"{attempt.get('provider')} {attempt.get('outcome')} in "
        f"{(attempt.get('duration') or 0.0) * 1000:.0f} ms"
        for attempt in attempts
    )
    return CallRecord(sent_at, latency, tried, message, listed)


def run_tpir(
    primary: SimulatorProcess,
    secondary: SimulatorProcess,
    mode: str,
    schedule: _Schedule,
    per_try: float,
    outage: float,
    folder: Path,
) -> ModeResult:
    """Run one mode against a fresh integration tree; see the module docstring."""
    config = config_text(
        folder / "data",
        primary.api_url,
        secondary.api_url,
        per_try=per_try,
        call_timeout=_CALL_TIMEOUT_SECONDS,
        failure_threshold=FAILURE_THRESHOLD,
        open_duration=OPEN_SECONDS,
    )
    answered: list[tuple[float, float, Any, Any]] = []
    with IntegrationTree(config, folder / "actors.log") as tree:
        for _ in range(5):
            tree.call()  # warms up the actor processes and the primary's connections
        pending: dict[Any, float] = {}
        fault_at: float | None = None
        start = time.monotonic() + 0.05
        index = 0
        drain_until = float("inf")
        while index < schedule.total or pending:
            if index < schedule.total and time.monotonic() >= schedule.due(start, index):
                if index == schedule.fault_index:
                    inject(primary, mode, outage)
                    fault_at = time.monotonic()
                pending[tree.send()] = time.monotonic()
                index += 1
                if index == schedule.total:
                    drain_until = time.monotonic() + _DRAIN_SECONDS
                continue
            until = schedule.due(start, index) if index < schedule.total else drain_until
            reply = tree.receive(until)
            if reply is None:
                if index >= schedule.total:
                    break
                continue
            sent = pending.pop(reply.ref, None)
            if sent is not None:
                answered.append((sent, reply.received_at - sent, reply.value, reply.error))
    heal(primary, secondary, outage)

    assert fault_at is not None
    records = [
        _tpir_record(value, error, latency, sent - fault_at)
        for sent, latency, value, error in answered
    ]
    lost = f"no reply within {_DRAIN_SECONDS:g} s after the last call was sent"
    records += [
        CallRecord(sent - fault_at, _DRAIN_SECONDS, True, lost) for sent in pending.values()
    ]
    return ModeResult("TPIR router", mode, tuple(records))


# -- pybreaker ------------------------------------------------------------------------------


class _CallerSideFailover:
    """Caller-side failover: the primary through a pybreaker breaker, else the secondary.

    pybreaker 1.4.1's ``CircuitBreaker.call`` holds the breaker's lock while the wrapped
    function runs, so concurrent calls reach the primary one at a time.
    """

    def __init__(self, primary: SimulatorProcess, secondary: SimulatorProcess, per_try: float):
        import pybreaker

        self._pybreaker = pybreaker
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
        except (self._pybreaker.CircuitBreakerError, httpx.HTTPError, ValueError):
            pass
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
    schedule: _Schedule,
    per_try: float,
    outage: float,
) -> ModeResult:
    """Run one mode with the caller-side failover; see the module docstring."""
    failover = _CallerSideFailover(primary, secondary, per_try)
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
        fault_at: float | None = None
        with ThreadPoolExecutor(max_workers=_POOL_THREADS) as pool:
            start = time.monotonic() + 0.05
            for index in range(schedule.total):
                delay = schedule.due(start, index) - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if index == schedule.fault_index:
                    inject(primary, mode, outage)
                    fault_at = time.monotonic()
                pool.submit(one_call)
    finally:
        failover.close()
    assert fault_at is not None
    records = tuple(
        CallRecord(sent - fault_at, latency, tried, error)
        for sent, latency, tried, error in results
    )
    heal(primary, secondary, outage)
    return ModeResult("pybreaker + httpx", mode, records)


# -- report ------------------------------------------------------------------------------------


def _row(result: ModeResult, per_try: float) -> str:
    switch = result.switch_time
    switch_text = "never" if switch is None else f"{switch:.3f}"
    target = ""
    if result.mode == "hang":
        met = result.max_added <= per_try + HANG_SLACK_SECONDS
        target = f" ({'met' if met else 'missed'})"
    return (
        f"| {result.mode} | {result.implementation} | {len(result.calls)} | "
        f"{len(result.failed)} | {switch_text} | {result.primary_tries} | "
        f"{result.healthy_p50 * 1000:.1f} | {result.outage_p50 * 1000:.1f} | "
        f"{result.outage_max * 1000:.1f} | "
        f"{result.max_added * 1000:.1f}{target} | {result.max_added / per_try:.2f} |"
    )


def _error_form(error: str | None) -> str:
    # Errors of one kind differ only in their durations and times, so numbers are
    # replaced to group them.
    return re.sub(r"\d+(\.\d+)?", "N", error or "")


def _failures(result: ModeResult) -> list[str]:
    groups: dict[str, list[CallRecord]] = {}
    for call in result.failed:
        groups.setdefault(_error_form(call.error), []).append(call)
    lines = []
    for calls in sorted(groups.values(), key=len, reverse=True):
        sent = [call.sent_at for call in calls]
        lines.append(
            f"- {result.implementation}, {result.mode}: {len(calls)} calls sent from "
            f"{min(sent):+.3f} s to {max(sent):+.3f} s after the fault failed, "
            f"for example with: {calls[0].error}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="calls per second (default 50)")
    parser.add_argument(
        "--healthy", type=float, default=2.0, help="seconds before the fault (default 2)"
    )
    parser.add_argument(
        "--outage", type=float, default=4.0, help="seconds of failing primary (default 4)"
    )
    parser.add_argument(
        "--per-try", type=float, default=0.5, help="per-try timeout in seconds (default 0.5)"
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help=f"comma-separated failure modes (default {','.join(MODES)})",
    )
    args = parser.parse_args()
    modes = [mode for mode in args.modes.split(",") if mode]
    for mode in modes:
        if mode not in MODES:
            parser.error(f"--modes: invalid mode {mode!r}; expected some of {', '.join(MODES)}")
    if not 1 <= args.rate <= 500:
        parser.error(f"--rate: invalid value {args.rate:g}; expected 1 to 500 calls per second")
    if not 0.5 <= args.healthy <= 60:
        parser.error(f"--healthy: invalid value {args.healthy:g}; expected 0.5 to 60 seconds")
    # The breakers must stay open for the whole outage, so that no probe call reaches the
    # primary while it is measured.
    max_outage = OPEN_SECONDS - 5
    if not 0.5 <= args.outage <= max_outage:
        parser.error(
            f"--outage: invalid value {args.outage:g}; expected 0.5 to {max_outage:g} seconds"
        )
    if not 0.05 <= args.per_try <= 5:
        parser.error(f"--per-try: invalid value {args.per_try:g}; expected 0.05 to 5 seconds")
    try:
        import pybreaker  # noqa: F401
    except ImportError:
        pybreaker_missing = True
    else:
        pybreaker_missing = False

    schedule = _Schedule.of(args.rate, args.healthy, args.outage)
    load_before = load_average()
    results: list[ModeResult] = []
    with tempfile.TemporaryDirectory(prefix="tpir-bench-") as folder_name:
        folder = Path(folder_name)
        with simulator_pair(folder) as (primary, secondary):
            for mode in modes:
                mode_folder = folder / mode
                mode_folder.mkdir()
                results.append(
                    run_tpir(
                        primary, secondary, mode, schedule, args.per_try, args.outage, mode_folder
                    )
                )
                if not pybreaker_missing:
                    results.append(
                        run_pybreaker(primary, secondary, mode, schedule, args.per_try, args.outage)
                    )

    print(f"machine: {machine()}")
    print(f"load average before: {load_before}; after: {load_average()}")
    print(
        f"{args.rate:g} calls/s, {args.healthy:g} s healthy then {args.outage:g} s of failing "
        f"primary ({schedule.total} calls per run); per-try timeout {args.per_try:g} s"
    )
    if pybreaker_missing:
        print("pybreaker is not installed (pip install pybreaker): baseline not run")
    print(
        "| mode | implementation | calls | failed | switch s | primary tries after fault | "
        "healthy p50 ms | outage p50 ms | outage max ms | max added ms | added / per-try |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for result in results:
        print(_row(result, args.per_try))
    print("slowest call of each TPIR run during the outage, with its attempts:")
    for result in results:
        if result.implementation == "TPIR router":
            slowest = result.slowest
            print(
                f"- {result.mode}: sent {slowest.sent_at:+.3f} s after the fault, "
                f"{slowest.latency * 1000:.0f} ms: {slowest.attempts or 'no attempts'}"
            )
    failures = [line for result in results for line in _failures(result)]
    print("failed calls:" if failures else "failed calls: none")
    for line in failures:
        print(line)


if __name__ == "__main__":
    main()
