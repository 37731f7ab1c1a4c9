"""A real ``tpir run`` node for the tests: a subprocess spoken to through its pipes.

`NodeUnderTest` starts ``python -m tpir.cli run --config FILE`` with stdin and stdout
pipes and stderr in a file, and reads the frames it writes on a thread. It records the
pid of every process of the node (the main process, and the actor system's process
group), so a test can check that they are all gone and `stop` can kill what is left by
pid.
"""

from __future__ import annotations

import os
import queue
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import msgpack

from tests.support.processes import group_members, is_running, wait_all_dead
from tpir.bridge.framing import FrameError, FrameReader
from tpir.simulator import ProviderSimulator

__all__ = [
    "CHAT_REQUEST",
    "EOF_MARK",
    "INTEGRATION",
    "REPO_ROOT",
    "NodeUnderTest",
    "child_entry",
    "run_cli",
    "tree_pids",
    "wait_until",
    "write_config",
]

INTEGRATION = "llm_provider"
REPO_ROOT = Path(__file__).resolve().parents[3]
# A node starts about 15 actor processes; on a loaded 2-core machine that has taken 4 s.
START_TIMEOUT_S = 60.0
REPLY_TIMEOUT_S = 20.0
CHAT_REQUEST: dict[str, Any] = {"messages": [{"role": "user", "content": "hello"}]}
EOF_MARK = object()


def write_config(
    path: Path,
    data_dir: Path,
    primary: ProviderSimulator,
    secondary: ProviderSimulator,
    *,
    max_frame_bytes: int = 65536,
    health_interval: float = 2.0,
    health_timeout: float = 0.5,
) -> Path:
    """Write a node configuration with two providers on the simulators; return ``path``."""
    path.write_text(
        textwrap.dedent(
            f"""
            [node]
            data_dir = "{data_dir}"
            log_level = "INFO"
            max_frame_bytes = {max_frame_bytes}
            checkpoint_interval = 0.2

            [[integrations]]
            name = "{INTEGRATION}"
            tier = 1
            timeout = 4.0

            [integrations.health_check]
            interval = {health_interval}
            timeout = {health_timeout}

            [[integrations.providers]]
            name = "openai"
            kind = "openai"
            role = "primary"
            base_url = "{primary.api_url}"
            model = "gpt-4o-mini"
            timeout = 2.0

            [[integrations.providers]]
            name = "anthropic"
            kind = "anthropic"
            role = "secondary"
            base_url = "{secondary.api_url}"
            model = "claude-3-5-haiku-latest"
            timeout = 2.0
            """
        ),
        encoding="utf-8",
    )
    return path


def _cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ) | (extra or {})
    # The repository root first, so that the packages import from this tree.
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if part
    )
    return env


