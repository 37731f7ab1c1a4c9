"""``AttemptRunner``: send adapter attempts on a private event loop without blocking the caller.

The runner owns one ``httpx.AsyncClient``, a :class:`LoopThread` that runs it and a
:class:`CompletionChannel` that reports each finished attempt. The owning thread (the
provider actor's) calls ``submit`` and ``cancel``, watches ``fileno()`` and calls
``drain`` when it is readable, so no HTTP exchange blocks it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from actors.adapters import Adapter, Outcome
from actors.provider.completions import CompletionChannel
from actors.provider.loop import LoopThread

__all__ = [
    "DEFAULT_KEEPALIVE_CONNECTIONS",
    "DEFAULT_MAX_CONNECTIONS",
    "KEEPALIVE_EXPIRY",
    "MAX_CONNECTIONS_LIMIT",
    "AttemptRunner",
    "Finished",
    "build_client",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_CONNECTIONS = 100
"""Default limit of open connections to one provider, which is also the number of attempts
that can be on the wire at once. Further attempts wait for a free connection inside their
own per-try timeout."""

MAX_CONNECTIONS_LIMIT = 10_000

DEFAULT_KEEPALIVE_CONNECTIONS = 20
"""Idle connections kept open for reuse (httpx's default)."""

KEEPALIVE_EXPIRY = 5.0
"""Seconds an idle connection is kept open (httpx's default)."""

_CLIENT_START_TIMEOUT = 5.0


@dataclass(frozen=True)
class Finished:
    """An attempt that ran to its end on the loop thread.

    ``outcome`` is the adapter's ``Success`` or ``Failure``. When the adapter raised
    instead, ``outcome`` is None and ``error`` is the exception's type and message.
    ``duration`` is seconds from the start of the send to its end, by ``time.monotonic``.
    """

    token: int
    outcome: Outcome | None
    error: str | None
    duration: float


def build_client(max_connections: int, max_keepalive_connections: int) -> httpx.AsyncClient:
    """Build the client that one provider's attempts share.

    The transport makes no retries (the router decides about retries), redirects are not
    followed, and ``trust_env=False`` keeps proxy variables and ``.netrc`` out of the
    requests. Timeouts are set per request by the adapter.
    """
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=min(max_keepalive_connections, max_connections),
        keepalive_expiry=KEEPALIVE_EXPIRY,
    )
    transport = httpx.AsyncHTTPTransport(retries=0, limits=limits, trust_env=False)
    return httpx.AsyncClient(
        transport=transport,
        trust_env=False,
        follow_redirects=False,
        timeout=None,
    )


def load_async_backend() -> None:
    """Load the async backend that httpcore uses, from a coroutine on the loop thread.

    httpcore creates its first ``anyio.Event`` at a client's first request, and anyio
    imports its asyncio backend then: about 20 ms on this kind of machine. Paid at the
    first request, it lands on the first calls a secondary gets, when its primary has
    just failed. Paid here, it lands on the actor's start.
    """
    try:
        import anyio
    except ImportError:  # httpcore then uses asyncio's own primitives
        return
    anyio.Event()


