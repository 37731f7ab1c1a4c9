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

The module also contains the harness that `benchmarks.failover` and `benchmarks.port`
share: simulator processes, the configuration text and the pipelined tree client.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from actors.messages import Describe, IntegrationCall
from actors.names import router_path
from actors.tree import ROOT, root_children, root_flags
from benchmarks.common import machine, percentile
from supervisors import Call, LogSettings, Reply, SupervisionError, SupervisionSystem
from tpir.config import parse_config

__all__ = [
    "ANTHROPIC_MODEL",
    "CHAT_REQUEST",
    "INTEGRATION",
    "LOAD_PER_TRY_SECONDS",
    "OPENAI_MODEL",
    "REPO_ROOT",
    "IntegrationTree",
    "Latencies",
    "SimulatorProcess",
    "config_text",
    "count_attempts",
    "cpu_rows",
    "direct_body",
    "group_members",
    "is_running",
    "load_average",
    "parent_pid",
    "process_cpu_seconds",
    "simulator_pair",
]

INTEGRATION: Final = "llm_provider"
REPO_ROOT: Final = Path(__file__).resolve().parents[1]
CHAT_REQUEST: Final[dict[str, Any]] = {"messages": [{"role": "user", "content": "hello"}]}
OPENAI_MODEL: Final = "gpt-4o-mini"
ANTHROPIC_MODEL: Final = "claude-3-5-haiku-latest"
LOAD_PER_TRY_SECONDS: Final = 5.0
"""Per-try timeout for the load benchmarks. Under 64 calls in flight the simulator's own
p99 passes 0.5 s, and a shorter timeout would turn slow responses into failovers."""

_CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
_START_SECONDS: Final = 60.0
_STOP_SECONDS: Final = 10.0


def direct_body() -> dict[str, Any]:
    """Return the chat completions body that the OpenAI adapter sends for `CHAT_REQUEST`."""
    return {"model": OPENAI_MODEL, "messages": CHAT_REQUEST["messages"]}


def load_average() -> str:
    """Return the 1, 5 and 15 minute load averages as ``uptime`` prints them."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


# -- processes ---------------------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """Return the user plus system CPU seconds of ``pid``, or 0.0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def group_members(pgid: int) -> list[int]:
    """Return the running processes whose process group is ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def parent_pid(pid: int) -> int | None:
    """Return the parent's pid of ``pid``, or None when ``pid`` is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def is_running(pid: int) -> bool:
    """Return True when ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cpu_rows(
    before: dict[int, float], after: dict[int, float], labels: dict[int, str], calls: int
) -> list[str]:
    """Return Markdown table rows: CPU milliseconds per call and share, by process.

    ``before`` and ``after`` are `process_cpu_seconds` readings by pid, ``labels`` names
    each pid, and ``calls`` is the number of calls made between the readings.
    """
    spent = {pid: after[pid] - before[pid] for pid in labels}
    total = sum(spent.values())
    rows = []
    for pid, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        if seconds <= 0:
            continue
        rows.append(
            f"| {labels[pid]} | {seconds / calls * 1000:.2f} | {seconds / total * 100:.0f}% |"
        )
    rows.append(f"| all of the above | {total / calls * 1000:.2f} | 100% |")
    return rows


# -- simulators ------------------------------------------------------------------------------


class SimulatorProcess:
    """One `tpir.simulator` in its own process on 127.0.0.1, controlled over HTTP.

    Its own process keeps the server's threads from competing for this process's GIL
    with the client being measured. Use it as a context manager: leaving it stops the
    process by its pid, with SIGTERM and then SIGKILL after 5 s.
    """

    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        self.log_path = folder / f"{name}.log"
        self._port_file = folder / f"{name}.port"
        self._control: httpx.Client | None = None
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tpir.simulator",
                    "--name",
                    name,
                    "--host",
                    "127.0.0.1",
                    "--port-file",
                    str(self._port_file),
                    "--log-level",
                    "WARNING",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=REPO_ROOT,
            )
        try:
            self.port = self._wait_for_port()
        except BaseException:
            self.stop()
            raise

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + _START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.log_path.read_text(encoding="utf-8", errors="replace").strip()
                raise RuntimeError(
                    f"simulator {self.name} exited with status {self.process.returncode} "
                    f"before listening; the end of its log: {log[-500:] or '(empty)'}"
                )
            text = self._port_file.read_text(encoding="ascii") if self._port_file.exists() else ""
            if text.endswith("\n"):
                return int(text)
            time.sleep(0.02)
        raise RuntimeError(f"simulator {self.name} did not listen within {_START_SECONDS} s")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The ``/v1`` root that both LLM adapters take as ``base_url``."""
        return self.url + "/v1"

    def _client(self) -> httpx.Client:
        # Created on first use, after the actor system has forked its admin, so that no
        # actor process inherits its sockets.
        if self._control is None:
            self._control = httpx.Client(base_url=self.url, timeout=5.0, trust_env=False)
        return self._control

    def control(self, **body: Any) -> None:
        """POST ``body`` to ``/_control``, for example ``mode=503`` or ``reset=True``."""
        self._client().post("/_control", json=body).raise_for_status()

    def counts(self) -> dict[str, int]:
        """Return the request counts by path."""
        response = self._client().get("/_control")
        response.raise_for_status()
        return dict(response.json()["counts"])

    def stop(self) -> None:
        """End the process by its pid: SIGTERM, then SIGKILL after 5 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._control is not None:
            self._control.close()

    def __enter__(self) -> SimulatorProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextmanager
def simulator_pair(folder: Path) -> Iterator[tuple[SimulatorProcess, SimulatorProcess]]:
    """Start the primary (OpenAI dialect) and secondary (Anthropic) simulators."""
    with SimulatorProcess("primary", folder) as primary:
        with SimulatorProcess("secondary", folder) as secondary:
            yield primary, secondary


# -- configuration ---------------------------------------------------------------------------


def config_text(
    data_dir: Path,
    primary_url: str,
    secondary_url: str,
    *,
    per_try: float = 0.5,
    call_timeout: float = 5.0,
    failure_threshold: int = 5,
    open_duration: float = 30.0,
    log_level: str = "INFO",
) -> str:
    """Return a node configuration with one integration on the two simulators.

    ``per_try`` is each provider's per-attempt timeout and ``call_timeout`` the deadline
    of a whole call, in seconds. The breaker opens after ``failure_threshold`` failures
    in a row, and it and the outlier ejection keep the provider out for
    ``open_duration`` seconds. Everything else keeps the defaults of
    ``config/README.md``, with health checks on ``/models`` every 10 s.
    """
    return f"""
