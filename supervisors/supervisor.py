"""``Supervisor``: OTP's supervisor behaviour as a thespian actor.

A supervisor starts its children in order, watches them, restarts them by
its strategy, gives up when restarts exceed its intensity within its period,
and stops its children in reverse start order. The rules are OTP's; the
module documentation of :mod:`supervisors.spec` lists every flag and child
spec key.

thespian actors cannot block, so every multi-step action (start all, restart
by strategy, shut down) is written as a generator that yields what it waits
for (:class:`AwaitStart`, :class:`AwaitExit`, :class:`Sleep`); the actor
resumes it when the awaited message or timer arrives. One operation runs at a
time, as in OTP where the supervisor process is busy while it restarts.
Child exits and API requests that change the tree wait in a queue until the
running operation ends; read-only requests are answered at once.

How a supervisor learns that a child died:

* ``Exiting`` from the child: a normal stop, a shutdown, or an exception
  caught by :class:`~supervisors.GenActor` (reason ``crash``);
* thespian's ``ChildActorExited`` with no ``Exiting`` before it: the process
  died hard (SIGKILL, OOM killer), reason ``killed``. thespian can deliver
  ``ChildActorExited`` twice for one exit; the second is ignored.

Names survive restarts: a ``Deliver`` message names a child by path and is
forwarded to the child's current instance. While the child is starting,
stopping or restarting, the message waits in the child's queue and is sent
to the new instance once it has started. When the child is not coming back
(temporary, transient after a normal exit, terminated, deleted, or the
supervisor gave up), a ``Call`` in a waiting message is answered with a
``not_running`` error and any other message is dropped with a warning.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import time
from collections import deque
from typing import Any

from thespian.actors import ActorExitRequest, ChildActorExited, DeadEnvelope

from supervisors.actor import DEFER, GenActor
from supervisors.children import (
    AwaitExit,
    AwaitStart,
    Child,
    ExitInfo,
    Operation,
    Sleep,
    reason_label,
)
from supervisors.intensity import RestartWindow
from supervisors.lost import LostCalls
from supervisors.messages import (
    Deliver,
    ExitAck,
    Exiting,
    Ignored,
    Init,
    Reply,
    Shutdown,
    Started,
    StartFailed,
)
from supervisors.observe import ObserveMixin
from supervisors.procfs import process_running
from supervisors.reports import report
from supervisors.routing import KILL_POLL_SECONDS, LOST_WINDOW_SECONDS, RoutingMixin
from supervisors.spec import ChildSpec, SupFlags
from supervisors.supervisor_api import ApiMixin

__all__ = ["Supervisor"]

logger = logging.getLogger(__name__)


# How often all children's pids are checked for deaths thespian did not report.
_SWEEP_SECONDS = 1.0


class Supervisor(RoutingMixin, ApiMixin, ObserveMixin, GenActor):
    """A supervisor actor; start it through a child spec of type ``supervisor``.

    ``init(flags, children, subscribers=(), log_settings=None)`` takes the
    :class:`SupFlags` and the list of :class:`ChildSpec`. For
    ``simple_one_for_one`` the list holds exactly one spec, the template.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flags = SupFlags()
        self.children: list[Child] = []
        self.template: ChildSpec | None = None
        self.window = RestartWindow(1, 5)
        self.subscribers: list[Any] = []
        self.log_settings: Any = None
        self._op: Operation | None = None
        self._wait: Any = None
        self._wait_timer: int | None = None
        self._wait_serial = 0
        self._queue: deque[tuple[str, Any, Any]] = deque()
        self._exits: deque[tuple[int, ExitInfo]] = deque(maxlen=512)
        self._gathers: dict[int, dict[str, Any]] = {}
        self._gather_refs: dict[Any, int] = {}
        self._next_ref = 0
        self._dynamic_serial = 0
        self._rng = random.Random()
        self._stopping = False
        self._standby: dict[str, Any] = {}
        self._lost_calls = LostCalls(window=LOST_WINDOW_SECONDS)

    # -- start ------------------------------------------------------------

    def init(
        self,
        flags: SupFlags,
        children: list[ChildSpec],
        subscribers: tuple[Any, ...] = (),
        log_settings: Any = None,
        dead_letters: bool = False,
        notify_parent: bool = False,
    ) -> Any:
        if dead_letters:
            # thespian sends messages for exited actors to one handler per system;
            # the root takes them so that named messages are routed again.
            self.handleDeadLetters(True)
        self.flags = flags
        self.window = RestartWindow(flags.intensity, flags.period)
        self.subscribers = list(subscribers)
        if notify_parent:
            self.subscribers.append(self.parent)
        self.log_settings = log_settings
        ids = [spec.id for spec in children]
        duplicates = sorted({child_id for child_id in ids if ids.count(child_id) > 1})
        if duplicates:
            raise ValueError(f"duplicate child id {duplicates[0]!r} in supervisor {self.path}")
        if flags.strategy == "simple_one_for_one":
            if len(children) != 1:
                raise ValueError(
                    f"invalid children for simple_one_for_one supervisor {self.path}: "
                    f"expected exactly one template spec, got {len(children)}"
                )
            self.template = children[0]
        else:
            self.children = [Child(spec) for spec in children]
        self._run(self._start_all())
        self.send_after(_SWEEP_SECONDS, ("sweep", None))
        return DEFER

    def _start_all(self) -> Operation:
        for child in list(self.children):
            outcome, detail = yield from self._start_child(child)
            if outcome == "error":
                report(self.path, "start_error", detail, self._offender(child))
                yield from self._stop_children()
                self.init_failed(f"failed to start child {child.id!r}: {detail}")
                return
            if outcome == "ignore" and child.spec.restart == "temporary":
                self.children.remove(child)
        self.init_done()

    # -- operations engine --------------------------------------------------

    def _run(self, operation: Operation) -> None:
        self._op = operation
        self._advance(None)

    def _advance(self, value: Any) -> None:
        while self._op is not None:
            try:
                wait = self._op.send(value)
            except StopIteration:
                self._op = None
                self._wait = None
                break
            if isinstance(wait, AwaitExit):
                info = self._exit_of(wait.pid)
                if info is not None:
                    value = info
                    continue
                self._set_wait(wait, wait.timeout)
                return
            if isinstance(wait, AwaitStart):
                self._set_wait(wait, wait.timeout)
                return
            if isinstance(wait, Sleep):
                self._set_wait(wait, wait.seconds)
                return
            raise TypeError(f"operation yielded {wait!r}")
        self._drain_queue()

    def _set_wait(self, wait: Any, timeout: float | None) -> None:
        self._wait = wait
        self._wait_timer = None
        if timeout is not None:
            self._wait_serial += 1
            self._wait_timer = self.send_after(timeout, ("wait", self._wait_serial))

    def _resume(self, value: Any) -> None:
        self.cancel_timer(self._wait_timer)
        self._wait = None
        self._wait_timer = None
        self._advance(value)

    def _drain_queue(self) -> None:
        while self._op is None and self._queue and not self._dying:
            kind, item, extra = self._queue.popleft()
            if kind == "exit":
                address, pid = item
                child = self._child_at(address)
                if child is not None and child.pid == pid:
                    self._handle_exit(child, extra)
            elif kind == "call":
                self._handle_api(item, extra)
            elif kind == "shutdown":
                self._run(self._shutdown_self(item))

    def handle_timeout(self, payload: Any) -> None:
        if isinstance(payload, tuple) and payload[0] == "wait":
            if self._wait is not None and self._wait_serial == payload[1]:
                self._resume("timeout")
        elif isinstance(payload, tuple) and payload[0] == "gather":
            self._finish_gather(payload[1])
        elif isinstance(payload, tuple) and payload[0] == "sweep":
            self._sweep(payload[1])
        elif isinstance(payload, tuple) and payload[0] == "lost":
            self._send_lost(payload[1])
        elif isinstance(payload, tuple) and payload[0] == "standby":
            self._make_standby(payload[1])

    # -- child lifecycle -----------------------------------------------------

    def _start_child(self, child: Child) -> Operation:
        address = self._standby.pop(child.id, None) or self.createActor(child.spec.start)
        child.address = address
        child.pid = None
        child.status = "starting"
        kwargs = dict(child.spec.kwargs)
        if child.is_supervisor:
            kwargs.setdefault("subscribers", tuple(self.subscribers))
            kwargs.setdefault("log_settings", self.log_settings)
        self.send(
            address,
            Init(
                name=child.id,
                path=f"{self.path}/{child.id}",
                args=child.spec.args,
                kwargs=kwargs,
                parent=self.myAddress,
                log_settings=self.log_settings,
                ancestors=(*self.ancestors, (self.path, self.myAddress)),
            ),
        )
        result = yield AwaitStart(address, child.spec.start_timeout)
        if isinstance(result, Started):
            child.pid = result.pid
            child.status = "running"
            child.started_at = time.time()
            self._publish("started", child, at=result.at, pid=result.pid)
            self._flush_pending(child)
            if child.spec.standby:
                # Forked later, so the messages flushed above leave first.
                self.send_after(0.0, ("standby", child.id))
            return "ok", None
        child.address = None
        child.status = "undefined"
        if isinstance(result, Ignored):
            return "ignore", None
        if result == "timeout":
            self.send(address, ActorExitRequest())
            return "error", f"start timed out after {child.spec.start_timeout} s"
        return "error", result

    def _terminate_child(self, child: Child) -> Operation:
        """Stop one child as OTP's shutdown/2 does; publishes its terminated event."""
        address, pid = child.address, child.pid
        if address is None:
            child.status = "undefined"
            return
        child.status = "stopping"
        timeout = child.spec.shutdown_seconds
        if timeout == 0.0:
            self._kill(pid)
            info = yield AwaitExit(address, pid, None)
        else:
            self.send(address, Shutdown())
            info = yield AwaitExit(address, pid, timeout)
            if info == "timeout":
                self._kill(pid)
                info = yield AwaitExit(address, pid, None)
            if info.kind != "shutdown":
                report(self.path, "shutdown_error", info.reason, self._offender(child))
        self._answer_lost_calls(child, info)
        child.address = None
        child.pid = None
        child.status = "undefined"
        child.last_exit = info.reason
        self._publish("terminated", child, at=info.at, reason=reason_label(info.kind))

    def _make_standby(self, child_id: str) -> None:
        child = self._find(child_id)
        if child is None or self._stopping or self._dying or child_id in self._standby:
            return
        self._standby[child_id] = self.createActor(child.spec.start)

    def _drop_standby(self) -> None:
        for spare in self._standby.values():
            self.send(spare, ActorExitRequest())
        self._standby.clear()

    def _stop_children(self) -> Operation:
        self._drop_standby()
        if self.template is not None:
            yield from self._stop_dynamic_children()
            return
        for child in reversed(list(self.children)):
            yield from self._terminate_child(child)
            self._fail_pending(child, "supervisor is shutting down")

    def _stop_dynamic_children(self) -> Operation:
        """Stop all dynamic children at once, as OTP does for simple_one_for_one.

        Every child is asked to stop (or killed, for brutal_kill) before any is
        waited for, and those still running when the shared shutdown timeout
        runs out are killed.
        """
        assert self.template is not None
        running = [child for child in self.children if child.address is not None]
        timeout = self.template.shutdown_seconds
        for child in running:
            child.status = "stopping"
            if timeout == 0.0:
                self._kill(child.pid)
            else:
                self.send(child.address, Shutdown())
        deadline = None if timeout is None else time.monotonic() + timeout
        for child in running:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            info = yield AwaitExit(child.address, child.pid, remaining)
            if info == "timeout":
                self._kill(child.pid)
                info = yield AwaitExit(child.address, child.pid, None)
            if timeout != 0.0 and info.kind != "shutdown":
                report(self.path, "shutdown_error", info.reason, self._offender(child))
            self._answer_lost_calls(child, info)
            child.address = None
            child.pid = None
            child.status = "undefined"
            child.last_exit = info.reason
            self._publish("terminated", child, at=info.at, reason=reason_label(info.kind))
        for child in list(self.children):
            self._fail_pending(child, "supervisor is shutting down")

    def _kill(self, pid: int | None) -> None:
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.send_after(KILL_POLL_SECONDS, ("sweep", pid))

    def _sweep(self, pid: int | None) -> None:
        """Notice children whose process died without a ``ChildActorExited``.

        thespian turns SIGCHLD into ``ChildActorExited``, and a SIGCHLD that
        arrives while it is already checking its children can be lost. After
        a kill ordered here, the victim's pid is polled until it is gone;
        otherwise every running child is checked every sweep period.
        """
        for child in list(self.children):
            if child.address is None or child.pid is None or child.status == "starting":
                continue
            if pid is not None and child.pid != pid:
                continue
            if not process_running(child.pid):
                self._on_child_down(child.address, ExitInfo("killed", "killed", time.monotonic()))
            elif pid is not None:
                self.send_after(KILL_POLL_SECONDS, ("sweep", pid))
        if pid is None and not self._dying:
            self.send_after(_SWEEP_SECONDS, ("sweep", None))

    # -- exits ---------------------------------------------------------------

    def _exit_of(self, pid: int | None) -> ExitInfo | None:
        # An instance is identified by its pid: thespian can compare two
        # instances' addresses equal (for example when a port is reused).
        if pid is None:
            return None
        for dead_pid, info in self._exits:
            if dead_pid == pid:
                return info
        return None

    def _child_at(self, address: Any) -> Child | None:
        for child in self.children:
            if child.address is not None and child.address == address:
                return child
        return None

    def _on_child_down(self, address: Any, info: ExitInfo) -> None:
        child = self._child_at(address)
        if child is None:
            # An instance already handled, or a standby process.
            for child_id, spare in list(self._standby.items()):
                if spare == address:
                    del self._standby[child_id]
            return
        pid = child.pid
        if info.kind == "killed" and process_running(pid):
            # A late ChildActorExited about an earlier instance whose address
            # compares equal to the current one; the current one is alive.
            return
        if self._exit_of(pid) is not None:
            return
        if pid is not None:
            self._exits.append((pid, info))
        wait = self._wait
        if isinstance(wait, AwaitExit) and wait.pid == pid and wait.address == address:
            self._resume(info)
            return
        if isinstance(wait, AwaitStart) and wait.address == address:
            self._resume(f"exited during start: {info.reason}")
            return
        if child.status == "starting":
            return
        if self._op is not None or self._queue:
            self._queue.append(("exit", (address, pid), info))
            return
        self._handle_exit(child, info)

    def _handle_exit(self, child: Child, info: ExitInfo) -> None:
        offender = self._offender(child)
        self._answer_lost_calls(child, info)
        child.address = None
        child.pid = None
        child.last_exit = info.reason
        self._publish("terminated", child, at=info.at, reason=reason_label(info.kind))
        abnormal = info.kind not in ("normal", "shutdown")
        restart = child.spec.restart
        if restart == "permanent" or (restart == "transient" and abnormal):
            report(self.path, "child_terminated", info.reason, offender)
            child.status = "restarting"
            self._run(self._restart(child, info, offender))
            return
        if abnormal:
            report(self.path, "child_terminated", info.reason, offender)
        self._child_gone(child, f"exited with {info.reason}")
        self._check_auto_shutdown(child)

    def _child_gone(self, child: Child, why: str) -> None:
        child.status = "undefined"
        self._fail_pending(child, why)
        if (child.spec.restart == "temporary" or child.dynamic) and child in self.children:
            self.children.remove(child)

    def _check_auto_shutdown(self, child: Child) -> None:
        if not child.spec.significant or self.flags.auto_shutdown == "never":
            return
        if self.flags.auto_shutdown == "all_significant":
            if any(c.spec.significant and c.address is not None for c in self.children):
                return
        self._run(self._shutdown_self("shutdown"))

    # -- restarts ------------------------------------------------------------

    def _restart(self, child: Child, info: ExitInfo, offender: dict[str, Any]) -> Operation:
        now = time.monotonic()
        if not self.window.admit(now):
            report(self.path, "reached_max_restart_intensity", info.reason, offender)
            child.status = "undefined"
            yield from self._shutdown_self("shutdown")
            return
        delay = 0.0
        if child.spec.backoff is not None:
            recent = self.window.recent(now) - 1
            delay = child.spec.backoff.delay(recent, self._rng.random())
        strategy = self.flags.strategy
        if strategy in ("one_for_one", "simple_one_for_one"):
            group = [child]
        else:
            later = self.children[self.children.index(child) :]
            group = list(self.children) if strategy == "one_for_all" else later
            for other in reversed(group):
                if other is child:
                    continue
                yield from self._terminate_child(other)
                other.status = "restarting"
                if other.spec.restart == "temporary":
                    self._child_gone(other, "terminated by its supervisor's restart")
            group = [c for c in group if c in self.children]
        if delay > 0:
            logger.info(
                "supervisor %s: restarting child %r in %.3f s (restart backoff)",
                self.path,
                child.id,
                delay,
            )
            yield Sleep(delay)
        for member in group:
            member.status = "restarting"
        for member in group:
            outcome, detail = yield from self._start_child(member)
            if outcome == "ok":
                member.restarts += 1
                continue
            if outcome == "ignore":
                self._child_gone(member, "its start returned ignore")
                continue
            report(self.path, "start_error", detail, self._offender(member))
            for started in reversed(group[: group.index(member)]):
                yield from self._terminate_child(started)
            for waiting in group:
                waiting.status = "restarting"
            failure = ExitInfo("crash", detail, time.monotonic())
            yield from self._restart(member, failure, self._offender(member))
            return

    def _shutdown_self(self, reason: str) -> Operation:
        self._stopping = True
        yield from self._stop_children()
        for child in self.children:
            self._fail_pending(child, "supervisor has stopped")
        self._exit("shutdown", reason)

    def handle_shutdown(self, reason: str) -> None:
        if self._stopping:
            return
        if self._op is not None and isinstance(self._wait, Sleep):
            # A restart waiting out its backoff is abandoned: the child stays down.
            self._op.close()
            self._op = None
            self._resume_none()
        if self._op is not None:
            self._queue.appendleft(("shutdown", reason, None))
            return
        self._run(self._shutdown_self(reason))

    def _resume_none(self) -> None:
        self.cancel_timer(self._wait_timer)
        self._wait = None
        self._wait_timer = None

    def terminate(self, reason: str) -> None:
        # Reached without _shutdown_self only when thespian itself stops this
        # supervisor; nothing can be awaited then, so children are killed.
        if not self._stopping:
            for child in self.children:
                self._kill(child.pid)
        self._drop_standby()

    # -- messages --------------------------------------------------------------

    def handle_cast(self, message: Any, sender: Any) -> None:
        if isinstance(message, Started | StartFailed | Ignored):
            wait = self._wait
            if isinstance(wait, AwaitStart) and wait.address == sender:
                self._resume(message.reason if isinstance(message, StartFailed) else message)
            return
        if isinstance(message, Exiting):
            self._on_child_down(sender, ExitInfo(message.kind, message.reason, message.at))
            self.send(sender, ExitAck())
            return
        if isinstance(message, ChildActorExited):
            self._on_child_down(
                message.childAddress,
                ExitInfo("killed", "killed", time.monotonic()),
            )
            return
        if isinstance(message, Deliver):
            self._deliver(message, sender)
            return
        if isinstance(message, Reply):
            self._gather_reply(message)
            return
        if isinstance(message, DeadEnvelope):
            self._dead_letter(message)
            return
        super().handle_cast(message, sender)

    def _dispatch(self, message: Any, sender: Any) -> None:
        if isinstance(message, Shutdown) and not self._dying:
            self.handle_shutdown(message.reason)
            return
        super()._dispatch(message, sender)
