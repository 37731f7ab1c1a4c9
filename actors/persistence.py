"""Recovery points of one stateful actor: throttled writes, resume and point-in-time reads.

A `Checkpointer` sits between an actor and `tpir.store.RecoveryStore`. The actor hands it
its whole state after every change with `save`, and the checkpointer writes at most one
point per `NodeConfig.checkpoint_interval` seconds, at once for an urgent change. A state
that had to wait stays pending, and the actor flushes it from a timer. Because
`checkpoint_interval` is at most 1 s, every state change reaches the store within 1 s,
unless the store fails. A restarted actor resumes from `load()`.

Usage inside an actor (``FLUSH`` is any timer payload the actor picks)::

    self.checkpointer = Checkpointer(node, integration, key, "breaker")
    state = self.checkpointer.load()          # None on a first start
    ...
    self.checkpointer.save(new_state, urgent=transitioned)
    delay = self.checkpointer.flush_delay()
    if delay is not None and self.flush_timer is None:
        self.flush_timer = self.send_after(delay, FLUSH)
    ...
    def handle_timeout(self, payload):         # payload is FLUSH
        self.flush_timer = None
        self.checkpointer.flush()              # then arm the timer again while pending

The store is opened on first use, so an actor builds its checkpointer in ``init``, inside
its own process, and no database connection crosses thespian's fork. No method raises
`tpir.store.StoreError`. A failed write is logged once per failure streak, and its state
stays pending until a later `flush` writes it. A failed read is logged and returns None.
A state that is not JSON-safe is a programming error, and `save` raises
`tpir.store.InvalidStateError` for it at once.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from typing import Any

from tpir.config import NodeConfig
from tpir.store import RecoveryStore, StoreError, validate_state

__all__ = [
    "Checkpointer",
    "CheckpointFlush",
    "FLUSH_CHECKPOINT",
    "DEFAULT_PRUNE_EVERY",
    "DEFAULT_BUSY_TIMEOUT",
]

logger = logging.getLogger(__name__)

DEFAULT_PRUNE_EVERY = 100
"""Writes between two calls of `RecoveryStore.prune`."""

DEFAULT_BUSY_TIMEOUT = 5.0
"""Seconds a write waits for another process's SQLite lock before it fails.

