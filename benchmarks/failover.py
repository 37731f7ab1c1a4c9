"""Failover from a failing primary under steady load: a TPIR node against pybreaker.

Run: ``python -m benchmarks.failover [--rate 50] [--healthy 2] [--outage 4]``.

Two provider simulators run in their own processes on 127.0.0.1: the primary (OpenAI
dialect) and a healthy secondary (Anthropic dialect). For each failure mode of the
primary (``503``: every request gets status 503; ``refused``: the listener is closed;
``hang``: requests never get a response), calls are sent open loop at ``--rate`` calls
per second: ``--healthy`` seconds with both providers healthy, then ``--outage``
seconds with the primary failing. Then the senders stop and wait for the last replies.

Three implementations run on the same simulators, one after the other:

- TPIR: a ``tpir run`` node started by this script, fresh for each mode (its own data
  folder, so no breaker state carries over), spoken to as erlmcp does: length-prefixed
  MessagePack frames on its stdin and stdout, pipelined by request id
  (`benchmarks.node_process.NodeProcess`). Each call carries its own idempotency key.
- two pybreaker baselines, the caller-side failover a user would write without TPIR
  (`benchmarks.caller_failover`): a ``CircuitBreaker(fail_max=5)`` around "POST to the
  primary with httpx", and "POST to the secondary" either only when the breaker is open
  or on any error as well. A thread pool runs the calls.

All use the same per-try timeout (``--per-try``) and open the breaker after 5 failures
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
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Final

from benchmarks.caller_failover import FALLBACK_RULES, run_pybreaker
from benchmarks.common import machine
from benchmarks.node_process import NodeProcess
from benchmarks.outage import (
    CALL_TIMEOUT_SECONDS,
    DRAIN_SECONDS,
    FAILURE_THRESHOLD,
    HANG_SLACK_SECONDS,
    MODES,
    OPEN_SECONDS,
    CallRecord,
    ModeResult,
    Schedule,
    heal,
    run_schedule,
)
from benchmarks.processes import load_average
from benchmarks.simulators import (
    CHAT_REQUEST,
    INTEGRATION,
    SimulatorProcess,
    simulator_pair,
    write_config,
)

__all__ = ["TPIR_NAME", "run_tpir"]

TPIR_NAME: Final = "TPIR node, port"


# -- TPIR ----------------------------------------------------------------------------------


def _tpir_record(message: dict[str, Any], latency: float, sent_at: float) -> CallRecord:
    if message.get("ok") is True:
        result = message.get("result") or {}
        attempts = result.get("attempts", [])
        error = None
    else:
        failure = message.get("error") or {}
        details = failure.get("details")
        attempts = details.get("attempts", []) if isinstance(details, dict) else []
        error = f"{failure.get('code')}: {failure.get('message')}"
    tried = any(attempt.get("provider") == "openai" for attempt in attempts)
    listed = ", ".join(
        f"{attempt.get('provider')} {attempt.get('outcome')} in "
        f"{(attempt.get('duration') or 0.0) * 1000:.0f} ms"
        for attempt in attempts
    )
    return CallRecord(sent_at, latency, tried, error, listed)


def run_tpir(
    primary: SimulatorProcess,
    secondary: SimulatorProcess,
    mode: str,
    schedule: Schedule,
    per_try: float,
    outage: float,
    folder: Path,
) -> ModeResult:
    """Run one mode against a fresh ``tpir run`` node; see the module docstring."""
    config_path = write_config(
        folder,
        primary.api_url,
        secondary.api_url,
        per_try=per_try,
        call_timeout=CALL_TIMEOUT_SECONDS,
        failure_threshold=FAILURE_THRESHOLD,
        open_duration=OPEN_SECONDS,
    )
    lock = threading.Lock()
    all_answered = threading.Event()
    sent_at: dict[Any, float] = {}
    answered: list[tuple[float, float, dict[str, Any]]] = []
    sending = True

    def on_reply(message: dict[str, Any], received_at: float) -> None:
        with lock:
            sent = sent_at.pop(message.get("id"), None)
            if sent is not None:
                answered.append((sent, received_at - sent, message))
            if not sending and not sent_at:
                all_answered.set()

    node = NodeProcess(config_path, folder / "node.stderr")
    try:
        node.wait_ready()
        for _ in range(5):
            node.request("call", integration=INTEGRATION, request=CHAT_REQUEST)
        node.on_reply = on_reply

        def send_one() -> None:
            with lock:
                sent_at[node.send_call()] = time.monotonic()

        fault_at = run_schedule(schedule, primary, mode, outage, send_one)
        with lock:
            sending = False
            if not sent_at:
                all_answered.set()
        all_answered.wait(DRAIN_SECONDS)
    finally:
        node.on_reply = None
        node.stop()
    heal(primary, secondary, outage)

    records = [
        _tpir_record(message, latency, sent - fault_at) for sent, latency, message in answered
    ]
    lost = f"no reply within {DRAIN_SECONDS:g} s after the last call was sent"
    with lock:
        records += [
            CallRecord(sent - fault_at, DRAIN_SECONDS, True, lost) for sent in sent_at.values()
        ]
    return ModeResult(TPIR_NAME, mode, tuple(records))


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


def _comparisons(results: list[ModeResult]) -> list[str]:
    """Return one line per mode and baseline: failed calls and max added latency side by side."""
    tpir = {result.mode: result for result in results if result.implementation == TPIR_NAME}
    lines = []
    for result in results:
        ours = tpir.get(result.mode)
        if result.implementation == TPIR_NAME or ours is None:
            continue
        if len(ours.failed) < len(result.failed):
            failed_verdict = "fewer"
        elif len(ours.failed) == len(result.failed):
            failed_verdict = "as many"
        else:
            failed_verdict = "more"
        faster = ours.max_added < result.max_added
        lines.append(
            f"- {result.mode}, {result.implementation}: failed calls {len(ours.failed)} "
            f"against {len(result.failed)} ({failed_verdict}); max added "
            f"{ours.max_added * 1000:.1f} ms against {result.max_added * 1000:.1f} ms "
            f"({'lower' if faster else 'higher'})"
        )
    return lines


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

    schedule = Schedule.of(args.rate, args.healthy, args.outage)
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
                    for fallback in FALLBACK_RULES:
                        results.append(
                            run_pybreaker(
                                primary,
                                secondary,
                                mode,
                                schedule,
                                args.per_try,
                                args.outage,
                                fallback,
                            )
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
        if result.implementation == TPIR_NAME:
            slowest = result.slowest
            print(
                f"- {result.mode}: sent {slowest.sent_at:+.3f} s after the fault, "
                f"{slowest.latency * 1000:.0f} ms: {slowest.attempts or 'no attempts'}"
            )
    comparisons = _comparisons(results)
    if comparisons:
        print("TPIR against each baseline, per mode:")
        for line in comparisons:
            print(line)
    failures = [line for result in results for line in _failures(result)]
    print("failed calls:" if failures else "failed calls: none")
    for line in failures:
        print(line)


if __name__ == "__main__":
    main()
