"""The supervisor's record of one child and the waits its operations yield."""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from supervisors.spec import ChildSpec

__all__ = ["Child", "AwaitStart", "AwaitExit", "Sleep", "ExitInfo", "Operation", "reason_label"]

# A supervisor operation: a generator that yields what it waits for.
Operation = Generator[Any, Any, Any]

FORWARDED_LIMIT = 65536
"""Calls by name kept per child, so that each gets a ``lost`` reply if it is killed.

A safety bound on memory: entries also leave once they are older than the lost-call
window. A child receives batches of calls, so a killed instance can take thousands
of forwarded calls with it."""


@dataclass
class Child:
    """One child: its spec, its current instance (address and pid) and its history.

    ``status`` is ``starting``, ``running``, ``exiting`` (a message came back
    as a dead letter, so the instance is gone but its exit is not handled
    yet), ``stopping``, ``restarting`` (an exit was handled and a new instance
    is on its way) or ``undefined`` (not running, spec kept, as OTP's
    ``pid = undefined``). Messages addressed to
    the child by name wait in ``pending`` while it is starting, stopping or
    restarting.
    """

    spec: ChildSpec
    dynamic: bool = False
    address: Any = None
    pid: int | None = None
    status: str = "undefined"
    restarts: int = 0
    started_at: float | None = None
    last_exit: str | None = None
    pending: deque[tuple[Any, Any]] = field(default_factory=deque)
    forwarded: deque[tuple[float, Any]] = field(
        default_factory=lambda: deque(maxlen=FORWARDED_LIMIT)
    )

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def is_supervisor(self) -> bool:
        return self.spec.type == "supervisor"

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.spec.id,
            "pid": self.pid,
            "status": self.status,
            "type": self.spec.type,
            "restart": self.spec.restart,
            "shutdown": self.spec.shutdown,
            "restarts": self.restarts,
            "started_at": self.started_at,
            "last_exit": self.last_exit,
            "significant": self.spec.significant,
            "module": f"{self.spec.start.__module__}.{self.spec.start.__qualname__}",
        }


@dataclass(frozen=True)
class ExitInfo:
    """The end of one child instance: ``kind`` is normal, shutdown, crash or killed."""

    kind: str
    reason: str
    at: float


def reason_label(kind: str) -> str:
    """Return the short exit label used in events: normal, shutdown, killed or crash."""
    return kind if kind in ("normal", "shutdown", "killed") else "crash"


@dataclass(frozen=True)
class AwaitStart:
    """Wait for the child at ``address`` to answer its ``Init``, up to ``timeout`` seconds."""

    address: Any
    timeout: float


@dataclass(frozen=True)
class AwaitExit:
    """Wait for the child instance at ``address`` with ``pid`` to exit, up to ``timeout``
    seconds (None: forever)."""

    address: Any
    pid: int | None
    timeout: float | None


@dataclass(frozen=True)
class Sleep:
    """Pause the current operation for ``seconds`` (restart backoff)."""

    seconds: float
