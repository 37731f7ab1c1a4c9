"""``LoopThread``: an asyncio event loop on a private daemon thread.

An actor handles one message at a time on its own thread, so it cannot await HTTP
calls itself. It hands coroutines to a ``LoopThread`` instead and learns of their
results through a :class:`~actors.provider.completions.CompletionChannel`.

Start the thread inside the process that uses it, after thespian has forked that
process, because a forked child gets no copy of its parent's threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_START_TIMEOUT = 5.0


class LoopThread:
    """An asyncio event loop running on its own daemon thread.

    ``name`` is the thread's name, shown in thread dumps and debuggers.
    Call :meth:`start` once, :meth:`submit` any number of times, then :meth:`stop`.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped = False

    @property
    def running(self) -> bool:
        """Whether the thread is alive and its loop accepts work."""
        return self._thread is not None and self._thread.is_alive() and not self._stopped

    def start(self) -> None:
        """Start the thread and wait until its loop runs. Raises RuntimeError if started twice."""
        if self._thread is not None:
            raise RuntimeError(f"loop thread {self.name!r} was already started")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT):
            raise RuntimeError(f"loop thread {self.name!r} did not start within {_START_TIMEOUT} s")

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coroutine`` on the loop and return a future that any thread can use.

        Cancelling the future cancels the task on the loop. Raises RuntimeError when the
        loop is not running, after closing the coroutine unawaited.
        """
        if self._loop is None or not self.running:
            coroutine.close()
            raise RuntimeError(f"loop thread {self.name!r} is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def stop(self, timeout: float, cleanup: Callable[[], Awaitable[None]] | None = None) -> bool:
        """Cancel every task, run ``cleanup`` on the loop, stop the loop and join the thread.

        ``timeout`` (seconds) bounds the whole stop: cancelled tasks get up to half of it
        to unwind, and ``cleanup`` gets what remains before the loop stops. Returns
        whether the thread ended in time. A thread that did not end is left running as a
        daemon, so it cannot keep the process alive. Calling ``stop`` again does nothing
        and returns whether the thread has ended.
        """
        if self._thread is None or self._loop is None:
            return True
        if self._stopped:
            return not self._thread.is_alive()
        self._stopped = True
        deadline = time.monotonic() + timeout
        loop = self._loop

        if self._thread.is_alive():
            shutdown = asyncio.run_coroutine_threadsafe(
                self._shut_down(timeout / 2, deadline, cleanup), loop
            )
            try:
                shutdown.result(max(0.0, deadline - time.monotonic()))
            except concurrent.futures.TimeoutError:
                logger.warning(
                    "loop thread %s: shutdown did not finish in %.2f s", self.name, timeout
                )
                shutdown.cancel()
            except Exception as exc:  # noqa: BLE001 - the loop is stopped either way
                logger.error("loop thread %s: shutdown failed: %r", self.name, exc)
            try:
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:
                pass  # the loop has already closed itself
        self._thread.join(max(0.0, deadline - time.monotonic()))
        ended = not self._thread.is_alive()
        if not ended:
            logger.warning("loop thread %s is still running after %.2f s", self.name, timeout)
        return ended

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        loop.call_soon(self._ready.set)
        try:
            loop.run_forever()
        finally:
            self._close_loop(loop)

    async def _shut_down(
        self,
        grace: float,
        deadline: float,
        cleanup: Callable[[], Awaitable[None]] | None,
    ) -> None:
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            if pending:
                logger.warning(
                    "loop thread %s: %d tasks did not end within %.2f s of cancellation",
                    self.name,
                    len(pending),
                    grace,
                )
        if cleanup is not None:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                await asyncio.wait_for(cleanup(), remaining)
            except TimeoutError:
                logger.warning("loop thread %s: cleanup timed out", self.name)

    def _close_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        # Tasks still pending here ignored their cancellation, and closing the loop drops them.
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        except Exception as exc:  # noqa: BLE001 - the loop closes either way
            logger.warning("loop thread %s: closing async generators failed: %r", self.name, exc)
        finally:
            loop.close()
