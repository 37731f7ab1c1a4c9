"""The supervisor API requests (``which_children``, ``start_child`` and the rest).

A mixin of :class:`~supervisors.supervisor.Supervisor`; each request body is
a class of :mod:`supervisors.api`, answered with one reply.
"""

from __future__ import annotations

from typing import Any

from supervisors import api
from supervisors.actor import NOREPLY, Caller
from supervisors.children import Child, Operation
from supervisors.messages import ErrorInfo
from supervisors.reports import report

__all__ = ["ApiMixin"]

_READ_ONLY = (api.WhichChildren, api.CountChildren, api.GetChildSpec, api.Snapshot, api.Whereis)


class ApiMixin:
    """Supervisor API handling. Requests that change the tree wait for the running operation."""

    path: str
    children: list[Child]

    def handle_call(self, body: Any, caller: Caller) -> Any:
        if isinstance(body, _READ_ONLY) or self._op is None:
            return self._handle_api(body, caller)
        self._queue.append(("call", body, caller))
        return NOREPLY

    def _find(self, child_id: str) -> Child | None:
        for child in self.children:
            if child.id == child_id:
                return child
        return None

    def _handle_api(self, body: Any, caller: Caller) -> Any:
        result = self._api_result(body, caller)
        if result is NOREPLY:
            return NOREPLY
        if isinstance(result, ErrorInfo):
            self.reply_error(caller, result.code, result.message, result.details)
        else:
            self.reply(caller, result)
        return NOREPLY

    def _api_result(self, body: Any, caller: Caller) -> Any:
        if isinstance(body, api.WhichChildren):
            return [child.describe() for child in self.children]
        if isinstance(body, api.CountChildren):
            return {
                "specs": len(self.children),
                "active": sum(1 for c in self.children if c.status == "running"),
                "supervisors": sum(1 for c in self.children if c.is_supervisor),
                "workers": sum(1 for c in self.children if not c.is_supervisor),
            }
        if isinstance(body, api.Whereis):
            child = self._find(body.id)
            return child.address if child is not None and child.status == "running" else None
        if isinstance(body, api.GetChildSpec):
            child = self._find(body.id)
            if child is None:
                return ErrorInfo("not_found", f"no child {body.id!r} in supervisor {self.path}")
            return child.spec
        if isinstance(body, api.Snapshot):
            self._start_gather(caller, body.timeout)
            return NOREPLY
        if isinstance(body, api.Subscribe):
            self._subscribe(body.address if body.address is not None else caller.address)
            return True
        if isinstance(body, api.StopSupervisor):
            self._run(self._stop_and_reply(caller))
            return NOREPLY
        if isinstance(body, api.StartChild):
            return self._api_start_child(body, caller)
        if isinstance(body, api.TerminateChild):
            return self._api_terminate_child(body, caller)
        if isinstance(body, api.RestartChild):
            return self._api_restart_child(body, caller)
        if isinstance(body, api.DeleteChild):
            return self._api_delete_child(body)
        return ErrorInfo("unknown_request", f"unknown request {type(body).__name__}")

    def _stop_and_reply(self, caller: Caller) -> Operation:
        self._stopping = True
        yield from self._stop_children()
        self.reply(caller, True)
        self._exit("shutdown", "shutdown")

    def _api_start_child(self, body: api.StartChild, caller: Caller) -> Any:
        if self.template is not None:
            self._dynamic_serial += 1
            child_id = body.id or f"{self.template.id}-{self._dynamic_serial}"
            if self._find(child_id) is not None:
                return ErrorInfo("already_present", f"child {child_id!r} already exists")
            child = Child(self.template.with_id(child_id, tuple(body.args)), dynamic=True)
        else:
            if body.spec is None:
                return ErrorInfo("invalid_argument", "start_child needs a child spec")
            existing = self._find(body.spec.id)
            if existing is not None:
                if existing.status == "running":
                    return ErrorInfo("already_started", f"child {body.spec.id!r} is running")
                return ErrorInfo("already_present", f"child {body.spec.id!r} already exists")
            child = Child(body.spec)
        self.children.append(child)
        self._run(self._start_and_reply(child, caller))
        return NOREPLY

    def _start_and_reply(self, child: Child, caller: Caller) -> Operation:
        outcome, detail = yield from self._start_child(child)
        if outcome == "ok":
            self.reply(caller, {"id": child.id, "pid": child.pid})
            return
        if child in self.children and (child.dynamic or outcome == "error"):
            self.children.remove(child)
        if outcome == "ignore":
            self.reply(caller, {"id": child.id, "pid": None})
            return
        report(self.path, "start_error", detail, self._offender(child))
        self.reply_error(caller, "start_error", f"child {child.id!r} failed to start: {detail}")

    def _api_terminate_child(self, body: api.TerminateChild, caller: Caller) -> Any:
        child = self._find(body.id)
        if child is None:
            return ErrorInfo("not_found", f"no child {body.id!r} in supervisor {self.path}")
        self._run(self._terminate_and_reply(child, caller))
        return NOREPLY

    def _terminate_and_reply(self, child: Child, caller: Caller) -> Operation:
        yield from self._terminate_child(child)
        self._child_gone(child, "terminated by request")
        self.reply(caller, True)

    def _api_restart_child(self, body: api.RestartChild, caller: Caller) -> Any:
        child = self._find(body.id)
        if child is None:
            return ErrorInfo("not_found", f"no child {body.id!r} in supervisor {self.path}")
        if child.status != "undefined":
            return ErrorInfo("running", f"child {body.id!r} is {child.status}")
        self._run(self._restart_and_reply(child, caller))
        return NOREPLY

    def _restart_and_reply(self, child: Child, caller: Caller) -> Operation:
        outcome, detail = yield from self._start_child(child)
        if outcome == "error":
            self.reply_error(caller, "start_error", f"child {child.id!r} failed to start: {detail}")
        else:
            self.reply(caller, {"id": child.id, "pid": child.pid})

    def _api_delete_child(self, body: api.DeleteChild) -> Any:
        if self.template is not None:
            return ErrorInfo("simple_one_for_one", "delete_child is not allowed here")
        child = self._find(body.id)
        if child is None:
            return ErrorInfo("not_found", f"no child {body.id!r} in supervisor {self.path}")
        if child.status != "undefined":
            return ErrorInfo("running", f"child {body.id!r} is {child.status}")
        self.children.remove(child)
        return True
