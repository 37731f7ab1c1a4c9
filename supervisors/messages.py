"""Messages exchanged between supervisors, their children and outside callers.

Every message is a small picklable dataclass, because thespian's TCP
transport pickles what it sends. The names follow OTP where OTP has one.

Lifecycle, supervisor to child and back::

    supervisor --Init-------------> child      (after createActor)
    supervisor <--Started---------- child      (init returned normally)
    supervisor <--StartFailed------ child      (init raised; the child exits)
    supervisor <--Ignored---------- child      (init returned IGNORE; the child exits)
    supervisor --Shutdown---------> child      (orderly stop, bounded by the shutdown timeout)
    supervisor <--Exiting---------- child      (sent just before any exit, with the reason)

A child whose process dies without an ``Exiting`` (SIGKILL, OOM killer) is
seen through thespian's ``ChildActorExited`` and gets the reason ``killed``.

Requests: a ``Call`` carries a reference chosen by the caller and is answered
with exactly one ``Reply`` carrying the same reference, either from the
actor, or with an error from whoever could not deliver it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Call",
    "Reply",
    "Init",
    "Started",
    "StartFailed",
    "Ignored",
    "Shutdown",
    "Exiting",
    "ExitAck",
    "Deliver",
    "Routed",
    "ChildEvent",
    "ErrorInfo",
    "Kill",
    "Batch",
]


@dataclass(frozen=True)
class ErrorInfo:
    """An error carried in a reply: a stable code, a message, optional details."""

    code: str
    message: str
    details: Any = None


@dataclass(frozen=True)
class Call:
    """A request that gets exactly one :class:`Reply` with the same ``ref``.

    ``reply_to`` is where the reply goes; None means the sender of the message
    that carried this call (which differs from the original caller when a
    supervisor forwards a call by name).
    """

    ref: Any
    body: Any
    reply_to: Any = None


@dataclass(frozen=True)
class Reply:
    """The answer to a :class:`Call`: a value, or an error when ``error`` is set."""

    ref: Any
    value: Any = None
    error: ErrorInfo | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Init:
    """Sent by a supervisor to a freshly created child actor."""

    name: str
    path: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    parent: Any = None
    log_settings: Any = None
    supervised: bool = True
    ancestors: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Started:
    """A child's init has completed; ``pid`` is the child's process id."""

    pid: int
    parent_pid: int
    at: float


@dataclass(frozen=True)
class StartFailed:
    """A child's init raised; the child exits right after sending this."""

    reason: str


@dataclass(frozen=True)
class Ignored:
    """A child's init declined to start (OTP's ``ignore``); the child exits."""


@dataclass(frozen=True)
class Shutdown:
    """An orderly stop request from the parent supervisor."""

    reason: str = "shutdown"


@dataclass(frozen=True)
class Exiting:
    """Sent by an actor to its parent just before it exits, with its exit reason.

    ``kind`` is ``normal``, ``shutdown`` or ``crash``; ``reason`` is the text
    shown in reports (for a crash, the exception's repr).
    """

    kind: str
    reason: str
    at: float


@dataclass(frozen=True)
class ExitAck:
    """The supervisor's answer to ``Exiting``: it will forward nothing more to this instance.

    A supervised actor exits only after this arrives, so every message the
    supervisor forwarded before it learned of the exit reaches the actor and
    is handed back, instead of being dropped by an exiting process.
    """


@dataclass(frozen=True)
class Deliver:
    """Route ``message`` to the child named by ``path`` below this supervisor.

    ``path`` is a tuple of child ids, outermost first. A supervisor forwards
    the message to the current instance of the child, holds it while that
    child is restarting, or answers a ``Call`` inside it with an error when the
    child is not coming back. ``dead_address`` is set when the message comes
    back as a dead letter: the instance at that address is gone, so the
    message waits for the replacement instead of going there again.
    """

    path: tuple[str, ...]
    message: Any
    hops: int = 0
    dead_address: Any = None


@dataclass(frozen=True)
class Routed:
    """A message a supervisor forwarded by name to the child at ``path``.

    The receiving actor unwraps it. When the receiver is already exiting, or
    its process is gone and thespian returns the message as a dead letter,
    the wrapper lets the message be routed again by name, to the new instance.
    ``hops`` counts such re-routings; past a small limit the message fails
    with ``not_running``.
    """

    path: str
    message: Any
    hops: int = 0


@dataclass(frozen=True)
class ChildEvent:
    """A lifecycle event published to subscribers of a supervisor.

    ``event`` is ``started`` or ``terminated``; ``at`` is a
    ``time.monotonic()`` reading taken where the event happened, which on Linux
    is comparable across processes.
    """

    event: str
    supervisor: str
    child: str
    path: str
    at: float
    pid: int | None = None
    reason: str | None = None
    child_type: str = "worker"


@dataclass(frozen=True)
class Kill:
    """Ask an actor to exit through its crash path, for tests and chaos drills."""

    reason: str = "killed by request"


@dataclass(frozen=True)
class Batch:
    """Several messages from one actor to one address, carried as one thespian message.

    A ``GenActor`` sends what one of its handlers addressed to the same actor as one
    batch, and its receiver handles the messages one by one in order, as if each had
    arrived alone. thespian's TCP transport sends one message at a time to each
    address and waits for its acknowledgement, so a burst of messages to one address
    otherwise queues for one round trip each.
    """

    messages: tuple[Any, ...]
