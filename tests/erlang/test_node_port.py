"""A real TPIR node driven from a real Erlang VM through erlang/tpir_port.erl.

A module fixture compiles tpir_port.erl and the check module tpir_node_check.erl with erlc.
Each test starts two provider simulators on 127.0.0.1, writes a node configuration that
points at them, and runs one case of the check module in a fresh ``erl -noshell``. The
case runs tpir_port under its own supervisor, which starts ``tpir run --config FILE`` as
the port program, and prints CHECK lines that the test asserts on.

The test learns every process of every node the case starts: the case prints the node's
main process and the pids of its ``tree`` result, then waits while the test adds the
actor system's admin and its process group. When the VM has halted, each of these pids
must be gone; any that is not is killed by pid and fails the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.processes import group_members, is_running, wait_all_dead
from tpir.simulator import ProviderSimulator

pytestmark = [
    pytest.mark.erlang,
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("erl") is None or shutil.which("erlc") is None,
        reason="erl and erlc are not on PATH",
    ),
]

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIENT_SOURCE = REPO_ROOT / "erlang" / "tpir_port.erl"
CHECK_SOURCE = Path(__file__).with_name("tpir_node_check.erl")
# The pipelined case sends 10,000 calls through the node's actors. That took 132 s on 2
# cores shared with other test runs before messages to one actor went in batches, and
# 50 s after. The other cases take seconds.
CASE_TIMEOUT_S = 400.0
CLOSE_LIMIT_S = 2.0
# Seconds a healthy primary takes per call in the cases that need calls in flight.
SLOW_CALL_S = 1.0


@dataclass
class NodeSeen:
    """A node that a case started: its main process and the actor pids of its tree."""

    tag: str
    os_pid: int
    tree_pids: set[int]


@dataclass
class CaseOutput:
    """What one run of the check module printed, and what the test saw of its nodes."""

    returncode: int | None = None
    checks: dict[str, str] = field(default_factory=dict)
    nodes: list[NodeSeen] = field(default_factory=list)
    known_pids: set[int] = field(default_factory=set)
    closing_at: float | None = None
    running_after_close: list[int] | None = None
    close_seconds: float | None = None
    leftover: list[int] = field(default_factory=list)
    done: bool = False
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture(scope="module")
def beam_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("beam")
    subprocess.run(
        ["erlc", "-Wall", "-o", str(output), str(CLIENT_SOURCE), str(CHECK_SOURCE)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return output


@pytest.fixture
def simulators() -> Iterator[tuple[ProviderSimulator, ProviderSimulator]]:
    """The primary (OpenAI dialect) and the secondary (Anthropic dialect) on 127.0.0.1."""
    primary = ProviderSimulator("openai").start()
    secondary = ProviderSimulator("anthropic").start()
    try:
        yield primary, secondary
    finally:
        primary.stop()
        secondary.stop()


def write_config(folder: Path, primary: ProviderSimulator, secondary: ProviderSimulator) -> Path:
    """Write a node configuration on the simulators, with a private data folder.

    The timeouts are long so that 100 calls in flight on a loaded machine still succeed.
    """
    path = folder / "node.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [node]
            data_dir = "{folder / "data"}"
            log_level = "INFO"
            checkpoint_interval = 0.2

            [[integrations]]
            name = "llm_provider"
            tier = 1
            timeout = 30.0

            [integrations.health_check]
            interval = 2.0
            timeout = 1.0

            [[integrations.providers]]
            name = "openai"
            kind = "openai"
            role = "primary"
            base_url = "{primary.api_url}"
            model = "gpt-4o-mini"
            timeout = 10.0

            [[integrations.providers]]
            name = "anthropic"
            kind = "anthropic"
            role = "secondary"
            base_url = "{secondary.api_url}"
            model = "claude-3-5-haiku-latest"
            timeout = 10.0
            """
        ),
        encoding="utf-8",
    )
    return path


class CaseRun:
    """One ``erl`` running one case; reads its lines as they come (see the module doc)."""

    def __init__(self, beam_dir: Path, case: str, config: Path, log_path: Path) -> None:
        self.output = CaseOutput()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            part for part in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if part
        )
        node_command = [sys.executable, "-m", "tpir.cli", "run", "--config", str(config)]
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [
                "erl",
                "-noshell",
                "-pa",
                str(beam_dir),
                "-run",
                "tpir_node_check",
                "main",
                case,
                "-extra",
                *node_command,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            cwd=beam_dir,
            env=env,
        )
        self.output.known_pids.add(self.process.pid)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.rstrip("\n")
            self.output.lines.append(line)
            parts = line.split(" ", 2)
            if parts[0] == "CHECK" and len(parts) == 3:
                self.output.checks[parts[1]] = parts[2]
            elif parts[0] == "NODE":
                self._on_node(line.split()[1:])
            elif parts[0] == "WAIT" and len(parts) == 2:
                self._on_wait(parts[1])
            elif line == "CLOSING":
                self.output.closing_at = time.monotonic()
            elif line == "DONE":
                self.output.done = True

    def _on_node(self, fields: list[str]) -> None:
        node = NodeSeen(fields[0], int(fields[1]), {int(pid) for pid in fields[2:]})
        self.output.nodes.append(node)
        self.output.known_pids |= {node.os_pid} | node.tree_pids

    def _on_wait(self, tag: str) -> None:
        if tag == "closed":
            self._measure_close()
        else:
            self._collect_groups()
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def _collect_groups(self) -> None:
        """Add the actor system's process group (admin, logger, actors) of each node."""
        for node in self.output.nodes:
            for pid in node.tree_pids:
                group = _group_of(pid)
                if group is not None and group != os.getpgrp():
                    self.output.known_pids |= set(group_members(group))

    def _measure_close(self) -> None:
        """Wait until every process of the node has ended or the close limit has passed."""
        assert self.output.closing_at is not None
        pids = set(self.output.known_pids) - {self.process.pid}
        deadline = self.output.closing_at + CLOSE_LIMIT_S
        while True:
            running = [pid for pid in pids if is_running(pid)]
            if not running or time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        self.output.running_after_close = running
        self.output.close_seconds = time.monotonic() - self.output.closing_at

    def finish(self, timeout: float) -> CaseOutput:
        """Wait for the VM to halt, then make sure every process seen has ended."""
        try:
            self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=30)
            self._reader.join(timeout=30)
            self._log.close()
        self.output.returncode = self.process.returncode
        # The VM has halted, so every port is closed and each node got end of input.
        leftover = wait_all_dead(self.output.known_pids, timeout=10)
        for pid in leftover:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        wait_all_dead(leftover, timeout=10)
        self.output.leftover = leftover
        return self.output


