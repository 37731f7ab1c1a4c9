"""The HTTP layer of the simulator: a threaded HTTP/1.1 server and its request handler.

The handler reads each request (Content-Length or chunked bodies up to `MAX_BODY_BYTES`),
serves `/_control` itself and passes every other request to the simulator's `Engine`.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import sys
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from tpir.simulator.engine import Engine
from tpir.simulator.wire import Incoming, Reply, json_reply, reason_phrase

__all__ = ["CONTROL_PATH", "MAX_BODY_BYTES", "SimulatorHTTPServer", "SimulatorRequestHandler"]

logger = logging.getLogger(__name__)

CONTROL_PATH = "/_control"

MAX_BODY_BYTES = 32 * 1024 * 1024
"""Largest accepted request body, 32 MiB."""

_MAX_LINE_BYTES = 65536


class ControlTarget(Protocol):
    """Interface of the simulator that owns the server, as the handler uses it."""

    name: str
    engine: Engine

    def state(self) -> dict[str, Any]:
        """Return modes, scripts and counts as JSON-ready data."""

    def apply_control(self, data: Any) -> Callable[[], None] | None:
        """Apply a control request. Returns a callable to run after the reply, or None."""


class SimulatorHTTPServer(ThreadingHTTPServer):
    """A `ThreadingHTTPServer` with daemon handler threads and a configurable backlog."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], simulator: ControlTarget, queue_size: int) -> None:
        self.simulator = simulator
        self.request_queue_size = queue_size
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, SimulatorRequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name with getfqdn, a DNS lookup that
        # the simulator does not need.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            # Expected when a client or the simulator closes a connection mid-request.
            logger.debug("simulator connection from %s ended: %s", client_address, exc)
        else:
            logger.exception("simulator handler failed for a request from %s", client_address)


class SimulatorRequestHandler(BaseHTTPRequestHandler):
    """Reads one request at a time on a keep-alive connection and dispatches it."""

    protocol_version = "HTTP/1.1"
    server_version = "tpir-simulator/1"
    sys_version = ""
    server: SimulatorHTTPServer

    def setup(self) -> None:
        super().setup()
        # Without TCP_NODELAY, Nagle's algorithm delays the body until the client
        # acknowledges the headers. On Linux loopback with httpx clients that added
        # about 40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.simulator.engine.register(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.simulator.engine.unregister(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        logger.debug("simulator %s: " + format, self.server.simulator.name, *args)

    def _dispatch(self) -> None:
        incoming = self._read_incoming()
        if incoming is None:
            return
        if incoming.path == CONTROL_PATH:
            self._control(incoming)
        else:
            self.server.simulator.engine.serve(self, incoming)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _dispatch

    def _read_incoming(self) -> Incoming | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = self._read_chunked()
            if body is None:
                self._reject(400, "invalid chunked body or body larger than MAX_BODY_BYTES")
                return None
        else:
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = -1
            if length < 0:
                self._reject(400, "invalid Content-Length")
                return None
            if length > MAX_BODY_BYTES:
                self._reject(413, f"request body exceeds {MAX_BODY_BYTES} bytes")
                return None
            body = self.rfile.read(length)
        parts = urllib.parse.urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        return Incoming(
            method=self.command, path=parts.path, query=parts.query, headers=headers, body=body
        )

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(_MAX_LINE_BYTES)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                return None
            if size == 0:
                while self.rfile.readline(_MAX_LINE_BYTES) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline(_MAX_LINE_BYTES)

    def _reject(self, status: int, message: str) -> None:
        # The rest of the body may still be unread, so the connection cannot be reused.
        self.close_connection = True
        self.send_reply(json_reply(status, {"error": message}))

    def _control(self, incoming: Incoming) -> None:
        simulator = self.server.simulator
        if incoming.method == "GET":
            self.send_reply(json_reply(200, simulator.state()))
            return
        if incoming.method != "POST":
            self.send_reply(json_reply(405, {"error": "use GET or POST on /_control"}))
            return
        try:
            after_reply = simulator.apply_control(incoming.json())
        except ValueError as exc:
            self.send_reply(json_reply(400, {"error": str(exc)}))
            return
        if after_reply is not None:
            self.close_connection = True
        self.send_reply(json_reply(200, simulator.state()))
        if after_reply is not None:
            after_reply()

    def send_reply(
        self, reply: Reply, *, retry_after: str | None = None, cut: bool = False
    ) -> None:
        """Write `reply`. With `cut`, write half of the body and close the connection."""
        self.send_response(reply.status, reason_phrase(reply.status))
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        if not cut:
            self.wfile.write(reply.body)
            return
        self.wfile.write(reply.body[: len(reply.body) // 2])
        self.wfile.flush()
        self.drop_connection()

    def drop_connection(self) -> None:
        """Close the connection without (the rest of) a response."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
