"""The incremental frame decoder, fed byte streams split in every possible way."""

from __future__ import annotations

import struct

import pytest

from tpir.bridge.framing import FrameTooLargeError, encode_frame
from tpir.bridge.incremental import FrameDecoder

pytestmark = pytest.mark.timeout(30)


def frames(*payloads: bytes) -> bytes:
    return b"".join(encode_frame(payload) for payload in payloads)


def test_decoder_returns_whole_frames_in_order() -> None:
    decoder = FrameDecoder()

    items = decoder.feed(frames(b"one", b"", b"three"))

    assert items == [b"one", b"", b"three"]
    assert decoder.buffered_bytes == 0


def test_decoder_handles_every_split_point() -> None:
    stream = frames(b"alpha", b"", b"b" * 300)
    for split in range(len(stream) + 1):
        decoder = FrameDecoder()

        items = decoder.feed(stream[:split]) + decoder.feed(stream[split:])

        assert items == [b"alpha", b"", b"b" * 300], f"split at {split}"


def test_decoder_accepts_one_byte_at_a_time() -> None:
    decoder = FrameDecoder()
    items: list[object] = []

    for byte in frames(b"xyz", b"0123456789"):
        items.extend(decoder.feed(bytes([byte])))

    assert items == [b"xyz", b"0123456789"]


def test_decoder_reports_oversized_frame_and_stays_in_sync() -> None:
    decoder = FrameDecoder(max_frame_bytes=8)

    items = decoder.feed(frames(b"small", b"x" * 20, b"after"))

    assert items[0] == b"small"
    assert isinstance(items[1], FrameTooLargeError)
    assert items[1].length == 20
    assert items[1].max_frame_bytes == 8
    assert items[2] == b"after"


def test_decoder_drops_oversized_payload_as_it_streams() -> None:
    decoder = FrameDecoder(max_frame_bytes=1024)
    decoder.feed(struct.pack(">I", 1_000_000))
    buffered_sizes = []

    for _ in range(99):
        assert decoder.feed(b"z" * 10_000) == []
        buffered_sizes.append(decoder.buffered_bytes)
    last = decoder.feed(b"z" * 10_000)

    assert max(buffered_sizes) <= 4
    assert isinstance(last[0], FrameTooLargeError)
    assert decoder.in_frame is False


def test_decoder_oversized_error_comes_at_frame_end() -> None:
    decoder = FrameDecoder(max_frame_bytes=4)
    first = decoder.feed(struct.pack(">I", 10) + b"12345")

    second = decoder.feed(b"67890" + frames(b"ok"))

    assert first == []
    assert isinstance(second[0], FrameTooLargeError)
    assert second[1] == b"ok"


def test_decoder_finish_reports_truncated_prefix() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\x00\x00")

    error = decoder.finish()

    assert error is not None
    assert error.part == "length prefix"
    assert error.received_bytes == 2


def test_decoder_finish_reports_truncated_payload() -> None:
    decoder = FrameDecoder()
    decoder.feed(struct.pack(">I", 10) + b"abc")

    error = decoder.finish()

    assert error is not None
    assert error.part == "payload"
    assert error.expected_bytes == 10
    assert error.received_bytes == 3


def test_decoder_finish_after_whole_frames_is_clean() -> None:
    decoder = FrameDecoder()
    decoder.feed(frames(b"done"))

    assert decoder.finish() is None


def test_decoder_can_decode_again_after_finish() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\x00")
    decoder.finish()

    assert decoder.feed(frames(b"again")) == [b"again"]


@pytest.mark.parametrize("value", [-1, 2**32])
def test_decoder_rejects_max_out_of_range(value: int) -> None:
    with pytest.raises(ValueError, match="between 0 and 4294967295"):
        FrameDecoder(max_frame_bytes=value)


def test_decoder_rejects_bool_max() -> None:
    with pytest.raises(TypeError, match="must be an int"):
        FrameDecoder(max_frame_bytes=True)
