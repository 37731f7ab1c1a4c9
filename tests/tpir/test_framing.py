"""Tests of the frame readers and writers on real pipes and asyncio streams."""

from __future__ import annotations

import asyncio
import io
import os
import struct
import threading
from collections.abc import Iterator

import pytest

from tpir.bridge.framing import (
    AsyncFrameReader,
    AsyncFrameWriter,
    FrameReader,
    FrameTooLargeError,
    FrameWriter,
    TruncatedFrameError,
    encode_frame,
)

pytestmark = pytest.mark.timeout(30)


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


class Pipe:
    """An os.pipe whose ends are closed once, so no reused descriptor number is closed."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self._open = {self.read_fd, self.write_fd}

    def close_write(self) -> None:
        self._close(self.write_fd)

    def close_all(self) -> None:
        for fd in list(self._open):
            self._close(fd)

    def _close(self, fd: int) -> None:
        if fd in self._open:
            self._open.discard(fd)
            os.close(fd)


@pytest.fixture
def pipe() -> Iterator[Pipe]:
    created = Pipe()
    yield created
    created.close_all()


def test_encode_frame_prefixes_big_endian_length() -> None:
    assert encode_frame(b"abc") == b"\x00\x00\x00\x03abc"


def test_frame_reader_returns_frames_in_order() -> None:
    reader = FrameReader(io.BytesIO(frame(b"one") + frame(b"") + frame(b"three")))

    assert reader.read_frame() == b"one"
    assert reader.read_frame() == b""
    assert reader.read_frame() == b"three"
    assert reader.read_frame() is None


def test_frame_reader_skips_oversized_frame() -> None:
    stream = io.BytesIO(frame(b"x" * 100) + frame(b"next"))
    reader = FrameReader(stream, max_frame_bytes=10)

    with pytest.raises(FrameTooLargeError) as error:
        reader.read_frame()

    assert error.value.length == 100
    assert error.value.max_frame_bytes == 10
    assert reader.read_frame() == b"next"


def test_frame_reader_accepts_frame_at_maximum() -> None:
    reader = FrameReader(io.BytesIO(frame(b"x" * 10)), max_frame_bytes=10)

    assert reader.read_frame() == b"x" * 10


def test_frame_reader_reports_truncated_prefix_then_eof() -> None:
    reader = FrameReader(io.BytesIO(frame(b"ok") + b"\x00\x00"))

    assert reader.read_frame() == b"ok"
    with pytest.raises(TruncatedFrameError) as error:
        reader.read_frame()
    assert error.value.part == "length prefix"
    assert error.value.received_bytes == 2
    assert reader.read_frame() is None


def test_frame_reader_reports_truncated_payload_then_eof() -> None:
    reader = FrameReader(io.BytesIO(struct.pack(">I", 10) + b"12345"))

    with pytest.raises(TruncatedFrameError) as error:
        reader.read_frame()
    assert error.value.part == "payload"
    assert error.value.expected_bytes == 10
    assert error.value.received_bytes == 5
    assert reader.read_frame() is None


def test_frame_reader_reports_truncated_oversized_frame() -> None:
    reader = FrameReader(io.BytesIO(struct.pack(">I", 100) + b"x" * 20), max_frame_bytes=10)

    with pytest.raises(TruncatedFrameError) as error:
        reader.read_frame()
    assert error.value.received_bytes == 20
    assert reader.read_frame() is None


def test_frame_reader_rejects_negative_maximum() -> None:
    with pytest.raises(ValueError, match="max_frame_bytes"):
        FrameReader(io.BytesIO(b""), max_frame_bytes=-1)


def test_frame_reader_joins_short_pipe_reads(pipe: Pipe) -> None:
    data = frame(b"a" * 5000) + frame(b"tail")

    def write_in_chunks() -> None:
        # 1001-byte chunks split the payload and the second prefix (bytes 5004 to 5008).
        for index in range(0, len(data), 1001):
            os.write(pipe.write_fd, data[index : index + 1001])
        pipe.close_write()

    writer = threading.Thread(target=write_in_chunks)
    writer.start()
    reader = FrameReader(pipe.read_fd)
    try:
        assert reader.read_frame() == b"a" * 5000
        assert reader.read_frame() == b"tail"
        assert reader.read_frame() is None
    finally:
        writer.join(timeout=10)
        reader.close()


def test_frame_writer_threads_never_interleave(pipe: Pipe) -> None:
    writer = FrameWriter(pipe.write_fd)
    thread_count = 8
    frames_per_thread = 200
    # Payloads larger than PIPE_BUF (4096 bytes on Linux), whose writes the kernel may split.
    payload_bytes = 9000

    received: list[bytes] = []

    def read_all() -> None:
        reader = FrameReader(pipe.read_fd)
        while (payload := reader.read_frame()) is not None:
            received.append(payload)
        reader.close()

    reader_thread = threading.Thread(target=read_all)
    reader_thread.start()

    def write_many(worker: int) -> None:
        for sequence in range(frames_per_thread):
            marker = f"{worker}:{sequence}:".encode()
            writer.write_frame(marker + bytes([worker]) * (payload_bytes - len(marker)))

    writers = [
        threading.Thread(target=write_many, args=(worker,)) for worker in range(thread_count)
    ]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(timeout=20)
    pipe.close_write()
    reader_thread.join(timeout=20)

    assert len(received) == thread_count * frames_per_thread
    for payload in received:
        worker = int(payload.split(b":", 1)[0])
        body = payload.split(b":", 2)[2]
        assert body == bytes([worker]) * len(body)


def test_frame_writer_flushes_buffered_stream() -> None:
    raw = io.BytesIO()
    buffered = io.BufferedWriter(raw)  # type: ignore[arg-type]
    FrameWriter(buffered).write_frame(b"hello")

    assert raw.getvalue() == frame(b"hello")


def run_async_reader(data: bytes, max_frame_bytes: int) -> list[object]:
    """Feed ``data`` to an AsyncFrameReader and collect payloads and errors until EOF."""

    async def collect() -> list[object]:
        stream = asyncio.StreamReader()
        stream.feed_data(data)
        stream.feed_eof()
        reader = AsyncFrameReader(stream, max_frame_bytes=max_frame_bytes)
        results: list[object] = []
        while True:
            try:
                payload = await reader.read_frame()
            except (FrameTooLargeError, TruncatedFrameError) as error:
                results.append(type(error).__name__)
                continue
            if payload is None:
                return results
            results.append(payload)

    return asyncio.run(collect())


def test_async_frame_reader_discards_oversized_frame() -> None:
    results = run_async_reader(frame(b"y" * 50) + frame(b"ok"), max_frame_bytes=8)

    assert results == ["FrameTooLargeError", b"ok"]


def test_async_frame_reader_reports_truncated_payload() -> None:
    results = run_async_reader(frame(b"ok") + struct.pack(">I", 9) + b"abc", max_frame_bytes=64)

    assert results == [b"ok", "TruncatedFrameError"]


def test_async_frame_reader_reports_truncated_prefix() -> None:
    results = run_async_reader(b"\x00", max_frame_bytes=64)

    assert results == ["TruncatedFrameError"]


def test_async_frame_writer_round_trips_through_socket_pair() -> None:
    async def round_trip() -> list[bytes | None]:
        server_ready = asyncio.Event()
        received: list[bytes | None] = []

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            frames = AsyncFrameReader(reader)
            received.append(await frames.read_frame())
            received.append(await frames.read_frame())
            received.append(await frames.read_frame())
            writer.close()
            server_ready.set()

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, client = await asyncio.open_connection("127.0.0.1", port)
        frames_out = AsyncFrameWriter(client)
        await frames_out.write_frame(b"first")
        await frames_out.write_frame(b"second")
        client.close()
        await client.wait_closed()
        await asyncio.wait_for(server_ready.wait(), timeout=10)
        server.close()
        await server.wait_closed()
        return received

    assert asyncio.run(round_trip()) == [b"first", b"second", None]