class AttemptRunner:
    """Runs attempts through ``adapter`` on a private loop thread.

    Options:

    - ``adapter``: the provider's adapter. Required.
    - ``max_connections``: open connections to the provider, 1 to 10000. Default 100.
    - ``max_keepalive_connections``: idle connections kept for reuse, 0 to
      ``max_connections``. Default 20.

    Every method except the loop's own work runs on the owning thread.
    """

    def __init__(
        self,
        adapter: Adapter,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_keepalive_connections: int = DEFAULT_KEEPALIVE_CONNECTIONS,
    ) -> None:
        _check_count("max_connections", max_connections, 1, MAX_CONNECTIONS_LIMIT)
        _check_count("max_keepalive_connections", max_keepalive_connections, 0, max_connections)
        self.adapter = adapter
        self.max_connections = max_connections
        self.max_keepalive_connections = max_keepalive_connections
        self._loop = LoopThread(f"provider-{adapter.name}")
        self._channel: CompletionChannel[Finished] = CompletionChannel()
        self._client: httpx.AsyncClient | None = None
        self._futures: dict[int, concurrent.futures.Future[None]] = {}
        self._next_token = 0
        self._closed = False

    @property
    def in_flight(self) -> int:
        """Number of attempts submitted and neither drained nor cancelled."""
        return len(self._futures)

    def fileno(self) -> int:
        """Return the descriptor that becomes readable when an attempt finishes."""
        return self._channel.fileno()

    def start(self) -> None:
        """Start the loop thread and open the client on it."""
        self._loop.start()
        opened = self._loop.submit(self._open_client())
        self._client = opened.result(_CLIENT_START_TIMEOUT)

    async def _open_client(self) -> httpx.AsyncClient:
        # Built on the loop thread so that anything the client binds to a loop is this one.
        load_async_backend()
        return build_client(self.max_connections, self.max_keepalive_connections)

    def submit(
        self,
        request: Mapping[str, Any],
        *,
        timeout: float,
        idempotency_key: str | None = None,
    ) -> int:
        """Start one attempt of ``request`` and return its token.

        ``timeout`` is the per-try timeout in seconds, as the adapter's ``send`` takes
        it. The result arrives later through ``drain`` with the same token. Raises
        RuntimeError after ``close``.
        """
        if self._closed or self._client is None:
            raise RuntimeError(f"attempt runner for {self.adapter.name!r} is not running")
        self._next_token += 1
        token = self._next_token
        coroutine = self._attempt(token, request, timeout, idempotency_key)
        self._futures[token] = self._loop.submit(coroutine)
        return token

    def cancel(self, token: int) -> bool:
        """Cancel the attempt ``token`` and return whether it was still in flight.

        ``drain`` never returns a cancelled attempt, even one that finished on the loop
        just before the cancellation.
        """
        future = self._futures.pop(token, None)
        if future is None:
            return False
        future.cancel()
        return True

    def drain(self) -> list[Finished]:
        """Return the attempts that finished since the last call, except cancelled ones."""
        finished = []
        for item in self._channel.drain():
            if self._futures.pop(item.token, None) is not None:
                finished.append(item)
        return finished

    def close(self, timeout: float = 1.0) -> bool:
        """Cancel every attempt, close the client and stop the loop thread within ``timeout``.

        Returns whether the thread ended in time. Calling it again does nothing.
        """
        if self._closed:
            return True
        self._closed = True
        for future in self._futures.values():
            future.cancel()
        cancelled = len(self._futures)
        self._futures.clear()
        client = self._client

        async def close_client() -> None:
            if client is not None:
                await client.aclose()

        ended = self._loop.stop(timeout, close_client)
        # Close the channel only after the loop thread has ended, so that no task posts
        # to it afterwards. A thread that outlived the timeout keeps the pipe open.
        if ended:
            self._channel.close()
        logger.debug(
            "attempt runner for %s closed, %d attempts cancelled", self.adapter.name, cancelled
        )
        return ended

    async def _attempt(
        self,
        token: int,
        request: Mapping[str, Any],
        timeout: float,
        idempotency_key: str | None,
    ) -> None:
        assert self._client is not None
        started = time.monotonic()
        outcome: Outcome | None = None
        error: str | None = None
        try:
            outcome = await self.adapter.send(
                self._client, request, timeout=timeout, idempotency_key=idempotency_key
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported as a failure, never lost
            error = f"{type(exc).__name__}: {exc}"
            logger.error(
                "provider %s: the adapter raised on attempt token %d",
                self.adapter.name,
                token,
                exc_info=exc,
            )
        self._channel.post(Finished(token, outcome, error, time.monotonic() - started))


def _check_count(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(
            f"{name}: invalid value {value!r}; expected an integer from {low} to {high}"
        )
