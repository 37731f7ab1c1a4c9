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
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import msgpack

from benchmarks.common import machine
from benchmarks.overhead import (
    ANTHROPIC_MODEL,
    CHAT_REQUEST,
    INTEGRATION,
    LOAD_PER_TRY_SECONDS,
    OPENAI_MODEL,
    REPO_ROOT,
    Latencies,
    config_text,
    count_attempts,
    cpu_rows,
    direct_in_flight,
    direct_one_at_a_time,
    group_members,
    is_running,
    load_average,
    parent_pid,
    process_cpu_seconds,
    simulator_pair,
)
from tpir.bridge.framing import FrameError, FrameReader, FrameWriter

__all__ = ["NodeProcess", "litellm_worker", "port_in_flight", "port_one_at_a_time"]

_START_SECONDS: Final = 90.0
_REPLY_SECONDS: Final = 30.0
_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})


def _tail(path: Path, lines: int = 5) -> str:
    # The log sits in a temporary folder that is gone once the error propagates.
    text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return " | ".join(text[-lines:]) or "(empty)"


def _tree_paths(node: dict[str, Any]) -> dict[int, str]:
    """Return path by pid for every supervisor and worker in a ``tree`` result."""
    found = {node["pid"]: node["path"]} if node.get("pid") else {}
    for child in node.get("children", []):
        nested = child.get("supervisor")
        if isinstance(nested, dict) and "path" in nested:
            found |= _tree_paths(nested)
        elif child.get("pid"):
            found[child["pid"]] = f"{node['path']}/{child['id']}"
    return found


class NodeProcess:
    """One ``tpir run`` process, spoken to through frames on its stdin and stdout.

    ``on_reply`` is called on the reader thread with each reply map and the
    `time.monotonic` time it was read. `stop` ends the node by closing its input, then
    kills by pid whatever of it is left after 10 s.
    """

    def __init__(self, config_path: Path, stderr_path: Path) -> None:
        self.stderr_path = stderr_path
        with stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tpir.cli", "run", "--config", str(config_path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=REPO_ROOT,
            )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._writer = FrameWriter(self.process.stdin)
        self._ids = iter(range(1, 2**62))
        self._lock = threading.Lock()
        self._waiting: dict[Any, threading.Event] = {}
        self._replies: dict[Any, dict[str, Any]] = {}
        self.on_reply: Callable[[dict[str, Any], float], None] | None = None
        self.pids: dict[int, str] = {self.process.pid: "node main process"}
        self._reader = threading.Thread(target=self._read, name="port-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        reader = FrameReader(self.process.stdout)
        while True:
            try:
                payload = reader.read_frame()
            except FrameError:
                continue
            except (OSError, ValueError):
                return
            if payload is None:
                return
            received_at = time.monotonic()
            message = msgpack.unpackb(payload, raw=False, strict_map_key=False)
            if "event" in message:
                continue
            with self._lock:
                event = self._waiting.pop(message.get("id"), None)
                if event is not None:
                    self._replies[message.get("id")] = message
            if event is not None:
                event.set()
            elif self.on_reply is not None:
                self.on_reply(message, received_at)

    def send(self, op: str, **args: Any) -> int:
        """Send one request without waiting; return its id."""
        request_id = next(self._ids)
        self._writer.write_frame(
            msgpack.packb({"id": request_id, "op": op, **args}, use_bin_type=True)
        )
        return request_id

    def send_call(self) -> int:
        """Send one ``call`` of `CHAT_REQUEST` with its own idempotency key; return its id."""
        return self.send(
            "call",
            integration=INTEGRATION,
            request=CHAT_REQUEST,
            idempotency_key=uuid.uuid4().hex,
        )

    def request(self, op: str, timeout: float = _REPLY_SECONDS, **args: Any) -> dict[str, Any]:
        """Send one request and return its reply map; raises TimeoutError."""
        event = threading.Event()
        request_id = next(self._ids)
        with self._lock:
            self._waiting[request_id] = event
        self._writer.write_frame(
            msgpack.packb({"id": request_id, "op": op, **args}, use_bin_type=True)
        )
        if not event.wait(timeout):
            with self._lock:
                self._waiting.pop(request_id, None)
            raise TimeoutError(f"no reply to {op!r} from the node within {timeout:g} s")
        with self._lock:
            return self._replies.pop(request_id)

    def wait_ready(self) -> None:
        """Wait until the node replies to ``ping``, then record the pids of its processes."""
        deadline = time.monotonic() + _START_SECONDS
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the node exited with status {self.process.returncode} before it replied "
                    f"to ping; the end of its log: {_tail(self.stderr_path)}"
                )
            try:
                reply = self.request("ping", timeout=max(0.1, deadline - time.monotonic()))
                break
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise
        if reply.get("result") != "pong":
            raise RuntimeError(f"unexpected reply to ping: {reply!r}")
        tree = self.request("tree")["result"]
        self.pids |= _tree_paths(tree)
        admin = parent_pid(tree["pid"])
        if admin is not None:
            for pid in group_members(os.getpgid(admin)):
                self.pids.setdefault(pid, "actor system admin" if pid == admin else "other")

    def stop(self) -> list[int]:
        """End the node and every process of it; return the pids that had to be killed."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        # The node kills its actor processes as it exits; wait for that, then kill the
        # rest by pid.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(is_running(pid) for pid in self.pids):
            time.sleep(0.02)
        killed = [pid for pid in self.pids if is_running(pid)]
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        self._reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return killed


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
        if not done.wait(seconds + _REPLY_SECONDS):
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

            config_path = folder / "node.toml"
            config_path.write_text(
                config_text(
                    folder / "data",
                    primary.api_url,
                    secondary.api_url,
                    per_try=LOAD_PER_TRY_SECONDS,
                    call_timeout=2 * LOAD_PER_TRY_SECONDS,
                ),
                encoding="utf-8",
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
