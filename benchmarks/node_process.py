"""A ``tpir run`` node in its own process, spoken to through its port as erlmcp does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import msgpack

from benchmarks.processes import group_members, is_running, parent_pid
from benchmarks.simulators import CHAT_REQUEST, INTEGRATION, REPO_ROOT
from tpir.bridge.framing import FrameError, FrameReader, FrameWriter

__all__ = ["REPLY_SECONDS", "NodeProcess"]

REPLY_SECONDS: Final = 30.0
"""Seconds to wait for the reply to one request."""
_START_SECONDS: Final = 90.0


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

    def request(self, op: str, timeout: float = REPLY_SECONDS, **args: Any) -> dict[str, Any]:
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
