"""Cost of a call through the router actors, against a direct httpx call to the same server.

Run: ``python -m benchmarks.overhead [--calls 300] [--seconds 5] [--in-flight 64]``.

Two provider simulators run in their own processes on 127.0.0.1, and the integration
tree of `actors.tree` runs in a `SupervisionSystem` of this process, configured on
them with a per-try timeout of `LOAD_PER_TRY_SECONDS`. The baseline, measured in the
same run, is a direct httpx call to the primary simulator with the request body that
the OpenAI adapter sends.

- One at a time: ``--calls`` sequential calls each way, p50 and p99. The direct calls
  use one ``httpx.Client``, the routed ones ``SupervisionSystem.call``.
- ``--in-flight`` calls at once for ``--seconds``: calls per second, p50 and p99. The
  direct calls run as that many tasks on one ``httpx.AsyncClient``. The routed calls are
  driven by this process's one thespian client, which is not thread-safe: it sends
  ``--in-flight`` calls with ``send_to`` and sends a new one as each reply arrives.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import Latencies, count_attempts, machine
from benchmarks.processes import cpu_rows, group_members, load_average, process_cpu_seconds
from benchmarks.simulators import (
    LOAD_PER_TRY_SECONDS,
    SimulatorProcess,
    config_text,
    direct_body,
    simulator_pair,
)
from benchmarks.tree_client import IntegrationTree
from supervisors import SupervisionError

__all__ = [
    "direct_in_flight",
    "direct_one_at_a_time",
    "routed_in_flight",
    "routed_one_at_a_time",
]


def direct_one_at_a_time(url: str, calls: int) -> Latencies:
    """Time ``calls`` sequential POSTs of `direct_body` to ``url`` on one httpx.Client."""
    samples: list[float] = []
    failed = 0
    content = json.dumps(direct_body()).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        client.post(url, content=content, headers=headers)
        for _ in range(calls):
            started = time.monotonic()
            response = client.post(url, content=content, headers=headers)
            samples.append(time.monotonic() - started)
            failed += response.status_code != 200
    return Latencies(tuple(samples), failed)


def direct_in_flight(url: str, in_flight: int, seconds: float) -> Latencies:
    """Keep ``in_flight`` POSTs running for ``seconds`` on one httpx.AsyncClient."""
    content = json.dumps(direct_body()).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    samples: list[float] = []
    failed = 0

    async def worker(client: httpx.AsyncClient, stop_at: float) -> None:
        nonlocal failed
        while time.monotonic() < stop_at:
            started = time.monotonic()
            try:
                response = await client.post(url, content=content, headers=headers)
                failed += response.status_code != 200
            except httpx.HTTPError:
                failed += 1
            samples.append(time.monotonic() - started)

    async def run() -> float:
        limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
        async with httpx.AsyncClient(timeout=10.0, limits=limits, trust_env=False) as client:
            await client.post(url, content=content, headers=headers)
            started = time.monotonic()
            stop_at = started + seconds
            await asyncio.gather(*(worker(client, stop_at) for _ in range(in_flight)))
            return time.monotonic() - started

    elapsed = asyncio.run(run())
    return Latencies(tuple(samples), failed, len(samples) / elapsed)


def routed_one_at_a_time(tree: IntegrationTree, calls: int) -> Latencies:
    """Time ``calls`` sequential calls to the router."""
    samples: list[float] = []
    failed = 0
    tree.call()
    for _ in range(calls):
        started = time.monotonic()
        try:
            tree.call()
        except SupervisionError:
            failed += 1
        samples.append(time.monotonic() - started)
    return Latencies(tuple(samples), failed)


def routed_in_flight(tree: IntegrationTree, in_flight: int, seconds: float) -> Latencies:
    """Keep ``in_flight`` calls at the router for ``seconds``, then wait for the rest."""
    sent_at: dict[Any, float] = {}
    samples: list[float] = []
    results: list[Any] = []
    failed = 0
    started = time.monotonic()
    stop_at = started + seconds
    for _ in range(in_flight):
        sent_at[tree.send()] = time.monotonic()
    last_reply = started
    while sent_at:
        reply = tree.receive(time.monotonic() + 30.0)
        if reply is None:
            failed += len(sent_at)
            break
        begun = sent_at.pop(reply.ref, None)
        if begun is None:
            continue
        last_reply = reply.received_at
        samples.append(reply.received_at - begun)
        failed += reply.error is not None
        results.append(reply.value if reply.error is None else reply.error.details)
        if reply.received_at < stop_at:
            sent_at[tree.send()] = time.monotonic()
    rate = len(samples) / (last_reply - started)
    return Latencies(tuple(samples), failed, rate, count_attempts(results))


def _process_labels(
    tree: IntegrationTree, primary: SimulatorProcess, secondary: SimulatorProcess
) -> dict[int, str]:
    labels = {pid: path for path, pid in tree.pids().items()}
    admin = tree.system.admin_pid
    if admin is not None:
        for pid in group_members(os.getpgid(admin)):
            labels.setdefault(pid, "actor system admin" if pid == admin else "other")
    labels[os.getpid()] = "benchmark client (this process)"
    labels[primary.process.pid] = "primary simulator"
    labels[secondary.process.pid] = "secondary simulator"
    return labels


def _row(name: str, figures: Latencies, baseline: Latencies) -> str:
    rate = "" if figures.calls_per_second is None else f"{figures.calls_per_second:.0f}"
    ratio = ""
    if figures.calls_per_second is not None and baseline.calls_per_second:
        ratio = f"{figures.calls_per_second / baseline.calls_per_second:.2f}x"
    return (
        f"| {name} | {len(figures.samples)} | {figures.failed} | {figures.p50 * 1000:.2f} | "
        f"{figures.p99 * 1000:.2f} | {figures.p50 / baseline.p50:.1f}x | {rate} | {ratio} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--calls", type=int, default=300, help="sequential calls each way (default 300)"
    )
    parser.add_argument("--in-flight", type=int, default=64, help="concurrent calls (default 64)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=5.0,
        help="seconds of concurrent load each way (default 5)",
    )
    args = parser.parse_args()
    if not 1 <= args.calls <= 100_000:
        parser.error(f"--calls: invalid value {args.calls}; expected 1 to 100000")
    if not 1 <= args.in_flight <= 1000:
        parser.error(f"--in-flight: invalid value {args.in_flight}; expected 1 to 1000")
    if not 0 < args.seconds <= 120:
        parser.error(f"--seconds: invalid value {args.seconds}; expected more than 0, up to 120")

    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="tpir-bench-") as folder_name:
        folder = Path(folder_name)
        # The simulators start first, because the configuration needs their ports.
        with simulator_pair(folder) as (primary, secondary):
            url = primary.api_url + "/chat/completions"
            config = config_text(
                folder / "data",
                primary.api_url,
                secondary.api_url,
                per_try=LOAD_PER_TRY_SECONDS,
                call_timeout=2 * LOAD_PER_TRY_SECONDS,
            )
            with IntegrationTree(config, folder / "actors.log") as tree:
                direct_single = direct_one_at_a_time(url, args.calls)
                routed_single = routed_one_at_a_time(tree, args.calls)
                direct_many = direct_in_flight(url, args.in_flight, args.seconds)
                labels = _process_labels(tree, primary, secondary)
                before = {pid: process_cpu_seconds(pid) for pid in labels}
                routed_many = routed_in_flight(tree, args.in_flight, args.seconds)
                after = {pid: process_cpu_seconds(pid) for pid in labels}

    print(f"machine: {machine()}")
    print(f"load average before: {load_before}; after: {load_average()}")
    print(
        f"one at a time: {args.calls} calls each way; {args.in_flight} in flight: "
        f"{args.seconds:g} s each way"
    )
    print("| path | calls | failed | p50 ms | p99 ms | p50 / direct | calls/s | calls/s / direct |")
    print("|---|---|---|---|---|---|---|---|")
    print(_row("direct httpx, one at a time", direct_single, direct_single))
    print(_row("router, one at a time", routed_single, direct_single))
    print(_row(f"direct httpx, {args.in_flight} in flight", direct_many, direct_many))
    print(_row(f"router, {args.in_flight} in flight", routed_many, direct_many))
    print(f"attempts with {args.in_flight} in flight: {routed_many.describe_attempts()}")
    print(f"CPU time per call with {args.in_flight} in flight through the router, by process:")
    print("| process | CPU ms per call | share |")
    print("|---|---|---|")
    for row in cpu_rows(before, after, labels, len(routed_many.samples)):
        print(row)


if __name__ == "__main__":
    main()
