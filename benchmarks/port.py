"""Cost of a ``call`` through the node's port, against direct httpx and LiteLLM's Router.

Run: ``python -m benchmarks.port [--calls 300] [--seconds 5] [--in-flight 64]
[--litellm-python PATH]``.

Two provider simulators run in their own processes on 127.0.0.1. Three clients call
the primary (OpenAI dialect) with the same chat request, in this order:

- direct: httpx straight to the simulator, the baseline measured in the same run
  (one ``httpx.Client`` one call at a time, one ``httpx.AsyncClient`` with
  ``--in-flight`` tasks);
- port: a ``tpir run`` node started by this script, spoken to as erlmcp does, with
  length-prefixed MessagePack frames on its stdin and stdout (`tpir.bridge.framing`).
  A reader thread collects replies by id and sends the next request as each reply
  arrives, so ``--in-flight`` requests are always pending;
- LiteLLM: ``litellm.Router`` with the primary as an ``openai/`` deployment and the
  secondary as an ``anthropic/`` fallback, both with ``api_base`` on 127.0.0.1. It runs
  in a child process under ``--litellm-python`` (default: this interpreter), so that
  LiteLLM can live in a virtual environment of its own whose dependencies leave this
  one unchanged. The child sets ``LITELLM_LOCAL_MODEL_COST_MAP`` so that LiteLLM does
  not download its model price list, and an audit hook rejects every connection and
  name lookup that is not for the loopback interface. It reports what it rejected.

Each client makes ``--calls`` calls one at a time (p50, p99), then keeps
``--in-flight`` calls pending for ``--seconds`` (p50, p99, calls per second). Added
latency is a client's p50 minus the direct p50. Targets: the port adds at most half of
LiteLLM's added latency, and serves at least 1,000 calls a second with 64 in flight.

While the port runs with ``--in-flight`` calls, the script reads the CPU time of every
process of the node from ``/proc`` and prints the CPU milliseconds each process spent
per call, which shows the actor hop that dominates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Final

from benchmarks.common import Latencies, count_attempts, machine
from benchmarks.node_process import REPLY_SECONDS, NodeProcess
from benchmarks.overhead import direct_in_flight, direct_one_at_a_time
from benchmarks.processes import (
    cpu_rows,
    load_average,
    process_cpu_seconds,
)
from benchmarks.simulators import (
    ANTHROPIC_MODEL,
    CHAT_REQUEST,
    INTEGRATION,
    LOAD_PER_TRY_SECONDS,
    OPENAI_MODEL,
    REPO_ROOT,
    simulator_pair,
    write_config,
)

__all__ = ["NodeProcess", "litellm_worker", "port_in_flight", "port_one_at_a_time"]

_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})


def port_one_at_a_time(node: NodeProcess, calls: int) -> Latencies:
    """Time ``calls`` sequential ``call`` requests through the port."""
    samples: list[float] = []
    failed = 0
    for _ in range(calls + 1):
        started = time.monotonic()
        reply = node.request(
            "call",
            integration=INTEGRATION,
            request=CHAT_REQUEST,
            idempotency_key=uuid.uuid4().hex,
        )
        samples.append(time.monotonic() - started)
        failed += reply.get("ok") is not True
    return Latencies(tuple(samples[1:]), failed)


def port_in_flight(node: NodeProcess, in_flight: int, seconds: float) -> Latencies:
    """Keep ``in_flight`` calls pending at the port for ``seconds``, then wait for the rest."""
    lock = threading.Lock()
    done = threading.Event()
    sent_at: dict[Any, float] = {}
    samples: list[float] = []
    results: list[Any] = []
    failed = 0
    stop_at = 0.0
    last_reply = 0.0

    def on_reply(message: dict[str, Any], received_at: float) -> None:
        nonlocal failed, last_reply
        with lock:
            begun = sent_at.pop(message.get("id"), None)
            if begun is None:
                return
            samples.append(received_at - begun)
            failed += message.get("ok") is not True
            results.append(message.get("result") or (message.get("error") or {}).get("details"))
            last_reply = received_at
            if received_at < stop_at:
                sent_at[node.send_call()] = time.monotonic()
            elif not sent_at:
                done.set()

    node.on_reply = on_reply
    started = time.monotonic()
    stop_at = started + seconds
    try:
        for _ in range(in_flight):
            with lock:
                sent_at[node.send_call()] = time.monotonic()
        if not done.wait(seconds + REPLY_SECONDS):
            with lock:
                failed += len(sent_at)
    finally:
        node.on_reply = None
    rate = len(samples) / (last_reply - started)
    return Latencies(tuple(samples), failed, rate, count_attempts(results))


# -- LiteLLM, in its own interpreter -------------------------------------------------------


def _install_loopback_guard(rejected: list[str]) -> None:
    """Reject, through an audit hook, every connect and name lookup off the loopback."""

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "socket.getaddrinfo":
            host = args[0]
            if isinstance(host, bytes):
                host = host.decode("ascii", "replace")
            if host is not None and host not in _LOOPBACK_HOSTS:
                rejected.append(f"name lookup of {host}")
                raise PermissionError(f"benchmark: lookup of {host} rejected (loopback only)")
        elif event == "socket.connect":
            address = args[1]
            if isinstance(address, tuple) and address[0] not in _LOOPBACK_HOSTS:
                rejected.append(f"connect to {address[0]}:{address[1]}")
                raise PermissionError(
                    f"benchmark: connect to {address[0]} rejected (loopback only)"
                )

    sys.addaudithook(hook)


def litellm_worker(
    primary_url: str, secondary_url: str, calls: int, in_flight: int, seconds: float
) -> dict[str, Any]:
    """Measure LiteLLM's Router in this process; return the figures as JSON-ready data."""
    rejected: list[str] = []
    _install_loopback_guard(rejected)
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    from importlib.metadata import version

    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    router = litellm.Router(
        model_list=[
            {
                "model_name": "chat",
                "litellm_params": {
                    "model": f"openai/{OPENAI_MODEL}",
                    "api_base": primary_url + "/v1",
                    "api_key": "unused-by-the-simulator",
                },
            },
            {
                "model_name": "chat-secondary",
                "litellm_params": {
                    "model": f"anthropic/{ANTHROPIC_MODEL}",
                    "api_base": secondary_url + "/v1/messages",
                    "api_key": "unused-by-the-simulator",
                },
            },
        ],
        fallbacks=[{"chat": ["chat-secondary"]}],
        num_retries=1,
        timeout=5.0,
    )
    messages = CHAT_REQUEST["messages"]

    single: list[float] = []
    failed_single = 0
    for index in range(calls + 1):
        started = time.monotonic()
        try:
            router.completion(model="chat", messages=messages)
        except Exception:  # noqa: BLE001 - any LiteLLM error counts as a failed call
            failed_single += 1
        if index:
            single.append(time.monotonic() - started)

    many: list[float] = []
    failed_many = 0

    async def worker(stop_at: float) -> None:
        nonlocal failed_many
        while time.monotonic() < stop_at:
            started = time.monotonic()
            try:
                await router.acompletion(model="chat", messages=messages)
            except Exception:  # noqa: BLE001 - any LiteLLM error counts as a failed call
                failed_many += 1
            many.append(time.monotonic() - started)

    async def run() -> float:
        await router.acompletion(model="chat", messages=messages)
        started = time.monotonic()
        await asyncio.gather(*(worker(started + seconds) for _ in range(in_flight)))
        return time.monotonic() - started

    elapsed = asyncio.run(run())
    return {
        "version": version("litellm"),
        "single": single,
        "failed_single": failed_single,
        "many": many,
        "failed_many": failed_many,
        "calls_per_second": len(many) / elapsed,
        "rejected": sorted(set(rejected)),
    }


