"""Child events for subscribers, and recursive snapshots of the tree.

A mixin of :class:`~supervisors.supervisor.Supervisor`.
"""

from __future__ import annotations

import os
import time
from typing import Any

from supervisors import api
from supervisors.actor import Caller
from supervisors.children import Child
from supervisors.messages import Call, ChildEvent, Reply

__all__ = ["ObserveMixin"]


class ObserveMixin:
    """Publishes child events and gathers snapshots from child supervisors."""

    path: str
    name: str
    children: list[Child]

    def _subscribe(self, address: Any) -> None:
        if not any(existing == address for existing in self.subscribers):
            self.subscribers.append(address)
        for child in self.children:
            if child.is_supervisor and child.status == "running":
                self._next_ref += 1
                self.send(
                    child.address, Call(("subscribe", self._next_ref), api.Subscribe(address))
                )

    def _publish(
        self,
        event: str,
        child: Child,
        *,
        at: float,
        pid: int | None = None,
        reason: str | None = None,
    ) -> None:
        if not self.subscribers:
            return
        message = ChildEvent(
            event=event,
            supervisor=self.path,
            child=child.id,
            path=f"{self.path}/{child.id}",
            at=at,
            pid=pid,
            reason=reason,
            child_type=child.spec.type,
        )
        for subscriber in self.subscribers:
            self.send(subscriber, message)

    def _describe(self) -> dict[str, Any]:
        return {
            "id": self.name,
            "path": self.path,
            "pid": os.getpid(),
            "strategy": self.flags.strategy,
            "intensity": self.flags.intensity,
            "period": self.flags.period,
            "auto_shutdown": self.flags.auto_shutdown,
            "restarts_in_period": self.window.recent(time.monotonic()),
            "busy": self._op is not None or bool(self._queue),
            "children": [child.describe() for child in self.children],
        }

    def _start_gather(self, caller: Caller, timeout: float) -> None:
        own = self._describe()
        waiting = {}
        for entry, child in zip(own["children"], self.children, strict=True):
            if child.is_supervisor and child.status == "running":
                self._next_ref += 1
                ref = ("snapshot", self._next_ref)
                waiting[ref] = entry
                self.send(child.address, Call(ref, api.Snapshot(timeout * 0.8)))
        if not waiting:
            self.reply(caller, own)
            return
        self._next_ref += 1
        gather_id = self._next_ref
        self._gathers[gather_id] = {"caller": caller, "own": own, "waiting": waiting}
        for ref in waiting:
            self._gather_refs[ref] = gather_id
        self.send_after(timeout, ("gather", gather_id))

    def _gather_reply(self, reply: Reply) -> None:
        gather_id = self._gather_refs.pop(reply.ref, None)
        if gather_id is None or gather_id not in self._gathers:
            return
        gather = self._gathers[gather_id]
        entry = gather["waiting"].pop(reply.ref)
        entry["supervisor"] = reply.value if reply.ok else {"error": reply.error.message}
        if not gather["waiting"]:
            self._finish_gather(gather_id)

    def _finish_gather(self, gather_id: int) -> None:
        gather = self._gathers.pop(gather_id, None)
        if gather is None:
            return
        for ref, entry in gather["waiting"].items():
            self._gather_refs.pop(ref, None)
            entry["supervisor"] = {"error": "snapshot timed out"}
        self.reply(gather["caller"], gather["own"])

    def _offender(self, child: Child) -> dict[str, Any]:
        return {
            "id": child.id,
            "pid": child.pid,
            "restart_type": child.spec.restart,
            "shutdown": child.spec.shutdown,
            "child_type": child.spec.type,
        }
