"""``tpir demo``: TPIR keeps calls working while their provider fails, on this machine alone.

The demo starts two provider simulators on 127.0.0.1 (OpenAI and Anthropic dialects)
and points the embedded default configuration at them. It starts a node with
``tpir run --config FILE`` as an Erlang port: from a real Erlang VM through
``erlang/tpir_port.erl`` when ``erl`` and ``erlc`` are on PATH, otherwise from a Python
driver that speaks the same frames. Then it sends steady traffic, makes the primary
provider fail in several ways and kills actors with SIGKILL (`tpir.demo.scenario`). It
prints each phase and notable event, then the calls per phase, the live supervision tree
and one summary line.

Exit status: 0 when every call was answered and no call failed at the caller while a
healthy provider existed, and no process of the node had to be killed at the end;
1 otherwise; 2 when ``--driver erlang`` is asked for but cannot run. Nothing leaves
127.0.0.1, and every process the demo starts ends before it exits.

Run it as ``tpir demo`` or ``python -m tpir.demo.main``.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, TextIO

import click

if TYPE_CHECKING:
    from tpir.demo.drivers import NodeDriver, Outcome
    from tpir.demo.report import Console
    from tpir.demo.traffic import CallRecord
    from tpir.simulator import ProviderSimulator

__all__ = [
    "CALL_TIMEOUT_SECONDS",
    "DRIVER_CHOICES",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "RATE",
    "demo_command",
    "run_demo",
]

logger = logging.getLogger(__name__)

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2

DRIVER_CHOICES: Final = ("auto", "erlang", "python")
RATE: Final = 20.0
"""Calls per second that the demo's traffic sends."""

CALL_TIMEOUT_SECONDS: Final = 10.0
"""Seconds the caller waits for one call. The node replies within the integration's
timeout (3 s in the embedded default) plus its own grace of 1 s, so only a stuck node
reaches this limit."""

_END_SECONDS: Final = 10.0
_LOG_TAIL_LINES: Final = 20


@click.command("demo")
@click.option(
    "--driver",
    type=click.Choice(DRIVER_CHOICES),
    default="auto",
    show_default=True,
    help="How the node runs as a port: 'erlang' from a real Erlang VM through "
    "erlang/tpir_port.erl, 'python' from a Python driver speaking the same frames, "
    "'auto' erlang when erl and erlc are on PATH.",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File for the logs of the node and the Erlang VM. Default: a temporary file, "
    "deleted at the end, whose last lines are printed when the demo fails.",
)
def demo_command(driver: str, log_file: Path | None) -> None:
    """Run TPIR against local provider servers, make them fail, and show what it does.

    Takes about 45 s and contacts nothing beyond 127.0.0.1. Exits 0 when no call failed
    while a healthy provider existed.
    """
    logging.basicConfig(level=logging.WARNING, format="tpir demo: %(levelname)s %(message)s")
    sys.exit(run_demo(sys.stdout, driver=driver, log_path=log_file))


def run_demo(out: TextIO, *, driver: str = "auto", log_path: Path | None = None) -> int:
    """Run the demo, printing to ``out``; return the exit status of the module docstring."""
    from tpir.demo.erlang_driver import erlang_missing_reason
    from tpir.demo.report import Console

    console = Console(out)
    if driver not in DRIVER_CHOICES:
        raise ValueError(f"driver: {driver!r} is not one of {', '.join(DRIVER_CHOICES)}")
    missing = erlang_missing_reason()
    if driver == "erlang" and missing is not None:
        console.say(f"tpir demo: the Erlang driver cannot run: {missing}")
        return EXIT_USAGE
    use_erlang = driver == "erlang" or (driver == "auto" and missing is None)

    with ExitStack() as stack:
        work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tpir-demo-")))
        log_file = log_path if log_path is not None else work_dir / "node.log"
        log_stream = stack.enter_context(log_file.open("wb"))
        status = _run_in(stack, console, work_dir, log_stream, use_erlang, missing)
        if status != EXIT_OK:
            log_stream.flush()
            _print_log_tail(console, log_file, keep=log_path is not None)
        return status
    raise AssertionError("unreachable: the with block returns")


