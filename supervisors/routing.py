"""Named delivery for supervisors: forwarding by path, queues around restarts, dead letters.

The rules, one row per state of the target child, are in
``docs/architecture.md`` ("Names that survive restarts"). This module is a
mixin of :class:`~supervisors.supervisor.Supervisor` and uses its child list
and timers.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

from thespian.actors import DeadEnvelope

from supervisors.actor import reroute
from supervisors.children import Child, ExitInfo
from supervisors.lost import LostCalls
from supervisors.messages import Batch, Call, ChildEvent, Deliver, ErrorInfo, Reply, Routed
from supervisors.procfs import process_running

__all__ = ["KILL_POLL_SECONDS", "LOST_WINDOW_SECONDS", "RoutingMixin"]

logger = logging.getLogger(__name__)

# How often the pid of a child that was killed, or found dead, is polled.
KILL_POLL_SECONDS = 0.01

# Calls forwarded this recently to an instance that is then killed get a
# ``lost`` error, after a grace period that lets dead letters come back first.
LOST_WINDOW_SECONDS = 30.0
_LOST_GRACE_SECONDS = 0.3

# A message re-routed this many times without reaching a live instance fails.
_MAX_HOPS = 5


class RoutingMixin:
    """Forwarding of ``Deliver`` messages to the current instance of a child."""

    path: str
    name: str
    children: list[Child]
    _lost_calls: LostCalls

    def _deliver(self, message: Deliver, sender: Any) -> None:
        inner = message.message
        if isinstance(inner, Call) and inner.reply_to is None:
            inner = Call(inner.ref, inner.body, sender)
        if not message.path:
            self.receiveMessage(inner, sender)
            return
        child_id, rest = message.path[0], message.path[1:]
        payload: Any = Deliver(rest, inner, message.hops, message.dead_address) if rest else inner
        child = self._find(child_id)
        if message.dead_address is not None and self._already_lost(payload):
            return
        if message.hops > _MAX_HOPS:
            self._fail_message(payload, f"child {self.path}/{child_id} did not take the message")
        elif child is None:
            self._fail_message(payload, f"no child {child_id!r} in supervisor {self.path}")
        elif (
            child.status == "running"
            and message.dead_address is not None
            and child.address == message.dead_address
            and not process_running(child.pid)
        ):
            # The dead letter and the pid show this instance is gone before its
            # exit notice has arrived; hold its messages for the replacement.
            # (The pid is checked too because thespian can compare a new
            # instance's address equal to an old one, for example when a port
            # is reused.)
            child.status = "exiting"
            child.pending.append((payload, message.hops))
            self.send_after(KILL_POLL_SECONDS, ("sweep", child.pid))
        elif child.status == "running":
            self._forward(child, payload, message.hops)
        elif child.status in ("starting", "stopping", "restarting", "exiting"):
            child.pending.append((payload, message.hops))
        else:
            self._fail_message(payload, f"child {self.path}/{child_id} is not running")

    def _dead_letter(self, envelope: DeadEnvelope) -> None:
        """Route again a message that reached an actor after its process was gone."""
        message = envelope.deadMessage
        if isinstance(message, Batch):
            for each in message.messages:
                self._dead_letter(DeadEnvelope(envelope.deadAddress, each))
            return
        if isinstance(message, Routed):
            parts = message.path.split("/")
            if parts[0] == self.name and len(parts) > 1:
                target = reroute(parts[-1], message.message, message.hops + 1)
                path = (*parts[1:-1], *target.path)
                dead = envelope.deadAddress
                self._deliver(Deliver(path, target.message, target.hops, dead), None)
                return
        if isinstance(message, ChildEvent):
            # A subscriber that has gone away; events are not worth a warning each.
            logger.debug("supervisor %s: subscriber of child events is gone", self.path)
            return
        self._fail_message(message, "the target actor had exited when the message arrived")

    def _forward(self, child: Child, payload: Any, hops: int) -> None:
        call = payload
        while isinstance(call, Deliver):
            call = call.message
        if isinstance(call, Call) and call.reply_to is not None:
            now = time.monotonic()
            forwarded = child.forwarded
            while forwarded and forwarded[0][0] < now - LOST_WINDOW_SECONDS:
                forwarded.popleft()
            forwarded.append((now, call))
        self.send(child.address, Routed(f"{self.path}/{child.id}", payload, hops))

    def _flush_pending(self, child: Child) -> None:
        while child.pending:
            payload, hops = child.pending.popleft()
            self._forward(child, payload, hops)

    def _answer_lost_calls(self, child: Child, info: ExitInfo) -> None:
        """Tell callers whose calls the killed instance may never have handled.

        A process killed by SIGKILL drops whatever waits in its socket. Calls
        forwarded to it in the last ``LOST_WINDOW_SECONDS`` are answered with
        ``lost`` after ``_LOST_GRACE_SECONDS``, unless they come back as dead
        letters meanwhile (then they go to the replacement). A caller that
        already has the real answer ignores this one, because it no longer
        waits on that reference. An instance that exits any other way hands
        unhandled messages back itself, so nothing is answered for it.
        """
        forwarded, child.forwarded = child.forwarded, deque(maxlen=child.forwarded.maxlen)
        if info.kind != "killed" or not forwarded:
            return
        horizon = time.monotonic() - LOST_WINDOW_SECONDS
        calls = [call for sent_at, call in forwarded if sent_at >= horizon]
        if not calls:
            return
        batch = self._lost_calls.hold(f"{self.path}/{child.id}", calls)
        self.send_after(_LOST_GRACE_SECONDS, ("lost", batch))

    def _already_lost(self, payload: Any) -> bool:
        """Note a call that came back as a dead letter; return True to drop it.

        A call held for a ``lost`` reply goes to the replacement instead. A call
        that has had its ``lost`` reply is dropped, so that it gets no second reply
        and does not run after its caller was told its outcome is unknown.
        """
        call = payload
        while isinstance(call, Deliver):
            call = call.message
        if not isinstance(call, Call):
            return False
        if self._lost_calls.came_back(call):
            return False
        if self._lost_calls.was_answered(call, time.monotonic()):
            logger.info(
                "supervisor %s dropped a call that came back after its lost reply: ref %r",
                self.path,
                call.ref,
            )
            return True
        return False

    def _send_lost(self, batch: int) -> None:
        path, calls = self._lost_calls.release(batch, time.monotonic())
        text = f"{path} was killed; the outcome of this call is unknown"
        for call in calls:
            self.send(call.reply_to, Reply(call.ref, error=ErrorInfo("lost", text)))

    def _fail_pending(self, child: Child, why: str) -> None:
        while child.pending:
            payload, _hops = child.pending.popleft()
            self._fail_message(payload, f"child {self.path}/{child.id} is not running: {why}")

    def _fail_message(self, message: Any, text: str) -> None:
        while isinstance(message, Deliver):
            message = message.message
        if isinstance(message, Call) and message.reply_to is not None:
            self.send(message.reply_to, Reply(message.ref, error=ErrorInfo("not_running", text)))
        else:
            logger.warning("supervisor %s dropped %s: %s", self.path, type(message).__name__, text)