NOTE: an estimate. Points are small and every actor writes at most twice a second with
the default interval, so a lock is held for milliseconds. A write that waits this long
fails, stays pending and is retried, rather than stalling the actor for the store's
default 30 s.
"""


class Checkpointer:
    """Saves one actor's state as recovery points and reads it back.

    Options:
        node: the `NodeConfig`. Its `database` is the store, `recovery_point_retention`
            sets `count` and `max_age` (seconds) for pruning, and `checkpoint_interval`
            (seconds, greater than 0 and at most 1) is the least time between two writes
            of non-urgent changes.
        integration: name of the actor's integration, stored with every point.
        actor_key: the actor's key, stable across restarts (see `actors.names.actor_key`).
        kind: the actor type stored with every point, for example ``breaker``.
        clock: callable returning epoch seconds. A point's time is the clock reading of
            the `save` that recorded its state. Default `time.time`.
        prune_every: writes between two prunes of old points, an int of at least 1.
            Default 100.
        busy_timeout: seconds a write waits for a SQLite lock, from 0 to 2147483.
            Default 5.0.

    Not thread-safe: one actor owns it.
    """

    def __init__(
        self,
        node: NodeConfig,
        integration: str,
        actor_key: str,
        kind: str,
        *,
        clock: Callable[[], float] = time.time,
        prune_every: int = DEFAULT_PRUNE_EVERY,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> None:
        if isinstance(prune_every, bool) or not isinstance(prune_every, int) or prune_every < 1:
            raise ValueError(f"invalid prune_every {prune_every!r}: expected an int of at least 1")
        self._node = node
        self._integration = integration
        self._actor_key = actor_key
        self._kind = kind
        self._clock = clock
        self._prune_every = prune_every
        self._busy_timeout = busy_timeout
        self._store: RecoveryStore | None = None
        self._closed = False

        self._written: dict[str, Any] | None = None
        self._written_at: float | None = None
        self._pending: dict[str, Any] | None = None
        self._pending_at = 0.0
        self._writes_since_prune = 0
        self._failing = False
        self._last_error: str | None = None
        self._write_count = 0
        self._failure_count = 0

    @property
    def actor_key(self) -> str:
        """Key of the actor's points in the store."""
        return self._actor_key

    @property
    def interval(self) -> float:
        """Minimum time in seconds between two non-urgent writes."""
        return self._node.checkpoint_interval

    def load(self) -> dict[str, Any] | None:
        """Return the state of the actor's newest valid point, or None.

        Points whose checksum does not match are skipped, so a tampered newest point
        yields the one before it. A store failure is logged and returns None, so the
        actor starts from a fresh state instead of failing to start.
        """
        try:
            point = self._open().latest(self._actor_key)
        except StoreError as exc:
            logger.error(
                "could not load the recovery point of %s, starting from a fresh state: %s",
                self._actor_key,
                exc,
            )
            return None
        if point is None:
            return None
        self._written = copy.deepcopy(point.state)
        logger.info(
            "loaded the recovery point of %s created at %.3f (seq %d)",
            self._actor_key,
            point.created_at,
            point.seq,
        )
        return point.state

    def load_at(self, at: float) -> tuple[dict[str, Any], float] | None:
        """Return the state and time of the newest valid point at or before ``at``.

        ``at`` is epoch seconds. Returns None when there is no such point, and also when
        the store fails, which is logged.
        """
        try:
            point = self._open().latest_at(self._actor_key, at)
        except StoreError as exc:
            logger.error("could not load a recovery point of %s: %s", self._actor_key, exc)
            return None
        if point is None:
            return None
        return point.state, point.created_at

    def save(self, state: dict[str, Any], *, urgent: bool = False) -> bool:
        """Record ``state`` and write it when it is urgent or the interval has passed.

        Returns True when nothing is left pending (written now, or equal to the last
        written state), and False when the state waits for `flush`. Raises
        `tpir.store.InvalidStateError` when ``state`` is not JSON-safe.
        """
        validate_state(state)
        if state == self._written:
            # Back to what the store already has: an older pending state must not follow.
            self._pending = None
            return True
        self._pending = copy.deepcopy(state)
        self._pending_at = self._clock()
        if urgent or self._interval_passed():
            return self.flush()
        return False

    def pending(self) -> bool:
        """Return whether a recorded state has not been written yet."""
        return self._pending is not None

    def flush_delay(self) -> float | None:
        """Return seconds until the pending state should be flushed, or None if none is.

        After a store failure the delay is one interval, so the write is retried at that
        pace.
        """
        if self._pending is None:
            return None
        if self._failing or self._written_at is None:
            return self.interval
        return max(0.0, self._written_at + self.interval - self._clock())

    def flush(self) -> bool:
        """Write the pending state now. Returns True when nothing is left pending."""
        if self._pending is None:
            return True
        state, at = self._pending, self._pending_at
        try:
            self._open().save(self._integration, self._actor_key, self._kind, state, at=at)
        except StoreError as exc:
            self._report_failure(exc)
            return False
        self._written = state
        self._written_at = self._clock()
        self._pending = None
        self._write_count += 1
        if self._failing:
            self._failing = False
            logger.info(
                "recovery points of %s are written again after %d failed writes",
                self._actor_key,
                self._failure_count,
            )
            self._failure_count = 0
        self._writes_since_prune += 1
        if self._writes_since_prune >= self._prune_every:
            self._prune()
        return True

    def describe(self) -> dict[str, Any]:
        """Return figures for status displays: writes, pending state and store failures."""
        return {
            "actor_key": self._actor_key,
            "writes": self._write_count,
            "pending": self._pending is not None,
            "last_written_at": self._written_at,
            "store_failing": self._failing,
            "last_error": self._last_error,
        }

    def close(self) -> None:
        """Write any pending state, then close the store. Calling it again does nothing."""
        if self._closed:
            return
        if self._pending is not None and not self.flush():
            logger.error(
                "closing the recovery points of %s with an unwritten state", self._actor_key
            )
        self._closed = True
        if self._store is not None:
            self._store.close()
            self._store = None

    def _interval_passed(self) -> bool:
        if self._written_at is None:
            return True
        return self._clock() - self._written_at >= self.interval

    def _open(self) -> RecoveryStore:
        if self._closed:
            raise StoreError(
                f"the checkpointer of {self._actor_key} is closed (create a new Checkpointer)"
            )
        if self._store is None:
            retention = self._node.recovery_point_retention
            self._store = RecoveryStore(
                self._node.database,
                retention_count=retention.count,
                retention_seconds=retention.max_age,
                busy_timeout_seconds=self._busy_timeout,
                clock=self._clock,
            )
        return self._store

    def _prune(self) -> None:
        self._writes_since_prune = 0
        try:
            deleted = self._open().prune()
        except StoreError as exc:
            logger.warning("could not prune old recovery points: %s", exc)
            return
        logger.debug("pruned %d recovery points after writes of %s", deleted, self._actor_key)

    def _report_failure(self, exc: StoreError) -> None:
        self._failure_count += 1
        self._last_error = str(exc)
        if self._failing:
            return
        self._failing = True
        logger.error(
            "could not write the recovery point of %s, keeping the state pending and retrying: %s",
            self._actor_key,
            exc,
        )


FLUSH_CHECKPOINT = "flush-checkpoint"
"""Timer payload on which `CheckpointFlush` writes the pending state."""


class CheckpointFlush:
    """Mixin for an actor with a ``checkpointer``: writes a pending state when it falls due.

    Call ``arm_flush()`` after every ``save`` that may have left a state pending, and
    ``flush_due(payload)`` first in ``handle_timeout``; it returns True for its own timer.
    """

    checkpointer: Checkpointer
    _flush_timer: int | None = None

    def arm_flush(self) -> None:
        delay = self.checkpointer.flush_delay()
        if delay is not None and self._flush_timer is None:
            self._flush_timer = self.send_after(delay, FLUSH_CHECKPOINT)  # type: ignore[attr-defined]

    def flush_due(self, payload: object) -> bool:
        if payload != FLUSH_CHECKPOINT:
            return False
        self._flush_timer = None
        self.checkpointer.flush()
        self.arm_flush()
        return True