def run_litellm(
    python: str, primary_url: str, secondary_url: str, args: argparse.Namespace, folder: Path
) -> tuple[Latencies, Latencies, str, list[str]] | str:
    """Run `litellm_worker` under ``python``; return its figures, or why it did not run."""
    command = [
        python,
        "-m",
        "benchmarks.port",
        "--litellm-worker",
        primary_url,
        secondary_url,
        "--calls",
        str(args.calls),
        "--in-flight",
        str(args.in_flight),
        "--seconds",
        str(args.seconds),
    ]
    # Only what the interpreter needs: no credentials from this environment reach it.
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(folder),
        "PYTHONPATH": str(REPO_ROOT),
    }
    try:
        finished = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=args.seconds + args.calls * 2 + 120,
        )
    except FileNotFoundError:
        return f"{python} not found"
    except subprocess.TimeoutExpired:
        return f"the LiteLLM process did not finish within {args.seconds + args.calls * 2 + 120} s"
    if finished.returncode != 0:
        last = finished.stderr.strip().splitlines()[-1:] or ["no output"]
        return f"the LiteLLM process failed with status {finished.returncode}: {last[0]}"
    data = json.loads(finished.stdout.strip().splitlines()[-1])
    single = Latencies(tuple(data["single"]), data["failed_single"])
    many = Latencies(tuple(data["many"]), data["failed_many"], data["calls_per_second"])
    return single, many, data["version"], data["rejected"]


# -- report ------------------------------------------------------------------------------------