def _group_of(pid: int) -> int | None:
    """Return the process group of the parent of ``pid`` (an actor's admin), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        return os.getpgid(parent)
    except (OSError, ValueError, IndexError):
        return None


def run_case(
    beam_dir: Path,
    case: str,
    tmp_path: Path,
    simulators: tuple[ProviderSimulator, ProviderSimulator],
) -> CaseOutput:
    config = write_config(tmp_path, *simulators)
    run = CaseRun(beam_dir, case, config, tmp_path / "erl-and-node.stderr")
    output = run.finish(CASE_TIMEOUT_S)
    log = (tmp_path / "erl-and-node.stderr").read_text(encoding="utf-8", errors="replace")
    # Shown by pytest when a test fails, next to the assertion.
    print(output.text)
    print(
        f"[test] processes seen: {sorted(output.known_pids)}; killed at the end: {output.leftover}"
    )
    if output.close_seconds is not None:
        print(f"[test] the node's processes ended {output.close_seconds:.2f} s after CLOSING")
    print("--- stderr of the VM and the node (last 60 lines) ---")
    print("\n".join(log.splitlines()[-60:]))
    return output


def assert_all_checks_pass(output: CaseOutput, required: set[str]) -> None:
    assert output.done, output.text
    failed = {name: detail for name, detail in output.checks.items() if detail != "ok"}
    assert failed == {}
    assert required - set(output.checks) == set()
    assert output.leftover == []


@pytest.mark.timeout(CASE_TIMEOUT_S + 60)
def test_node_port_every_operation_answered(
    beam_dir: Path, tmp_path: Path, simulators: tuple[ProviderSimulator, ProviderSimulator]
) -> None:
    output = run_case(beam_dir, "operations", tmp_path, simulators)

    assert_all_checks_pass(
        output,
        {
            "ping",
            "call",
            "status",
            "tree",
            "which_children",
            "restart_child",
            "terminate_child",
            "recovery_points",
            "restore",
            "reset_provider",
            "subscribe",
            "child_restarted_event",
            "call_after_restart",
            "supervisor_stopped",
        },
    )


@pytest.mark.timeout(CASE_TIMEOUT_S + 60)
def test_node_port_10000_pipelined_calls_answered(
    beam_dir: Path, tmp_path: Path, simulators: tuple[ProviderSimulator, ProviderSimulator]
) -> None:
    output = run_case(beam_dir, "pipelined", tmp_path, simulators)

    assert_all_checks_pass(output, {"all_answered", "none_wrong", "nothing_pending"})


@pytest.mark.timeout(CASE_TIMEOUT_S + 60)
def test_node_port_sigkill_fails_pending_then_restarts(
    beam_dir: Path, tmp_path: Path, simulators: tuple[ProviderSimulator, ProviderSimulator]
) -> None:
    primary, _ = simulators
    primary.set_mode("normal", delay=SLOW_CALL_S)

    output = run_case(beam_dir, "kill_restart", tmp_path, simulators)

    assert_all_checks_pass(
        output,
        {
            "calls_pending",
            "pending_get_port_exited",
            "answered_before_kill",
            "restarted",
            "call_after_restart",
        },
    )
    assert [node.tag for node in output.nodes] == ["first", "second"]
    assert output.nodes[0].os_pid != output.nodes[1].os_pid


@pytest.mark.timeout(CASE_TIMEOUT_S + 60)
def test_node_port_close_ends_node_within_2s(
    beam_dir: Path, tmp_path: Path, simulators: tuple[ProviderSimulator, ProviderSimulator]
) -> None:
    primary, _ = simulators
    primary.set_mode("normal", delay=SLOW_CALL_S)

    output = run_case(beam_dir, "close_in_flight", tmp_path, simulators)

    assert_all_checks_pass(output, {"calls_pending", "port_closed", "pending_get_port_exited"})
    node = output.nodes[0]
    assert len(node.tree_pids) >= 14
    assert output.running_after_close == [], (
        f"still running {output.close_seconds:.2f} s after the port closed"
    )
