"""``GenActor``: the base class of every supervised actor, with OTP exit semantics.

thespian keeps an actor alive when an exception escapes its
``receiveMessage``: it calls the handler a second time with the same message
and then answers the sender with ``PoisonMessage``. A supervised actor must
instead die with the exception as its exit reason, so that its supervisor can
restart it from a clean state. ``GenActor`` catches every exception at the
boundary and turns it into an exit:

1. the request being handled is answered with an ``actor_crashed`` error
   (never retried, so its side effects run once);
2. ``terminate(reason)`` runs;
3. ``Exiting("crash", reason)`` goes to the parent supervisor;
4. the actor asks thespian to exit, and any message that reaches it
   meanwhile gets a ``not_running`` error instead of being handled.

Hooks a subclass overrides, all called on the actor's single thread:

``init(*args, **kwargs)``
    Called once with the child spec's arguments. Return normally to start,
    return :data:`IGNORE` to decline (OTP's ``ignore``), raise to fail the
    start, or return :data:`DEFER` and later call ``init_done()`` or
    ``init_failed(reason)``.
``handle_call(body, caller)``
    A :class:`~supervisors.messages.Call`. The return value is the reply;
    return :data:`NOREPLY` and call ``reply(caller, value)`` later to answer
    asynchronously.
``handle_cast(message, sender)``
    Any other message.
``handle_timeout(payload)``
    A timer set with ``send_after`` has fired.
``handle_watch(ready)``
    A descriptor registered with ``watch`` is readable.
``terminate(reason)``
    The actor is about to exit (stop, crash or shutdown request). Keep it
    short: the supervisor kills the process when the child's shutdown timeout
    runs out.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from thespian.actors import (
    Actor,
    ActorAddress,
    ActorExitRequest,
    ActorSystemMessage,
    ChildActorExited,
    PoisonMessage,
    ThespianWatch,
    WakeupMessage,
    WatchMessage,
)

from supervisors.messages import (
    Batch,
    Call,
    Deliver,
    ErrorInfo,
    ExitAck,
    Exiting,
    Ignored,
    Init,
    Kill,
    Reply,
    Routed,
    Shutdown,
    Started,
    StartFailed,
)
from supervisors.outbox import Outbox
from supervisors.reports import configure_logging
from supervisors.timers import TimerQueue

__all__ = ["GenActor", "Caller", "IGNORE", "DEFER", "NOREPLY", "exception_reason", "reroute"]

logger = logging.getLogger(__name__)


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


# Seconds an exiting actor waits for its supervisor's ExitAck before it exits anyway.
_ACK_WAIT = 2.0
_ACK_TIMEOUT = "tpir-exit-ack-timeout"

MAX_TIMER_SECONDS = 1e9
"""Maximum delay ``send_after`` accepts (about 31 years); thespian's wakeups take a
``timedelta``, which overflows near 8.6e13 seconds."""

IGNORE = _Sentinel("IGNORE")
DEFER = _Sentinel("DEFER")
NOREPLY = _Sentinel("NOREPLY")


@dataclass(frozen=True)
class Caller:
    """The destination of one call's reply: the call's reference and the reply address."""

    ref: Any
    address: Any


@dataclass(frozen=True)
class _Tick:
    """The payload of a thespian wakeup that `TimerQueue` requested for ``at``."""

    at: float


def exception_reason(exc: BaseException) -> str:
    """Return the exit reason text for an exception: its type and message."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class GenActor(Actor):  # type: ignore[misc]
    """Base class of supervised actors; see the module docstring for the hooks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.name = ""
        self.path = ""
        self.parent: Any = None
        self._running = False
        self._dying = False
        self._exit_requested = False
        self._init_caller: Any = None
        self._timers = TimerQueue()
        self._watched: list[int] = []
        self._supervised = False
        self.ancestors: tuple[tuple[str, Any], ...] = ()
        self._addresses: dict[str, Any] = {}
        self._outbox: Outbox | None = None

    # -- hooks -------------------------------------------------------------

    def init(self, *args: Any, **kwargs: Any) -> Any:
        return None

    def handle_call(self, body: Any, caller: Caller) -> Any:
        raise UnknownRequest(body)

    def handle_cast(self, message: Any, sender: Any) -> None:
        logger.warning("actor %s ignored unexpected message %r", self.path, type(message).__name__)

    def handle_timeout(self, payload: Any) -> None:
        pass

    def handle_watch(self, ready: list[int]) -> None:
        pass

    def terminate(self, reason: str) -> None:
        pass

    # -- tools for subclasses ---------------------------------------------

    def reply(self, caller: Caller, value: Any) -> None:
        """Send the reply for ``caller``'s call."""
        self.send(caller.address, Reply(caller.ref, value))

    def reply_error(self, caller: Caller, code: str, message: str, details: Any = None) -> None:
        """Send an error reply for ``caller``'s call."""
        self.send(caller.address, Reply(caller.ref, error=ErrorInfo(code, message, details)))

    def send_after(self, seconds: float, payload: Any) -> int:
        """Deliver ``payload`` to ``handle_timeout`` after ``seconds``; return a timer token.

        Raises ValueError for a delay that is not a finite number of seconds below
        ``MAX_TIMER_SECONDS``; a negative delay counts as 0.
        """
        if not math.isfinite(seconds) or seconds >= MAX_TIMER_SECONDS:
            raise ValueError(
                f"invalid timer delay {seconds!r}: expected a finite number of seconds "
                f"below {MAX_TIMER_SECONDS:g}"
            )
        now = time.monotonic()
        token, wakeup = self._timers.add(now + max(seconds, 0.0), payload)
        if wakeup is not None:
            self._request_tick(wakeup, now)
        return token

    def cancel_timer(self, token: int | None) -> None:
        """Cancel a timer set with ``send_after``, so that its payload is never delivered."""
        if token is not None:
            self._timers.cancel(token)

    def _request_tick(self, at: float, now: float) -> None:
        self.wakeupAfter(timedelta(seconds=max(0.0, at - now)), _Tick(at))

    def watch(self, fd: int) -> None:
        """Call ``handle_watch`` whenever ``fd`` is readable."""
        if fd not in self._watched:
            self._watched.append(fd)

    def unwatch(self, fd: int) -> None:
        if fd in self._watched:
            self._watched.remove(fd)

    def send_named(self, path: str, message: Any) -> None:
        """Send ``message`` by name to the actor at ``path`` (for example ``root/sup/worker``).

        The message goes to the nearest ancestor supervisor whose path is a
        prefix of ``path`` and is routed down from there, so it reaches the
        current instance of the target even across restarts. An ancestor's
        address never goes stale for this actor: when an ancestor restarts,
        this actor is restarted too.
        """
        for ancestor_path, address in reversed(self.ancestors):
            prefix = ancestor_path + "/"
            if path.startswith(prefix):
                rest = tuple(part for part in path[len(prefix) :].split("/") if part)
                self.send(address, Deliver(rest, message))
                return
        raise ValueError(f"path {path!r} is not below any ancestor of actor {self.path!r}")

    def send_cached(self, path: str, message: Any) -> None:
        """Send ``message`` to ``path`` directly when its address is known, else by name.

        A direct send skips the supervisors on the way, which matters on hot
        paths. It stays safe across restarts: a message for an instance that
        has gone comes back to the root supervisor as a dead letter and is
        routed again by name, and an actor that gets a message meant for
        another path (a reused port) rejects it.
        """
        address = self._addresses.get(path)
        if address is None:
            self.send_named(path, message)
        else:
            self.send(address, Routed(path, message))

    def learn_address(self, path: str, address: Any) -> None:
        """Remember the current address of the actor at ``path`` for ``send_cached``."""
        self._addresses[path] = address

    def forget_address(self, path: str) -> None:
        """Drop a remembered address, so the next ``send_cached`` goes by name."""
        self._addresses.pop(path, None)

    def stop(self, reason: str = "normal") -> None:
        """Exit after the current message with ``reason`` (``normal``, ``shutdown`` or other)."""
        kind = reason if reason in ("normal", "shutdown") else "crash"
        self._exit(kind, reason)

    def init_done(self, at: float | None = None) -> None:
        """Finish a start whose ``init`` returned DEFER.

        ``at`` is the ``time.monotonic()`` reading reported as the start time;
        it defaults to now.
        """
        self._running = True
        started_at = time.monotonic() if at is None else at
        self.send(self._init_caller, Started(os.getpid(), os.getppid(), started_at))

    def init_failed(self, reason: str) -> None:
        """Fail a start whose ``init`` returned DEFER; the actor exits."""
        self.send(self._init_caller, StartFailed(reason))
        self._leave()

    # -- thespian boundary -------------------------------------------------

    def receiveMessage(self, message: Any, sender: Any) -> Any:  # noqa: N802 - thespian API
        # What the handlers send goes out when they are done, one message or one Batch
        # per address (see supervisors.outbox). A supervisor that delivers a message to
        # itself calls this method from inside a handler; that inner call sends
        # through the outer call's outbox.
        outer = self._outbox is None
        if outer:
            self._outbox = Outbox(super().send)
        try:
            if isinstance(message, Batch):
                for each in message.messages:
                    self._receive_one(each, sender)
            else:
                self._receive_one(message, sender)
        finally:
            if outer:
                self._flush_outbox()
        return ThespianWatch(list(self._watched)) if self._watched and not self._dying else None

    def _flush_outbox(self) -> None:
        outbox, self._outbox = self._outbox, None
        if outbox is None:
            return
        try:
            outbox.flush()
        except Exception as exc:  # noqa: BLE001 - every exception is an exit reason
            # The handlers have finished and their replies may be out already, so the
            # actor exits without a second reply to any call. An exception that escaped
            # here would make thespian run the same message a second time.
            self._crash(exc, None, None)

    def send(self, targetAddr: Any, msg: Any) -> None:  # noqa: N803 - thespian API
        """Send ``msg`` to ``targetAddr``; inside a handler, when the handler returns.

        thespian's own messages (an exit request, for example) go at once, after
        everything queued before them, so that the order of sends is kept.
        """
        outbox = self._outbox
        if outbox is None or not isinstance(targetAddr, ActorAddress):
            # An invalid address raises here, inside the handler, so the actor crashes
            # on the message that sent it.
            super().send(targetAddr, msg)
        elif isinstance(msg, ActorSystemMessage):
            outbox.flush()
            super().send(targetAddr, msg)
        else:
            outbox.add(targetAddr, msg)

    def _receive_one(self, message: Any, sender: Any) -> None:
        try:
            self._dispatch(message, sender)
        except Exception as exc:  # noqa: BLE001 - every exception is an exit reason
            self._crash(exc, message, sender)

    def _dispatch(self, message: Any, sender: Any) -> None:
        if isinstance(message, ActorExitRequest):
            if not self._exit_requested:
                # thespian itself is stopping this actor (system shutdown or a
                # parent that is exiting); there is no supervisor left to tell.
                # An actor that never got its Init (a standby) has nothing to clean.
                self._dying = True
                if self._running:
                    self._run_terminate("shutdown")
            return
        if isinstance(message, ExitAck) or (
            isinstance(message, WakeupMessage) and message.payload is _ACK_TIMEOUT
        ):
            if self._dying and not self._exit_requested:
                self._leave()
            return
        if isinstance(message, Routed):
            if self._dying:
                self._bounce(message)
                return
            if self.path and message.path != self.path:
                logger.warning(
                    "actor %s got a message meant for %s and rejected it", self.path, message.path
                )
                self._reject(message.message, sender)
                return
            message = message.message
        if self._dying:
            self._reject(message, sender)
            return
        if isinstance(message, Init):
            self._handle_init(message, sender)
        elif isinstance(message, Call):
            self._handle_call_message(message, sender)
        elif isinstance(message, WakeupMessage):
            payload = message.payload
            if isinstance(payload, _Tick):
                now = time.monotonic()
                due, wakeup = self._timers.on_wakeup(payload.at, now)
                if wakeup is not None:
                    self._request_tick(wakeup, now)
                for token in due:
                    # A handler may stop the actor or cancel a timer due at the same time.
                    found, timer_payload = self._timers.take(token)
                    if self._dying:
                        break
                    if found:
                        self.handle_timeout(timer_payload)
            else:
                self.handle_timeout(payload)
        elif isinstance(message, WatchMessage):
            self.handle_watch(list(message.ready))
        elif isinstance(message, Shutdown):
            self._exit("shutdown", message.reason)
        elif isinstance(message, Kill):
            raise ActorKilled(message.reason)
        elif isinstance(message, PoisonMessage):
            logger.warning(
                "actor %s: a message it sent could not be handled: %r",
                self.path,
                type(message.poisonMessage).__name__,
            )
        elif isinstance(message, ChildActorExited):
            self.handle_cast(message, sender)
        else:
            self.handle_cast(message, sender)

    def _handle_init(self, message: Init, sender: Any) -> None:
        self.name = message.name
        self.path = message.path
        self.parent = message.parent if message.parent is not None else sender
        self._supervised = message.supervised
        self.ancestors = message.ancestors
        self._init_caller = sender
        configure_logging(message.log_settings)
        try:
            result = self.init(*message.args, **message.kwargs)
        except Exception as exc:  # noqa: BLE001 - a failed init is a start error
            logger.error("actor %s failed to start: %s", self.path, exception_reason(exc))
            self.send(sender, StartFailed(exception_reason(exc)))
            self._leave()
            return
        if result is IGNORE:
            self.send(sender, Ignored())
            self._leave()
        elif result is not DEFER:
            self.init_done()

    def _handle_call_message(self, call: Call, sender: Any) -> None:
        caller = Caller(call.ref, call.reply_to if call.reply_to is not None else sender)
        try:
            value = self.handle_call(call.body, caller)
        except UnknownRequest as exc:
            self.reply_error(caller, "unknown_request", str(exc))
            return
        except Exception as exc:
            self._crash(exc, call, sender)
            return
        if value is not NOREPLY:
            self.reply(caller, value)

    def _bounce(self, routed: Routed) -> None:
        """Hand a message routed to this exiting actor back to its supervisor.

        ``Exiting`` went to the supervisor first on the same connection, so
        the supervisor already knows this instance is gone and queues the
        message for the next one, or fails it when there is none.
        """
        if self.parent is None:
            self._reject(routed.message, None)
            return
        self.send(self.parent, reroute(self.name, routed.message, routed.hops + 1))

    def _reject(self, message: Any, sender: Any) -> None:
        while isinstance(message, Deliver):
            message = message.message
        reply_to = None
        if isinstance(message, Call):
            reply_to = message.reply_to if message.reply_to is not None else sender
        if reply_to is None:
            if not isinstance(message, ActorSystemMessage):
                logger.warning(
                    "actor %s is exiting and dropped %s", self.path, type(message).__name__
                )
            return
        error = ErrorInfo("not_running", f"actor {self.path} is exiting")
        self.send(reply_to, Reply(message.ref, error=error))

    def _crash(self, exc: BaseException, message: Any, sender: Any) -> None:
        reason = exception_reason(exc)
        if self._dying:
            logger.error("actor %s raised while exiting: %s", self.path, reason)
            return
        logger.error("actor %s crashed: %s", self.path, reason, exc_info=exc)
        if isinstance(message, Call):
            reply_to = message.reply_to if message.reply_to is not None else sender
            self.send(
                reply_to,
                Reply(
                    message.ref, error=ErrorInfo("actor_crashed", f"actor {self.path}: {reason}")
                ),
            )
        self._exit("crash", reason)

    def _run_terminate(self, reason: str) -> None:
        try:
            self.terminate(reason)
        except Exception as exc:  # noqa: BLE001 - the actor exits either way
            logger.error("actor %s: terminate raised %s", self.path, exception_reason(exc))

    def _exit(self, kind: str, reason: str) -> None:
        if self._dying:
            return
        self._dying = True
        self._run_terminate(reason)
        if self.parent is None:
            self._leave()
            return
        self.send(self.parent, Exiting(kind, reason, time.monotonic()))
        if not self._supervised:
            self._leave()
            return
        # Wait for ExitAck so that messages the supervisor forwarded before it
        # read Exiting are handed back rather than lost with this process.
        self.wakeupAfter(timedelta(seconds=_ACK_WAIT), _ACK_TIMEOUT)

    def _leave(self) -> None:
        self._dying = True
        self._exit_requested = True
        self._timers.clear()
        self.send(self.myAddress, ActorExitRequest())


def reroute(name: str, payload: Any, hops: int) -> Deliver:
    """Return a ``Deliver`` that sends ``payload`` again to the child ``name``."""
    if isinstance(payload, Deliver):
        return Deliver((name, *payload.path), payload.message, hops)
    return Deliver((name,), payload, hops)


class UnknownRequest(Exception):
    """A call whose body the actor does not handle: it gets an error reply and is not a crash."""

    def __init__(self, body: Any) -> None:
        super().__init__(f"unknown request {type(body).__name__}")


class ActorKilled(Exception):
    """Raised inside an actor that was asked to crash with a :class:`Kill` message."""
