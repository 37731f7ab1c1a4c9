"""The simulator's shared state and the choice of how to respond to each request.

`Engine` contains the modes, the request counts and records, and the registry of open
connections. Handler threads call `serve` for every request except control requests. One
condition variable guards all state, and every change notifies it, which wakes requests
that hang or wait out a delay.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tpir.simulator.anthropic_dialect import AnthropicDialect
from tpir.simulator.modes import Behavior, ModeTable
from tpir.simulator.openai_dialect import OpenAIDialect
from tpir.simulator.passthrough_dialect import HealthDialect, PassThroughDialect
from tpir.simulator.wire import Dialect, Incoming, Reply, mask_headers

__all__ = [
    "ANTHROPIC_PATH",
    "HEALTH_PATH",
    "OPENAI_PATH",
    "Engine",
    "RecordedRequest",
    "ReplyWriter",
    "shutdown_quietly",
]

logger = logging.getLogger(__name__)

HEALTH_PATH = "/health"
OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"

NORMAL = Behavior(mode="normal")
_OPENAI = OpenAIDialect()
_ANTHROPIC = AnthropicDialect()
_PASS_THROUGH = PassThroughDialect()


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the simulator received it. Secret header values are masked.

    `body` is the parsed JSON, else the text, else the bytes, or None when empty.
    `behavior` labels what the simulator did, and `rejection` is the dialect's reason for
    rejecting the request shape, or None when the shape was acceptable.
    """

    sequence: int
    method: str
    path: str
    query: str
    headers: Mapping[str, str] = field(repr=False)
    body: Any = field(repr=False)
    idempotency_key: str | None
    dialect: str
    behavior: str
    rejection: str | None
    received_at: float


@dataclass(frozen=True)
class _Ticket:
    """The behavior chosen for one request, with the mode generation and epoch at that time."""

    sequence: int
    behavior: Behavior
    generation: int
    epoch: int


class ReplyWriter(Protocol):
    """The part of the request handler that `Engine.serve` writes through."""

    def send_reply(
        self, reply: Reply, *, retry_after: str | None = None, cut: bool = False
    ) -> None:
        """Write `reply`. With `cut`, write half of the body and close the connection."""

    def drop_connection(self) -> None:
        """Close the connection without (the rest of) a response."""


