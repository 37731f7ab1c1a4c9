"""Incremental decoding of length-prefixed frames, for readers that cannot block.

An actor that watches a descriptor reads whatever bytes are available and hands them to
a `FrameDecoder`, which returns every frame completed so far and keeps the rest for the
next call. The wire format is the one of `tpir.bridge.framing`: a 4-byte big-endian
unsigned length, then that many payload bytes.

Options:
    max_frame_bytes: maximum payload length in bytes that the decoder returns. Default
        16777216 (16 MiB). Valid range 0 to 4294967295. The payload of a longer frame
        is dropped as it arrives, so the decoder never holds more of it than the bytes
        passed to one `FrameDecoder.feed` call, and the frame is reported as
        `FrameTooLargeError` once its last byte has passed.
"""

from __future__ import annotations

import logging
import struct

from tpir.bridge.framing import (
    DEFAULT_MAX_FRAME_BYTES,
    LENGTH_PREFIX_BYTES,
    MAX_ENCODABLE_FRAME_BYTES,
    FrameTooLargeError,
    TruncatedFrameError,
)

__all__ = ["FrameDecoder", "DecodedItem"]

logger = logging.getLogger(__name__)

_PREFIX = struct.Struct(">I")

DecodedItem = bytes | FrameTooLargeError
"""One result of `FrameDecoder.feed`: a frame payload, or the error of a dropped frame."""


class FrameDecoder:
    """Splits a byte stream fed in arbitrary pieces into frame payloads.

    The module docstring describes ``max_frame_bytes``. A decoder is not thread-safe;
    one reader feeds it.
    """

    def __init__(self, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        if isinstance(max_frame_bytes, bool) or not isinstance(max_frame_bytes, int):
            raise TypeError(f"max_frame_bytes must be an int, got {type(max_frame_bytes).__name__}")
        if not 0 <= max_frame_bytes <= MAX_ENCODABLE_FRAME_BYTES:
            raise ValueError(
                f"max_frame_bytes must be between 0 and {MAX_ENCODABLE_FRAME_BYTES}, "
                f"got {max_frame_bytes}"
            )
        self._max_frame_bytes = max_frame_bytes
        self._prefix = bytearray()
        self._payload = bytearray()
        # Length of the frame being read, or None while its prefix is incomplete.
        self._length: int | None = None
        # True while the current frame is oversized and its bytes are dropped.
        self._discarding = False
        self._received = 0

    @property
    def max_frame_bytes(self) -> int:
        return self._max_frame_bytes

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for the frame in progress (prefix and payload, not dropped bytes)."""
        return len(self._prefix) + len(self._payload)

    @property
    def in_frame(self) -> bool:
        """Whether part of a frame has arrived and the rest is still expected."""
        return bool(self._prefix) or self._length is not None

    def feed(self, data: bytes) -> list[DecodedItem]:
        """Consume ``data`` and return the frames it completes, in stream order.

        A frame over ``max_frame_bytes`` appears in the list as a `FrameTooLargeError`
        at the position where the frame ends, so the stream stays in sync.
        """
        items: list[DecodedItem] = []
        view = memoryview(data)
        offset = 0
        while offset < len(view):
            if self._length is None:
                offset = self._take_prefix(view, offset)
                if self._length is None:
                    break
                if self._length > self._max_frame_bytes:
                    self._discarding = True
            # A frame of length 0 completes here too, with an empty payload chunk.
            offset = self._take_payload(view, offset)
            if self._received == self._length:
                items.append(self._complete())
        return items

    def finish(self) -> TruncatedFrameError | None:
        """Report the end of input: the error for a frame cut short, or None.

        The decoder is empty afterwards and can decode a new stream.
        """
        if not self.in_frame:
            return None
        if self._length is None:
            error = TruncatedFrameError("length prefix", LENGTH_PREFIX_BYTES, len(self._prefix))
        else:
            error = TruncatedFrameError("payload", self._length, self._received)
        self._reset()
        return error

    def _take_prefix(self, view: memoryview, offset: int) -> int:
        needed = LENGTH_PREFIX_BYTES - len(self._prefix)
        chunk = view[offset : offset + needed]
        self._prefix += chunk
        offset += len(chunk)
        if len(self._prefix) == LENGTH_PREFIX_BYTES:
            (self._length,) = _PREFIX.unpack(self._prefix)
            self._received = 0
        return offset

    def _take_payload(self, view: memoryview, offset: int) -> int:
        assert self._length is not None
        needed = self._length - self._received
        chunk = view[offset : offset + needed]
        if not self._discarding:
            self._payload += chunk
        self._received += len(chunk)
        return offset + len(chunk)

    def _complete(self) -> DecodedItem:
        assert self._length is not None
        item: DecodedItem
        if self._discarding:
            item = FrameTooLargeError(self._length, self._max_frame_bytes)
        else:
            item = bytes(self._payload)
        self._reset()
        return item

    def _reset(self) -> None:
        self._prefix.clear()
        self._payload = bytearray()
        self._length = None
        self._discarding = False
        self._received = 0
