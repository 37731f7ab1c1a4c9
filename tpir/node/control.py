"""The node's control socket: a Unix domain socket that the ``tpir`` CLI connects to.

It speaks the port protocol (`tpir.bridge.protocol`) with the same frames as the port,
one peer per connection. `ControlListener` creates the data folder, with mode 0700 when
it does not exist yet, and replaces a stale socket file that no node listens on. It binds
the socket with permissions 0600, so only the node's user can connect. When it closes, it
removes the socket file, unless another node has replaced it meanwhile.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
from pathlib import Path
from typing import Final

from tpir.node.paths import check_socket_path

__all__ = ["ControlListener", "SocketInUseError"]

logger = logging.getLogger(__name__)

_BACKLOG: Final = 16
_PROBE_TIMEOUT_SECONDS: Final = 0.5


class SocketInUseError(OSError):
    """Another process already accepts connections on the control socket path."""


class ControlListener:
    """Listening Unix socket at ``path``; see the module docstring for its life cycle."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._sock: socket.socket | None = None
        self._inode: tuple[int, int] | None = None

    def open(self) -> socket.socket:
        """Create, bind and listen; return the non-blocking listening socket.

        Raises ValueError for a path over the Unix socket length limit,
        `SocketInUseError` when a running node owns the path, and OSError when the
        folder or socket cannot be created.
        """
        check_socket_path(self.path)
        folder = self.path.parent
        if not folder.exists():
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._remove_stale()

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # The umask applies to the socket file that bind creates, so the file is never
        # reachable by others, even between bind and chmod. The bridge process has no
        # other threads that could create files meanwhile.
        old_umask = os.umask(0o177)
        try:
            sock.bind(os.fspath(self.path))
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        sock.listen(_BACKLOG)
        sock.setblocking(False)
        stat = os.stat(self.path)
        self._inode = (stat.st_dev, stat.st_ino)
        self._sock = sock
        return sock

    def fileno(self) -> int:
        if self._sock is None:
            raise ValueError("the control socket is not open")
        return self._sock.fileno()

    def accept_all(self) -> list[socket.socket]:
        """Accept every connection waiting now and return them."""
        accepted: list[socket.socket] = []
        if self._sock is None:
            return accepted
        while True:
            try:
                connection, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return accepted
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    logger.error("accepting a control connection failed: %s", exc)
                    return accepted
                raise
            accepted.append(connection)

    def close(self) -> None:
        """Close the socket and remove its file if it is still the one this node bound."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        sock.close()
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return
        if (stat.st_dev, stat.st_ino) == self._inode:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    def _remove_stale(self) -> None:
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise OSError(
                errno.EEXIST,
                f"{self.path} exists and is not a socket; remove it or choose another "
                "node.data_dir",
            )
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(_PROBE_TIMEOUT_SECONDS)
        try:
            probe.connect(os.fspath(self.path))
        except (ConnectionRefusedError, FileNotFoundError):
            logger.info("removing stale control socket %s", self.path)
            self.path.unlink(missing_ok=True)
            return
        finally:
            probe.close()
        raise SocketInUseError(
            errno.EADDRINUSE,
            f"another TPIR node is listening on {self.path}; stop it or give this node "
            "another node.data_dir",
        )
