"""Protection of the port protocol's stdout from stray writes.

An Erlang port reads the node's stdout as a stream of frames, so a single ``print`` or a
library writing to descriptor 1 would corrupt it. `claim_stdout` moves the frame stream
to a private descriptor before anything else can write.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

__all__ = ["claim_stdout"]

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_claimed_fd: int | None = None


def claim_stdout() -> int:
    """Reserve the process's stdout for frames and return the descriptor to write them to.

    Duplicates descriptor 1 into a private descriptor, points descriptor 1 at stderr and
    rebinds ``sys.stdout`` to ``sys.stderr``. After this, ``print`` output, C extensions
    writing to descriptor 1 and child processes that inherit it all write to stderr. The
    private descriptor is not inheritable, so child processes cannot write frames.

    Call it once at startup, before other threads start. Later calls return the same
    descriptor without changing anything.
    """
    global _claimed_fd
    with _lock:
        if _claimed_fd is not None:
            return _claimed_fd

        # Bytes already buffered for stdout belong to the old stream, so write them first.
        if sys.stdout is not None:
            sys.stdout.flush()
        frame_fd = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        _claimed_fd = frame_fd
        logger.debug("stdout claimed for frames as descriptor %d", frame_fd)
        return frame_fd
