"""Ways for the demo to run a node as a port and send it requests, as erlmcp would.

A `NodeDriver` starts ``tpir run --config FILE`` with the node's stdin and stdout as the
port, sends requests without waiting for earlier replies, and returns each reply as an
`Outcome` through a `concurrent.futures.Future`. Events go to one handler. Two drivers
exist:

- `tpir.demo.erlang_driver.ErlangPortDriver`: a real Erlang VM runs the node through
  ``erlang/tpir_port.erl`` under a supervisor, the way erlmcp does;
- `PythonPortDriver` (this module): the demo's own process speaks the same frames
  (`tpir.bridge.framing`) when Erlang is not installed.

Both enforce a timeout per request. A request that times out or whose node exits
completes with an error `Outcome` (codes ``timeout`` and ``port_exited``, as tpir_port
uses them), so every future completes.
"""

from __future__ import annotations

import itertools
import logging
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import IO, Any, Final

import msgpack

from tpir.bridge.framing import FrameError, FrameReader, FrameWriter

__all__ = [
    "PORT_EXITED",
    "START_TIMEOUT_SECONDS",
    "TIMEOUT",
    "DriverError",
    "EventHandler",
    "NodeDriver",
    "Outcome",
    "PythonPortDriver",
]

logger = logging.getLogger(__name__)

PORT_EXITED: Final = "port_exited"
TIMEOUT: Final = "timeout"

START_TIMEOUT_SECONDS: Final = 60.0
"""Seconds a node may take to reply to its first ``ping``.

NOTE: a node starts about 15 actor processes; on a loaded 2-core machine that has taken
several seconds, so the limit is generous rather than measured."""

_SWEEP_SECONDS: Final = 0.05
_CLOSE_SECONDS: Final = 15.0

EventHandler = Callable[[dict[str, Any]], None]


class DriverError(RuntimeError):
    """The driver or the node could not be started, or stopped replying."""


@dataclass(frozen=True)
class Outcome:
    """The reply to one request.

    Fields:
        ok: whether the node replied with a result.
        value: the result when ``ok``, else None.
        code: the error code when not ``ok``: the node's (``all_providers_failed``,
            ``actor_crashed``, ...) or the driver's (``timeout``, ``port_exited``).
        message: the error message for a person, empty when ``ok``.
        details: the error details, any decoded MessagePack value.
    """

    ok: bool
    value: Any = None
    code: str | None = None
    message: str = ""
    details: Any = None

    @classmethod
    def from_error_map(cls, error: Any) -> Outcome:
        """Build a failed outcome from a protocol error map (``code``, ``message``, ``details``)."""
        if not isinstance(error, Mapping):
            return cls(False, code="invalid_reply", message=f"error reply is not a map: {error!r}")
        return cls(
            False,
            code=str(error.get("code")),
            message=str(error.get("message", "")),
            details=error.get("details"),
        )