def _row(name: str, figures: Latencies, direct: Latencies) -> str:
    rate = "" if figures.calls_per_second is None else f"{figures.calls_per_second:.0f}"
    return (
        f"| {name} | {len(figures.samples)} | {figures.failed} | {figures.p50 * 1000:.2f} | "
        f"{figures.p99 * 1000:.2f} | {(figures.p50 - direct.p50) * 1000:+.2f} | {rate} |"
    )


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--calls", type=int, default=300, help="sequential calls per client (default 300)"
    )
    parser.add_argument("--in-flight", type=int, default=64, help="concurrent calls (default 64)")
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="seconds of concurrent load (default 5)"
    )
    parser.add_argument(
        "--litellm-python",
        default=sys.executable,
        help="interpreter with LiteLLM installed (default: this one)",
    )
    parser.add_argument(
        "--litellm-worker",
        nargs=2,
        metavar=("PRIMARY_URL", "SECONDARY_URL"),
        help=argparse.SUPPRESS,
    )
    args = parser.parse_args()
    if not 1 <= args.calls <= 100_000:
        parser.error(f"--calls: invalid value {args.calls}; expected 1 to 100000")
    if not 1 <= args.in_flight <= 1000:
        parser.error(f"--in-flight: invalid value {args.in_flight}; expected 1 to 1000")
    if not 0 < args.seconds <= 120:
        parser.error(f"--seconds: invalid value {args.seconds}; expected more than 0, up to 120")
    return args


def main() -> None:
    args = _parse_args()
    if args.litellm_worker:
        primary_url, secondary_url = args.litellm_worker
        figures = litellm_worker(
            primary_url, secondary_url, args.calls, args.in_flight, args.seconds
        )
        print(json.dumps(figures))
        return

    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="tpir-bench-") as folder_name:
        folder = Path(folder_name)
        with simulator_pair(folder) as (primary, secondary):
            url = primary.api_url + "/chat/completions"
            direct_single = direct_one_at_a_time(url, args.calls)
            direct_many = direct_in_flight(url, args.in_flight, args.seconds)

            config_path = write_config(
                folder,
                primary.api_url,
                secondary.api_url,
                per_try=LOAD_PER_TRY_SECONDS,
                call_timeout=2 * LOAD_PER_TRY_SECONDS,
            )
            node = NodeProcess(config_path, folder / "node.stderr")
            try:
                node.wait_ready()
                port_single = port_one_at_a_time(node, args.calls)
                labels = dict(node.pids)
                labels[os.getpid()] = "benchmark client (this process)"
                labels[primary.process.pid] = "primary simulator"
                labels[secondary.process.pid] = "secondary simulator"
                before = {pid: process_cpu_seconds(pid) for pid in labels}
                port_many = port_in_flight(node, args.in_flight, args.seconds)
                after = {pid: process_cpu_seconds(pid) for pid in labels}
            finally:
                killed = node.stop()
            litellm = run_litellm(args.litellm_python, primary.url, secondary.url, args, folder)

    print(f"machine: {machine()}")
    print(f"load average before: {load_before}; after: {load_average()}")
    print(
        f"one at a time: {args.calls} calls per client; {args.in_flight} in flight: "
        f"{args.seconds:g} s per client"
    )
    print("| client | calls | failed | p50 ms | p99 ms | p50 added ms | calls/s |")
    print("|---|---|---|---|---|---|---|")
    print(_row("direct httpx, one at a time", direct_single, direct_single))
    print(_row("port, one at a time", port_single, direct_single))
    litellm_note = ""
    if isinstance(litellm, str):
        litellm_note = f"LiteLLM not measured: {litellm}"
    else:
        litellm_single, litellm_many, litellm_version, rejected = litellm
        print(
            _row(f"LiteLLM {litellm_version} Router, one at a time", litellm_single, direct_single)
        )
    print(_row(f"direct httpx, {args.in_flight} in flight", direct_many, direct_many))
    print(_row(f"port, {args.in_flight} in flight", port_many, direct_many))
    if not isinstance(litellm, str):
        print(_row(f"LiteLLM Router, {args.in_flight} in flight", litellm_many, direct_many))
        litellm_note = "LiteLLM's rejected off-loopback attempts: " + (
            "; ".join(rejected) or "none"
        )
        port_added = port_single.p50 - direct_single.p50
        litellm_added = litellm_single.p50 - direct_single.p50
        print(
            f"added latency one at a time, port / LiteLLM: {port_added / litellm_added:.2f} "
            "(target at most 0.50)"
        )
    print(litellm_note)
    rate = port_many.calls_per_second or 0.0
    print(
        f"port calls/s with {args.in_flight} in flight: {rate:.0f} (target at least 1000); "
        f"direct: {direct_many.calls_per_second:.0f}"
    )
    print(f"port attempts with {args.in_flight} in flight: {port_many.describe_attempts()}")
    if killed:
        print(f"node processes that had to be killed: {killed}")
    print(f"CPU time per call with {args.in_flight} in flight through the port, by process:")
    print("| process | CPU ms per call | share |")
    print("|---|---|---|")
    for row in cpu_rows(before, after, labels, len(port_many.samples)):
        print(row)


if __name__ == "__main__":
    main()
