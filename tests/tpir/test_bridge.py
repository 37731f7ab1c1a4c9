"""Tests of the port server through the echo program, spoken to over real pipes."""

from __future__ import annotations

import queue
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from tpir.bridge.framing import FrameError, FrameReader

pytestmark = pytest.mark.timeout(60)

ECHO_PROGRAM = Path(__file__).with_name("port_echo.py")
REPLY_TIMEOUT_S = 10.0
_EOF = object()


class EchoNode:
    """The echo program as a subprocess, with a thread that queues the frames it writes."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.stderr_path = tmp_path / f"echo-{time.monotonic_ns()}.stderr"
        self._stderr = self.stderr_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, str(ECHO_PROGRAM), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._frames: queue.Queue[object] = queue.Queue()
        self._reader = threading.Thread(target=self._read_frames, daemon=True)
        self._reader.start()

    def _read_frames(self) -> None:
        assert self.process.stdout is not None
        reader = FrameReader(self.process.stdout)
        while True:
            try:
                payload = reader.read_frame()
            except FrameError as error:
                self._frames.put(error)
                continue
            if payload is None:
                self._frames.put(_EOF)
                return
            self._frames.put(payload)

    def send_raw(self, payload: bytes) -> None:
        self.send_bytes(struct.pack(">I", len(payload)) + payload)

    def send_bytes(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send(self, message: Any) -> None:
        self.send_raw(msgpack.packb(message, use_bin_type=True))

    def receive(self, timeout: float = REPLY_TIMEOUT_S) -> dict[str, Any]:
        item = self._frames.get(timeout=timeout)
        assert isinstance(item, bytes), f"expected a frame, got {item!r}"
        message = msgpack.unpackb(item, raw=False, strict_map_key=False)
        assert isinstance(message, dict)
        return message

    def next_item(self, timeout: float) -> object:
        """Return the next frame, error or end marker, or None after ``timeout`` seconds."""
        try:
            return self._frames.get(timeout=timeout)
        except queue.Empty:
            return None

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        self.send(message)
        return self.receive()

    def close_stdin(self) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass

    def stop(self) -> None:
        """End the program: close stdin, wait, and kill it by pid if it does not exit."""
        self.close_stdin()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()

    def stderr_text(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def start_echo(tmp_path: Path) -> Iterator[Callable[..., EchoNode]]:
    started: list[EchoNode] = []

    def start(*args: str) -> EchoNode:
        node = EchoNode(tmp_path, *args)
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


@pytest.fixture
def echo(start_echo: Callable[..., EchoNode]) -> EchoNode:
    return start_echo()


def assert_ping_works(node: EchoNode, request_id: int = 999) -> None:
    reply = node.request({"id": request_id, "op": "ping"})
    assert reply == {"id": request_id, "ok": True, "result": "pong"}


def test_echo_ping_replies_pong(echo: EchoNode) -> None:
    assert_ping_works(echo, 1)


# (name, raw frame payload, expected error code, expected reply id)
BAD_FRAMES: list[tuple[str, bytes, str, Any]] = [
    ("reserved byte", b"\xc1", "invalid_msgpack", None),
    ("empty frame", b"", "invalid_msgpack", None),
    ("truncated map", b"\x82\xa2id\x01", "invalid_msgpack", None),
    ("trailing bytes", msgpack.packb({"id": 1, "op": "ping"}) + b"\xc0", "invalid_msgpack", None),
    ("array", msgpack.packb([1, "ping"]), "not_a_map", None),
    ("str", msgpack.packb("ping"), "not_a_map", None),
    ("bad utf8 with int id", b"\x83\xa2id\x07\xa2op\xa4ping\xa1x\xa1\xff", "invalid_utf8", 7),
    ("bad utf8 with str id", b"\x82\xa2id\xa2r1\xa2op\xa2\xc3\x28", "invalid_utf8", "r1"),
    ("bad utf8 in id", b"\x82\xa2id\xa1\xff\xa2op\xa4ping", "invalid_utf8", None),
    ("missing id", msgpack.packb({"op": "ping"}), "missing_field", None),
    ("missing op", msgpack.packb({"id": 5}), "missing_field", 5),
    ("float id", msgpack.packb({"id": 1.5, "op": "ping"}), "invalid_field", None),
    ("bool id", msgpack.packb({"id": True, "op": "ping"}), "invalid_field", None),
    ("nil id", msgpack.packb({"id": None, "op": "ping"}), "invalid_field", None),
    ("int op", msgpack.packb({"id": 6, "op": 12}), "invalid_field", 6),
    ("unknown op", msgpack.packb({"id": 8, "op": "launch"}), "unknown_op", 8),
    ("op without handler", msgpack.packb({"id": 9, "op": "tree"}), "unknown_op", 9),
    (
        "call without integration",
        msgpack.packb({"id": 10, "op": "call", "request": {}}),
        "invalid_argument",
        10,
    ),
    (
        "call with array request",
        msgpack.packb({"id": 11, "op": "call", "integration": "a", "request": [1]}),
        "invalid_argument",
        11,
    ),
    (
        "call with zero deadline",
        msgpack.packb({"id": 12, "op": "call", "integration": "a", "request": {}, "deadline": 0}),
        "invalid_argument",
        12,
    ),
    (
        "unknown argument",
        msgpack.packb({"id": "s", "op": "ping", "verbose": True}),
        "invalid_argument",
        "s",
    ),
]


@pytest.mark.parametrize(
    ("payload", "code", "request_id"),
    [case[1:] for case in BAD_FRAMES],
    ids=[case[0] for case in BAD_FRAMES],
)
def test_echo_rejects_bad_frame_then_serves(
    echo: EchoNode, payload: bytes, code: str, request_id: Any
) -> None:
    echo.send_raw(payload)
    reply = echo.receive()

    assert reply["ok"] is False
    assert reply["error"]["code"] == code
    assert reply["id"] == request_id
    assert isinstance(reply["error"]["message"], str)
    assert_ping_works(echo)


def test_echo_unknown_op_lists_served_ops(echo: EchoNode) -> None:
    reply = echo.request({"id": 1, "op": "launch"})

    assert reply["error"]["details"]["known_ops"] == [
        "bad_result",
        "call",
        "crash",
        "emit",
        "ping",
        "print",
        "subscribe",
    ]


def test_echo_invalid_argument_names_argument(echo: EchoNode) -> None:
    reply = echo.request(
        {"id": 1, "op": "call", "integration": "a", "request": {}, "deadline": "soon"}
    )

    assert reply["error"]["details"]["argument"] == "deadline"
    assert "a finite number > 0" in reply["error"]["message"]
    assert "got str 'soon'" in reply["error"]["message"]


def test_echo_oversized_frame_keeps_sync(
    start_echo: Callable[..., EchoNode],
) -> None:
    node = start_echo("--max-frame-bytes", "1024")
    big = msgpack.packb(
        {"id": 1, "op": "call", "integration": "a", "request": {"blob": b"x" * 5000}}
    )

    node.send_raw(big)
    reply = node.receive()

    assert reply["id"] is None
    assert reply["error"]["code"] == "frame_too_large"
    assert reply["error"]["details"] == {"length": len(big), "max_frame_bytes": 1024}
    assert_ping_works(node, 2)


def test_echo_oversized_then_ping_one_write(
    start_echo: Callable[..., EchoNode],
) -> None:
    node = start_echo("--max-frame-bytes", "64")
    oversized = b"\xc1" * 200
    ping = msgpack.packb({"id": 3, "op": "ping"})

    node.send_bytes(
        struct.pack(">I", len(oversized)) + oversized + struct.pack(">I", len(ping)) + ping
    )

    assert node.receive()["error"]["code"] == "frame_too_large"
    assert node.receive() == {"id": 3, "ok": True, "result": "pong"}


def test_echo_replies_out_of_order(echo: EchoNode) -> None:
    echo.send({"id": 1, "op": "call", "integration": "a", "request": {"sleep": 0.5, "n": 1}})
    echo.send({"id": 2, "op": "call", "integration": "a", "request": {"n": 2}})

    first = echo.receive()
    second = echo.receive()

    assert first == {"id": 2, "ok": True, "result": {"n": 2}}
    assert second == {"id": 1, "ok": True, "result": {"sleep": 0.5, "n": 1}}


def test_echo_many_in_flight_all_answered(echo: EchoNode) -> None:
    count = 200
    for request_id in range(count):
        delay = 0.2 if request_id % 2 else 0
        echo.send({"id": request_id, "op": "call", "integration": "a", "request": {"sleep": delay}})

    ids = [echo.receive()["id"] for _ in range(count)]

    assert sorted(ids) == list(range(count))


def test_echo_drops_second_reply(echo: EchoNode) -> None:
    reply = echo.request({"id": 1, "op": "call", "integration": "a", "request": {"reply_count": 3}})
    assert_ping_works(echo, 2)

    assert reply["id"] == 1
    assert echo.next_item(timeout=0.5) is None
    assert "dropped a second reply to request 1" in echo.stderr_text()


def test_echo_crash_gets_internal_error(echo: EchoNode) -> None:
    reply = echo.request({"id": 4, "op": "crash"})

    assert reply["id"] == 4
    assert reply["error"]["code"] == "internal_error"
    assert reply["error"]["details"] == {"op": "crash", "exception": "RuntimeError"}
    assert_ping_works(echo)


def test_echo_crash_after_reply_sends_one_reply(echo: EchoNode) -> None:
    reply = echo.request({"id": 5, "op": "crash", "reply_first": True})
    assert_ping_works(echo, 6)

    assert reply == {"id": 5, "ok": True, "result": "replied"}
    assert echo.next_item(timeout=0.5) is None


def test_echo_unencodable_result_gets_internal_error(echo: EchoNode) -> None:
    reply = echo.request({"id": 7, "op": "bad_result"})

    assert reply["id"] == 7
    assert reply["error"]["code"] == "internal_error"
    assert_ping_works(echo)


def test_echo_stray_print_goes_to_stderr(echo: EchoNode) -> None:
    reply = echo.request({"id": 1, "op": "print"})
    assert_ping_works(echo, 2)

    assert reply == {"id": 1, "ok": True, "result": "printed"}
    assert "stray" in echo.stderr_text()


def test_echo_round_trips_str_and_bin(echo: EchoNode) -> None:
    payload = {"text": "héllo ✓", "data": b"\x00\xff", "nested": [1, -2, 3.5, None, True]}

    reply = echo.request({"id": 1, "op": "call", "integration": "a", "request": payload})

    assert reply["result"] == payload


def test_echo_events_need_subscription(echo: EchoNode) -> None:
    reply = echo.request({"id": 1, "op": "emit", "event": "tick"})

    assert reply == {"id": 1, "ok": True, "result": {"sent": False}}
    assert echo.next_item(timeout=0.3) is None


def test_echo_subscriber_receives_event(echo: EchoNode) -> None:
    subscribed = echo.request({"id": 1, "op": "subscribe"})
    echo.send({"id": 2, "op": "emit", "event": "tick", "fields": {"n": 1}})
    first = echo.receive()
    second = echo.receive()

    assert subscribed == {"id": 1, "ok": True, "result": {"events": None}}
    assert first == {"event": "tick", "n": 1}
    assert second == {"id": 2, "ok": True, "result": {"sent": True}}


def test_echo_subscription_filters_events(echo: EchoNode) -> None:
    echo.request({"id": 1, "op": "subscribe", "events": ["tock"]})

    skipped = echo.request({"id": 2, "op": "emit", "event": "tick"})
    echo.send({"id": 3, "op": "emit", "event": "tock"})
    event = echo.receive()

    assert skipped["result"] == {"sent": False}
    assert event == {"event": "tock"}


def test_echo_exits_on_eof(echo: EchoNode) -> None:
    assert_ping_works(echo, 1)

    echo.close_stdin()

    assert echo.process.wait(timeout=10) == 0
    assert echo.next_item(timeout=5) is _EOF


def test_echo_exits_on_eof_inside_frame(echo: EchoNode) -> None:
    echo.send_bytes(struct.pack(">I", 100) + b"partial")
    echo.close_stdin()

    assert echo.process.wait(timeout=10) == 0
    assert echo.next_item(timeout=5) is _EOF
    assert "input ended inside a frame payload" in echo.stderr_text()
