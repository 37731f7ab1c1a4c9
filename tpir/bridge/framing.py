"""Length-prefixed frames on a byte stream, as Erlang's ``{packet, 4}`` port option sends them.

Each frame is a 4-byte big-endian unsigned length followed by that many payload bytes.
The readers return one payload per call and keep the stream in sync when a frame is
rejected. The writers send prefix and payload with a single write under a lock, so frames
from concurrent threads never interleave.

Options:
    max_frame_bytes: maximum payload length in bytes that a reader returns. Default
        16777216 (16 MiB). Valid range 0 to 4294967295, the largest length the prefix
        can carry. A longer frame is read in chunks, discarded and reported as
        `FrameTooLargeError`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import threading
from typing import BinaryIO

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "LENGTH_PREFIX_BYTES",
    "MAX_ENCODABLE_FRAME_BYTES",
    "AsyncFrameReader",
    "AsyncFrameWriter",
    "FrameError",
    "FrameReader",
    "FrameTooLargeError",
    "FrameWriter",
    "TruncatedFrameError",
    "encode_frame",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024
LENGTH_PREFIX_BYTES = 4
MAX_ENCODABLE_FRAME_BYTES = 2**32 - 1

_PREFIX = struct.Struct(">I")
# Oversized frames are skipped in chunks of this size, so skipping never keeps more
# than one chunk in memory.
_DISCARD_CHUNK_BYTES = 64 * 1024
_READ_BUFFER_BYTES = 64 * 1024


class FrameError(Exception):
    """Base class of the errors that a frame reader reports."""


class FrameTooLargeError(FrameError):
    """A frame longer than the reader's maximum, which the reader has already discarded.

    The stream stays in sync, so the next read returns the next frame.
    """

    def __init__(self, length: int, max_frame_bytes: int) -> None:
        super().__init__(
            f"frame of {length} bytes exceeds the maximum of {max_frame_bytes} bytes "
            "and was discarded"
        )
        self.length = length
        self.max_frame_bytes = max_frame_bytes


class TruncatedFrameError(FrameError):
    """End of input in the middle of a length prefix or a payload.

    ``expected_bytes`` is the length of the part being read (4 for the prefix) and
    ``received_bytes`` how much of it arrived. The next read returns None (end of input).
    """

    def __init__(self, part: str, expected_bytes: int, received_bytes: int) -> None:
        super().__init__(
            f"input ended inside a frame {part}: received {received_bytes} "
            f"of {expected_bytes} bytes"
        )
        self.part = part
        self.expected_bytes = expected_bytes
        self.received_bytes = received_bytes


def _check_max_frame_bytes(max_frame_bytes: int) -> int:
    if isinstance(max_frame_bytes, bool) or not isinstance(max_frame_bytes, int):
        raise TypeError(f"max_frame_bytes must be an int, got {type(max_frame_bytes).__name__}")
    if not 0 <= max_frame_bytes <= MAX_ENCODABLE_FRAME_BYTES:
        raise ValueError(
            f"max_frame_bytes must be between 0 and {MAX_ENCODABLE_FRAME_BYTES}, "
            f"got {max_frame_bytes}"
        )
    return max_frame_bytes


def encode_frame(payload: bytes) -> bytes:
    """Return ``payload`` with its 4-byte big-endian length prefix.

    Raises ValueError when the payload is longer than 4294967295 bytes.
    """
    if len(payload) > MAX_ENCODABLE_FRAME_BYTES:
        raise ValueError(
            f"frame payload of {len(payload)} bytes exceeds the maximum of "
            f"{MAX_ENCODABLE_FRAME_BYTES} bytes that a 4-byte length prefix can carry"
        )
    return _PREFIX.pack(len(payload)) + payload


class FrameReader:
    """Blocking reader of length-prefixed frames, meant for a thread that reads stdin.

    Options:
        source: a binary stream, or a file descriptor that the reader wraps in a buffered
            stream without taking ownership (closing the reader leaves the descriptor open).
            A stream must block until data arrives, so a non-blocking socket does not work.
        max_frame_bytes: see the module docstring. Default 16777216.
    """

    def __init__(
        self, source: BinaryIO | int, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    ) -> None:
        self._max_frame_bytes = _check_max_frame_bytes(max_frame_bytes)
        if isinstance(source, int):
            self._stream: BinaryIO = open(source, "rb", buffering=_READ_BUFFER_BYTES, closefd=False)
            self._owns_stream = True
        else:
            self._stream = source
            self._owns_stream = False
        self._at_eof = False

    @property
    def max_frame_bytes(self) -> int:
        return self._max_frame_bytes

    def read_frame(self) -> bytes | None:
        """Read the next frame and return its payload, or None at end of input.

        Raises FrameTooLargeError after discarding an oversized frame, and
        TruncatedFrameError once when input ends inside a frame. Both leave the reader
        usable. OSError from the stream propagates.
        """
        if self._at_eof:
            return None

        prefix = self._read_exact(LENGTH_PREFIX_BYTES)
        if not prefix:
            self._at_eof = True
            return None
        if len(prefix) < LENGTH_PREFIX_BYTES:
            self._at_eof = True
            raise TruncatedFrameError("length prefix", LENGTH_PREFIX_BYTES, len(prefix))

        (length,) = _PREFIX.unpack(prefix)
        if length > self._max_frame_bytes:
            discarded = self._discard(length)
            if discarded < length:
                self._at_eof = True
                raise TruncatedFrameError("payload", length, discarded)
            raise FrameTooLargeError(length, self._max_frame_bytes)

        payload = self._read_exact(length)
        if len(payload) < length:
            self._at_eof = True
            raise TruncatedFrameError("payload", length, len(payload))
        return payload

    def close(self) -> None:
        """Close the wrapper stream if the reader created it. The descriptor stays open."""
        if self._owns_stream:
            self._stream.close()

    def _read_exact(self, count: int) -> bytes:
        # A buffered stream returns short reads only at end of input, but a raw one may
        # return them at any time, so keep reading until count bytes or end of input.
        chunks: list[bytes] = []
        remaining = count
        while remaining > 0:
            chunk = self._stream.read(remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _discard(self, count: int) -> int:
        discarded = 0
        while discarded < count:
            chunk = self._stream.read(min(_DISCARD_CHUNK_BYTES, count - discarded))
            if not chunk:
                break
            discarded += len(chunk)
        return discarded


class FrameWriter:
    """Thread-safe writer of length-prefixed frames.

    Each frame goes out as one buffer (prefix and payload) under a lock, followed by a
    flush, so frames from different threads never interleave.

    Options:
        target: a binary stream, or a file descriptor written with ``os.write``. The
            writer never closes either one.
    """

    def __init__(self, target: BinaryIO | int) -> None:
        self._target = target
        self._lock = threading.Lock()

    def write_frame(self, payload: bytes) -> None:
        """Write one frame. Raises ValueError for a payload over 4294967295 bytes and
        OSError (for example BrokenPipeError once the peer is gone) from the target."""
        frame = encode_frame(payload)
        with self._lock:
            if isinstance(self._target, int):
                self._write_fd(self._target, frame)
            else:
                self._write_stream(self._target, frame)

    @staticmethod
    def _write_fd(fd: int, frame: bytes) -> None:
        # A blocking pipe write returns short only when a signal interrupts it midway.
        # The lock is held until the whole frame is out, so other threads cannot interleave.
        view = memoryview(frame)
        while view:
            written = os.write(fd, view)
            view = view[written:]

    @staticmethod
    def _write_stream(stream: BinaryIO, frame: bytes) -> None:
        view = memoryview(frame)
        while view:
            written = stream.write(view)
            # Buffered streams return None or the full length. Raw streams may write less.
            if written is None or written >= len(view):
                break
            view = view[written:]
        stream.flush()


class AsyncFrameReader:
    """Reader of length-prefixed frames from an ``asyncio.StreamReader``.

    It reports errors like `FrameReader`. Options:
        reader: the stream to read.
        max_frame_bytes: see the module docstring. Default 16777216.
    """

    def __init__(
        self, reader: asyncio.StreamReader, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    ) -> None:
        self._reader = reader
        self._max_frame_bytes = _check_max_frame_bytes(max_frame_bytes)
        self._at_eof = False

    @property
    def max_frame_bytes(self) -> int:
        return self._max_frame_bytes

    async def read_frame(self) -> bytes | None:
        """Read the next frame and return its payload, or None at end of input.

        Raises FrameTooLargeError and TruncatedFrameError as `FrameReader.read_frame` does.
        """
        if self._at_eof:
            return None

        try:
            prefix = await self._reader.readexactly(LENGTH_PREFIX_BYTES)
        except asyncio.IncompleteReadError as error:
            self._at_eof = True
            if not error.partial:
                return None
            raise TruncatedFrameError(
                "length prefix", LENGTH_PREFIX_BYTES, len(error.partial)
            ) from None

        (length,) = _PREFIX.unpack(prefix)
        if length > self._max_frame_bytes:
            discarded = 0
            while discarded < length:
                chunk = await self._reader.read(min(_DISCARD_CHUNK_BYTES, length - discarded))
                if not chunk:
                    self._at_eof = True
                    raise TruncatedFrameError("payload", length, discarded)
                discarded += len(chunk)
            raise FrameTooLargeError(length, self._max_frame_bytes)

        try:
            return await self._reader.readexactly(length)
        except asyncio.IncompleteReadError as error:
            self._at_eof = True
            raise TruncatedFrameError("payload", length, len(error.partial)) from None


class AsyncFrameWriter:
    """Writer of length-prefixed frames to an ``asyncio.StreamWriter``.

    Each frame is one ``write`` call. The event loop runs one coroutine at a time, so
    frames from different tasks never interleave without a lock. Not thread-safe: call
    it only from the loop's thread.
    """

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write_frame(self, payload: bytes) -> None:
        """Write one frame and wait until the transport buffer drains below its limit."""
        self._writer.write(encode_frame(payload))
        await self._writer.drain()
