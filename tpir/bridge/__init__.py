"""The port bridge between erlmcp and the TPIR node.

`framing` reads and writes length-prefixed frames, `protocol` validates requests and
builds replies and events, `server` runs the port loop that dispatches requests to
handlers, and `stdio` keeps stray output off the frame stream.
"""

from __future__ import annotations

from tpir.bridge.framing import (
    DEFAULT_MAX_FRAME_BYTES,
    FrameReader,
    FrameTooLargeError,
    FrameWriter,
    TruncatedFrameError,
)
from tpir.bridge.protocol import OPERATIONS, ErrorCode, ProtocolError, Request
from tpir.bridge.server import Handler, PortServer, Reply
from tpir.bridge.stdio import claim_stdout

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "OPERATIONS",
    "ErrorCode",
    "FrameReader",
    "FrameTooLargeError",
    "FrameWriter",
    "Handler",
    "PortServer",
    "ProtocolError",
    "Reply",
    "Request",
    "TruncatedFrameError",
    "claim_stdout",
]
