"""Tests of PortServer in this process, on real pipes and threads."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest

from tpir.bridge.framing import FrameReader, FrameWriter
from tpir.bridge.protocol import ProtocolError, Request
from tpir.bridge.server import PortServer, Reply

pytestmark = pytest.mark.timeout(30)


class ServerPipes:
    """A PortServer wired to two pipes, with the peer's ends for the test to use."""

    def __init__(self, handlers: dict[str, Any]) -> None:
        self.request_read_fd, self.request_write_fd = os.pipe()
        self.reply_read_fd, self.reply_write_fd = os.pipe()
        self.eof_called = threading.Event()
        self.server = PortServer(
            handlers,
            in_fd=self.request_read_fd,
            out_fd=self.reply_write_fd,
            on_eof=self.eof_called.set,
        )
        self.peer_writer = FrameWriter(self.request_write_fd)
        self.peer_reader = FrameReader(self.reply_read_fd)
        self._open = {
            self.request_read_fd,
            self.request_write_fd,
            self.reply_read_fd,
            self.reply_write_fd,
        }

    def send(self, message: dict[str, Any]) -> None:
        self.peer_writer.write_frame(msgpack.packb(message, use_bin_type=True))

    def receive(self) -> Any:
        payload = self.peer_reader.read_frame()
        assert payload is not None
        return msgpack.unpackb(payload, raw=False)

    def close_fd(self, fd: int) -> None:
        if fd in self._open:
            self._open.discard(fd)
            os.close(fd)

    def close_all(self) -> None:
        self.close_fd(self.request_write_fd)
        self.server.wait(timeout=10)
        self.peer_reader.close()
        for fd in list(self._open):
            self.close_fd(fd)


@pytest.fixture
def make_server() -> Iterator[Any]:
    created: list[ServerPipes] = []

    def make(handlers: dict[str, Any]) -> ServerPipes:
        pipes = ServerPipes(handlers)
        created.append(pipes)
        return pipes

    yield make
    for pipes in created:
        pipes.close_all()


def test_server_calls_on_eof(make_server: Any) -> None:
    pipes = make_server({})
    pipes.server.start()

    pipes.close_fd(pipes.request_write_fd)

    assert pipes.eof_called.wait(timeout=10)
    assert pipes.server.wait(timeout=10)


def test_server_accepts_reply_from_other_thread(make_server: Any) -> None:
    def handle_ping(request: Request, reply: Reply) -> None:
        threading.Timer(0.05, reply, args=({"late": True},)).start()

    pipes = make_server({"ping": handle_ping})
    pipes.server.start()

    pipes.send({"id": 1, "op": "ping"})

    assert pipes.receive() == {"id": 1, "ok": True, "result": {"late": True}}


def test_server_sends_handler_protocol_error(make_server: Any) -> None:
    def handle_status(request: Request, reply: Reply) -> None:
        reply(ProtocolError("not_found", "integration 'x' not found", {"integration": "x"}))

    pipes = make_server({"status": handle_status})
    pipes.server.start()

    pipes.send({"id": "s1", "op": "status", "integration": "x"})

    assert pipes.receive() == {
        "id": "s1",
        "ok": False,
        "error": {
            "code": "not_found",
            "message": "integration 'x' not found",
            "details": {"integration": "x"},
        },
    }


def test_server_publish_needs_subscription(make_server: Any) -> None:
    pipes = make_server({})
    pipes.server.start()

    sent_before = pipes.server.publish("tick")
    pipes.send({"id": 1, "op": "subscribe", "events": ["tick"]})
    subscribed = pipes.receive()
    sent_after = pipes.server.publish("tick", {"n": 2})

    assert sent_before is False
    assert subscribed == {"id": 1, "ok": True, "result": {"events": ["tick"]}}
    assert sent_after is True
    assert pipes.receive() == {"event": "tick", "n": 2}
    assert pipes.server.subscribed_events == frozenset({"tick"})


def test_server_rejects_handler_for_unknown_op() -> None:
    with pytest.raises(ValueError, match="'launch'"):
        PortServer({"launch": lambda request, reply: None}, in_fd=0, out_fd=2)


def test_server_rejects_subscribe_handler() -> None:
    with pytest.raises(ValueError, match="subscribe"):
        PortServer({"subscribe": lambda request, reply: None}, in_fd=0, out_fd=2)


def test_server_start_twice_raises(make_server: Any) -> None:
    pipes = make_server({})
    pipes.server.start()

    with pytest.raises(RuntimeError, match="already"):
        pipes.server.start()
