"""The bridge's table of requests in flight, each waiting for the replies of its plan.

Every accepted request that goes to actors becomes one `Gather`: the plan's targets,
each sent as a ``Call`` under its own reference, and the replies collected so far. The
table maps each reference back to its gather, so replies may arrive in any order and
from any actor, and a reply whose reference is no longer in the table (it came after
the request got its reply) is recognised as late.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from supervisors.messages import ErrorInfo, Reply
from tpir.node.plans import Plan, Target

__all__ = ["Gather", "PendingTable"]


@dataclass
class Gather:
    """One request in flight: who asked, its plan and the replies collected so far.

    ``outstanding`` maps each reference still waiting to its target, and ``direct``
    maps the references sent straight to a cached router address, instead of by name
    through the supervisors, to that address.
    """

    id: int
    peer_id: int
    request_id: Any
    op: str
    plan: Plan
    outstanding: dict[int, Target] = field(default_factory=dict)
    replies: dict[str, Reply] = field(default_factory=dict)
    direct: dict[int, Any] = field(default_factory=dict)
    timer: int | None = None

    @property
    def complete(self) -> bool:
        return not self.outstanding

    def record(self, target: Target, reply: Reply) -> None:
        self.replies[target.path] = reply


class PendingTable:
    """Requests in flight, indexed by gather id and by call reference."""

    def __init__(self) -> None:
        self._gathers: dict[int, Gather] = {}
        self._by_ref: dict[int, int] = {}
        self._ids = itertools.count(1)
        self._refs = itertools.count(1)

    def __len__(self) -> int:
        return len(self._gathers)

    def __iter__(self) -> Iterator[Gather]:
        return iter(list(self._gathers.values()))

    def open(self, peer_id: int, request_id: Any, op: str, plan: Plan) -> Gather:
        """Add a gather with one fresh reference per target of ``plan``."""
        gather = Gather(next(self._ids), peer_id, request_id, op, plan)
        self._gathers[gather.id] = gather
        for target in plan.targets:
            self.add_ref(gather, target)
        return gather

    def add_ref(self, gather: Gather, target: Target) -> int:
        """Give ``target`` a fresh reference in ``gather`` and return it."""
        ref = next(self._refs)
        gather.outstanding[ref] = target
        self._by_ref[ref] = gather.id
        return ref

    def new_ref(self) -> int:
        """Return a reference that belongs to no gather, for calls whose reply no request needs."""
        return next(self._refs)

    def get(self, gather_id: int) -> Gather | None:
        return self._gathers.get(gather_id)

    def take(self, ref: Any) -> tuple[Gather, Target, Any] | None:
        """Remove ``ref`` and return its gather, its target and the address it was sent
        to directly (None when it was sent by name).

        Returns None for an unknown reference: a late reply, or one that no gather waits for.
        """
        gather_id = self._by_ref.pop(ref, None) if isinstance(ref, int) else None
        gather = self._gathers.get(gather_id) if gather_id is not None else None
        if gather is None:
            return None
        target = gather.outstanding.pop(ref)
        return gather, target, gather.direct.pop(ref, None)

    def expire(self, gather: Gather, error_for: Callable[[Target], ErrorInfo]) -> None:
        """Record an error reply for every outstanding target of ``gather``."""
        for ref, target in list(gather.outstanding.items()):
            self._by_ref.pop(ref, None)
            gather.record(target, Reply(ref, error=error_for(target)))
        gather.outstanding.clear()
        gather.direct.clear()

    def fail_where(self, matches: Callable[[Target], bool], error: ErrorInfo) -> list[Gather]:
        """Record ``error`` for every outstanding target that ``matches``.

        Returns the gathers that became complete, so that the caller sends their replies.
        """
        completed = []
        for gather in list(self._gathers.values()):
            hit = False
            for ref, target in list(gather.outstanding.items()):
                if matches(target):
                    del gather.outstanding[ref]
                    gather.direct.pop(ref, None)
                    self._by_ref.pop(ref, None)
                    gather.record(target, Reply(ref, error=error))
                    hit = True
            if hit and gather.complete:
                completed.append(gather)
        return completed

    def close(self, gather: Gather) -> None:
        """Remove ``gather`` and its references; later replies to them count as late."""
        self._gathers.pop(gather.id, None)
        for ref in gather.outstanding:
            self._by_ref.pop(ref, None)
        gather.outstanding.clear()

    def of_peer(self, peer_id: int) -> list[Gather]:
        return [gather for gather in self._gathers.values() if gather.peer_id == peer_id]
