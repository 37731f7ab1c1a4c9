"""Location of a node's control socket, shared by the node and the ``tpir`` CLI.

The socket is ``<data_dir>/tpir.sock``. A Unix domain socket path is limited by the
``sun_path`` field of ``struct sockaddr_un``: 108 bytes on Linux, including the final
NUL byte, so the path may be at most 107 bytes long.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

__all__ = ["SOCKET_NAME", "MAX_SOCKET_PATH_BYTES", "control_socket_path", "check_socket_path"]

SOCKET_NAME: Final = "tpir.sock"
MAX_SOCKET_PATH_BYTES: Final = 107


def control_socket_path(data_dir: str | os.PathLike[str]) -> Path:
    """Return the control socket path of the node whose data folder is ``data_dir``."""
    return Path(data_dir) / SOCKET_NAME


def check_socket_path(path: str | os.PathLike[str]) -> None:
    """Raise ValueError when ``path`` is too long to bind or connect a Unix socket to."""
    length = len(os.fsencode(path))
    if length > MAX_SOCKET_PATH_BYTES:
        raise ValueError(
            f"control socket path {os.fspath(path)!r} is {length} bytes long, over the "
            f"maximum of {MAX_SOCKET_PATH_BYTES} bytes for a Unix socket; choose a "
            "shorter node.data_dir"
        )