def _run_in(
    stack: ExitStack,
    console: Console,
    work_dir: Path,
    log_stream: IO[bytes],
    use_erlang: bool,
    erlang_missing: str | None,
) -> int:
    """Start the simulators and the node, then run the demo; return the exit status."""
    from tpir.demo.config_file import DEMO_INTEGRATION, demo_config, write_config
    from tpir.demo.drivers import DriverError, PythonPortDriver
    from tpir.demo.erlang_driver import ErlangPortDriver
    from tpir.demo.scenario import serve_normally
    from tpir.simulator import ProviderSimulator

    console.say("tpir demo: TPIR keeps calls working while their provider fails (127.0.0.1 only)")
    primary = ProviderSimulator("openai").start()
    stack.callback(primary.stop)
    secondary = ProviderSimulator("anthropic").start()
    stack.callback(secondary.stop)
    for simulator in (primary, secondary):
        serve_normally(simulator)
    config = demo_config(primary.api_url, secondary.api_url, work_dir / "data")
    config_path = write_config(config, work_dir / "node.toml")
    console.say(
        f"providers: openai (primary) on {primary.api_url}, "
        f"anthropic (secondary) on {secondary.api_url}"
    )

    node_command = [sys.executable, "-m", "tpir.cli", "run", "--config", str(config_path)]
    env = _node_environment()
    node_driver: NodeDriver
    if use_erlang:
        node_driver = ErlangPortDriver(node_command, env, log_stream, work_dir)
    else:
        node_driver = PythonPortDriver(node_command, env, log_stream)
    processes = _NodeProcesses(node_driver)
    stack.callback(processes.end)

    started = time.monotonic()
    try:
        node_driver.start()
    except DriverError as exc:
        console.say(f"tpir demo: the node did not start: {exc}")
        return EXIT_FAILED
    processes.record_node(node_driver.node_pid())
    reason = "" if use_erlang or erlang_missing is None else f" ({erlang_missing})"
    console.say(f"driver: {node_driver.description}{reason}")
    console.say(
        f"node: ready in {time.monotonic() - started:.1f} s as pid {node_driver.node_pid()}, "
        f"configuration {config.source}"
    )
    return _drive(console, node_driver, processes, DEMO_INTEGRATION, primary, secondary)


def _drive(
    console: Console,
    node_driver: NodeDriver,
    processes: _NodeProcesses,
    integration: str,
    primary: ProviderSimulator,
    secondary: ProviderSimulator,
) -> int:
    """Run the phases with traffic on a started node, then print the results."""
    from tpir.demo.availability import ProviderTimeline
    from tpir.demo.report import EventLog, summarize
    from tpir.demo.scenario import Scenario
    from tpir.demo.traffic import Traffic
    from tpir.node.render import render_tree

    events = EventLog(console)
    node_driver.set_event_handler(events.handle)
    subscribed = node_driver.subscribe()
    if not subscribed.ok:
        console.say(f"warning: subscribing to events failed: {subscribed.code}")
    processes.record_tree(node_driver.request("tree").value)

    timeline = ProviderTimeline([primary.name, secondary.name])

    def on_resend(record: CallRecord, outcome: Outcome) -> None:
        console.line(
            f"  call {record.number} failed with {outcome.code} (an actor died holding it); "
            "the caller resends it with the same idempotency key"
        )

    traffic = Traffic(
        node_driver,
        integration,
        rate=RATE,
        call_timeout=CALL_TIMEOUT_SECONDS,
        on_resend=on_resend,
    )
    scenario = Scenario(
        driver=node_driver,
        integration=integration,
        primary=primary,
        secondary=secondary,
        timeline=timeline,
        console=console,
        events=events,
        traffic=traffic,
        on_tree=processes.record_tree,
    )
    console.say(
        f"traffic: {RATE:g} calls/s to {integration}, each with its own idempotency key, "
        f"through {len(scenario.phases)} phases"
    )
    console.say()
    console.mark_start()
    traffic.start()
    try:
        scenario.run()
    finally:
        traffic.stop()
    in_flight = traffic.in_flight()
    console.line(f"traffic stopped; waiting for {in_flight} call{'' if in_flight == 1 else 's'}")
    traffic.wait_answered(CALL_TIMEOUT_SECONDS + 2.0)
    events.mute()
    scenario.recover_all()

    summary = summarize(traffic.records, scenario.titles, timeline, [primary.name, secondary.name])
    console.say()
    for line in summary.lines:
        console.say(line)

    tree = node_driver.request("tree")
    restarts = 0
    console.say()
    if tree.ok and isinstance(tree.value, dict):
        processes.record_tree(tree.value)
        restarts = _restart_total(tree.value)
        console.say("the live supervision tree now:")
        for line in render_tree(tree.value):
            console.say("  " + line)
    else:
        console.say(f"the tree request failed: {tree.code}: {tree.message}")
    for path in events.missing_restarts():
        console.say(f"no restart of {path} was reported after its SIGKILL")

    leftover = processes.end()
    if leftover:
        pids = ", ".join(str(pid) for pid in leftover)
        console.say(f"{len(leftover)} node processes outlived the node and were killed: {pids}")
    passed = summary.passed and not leftover
    console.say()
    console.say(
        f"demo {'passed' if passed else 'FAILED'}: {summary.sent} calls sent, "
        f"{summary.answered} answered, {summary.failed} failed at the caller "
        f"({summary.unexcused} while a healthy provider existed), "
        f"{summary.failovers} failovers, {events.breaker_transitions} breaker transitions, "
        f"{restarts} restarts, {summary.resent} resent by the caller after an actor died"
    )
    return EXIT_OK if passed else EXIT_FAILED