def run_cli(
    *args: str, timeout: float = 60.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``tpir ARGS`` as ``python -m tpir.cli`` with ``env`` added to the environment."""
    return subprocess.run(
        [sys.executable, "-m", "tpir.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        env=_cli_env(env),
    )


class NodeUnderTest:
    """One ``tpir run`` subprocess; see the module docstring."""

    def __init__(self, config_path: Path, stderr_path: Path, *extra_args: str) -> None:
        self.config_path = config_path
        self.stderr_path = stderr_path
        self._stderr = stderr_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tpir.cli", "run", "--config", str(config_path), *extra_args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=REPO_ROOT,
            env=_cli_env(),
        )
        self.known_pids: set[int] = {self.process.pid}
        self._frames: queue.Queue[object] = queue.Queue()
        self._next_id = 10_000
        self._reader = threading.Thread(target=self._read_frames, daemon=True)
        self._reader.start()

    # -- frames -------------------------------------------------------------------------

    def _read_frames(self) -> None:
        assert self.process.stdout is not None
        reader = FrameReader(self.process.stdout)
        while True:
            try:
                payload = reader.read_frame()
            except FrameError as error:
                self._frames.put(error)
                continue
            except (OSError, ValueError):
                payload = None
            if payload is None:
                self._frames.put(EOF_MARK)
                return
            self._frames.put(payload)

    def send_bytes(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send_raw(self, payload: bytes) -> None:
        self.send_bytes(struct.pack(">I", len(payload)) + payload)

    def send(self, message: Any) -> None:
        self.send_raw(msgpack.packb(message, use_bin_type=True))

    def receive(self, timeout: float = REPLY_TIMEOUT_S) -> dict[str, Any]:
        """Return the next frame as a map; fail on end of output or a framing error."""
        item = self._frames.get(timeout=timeout)
        assert isinstance(item, bytes), f"expected a frame, got {item!r}"
        message = msgpack.unpackb(item, raw=False, strict_map_key=False)
        assert isinstance(message, dict)
        return message

    def next_item(self, timeout: float) -> object:
        """Return the next frame, framing error or `EOF_MARK`, or None after ``timeout``."""
        try:
            return self._frames.get(timeout=timeout)
        except queue.Empty:
            return None

    def reply_to(self, request_id: Any, timeout: float = REPLY_TIMEOUT_S) -> dict[str, Any]:
        """Return the reply with ``request_id``, skipping events."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.receive(max(deadline - time.monotonic(), 0.01))
            if "event" not in message and message.get("id") == request_id:
                return message

    def wait_event(self, kind: str, timeout: float = REPLY_TIMEOUT_S, **fields: Any) -> dict:
        """Return the next event of ``kind`` whose fields match ``fields``, skipping others."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.receive(max(deadline - time.monotonic(), 0.01))
            if message.get("event") != kind:
                continue
            if all(message.get(key) == value for key, value in fields.items()):
                return message

    def request(self, op: str, timeout: float = REPLY_TIMEOUT_S, **args: Any) -> dict[str, Any]:
        """Send one request with a fresh id and return its reply."""
        self._next_id += 1
        request_id = self._next_id
        self.send({"id": request_id, "op": op, **args})
        return self.reply_to(request_id, timeout)

    def wait_ready(self) -> None:
        """Wait until the node replies to ``ping``, then record the pids of all its processes."""
        reply = self.request("ping", timeout=START_TIMEOUT_S)
        assert reply["result"] == "pong", reply
        self.refresh_pids()

    # -- processes ----------------------------------------------------------------------

    def refresh_pids(self) -> set[int]:
        """Add the pids of the tree and of the actor system's process group; return all."""
        tree = self.request("tree")["result"]
        pids = tree_pids(tree)
        admin = _parent_pid(tree["pid"])
        if admin is not None:
            pids |= set(group_members(os.getpgid(admin)))
        self.known_pids |= pids
        return set(self.known_pids)

    def running_pids(self) -> list[int]:
        return [pid for pid in self.known_pids if is_running(pid)]

    def close_stdin(self) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass

    def stderr_text(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> list[int]:
        """End the node and every process of it; return the pids that had to be killed."""
        self.close_stdin()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        leftover = wait_all_dead(self.known_pids, timeout=5)
        for pid in leftover:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_all_dead(leftover, timeout=5)
        self._reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()
        return leftover


def _parent_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def tree_pids(tree: dict[str, Any]) -> set[int]:
    """Return the pid of every supervisor and child in a ``tree`` result."""
    pids: set[int] = set()
    if tree.get("pid"):
        pids.add(tree["pid"])
    for child in tree.get("children", []):
        if child.get("pid"):
            pids.add(child["pid"])
        nested = child.get("supervisor")
        if isinstance(nested, dict):
            pids |= tree_pids(nested)
    return pids


def child_entry(tree: dict[str, Any], path: str) -> dict[str, Any]:
    """Return the child map at ``path`` (for example ``tpir/integrations/x/router``)."""
    parts = path.split("/")
    assert parts[0] == tree["id"], f"{path} is not under {tree['id']}"
    node = tree
    entry: dict[str, Any] = {}
    for index, part in enumerate(parts[1:]):
        matches = [child for child in node.get("children", []) if child.get("id") == part]
        assert matches, f"no child {part!r} in {node.get('path')}"
        entry = matches[0]
        if index < len(parts) - 2:
            node = entry["supervisor"]
    return entry


def wait_until(check: Any, timeout: float, interval: float = 0.1) -> Any:
    """Return the first truthy result of ``check()``, or the last result after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(interval)
