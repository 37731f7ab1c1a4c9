"""A blocking client of a running node's control socket, used by the ``tpir`` CLI.

The control socket speaks the port protocol (`tpir.bridge.protocol`): one MessagePack
map per length-prefixed frame. `ControlClient.request` sends one request and returns the
result of its reply, skipping event frames that arrive meanwhile.

Options of `ControlClient`:
    socket_path: the node's control socket, ``<data_dir>/tpir.sock``.
    timeout: seconds to wait for the connection and for each reply. Default 10, greater
        than 0.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
from pathlib import Path
from typing import Any

import msgpack

from tpir.bridge.framing import FrameError, FrameReader, encode_frame
from tpir.node.paths import check_socket_path

__all__ = ["ControlClient", "NodeError", "NodeNotRunningError"]

logger = logging.getLogger(__name__)


class NodeNotRunningError(Exception):
    """No node accepts connections on the control socket; the message gives the reason."""


class NodeError(Exception):
    """The node replied with an error, or sent no reply in time.

    ``code`` is the reply's error code (``timeout`` when no reply came), ``details``
    its details.
    """

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details


class ControlClient:
    """One connection to a node's control socket; see the module docstring."""

    def __init__(self, socket_path: str | os.PathLike[str], *, timeout: float = 10.0) -> None:
        if not timeout > 0:
            raise ValueError(f"invalid timeout {timeout!r}: expected seconds > 0")
        self.socket_path = Path(socket_path)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._stream: Any = None
        self._reader: FrameReader | None = None
        self._ids = itertools.count(1)

    def connect(self) -> ControlClient:
        """Connect to the node. Raises `NodeNotRunningError` naming the reason."""
        try:
            check_socket_path(self.socket_path)
        except ValueError as exc:
            raise NodeNotRunningError(str(exc)) from None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(os.fspath(self.socket_path))
        except FileNotFoundError:
            sock.close()
            raise NodeNotRunningError(f"{self.socket_path} does not exist") from None
        except ConnectionRefusedError:
            sock.close()
            raise NodeNotRunningError(f"{self.socket_path} refused the connection") from None
        except OSError as exc:
            sock.close()
            raise NodeNotRunningError(
                f"connecting to {self.socket_path} failed: {exc.strerror or exc}"
            ) from None
        self._sock = sock
        self._stream = sock.makefile("rb")
        self._reader = FrameReader(self._stream)
        return self

    def request(self, op: str, **args: Any) -> Any:
        """Send one request and return its result.

        Raises `NodeError` for an error reply, or with code ``timeout`` when no reply
        comes within ``timeout`` seconds, and with code ``connection_lost`` when the node
        closes the connection first.
        """
        if self._sock is None or self._reader is None:
            self.connect()
        assert self._sock is not None and self._reader is not None
        request_id = next(self._ids)
        message = {"id": request_id, "op": op}
        message.update({key: value for key, value in args.items() if value is not None})
        try:
            self._sock.sendall(encode_frame(msgpack.packb(message, use_bin_type=True)))
            while True:
                frame = self._reader.read_frame()
                if frame is None:
                    raise NodeError("connection_lost", "the node closed the connection")
                reply = msgpack.unpackb(frame, raw=False, strict_map_key=False)
                if isinstance(reply, dict) and reply.get("id") == request_id:
                    break
        except TimeoutError:
            raise NodeError("timeout", f"no reply to '{op}' within {self.timeout:g} s") from None
        except (FrameError, ConnectionError) as exc:
            raise NodeError("connection_lost", f"the connection to the node broke: {exc}") from None
        if reply.get("ok"):
            return reply.get("result")
        error = reply.get("error") or {}
        raise NodeError(
            str(error.get("code", "unknown")),
            str(error.get("message", "no message")),
            error.get("details"),
        )

    def close(self) -> None:
        self._reader = None
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> ControlClient:
        return self.connect()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