class _NodeProcesses:
    """Every process of the node that the demo has seen, and ending them at the end."""

    def __init__(self, driver: NodeDriver) -> None:
        self._driver = driver
        self.pids: set[int] = set()
        self._leftover: list[int] | None = None

    def record_node(self, pid: int) -> None:
        self.pids.add(pid)

    def record_tree(self, tree: Any) -> None:
        """Add the actors of a ``tree`` result and the actor system's process group."""
        from tpir.demo.processes import group_members, parent_pid, tree_pids

        if not isinstance(tree, dict):
            return
        self.pids |= tree_pids(tree)
        root_pid = tree.get("pid")
        admin = parent_pid(root_pid) if isinstance(root_pid, int) else None
        if admin is None:
            return
        try:
            group = os.getpgid(admin)
        except ProcessLookupError:
            return
        # The admin leads its own group; never collect the group this process is in.
        if group != os.getpgrp():
            self.pids |= group_members(group)

    def end(self) -> list[int]:
        """Close the driver, wait for every recorded process to end, and kill the rest by
        pid; return the pids that had to be killed. Later calls return the same list."""
        from tpir.demo.processes import kill_by_pid, wait_all_ended

        if self._leftover is not None:
            return self._leftover
        self._driver.close()
        self.pids |= self._driver.process_ids()
        leftover = wait_all_ended(self.pids, _END_SECONDS)
        kill_by_pid(leftover)
        wait_all_ended(leftover, _END_SECONDS)
        self._leftover = leftover
        return leftover


def _node_environment() -> dict[str, str]:
    """Return the node's environment: ours, with this tree's packages importable first."""
    import tpir

    env = dict(os.environ)
    package_root = str(Path(tpir.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (package_root, env.get("PYTHONPATH", "")) if part
    )
    return env


def _restart_total(node: dict[str, Any]) -> int:
    total = 0
    for child in node.get("children", []):
        restarts = child.get("restarts")
        total += restarts if isinstance(restarts, int) else 0
        nested = child.get("supervisor")
        if isinstance(nested, dict):
            total += _restart_total(nested)
    return total


def _print_log_tail(console: Console, log_file: Path, *, keep: bool) -> None:
    try:
        lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        console.say(f"the node's log {log_file} cannot be read: {exc}")
        return
    where = f" (all of it in {log_file})" if keep else ""
    console.say(f"last lines of the node's log{where}:")
    for line in lines[-_LOG_TAIL_LINES:]:
        console.say("  " + line)


if __name__ == "__main__":
    demo_command()