def shutdown_quietly(sock: socket.socket) -> None:
    """Shut a socket down in both directions, ignoring sockets that are already closed."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class Engine:
    """Modes, records, counts and open connections of one simulator."""

    def __init__(self, name: str, api_key: str | None, record_limit: int) -> None:
        self.name = name
        self._api_key = api_key
        self._health = HealthDialect(name)
        self._cond = threading.Condition()
        self._tables = {"api": ModeTable(), "health": ModeTable()}
        self._records: deque[RecordedRequest] = deque(maxlen=record_limit)
        self._counts: Counter[str] = Counter()
        self._sequence = 0
        # The epoch grows each time every connection is closed (refuse or stop), which
        # makes hanging and delayed requests give up.
        self._epoch = 0
        self._closed = False
        self._connections: dict[socket.socket, threading.Thread] = {}

    # Modes

    def set_behavior(self, behavior: Behavior, targets: Iterable[str]) -> None:
        """Make `behavior` persistent for `targets` and release hanging requests."""
        with self._cond:
            for name in targets:
                self._tables[name].set(behavior)
            self._cond.notify_all()

    def set_script(self, behaviors: list[Behavior], targets: Iterable[str]) -> None:
        """Replace the script of `targets`."""
        with self._cond:
            for name in targets:
                self._tables[name].script(behaviors)
            self._cond.notify_all()

    def clear_records(self) -> None:
        """Forget the recorded requests and the counts."""
        with self._cond:
            self._records.clear()
            self._counts.clear()

    def state(self) -> dict[str, Any]:
        """Return modes, scripts and counts as JSON-ready data."""
        with self._cond:
            return {
                "targets": {name: table.state() for name, table in self._tables.items()},
                "counts": dict(self._counts),
            }

    # Inspection

    def requests(self) -> list[RecordedRequest]:
        """Return the recorded requests, oldest first."""
        with self._cond:
            return list(self._records)

    def count(self, path: str | None) -> int:
        """Return the number of requests on `path`, or on every path for None."""
        with self._cond:
            return self._count_locked(path)

    def wait_for_count(self, count: int, path: str | None, timeout: float) -> bool:
        """Wait until `count(path)` reaches `count`. Returns False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._count_locked(path) >= count, timeout)

    def _count_locked(self, path: str | None) -> int:
        return self._counts[path] if path is not None else sum(self._counts.values())

    # Connections

    def set_closed(self, closed: bool) -> None:
        """While closed (refusing or stopped), new connections are shut down at once."""
        with self._cond:
            self._closed = closed

    def register(self, sock: socket.socket) -> None:
        """Track a new connection, or shut it down if the engine is closed."""
        with self._cond:
            if self._closed:
                shutdown_quietly(sock)
                return
            self._connections[sock] = threading.current_thread()

    def unregister(self, sock: socket.socket) -> None:
        """Stop tracking a finished connection."""
        with self._cond:
            self._connections.pop(sock, None)

    def close_connections(self) -> list[threading.Thread]:
        """Shut down every open connection and wake waiting requests.

        Returns the handler threads of those connections, so that the caller can join them.
        """
        with self._cond:
            self._epoch += 1
            connections = list(self._connections.items())
            self._cond.notify_all()
        for sock, _ in connections:
            shutdown_quietly(sock)
        return [thread for _, thread in connections]

    # Serving

    def serve(self, writer: ReplyWriter, incoming: Incoming) -> None:
        """Respond to one request according to the current behavior of its target."""
        dialect = self._dialect(incoming.path)
        rejection = dialect.check(incoming, self._api_key)
        ticket = self._admit(incoming, dialect, rejection)
        if ticket is None:
            writer.drop_connection()
            return

        behavior = ticket.behavior
        if behavior.mode == "hang":
            if not self._wait_while_hanging(_target(incoming.path), ticket):
                writer.drop_connection()
                return
            behavior = NORMAL
        if behavior.delay and not self._pause(behavior.delay, ticket):
            writer.drop_connection()
            return

        request_id = f"req_sim_{ticket.sequence:06d}"
        retry_after = None
        # Error statuses win over shape rejections, as when a gateway or an overloaded
        # front end responds before the request reaches validation.
        if behavior.mode == "status":
            reply = dialect.error(behavior, request_id)
            retry_after = behavior.retry_after
        elif rejection is not None:
            reply = rejection
        elif behavior.mode == "malformed":
            reply = dialect.malformed(request_id)
        elif behavior.mode == "missing_fields":
            reply = dialect.missing_fields(request_id)
        else:
            reply = dialect.success(incoming, behavior, request_id)
        logger.debug(
            "simulator %s: %s %s -> %d (%s)",
            self.name,
            incoming.method,
            incoming.path,
            reply.status,
            behavior.describe(),
        )
        writer.send_reply(reply, retry_after=retry_after, cut=behavior.mode == "close_mid_response")

    def _dialect(self, path: str) -> Dialect:
        if path == HEALTH_PATH:
            return self._health
        if path == OPENAI_PATH:
            return _OPENAI
        if path == ANTHROPIC_PATH:
            return _ANTHROPIC
        return _PASS_THROUGH

    def _admit(
        self, incoming: Incoming, dialect: Dialect, rejection: Reply | None
    ) -> _Ticket | None:
        recorded_body = incoming.recorded_body()
        headers = mask_headers(incoming.headers)
        with self._cond:
            if self._closed:
                return None
            self._sequence += 1
            table = self._tables[_target(incoming.path)]
            behavior = table.next()
            self._counts[incoming.path] += 1
            self._records.append(
                RecordedRequest(
                    sequence=self._sequence,
                    method=incoming.method,
                    path=incoming.path,
                    query=incoming.query,
                    headers=headers,
                    body=recorded_body,
                    idempotency_key=incoming.headers.get("idempotency-key"),
                    dialect=dialect.name,
                    behavior=behavior.describe(),
                    rejection=None if rejection is None else rejection.note,
                    received_at=time.time(),
                )
            )
            self._cond.notify_all()
            return _Ticket(self._sequence, behavior, table.generation, self._epoch)

    def _wait_while_hanging(self, target: str, ticket: _Ticket) -> bool:
        """Wait until released. Returns False if the connection must close instead."""
        table = self._tables[target]
        with self._cond:
            self._cond.wait_for(
                lambda: (
                    self._epoch != ticket.epoch
                    or (table.generation != ticket.generation and table.persistent.mode != "hang")
                )
            )
            return self._epoch == ticket.epoch

    def _pause(self, seconds: float, ticket: _Ticket) -> bool:
        """Wait `seconds`. Returns False if the connection must close instead."""
        with self._cond:
            self._cond.wait_for(lambda: self._epoch != ticket.epoch, seconds)
            return self._epoch == ticket.epoch


def _target(path: str) -> str:
    return "health" if path == HEALTH_PATH else "api"
