"""``LostCalls``: calls a killed child may have taken with it, and which got ``lost``.

When SIGKILL ends a child, its supervisor cannot tell which of the calls it forwarded
were still unread in the child's socket and which had run. It keeps those calls for a
grace period: a call that comes back as a dead letter meanwhile was never delivered
and goes to the replacement. The rest are answered with ``lost``. A call can also
come back after its ``lost`` reply (a batch still queued in the supervisor's transport
when the child died returns late under load). It must not run then: its caller has
its one reply and may already act on "the outcome is unknown".

Calls are matched by their reference and reply address. The index uses a reference
itself when it is hashable, and its ``repr`` otherwise.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

from supervisors.messages import Call

__all__ = ["LostCalls"]


def _key(call: Call) -> Any:
    try:
        hash(call.ref)
    except TypeError:
        return ("repr", repr(call.ref))
    return call.ref


class LostCalls:
    """Calls of killed children, held for a ``lost`` reply or already given one.

    A call that got its ``lost`` reply is remembered for ``window`` seconds, so that
    it is recognised if it comes back as a dead letter within that time.
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self._batches = itertools.count(1)
        self._paths: dict[int, str] = {}
        self._held: dict[int, dict[int, Call]] = {}
        self._held_index: dict[Any, list[tuple[int, int]]] = {}
        self._answered: dict[Any, list[Call]] = {}
        self._answered_order: deque[tuple[float, Any, Call]] = deque()

    def hold(self, path: str, calls: list[Call]) -> int:
        """Hold ``calls`` of the killed child at ``path``; return the batch's id for `release`."""
        batch = next(self._batches)
        self._paths[batch] = path
        self._held[batch] = dict(enumerate(calls))
        for seq, call in enumerate(calls):
            self._held_index.setdefault(_key(call), []).append((batch, seq))
        return batch

    def came_back(self, call: Call) -> bool:
        """Stop holding ``call``, which came back as a dead letter; return whether it was held."""
        key = _key(call)
        entries = self._held_index.get(key, [])
        for position, (batch, seq) in enumerate(entries):
            held = self._held.get(batch, {})
            candidate = held.get(seq)
            if candidate is not None and _same(candidate, call):
                del held[seq]
                del entries[position]
                if not entries:
                    del self._held_index[key]
                return True
        return False

    def release(self, batch: int, now: float) -> tuple[str, list[Call]]:
        """Return the path and the calls still held in ``batch``, each now due a ``lost`` reply.

        ``now`` is a monotonic time in seconds. The calls count as replied to from then.
        """
        path = self._paths.pop(batch, "")
        calls = self._held.pop(batch, {})
        for call in calls.values():
            key = _key(call)
            entries = self._held_index.get(key, [])
            entries[:] = [entry for entry in entries if entry[0] != batch]
            if not entries:
                self._held_index.pop(key, None)
            self._answered.setdefault(key, []).append(call)
            self._answered_order.append((now, key, call))
        self._prune(now)
        return path, list(calls.values())

    def was_answered(self, call: Call, now: float) -> bool:
        """Return whether ``call`` got a ``lost`` reply in the last ``window`` seconds."""
        self._prune(now)
        return any(_same(candidate, call) for candidate in self._answered.get(_key(call), []))

    def _prune(self, now: float) -> None:
        while self._answered_order and self._answered_order[0][0] < now - self.window:
            _, key, call = self._answered_order.popleft()
            calls = self._answered.get(key, [])
            for position, candidate in enumerate(calls):
                if candidate is call:
                    del calls[position]
                    break
            if not calls:
                self._answered.pop(key, None)


def _same(one: Call, other: Call) -> bool:
    return bool(one.ref == other.ref and one.reply_to == other.reply_to)
