"""Request bodies of the supervisor API, sent inside a :class:`~supervisors.messages.Call`.

They mirror OTP's ``supervisor`` module functions. Each is answered with one
``Reply``; errors carry the codes listed beside each request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from supervisors.spec import ChildSpec

__all__ = [
    "WhichChildren",
    "CountChildren",
    "StartChild",
    "TerminateChild",
    "RestartChild",
    "DeleteChild",
    "GetChildSpec",
    "Snapshot",
    "Subscribe",
    "StopSupervisor",
    "Whereis",
]


@dataclass(frozen=True)
class WhichChildren:
    """List the children: id, pid, status, type, restart count."""


@dataclass(frozen=True)
class CountChildren:
    """Count specs, active children, supervisors and workers."""


@dataclass(frozen=True)
class StartChild:
    """Add and start a child.

    For a static supervisor, ``spec`` is the new child's spec (errors
    ``already_present``, ``already_started``, ``start_error``). For
    ``simple_one_for_one``, ``args`` are appended to the template's arguments
    and ``id`` names the new child (default ``<template id>-<n>``).
    """

    spec: ChildSpec | None = None
    args: tuple[Any, ...] = ()
    id: str | None = None


@dataclass(frozen=True)
class TerminateChild:
    """Stop a running child; its spec is kept except for temporary and dynamic children."""

    id: str


@dataclass(frozen=True)
class RestartChild:
    """Start a stopped child whose spec is kept (errors ``running``, ``not_found``)."""

    id: str


@dataclass(frozen=True)
class DeleteChild:
    """Remove the spec of a child that is not running (``running``, ``not_found``)."""

    id: str


@dataclass(frozen=True)
class GetChildSpec:
    """Return a child's spec (``not_found``)."""

    id: str


@dataclass(frozen=True)
class Snapshot:
    """Return this supervisor and, recursively, every child supervisor's snapshot."""

    timeout: float = 2.0


@dataclass(frozen=True)
class Subscribe:
    """Send the subtree's :class:`~supervisors.messages.ChildEvent` messages to ``address``.

    None means the caller's reply address.
    """

    address: Any


@dataclass(frozen=True)
class StopSupervisor:
    """Stop all children in reverse start order, answer, then exit with ``shutdown``."""


@dataclass(frozen=True)
class Whereis:
    """Return the current address of a direct child, or None when it is not running."""

    id: str
