"""``CompletionChannel``: hand results from worker threads to a select loop.

A thespian actor sleeps in ``select`` between messages, so a result that another thread
puts on a plain queue would wait until the next message arrives. The channel pairs the
queue with a pipe: every ``post`` writes one byte, the actor watches the pipe's read end
(``GenActor.watch``), and ``drain`` empties both.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from typing import Generic, TypeVar

__all__ = ["CompletionChannel"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_READ_CHUNK = 4096


class CompletionChannel(Generic[T]):
    """A thread-safe queue whose ``post`` makes a pipe readable.

    ``post`` may be called from any thread. ``drain``, ``fileno`` and ``close`` belong to
    the thread that watches the pipe. Both pipe ends are non-blocking and close-on-exec.
    """

    def __init__(self) -> None:
        self._items: queue.SimpleQueue[T] = queue.SimpleQueue()
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        # Guards the write end, so that a late post never writes to a closed (and maybe
        # reused) descriptor number.
        self._lock = threading.Lock()
        self._closed = False

    def fileno(self) -> int:
        """Return the pipe's read end, the descriptor to watch for readability."""
        return self._read_fd

    @property
    def closed(self) -> bool:
        """Whether ``close`` has run."""
        return self._closed

    def post(self, item: T) -> None:
        """Queue ``item`` and wake the watcher. Items posted after ``close`` are dropped."""
        with self._lock:
            if self._closed:
                return
            # The item goes in before the byte: a reader that sees the byte then finds
            # the item, and a byte left over from an earlier drain only causes an empty one.
            self._items.put(item)
            try:
                os.write(self._write_fd, b"\x01")
            except BlockingIOError:
                pass  # the pipe is full, so the watcher is already woken

    def drain(self) -> list[T]:
        """Consume the wake-up bytes and return every queued item, oldest first."""
        if self._closed:
            return []
        while True:
            try:
                if not os.read(self._read_fd, _READ_CHUNK):
                    break
            except BlockingIOError:
                break
        items: list[T] = []
        while True:
            try:
                items.append(self._items.get_nowait())
            except queue.Empty:
                return items

    def close(self) -> None:
        """Close both pipe ends. Queued items are never returned, and a second call does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for fd in (self._read_fd, self._write_fd):
                try:
                    os.close(fd)
                except OSError as exc:
                    logger.warning("closing completion pipe descriptor %d failed: %s", fd, exc)