class _PendingRequests:
    """Futures of the requests in flight, by reference, with their deadlines."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[int, tuple[Future[Outcome], float]] = {}
        self._refs = itertools.count(1)

    def open(self, timeout: float) -> tuple[int, Future[Outcome]]:
        future: Future[Outcome] = Future()
        with self._lock:
            ref = next(self._refs)
            self._entries[ref] = (future, time.monotonic() + timeout)
        return ref, future

    def resolve(self, ref: int, outcome: Outcome) -> None:
        with self._lock:
            entry = self._entries.pop(ref, None)
        if entry is None:
            logger.debug("dropped the late reply to request %d", ref)
            return
        entry[0].set_result(outcome)

    def expire(self) -> None:
        now = time.monotonic()
        with self._lock:
            expired = [ref for ref, (_, deadline) in self._entries.items() if deadline <= now]
            futures = [self._entries.pop(ref)[0] for ref in expired]
        for future in futures:
            future.set_result(Outcome(False, code=TIMEOUT, message="no reply in time"))

    def fail_all(self, outcome: Outcome) -> None:
        with self._lock:
            futures = [future for future, _ in self._entries.values()]
            self._entries.clear()
        for future in futures:
            future.set_result(outcome)


class NodeDriver(ABC):
    """Base of the drivers: pending requests, the event handler, the timeout sweeper.

    Options:
        node_command: the node's command line, an absolute executable first, for example
            ``[sys.executable, "-m", "tpir.cli", "run", "--config", path]``.
        env: the environment of the processes the driver starts.
        log_stream: where their standard error goes (the node's logs); a file.

    Subclasses start their processes in `_launch`, send in `_send`, and end in `_finish`.
    """

    #: One line for a person saying how the node is driven; set by `start`.
    description: str = ""

    def __init__(
        self, node_command: Sequence[str], env: Mapping[str, str], log_stream: IO[bytes]
    ) -> None:
        self._node_command = list(node_command)
        self._env = dict(env)
        self._log_stream = log_stream
        self._pending = _PendingRequests()
        self._event_handler: EventHandler | None = None
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the node and wait for its reply to ``ping``; raises `DriverError`."""
        self._launch()
        self._spawn_thread("sweeper", self._sweep)
        pong = self.request("ping", timeout=START_TIMEOUT_SECONDS)
        if not (pong.ok and pong.value == "pong"):
            raise DriverError(f"ping to the node failed: {pong.code}: {pong.message}")

    def close(self) -> None:
        """End the node through end of input, wait for the driver's processes, join threads."""
        self._closing.set()
        self._finish(_CLOSE_SECONDS)
        self._pending.fail_all(Outcome(False, code=PORT_EXITED, message="the driver closed"))
        for thread in self._threads:
            thread.join(_CLOSE_SECONDS)

    @abstractmethod
    def _launch(self) -> None: ...

    @abstractmethod
    def _send(self, ref: int, op: str, args: Mapping[str, Any], timeout: float) -> None:
        """Send one request; raise OSError when the port is gone."""

    @abstractmethod
    def _finish(self, timeout: float) -> None: ...

    @abstractmethod
    def node_pid(self) -> int:
        """Return the OS process id of the node's main process."""

    @abstractmethod
    def process_ids(self) -> set[int]:
        """Return the pids of the processes the driver started itself."""

    # -- requests --------------------------------------------------------------------------

    def submit(self, op: str, args: Mapping[str, Any] | None = None, *, timeout: float) -> Future:
        """Send a request and return the future of its `Outcome`; ``timeout`` in seconds."""
        ref, future = self._pending.open(timeout + self._timeout_slack())
        try:
            self._send(ref, op, dict(args or {}), timeout)
        except OSError as exc:
            self._pending.resolve(ref, Outcome(False, code=PORT_EXITED, message=str(exc)))
        return future

    def request(
        self, op: str, args: Mapping[str, Any] | None = None, *, timeout: float = 10.0
    ) -> Outcome:
        """Send a request and wait for its `Outcome`."""
        future = self.submit(op, args, timeout=timeout)
        result: Outcome = future.result(timeout + self._timeout_slack() + 1.0)
        return result

    def set_event_handler(self, handler: EventHandler) -> None:
        """Call ``handler`` with each event map, on the driver's reader thread."""
        self._event_handler = handler

    @abstractmethod
    def subscribe(self) -> Outcome:
        """Ask the node for every event."""

    def _timeout_slack(self) -> float:
        """Seconds the sweeper waits past a request's timeout before it completes the
        request with ``timeout``."""
        return 0.0

    # -- helpers for subclasses ------------------------------------------------------------

    def _spawn_thread(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=f"tpir-demo-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _sweep(self) -> None:
        while not self._closing.wait(_SWEEP_SECONDS):
            self._pending.expire()

    def _deliver_event(self, event: dict[str, Any]) -> None:
        handler = self._event_handler
        if handler is None:
            return
        try:
            handler(event)
        except Exception:  # noqa: BLE001 - a faulty handler must not stop the reader
            logger.exception("the event handler failed on %r", event.get("event"))


class PythonPortDriver(NodeDriver):
    """Runs the node as a child process and speaks the port frames from Python."""

    def __init__(
        self, node_command: Sequence[str], env: Mapping[str, str], log_stream: IO[bytes]
    ) -> None:
        super().__init__(node_command, env, log_stream)
        self._process: subprocess.Popen[bytes] | None = None
        self._writer: FrameWriter | None = None

    def _launch(self) -> None:
        self._process = subprocess.Popen(
            self._node_command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_stream,
            env=self._env,
        )
        assert self._process.stdin is not None
        self._writer = FrameWriter(self._process.stdin)
        self.description = "a Python port driver speaking the frames of erlang/tpir_port.erl"
        self._spawn_thread("reader", self._read_frames)

    def _send(self, ref: int, op: str, args: Mapping[str, Any], timeout: float) -> None:
        assert self._writer is not None
        payload = msgpack.packb({"id": ref, "op": op, **args}, use_bin_type=True)
        try:
            self._writer.write_frame(payload)
        except ValueError as exc:
            # A closed pipe object raises ValueError, not OSError.
            raise OSError(str(exc)) from exc

    def subscribe(self) -> Outcome:
        return self.request("subscribe")

    def _read_frames(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        reader = FrameReader(self._process.stdout)
        while True:
            try:
                payload = reader.read_frame()
            except FrameError as exc:
                logger.warning("dropped a frame from the node: %s", exc)
                continue
            except (OSError, ValueError):
                payload = None
            if payload is None:
                break
            try:
                message = msgpack.unpackb(payload, raw=False, strict_map_key=False)
            except (ValueError, msgpack.UnpackException) as exc:
                logger.warning("dropped a frame that is not MessagePack: %s", exc)
                continue
            self._dispatch(message)
        self._pending.fail_all(Outcome(False, code=PORT_EXITED, message="the node exited"))

    def _dispatch(self, message: Any) -> None:
        if not isinstance(message, dict):
            logger.warning("dropped a message that is not a map: %r", message)
            return
        if "event" in message and "id" not in message:
            self._deliver_event(message)
            return
        ref = message.get("id")
        if not isinstance(ref, int):
            logger.warning("dropped a reply without a usable id: %r", message.get("error"))
            return
        if message.get("ok") is True:
            self._pending.resolve(ref, Outcome(True, value=message.get("result")))
        else:
            self._pending.resolve(ref, Outcome.from_error_map(message.get("error")))

    def _finish(self, timeout: float) -> None:
        process = self._process
        if process is None:
            return
        if process.stdin is not None:
            try:
                process.stdin.close()
            except OSError:
                pass
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("the node (pid %d) ignored end of input; killing it", process.pid)
            process.kill()
            process.wait(timeout)
        if process.stdout is not None:
            process.stdout.close()

    def node_pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def process_ids(self) -> set[int]:
        return {self._process.pid} if self._process is not None else set()