[node]
data_dir = "{data_dir}"
log_level = "{log_level}"
checkpoint_interval = 0.5

[[integrations]]
name = "{INTEGRATION}"
tier = 1
timeout = {call_timeout}

[integrations.circuit_breaker]
failure_threshold = {failure_threshold}
open_duration = {open_duration}

[integrations.retry]
max_retries = 1
initial_delay = 0.05
max_delay = 0.2

[integrations.health_check]
path = "/models"

[integrations.failover]
consecutive_failures = {failure_threshold}
base_ejection_time = {open_duration}
max_ejection_time = {open_duration}

[[integrations.providers]]
name = "openai"
kind = "openai"
role = "primary"
base_url = "{primary_url}"
model = "{OPENAI_MODEL}"
timeout = {per_try}

[[integrations.providers]]
name = "anthropic"
kind = "anthropic"
role = "secondary"
base_url = "{secondary_url}"
model = "{ANTHROPIC_MODEL}"
timeout = {per_try}
"""


# -- the tree and its pipelined client ---------------------------------------------------------


@dataclass(frozen=True)
class RoutedReply:
    """A reply of the router to one pipelined call: the call's ``ref``, value or error."""

    ref: Any
    value: Any
    error: Any
    received_at: float


class IntegrationTree:
    """The node's integration tree (`actors.tree`) in a `SupervisionSystem` of this process.

    ``config_toml`` is the configuration text; actor logs go to ``log_path``. `send`
    and `receive` pipeline calls to the router; `call` makes one call and waits.
    """

    def __init__(self, config_toml: str, log_path: Path) -> None:
        self.config = parse_config(config_toml, environ={"HOME": str(log_path.parent)})
        self.system = SupervisionSystem(
            log_settings=LogSettings(level=self.config.node.log_level, path=str(log_path))
        )
        self._refs = itertools.count()
        self.router = ""

    def __enter__(self) -> IntegrationTree:
        self.system.start()
        try:
            self.system.start_root(ROOT, root_flags(), root_children(self.config))
            self.router = router_path(INTEGRATION, root=ROOT)
            self.system.call(self.router, Describe(), timeout=_START_SECONDS)
        except BaseException:
            self.system.stop(timeout=_STOP_SECONDS)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.system.stop(timeout=_STOP_SECONDS)

    def pids(self) -> dict[str, int]:
        """Return the pid of every actor of the tree, keyed by path."""
        return self.system.pids()

    def call(self, timeout: float = 10.0) -> Any:
        """Make one call to the router and return its result; raises SupervisionError."""
        return self.system.call(
            self.router,
            IntegrationCall(dict(CHAT_REQUEST), idempotency_key=uuid.uuid4().hex),
            timeout=timeout,
        )

    def send(self) -> Any:
        """Send one call to the router without waiting, and return its reference."""
        ref = ("bench", next(self._refs))
        call = IntegrationCall(dict(CHAT_REQUEST), idempotency_key=uuid.uuid4().hex)
        self.system.send_to(self.router, Call(ref, call))
        return ref

    def receive(self, until: float) -> RoutedReply | None:
        """Return the next reply to a call made with `send`, or None at ``until``.

        ``until`` is a `time.monotonic` value. Other messages are dropped.
        """
        while True:
            # NOTE: SupervisionSystem has no public call to collect replies to calls sent
            # with send_to, so this uses its private receive loop.
            message = self.system._listen(until)
            if message is None:
                return None
            if isinstance(message, Reply) and isinstance(message.ref, tuple):
                if message.ref[:1] == ("bench",):
                    return RoutedReply(message.ref, message.value, message.error, time.monotonic())


# -- measurements ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Latencies:
    """Call durations in seconds, the calls per second when they ran concurrently, and
    for routed calls the number of attempts by provider and outcome (``openai ok``)."""

    samples: tuple[float, ...]
    failed: int = 0
    calls_per_second: float | None = None
    attempts: tuple[tuple[str, int], ...] = ()

    def describe_attempts(self) -> str:
        """Return the attempt counts as text, for example ``openai ok 510, ...``."""
        return ", ".join(f"{name} {count}" for name, count in self.attempts) or "none"

    @property
    def p50(self) -> float:
        return percentile(list(self.samples), 0.50)

    @property
    def p99(self) -> float:
        return percentile(list(self.samples), 0.99)


def count_attempts(results: Iterable[Any]) -> tuple[tuple[str, int], ...]:
    """Count the attempts listed in router results (or error details) by provider and
    outcome, most frequent first."""
    counts: Counter[str] = Counter()
    for result in results:
        attempts = result.get("attempts", []) if isinstance(result, dict) else []
        for attempt in attempts:
            counts[f"{attempt.get('provider')} {attempt.get('outcome')}"] += 1
    return tuple(counts.most_common())


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
