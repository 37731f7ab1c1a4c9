"""The bridge's peers: the Erlang port on stdin/stdout, and CLI connections on the socket.

Each peer has its own `FrameDecoder` and its own event subscription. Reading never
blocks: the bridge reads a peer only after ThespianWatch reported its descriptor
readable, and checks readiness again before each read, because one readiness can be
reported more than once.

Writing blocks, because ThespianWatch reports only readability and so cannot tell the
bridge when a full pipe drains:

- The port peer writes each frame to the frames descriptor with ``os.write`` until all
  of it is out. A peer that stops reading its stdout therefore stalls the bridge, as a
  port program's stdout always does.
- A socket peer waits at most `SOCKET_SEND_TIMEOUT_SECONDS` for its socket to take a
  frame, and is then disconnected, so a stuck CLI cannot stall the node.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import time
from typing import Final

from tpir.bridge.framing import encode_frame
from tpir.bridge.incremental import FrameDecoder

__all__ = ["Peer", "PortPeer", "SocketPeer", "READ_CHUNK_BYTES", "SOCKET_SEND_TIMEOUT_SECONDS"]

logger = logging.getLogger(__name__)

READ_CHUNK_BYTES: Final = 64 * 1024
SOCKET_SEND_TIMEOUT_SECONDS: Final = 2.0


def _readable(fd: int) -> bool:
    ready, _, _ = select.select([fd], [], [], 0)
    return bool(ready)


class Peer:
    """One connection that sends requests and receives replies and events.

    ``events`` is None for every event kind once ``subscribed`` is True, or the set of
    kinds the peer asked for.
    """

    def __init__(self, peer_id: int, name: str, read_fd: int, max_frame_bytes: int) -> None:
        self.id = peer_id
        self.name = name
        self.read_fd = read_fd
        self.decoder = FrameDecoder(max_frame_bytes=max_frame_bytes)
        self.subscribed = False
        self.events: frozenset[str] | None = None
        self.closed = False
        self.write_failures = 0

    def wants(self, event: str) -> bool:
        """Return whether this peer subscribed to ``event``."""
        return self.subscribed and (self.events is None or event in self.events)

    def read(self) -> bytes | None:
        """Return the bytes available now, b"" at end of input, or None when none are.

        Raises OSError when reading fails.
        """
        if self.closed or not _readable(self.read_fd):
            return None
        return self._read_once()

    def _read_once(self) -> bytes | None:
        raise NotImplementedError

    def send_frame(self, payload: bytes) -> bool:
        """Write one frame; return False when it could not be written."""
        if self.closed:
            return False
        try:
            self._write(encode_frame(payload))
        except (OSError, ValueError) as exc:
            self.write_failures += 1
            # A peer that went away fails every later write too, so log the first only.
            if self.write_failures == 1:
                logger.error("writing a frame to %s failed: %s", self.name, exc)
            else:
                logger.debug("writing a frame to %s failed again: %s", self.name, exc)
            return False
        return True

    def _write(self, frame: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True


class PortPeer(Peer):
    """The Erlang port: requests on ``input_fd`` (stdin), frames out on ``output_fd``.

    Neither descriptor is closed by the peer, because every actor process inherited
    them.
    """

    def __init__(self, peer_id: int, input_fd: int, output_fd: int, max_frame_bytes: int) -> None:
        super().__init__(peer_id, "the port", input_fd, max_frame_bytes)
        self.output_fd = output_fd

    def _read_once(self) -> bytes | None:
        try:
            return os.read(self.read_fd, READ_CHUNK_BYTES)
        except BlockingIOError:
            # Possible only when another program made the shared pipe non-blocking.
            return None

    def _write(self, frame: bytes) -> None:
        view = memoryview(frame)
        while view:
            written = os.write(self.output_fd, view)
            view = view[written:]


class SocketPeer(Peer):
    """One connection accepted on the control socket; the peer owns and closes it."""

    def __init__(self, peer_id: int, sock: socket.socket, max_frame_bytes: int) -> None:
        sock.setblocking(False)
        super().__init__(peer_id, f"control connection {peer_id}", sock.fileno(), max_frame_bytes)
        self.sock = sock

    def _read_once(self) -> bytes | None:
        try:
            return self.sock.recv(READ_CHUNK_BYTES)
        except BlockingIOError:
            # A readiness report can be stale: another read took the data already.
            return None

    def _write(self, frame: bytes) -> None:
        view = memoryview(frame)
        deadline = time.monotonic() + SOCKET_SEND_TIMEOUT_SECONDS
        while view:
            try:
                sent = self.sock.send(view)
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"the peer took no data for {SOCKET_SEND_TIMEOUT_SECONDS} s"
                    ) from None
                select.select([], [self.sock], [], remaining)
                continue
            view = view[sent:]

    def close(self) -> None:
        if not self.closed:
            super().close()
            self.sock.close()
