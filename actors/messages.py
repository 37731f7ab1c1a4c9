"""Messages between the actors of one integration, and between the node and them.

Flow of one call::

    node ──Call(IntegrationCall)──▶ router
    router ──Call(Attempt)──▶ provider ──(HTTP)──▶ outside service
    provider ──Reply(AttemptResult)──▶ router
    provider ──OutcomeReport──▶ breaker ──BreakerUpdate──▶ router, health
    health ──StatusUpdate──▶ router
    router ──Reply(call result)──▶ node
    router ──IntegrationEvent──▶ subscribers (the node)

``Call`` and ``Reply`` are the supervisors' request envelope; the classes
here are their bodies, or plain one-way messages. Every class is picklable.
Failures inside ``AttemptResult`` are plain dicts (``Failure.to_dict()`` of
:mod:`actors.adapters`) so that they cross process boundaries unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "IntegrationCall",
    "Attempt",
    "AttemptResult",
    "CancelAttempt",
    "CancelCall",
    "OutcomeReport",
    "BreakerUpdate",
    "StatusUpdate",
    "StateRequest",
    "Describe",
    "ResetProvider",
    "Restore",
    "SubscribeEvents",
    "IntegrationEvent",
    "EVENT_KINDS",
]

EVENT_KINDS = (
    "failover",
    "provider_failed",
    "provider_recovered",
    "circuit_opened",
    "circuit_half_open",
    "circuit_closed",
    "no_provider_available",
    "child_restarted",
)


@dataclass(frozen=True)
class IntegrationCall:
    """A call to an integration, sent to its router inside a ``Call``.

    ``request`` is the normalized request of the integration's provider kind
    (a chat request for openai/anthropic, ``{"method", "path", "headers",
    "body"}`` for http). ``deadline`` is the overall budget in seconds from
    receipt (None: the integration's ``timeout``). ``idempotency_key`` makes a
    non-idempotent request safe to retry and fail over, and is sent unchanged
    on every attempt. ``priority`` is carried for later use (higher first).
    """

    request: dict[str, Any]
    deadline: float | None = None
    idempotency_key: str | None = None
    priority: int = 0


@dataclass(frozen=True)
class Attempt:
    """One try of a call on one provider, sent by the router inside a ``Call``.

    ``timeout`` is the per-try timeout in seconds (already capped by the
    call's remaining deadline). ``idempotent`` tells the provider nothing it
    must act on; it is carried for logs.
    """

    call_id: str
    attempt_no: int
    request: dict[str, Any]
    timeout: float
    idempotency_key: str | None = None
    idempotent: bool = True


@dataclass(frozen=True)
class AttemptResult:
    """The provider's answer to an :class:`Attempt` (always a value, never an error reply).

    ``ok`` with ``value`` (the adapter's normalized result), or a ``failure``
    dict with at least ``kind``, ``message``, ``may_have_reached_provider``,
    ``retryable``, ``status`` and ``retry_after``. ``duration`` is seconds.
    """

    provider: str
    call_id: str
    attempt_no: int
    ok: bool
    duration: float
    value: Any = None
    failure: dict[str, Any] | None = None


@dataclass(frozen=True)
class CancelAttempt:
    """Stop an attempt in flight (deadline reached or caller gone); no result is sent."""

    call_id: str


@dataclass(frozen=True)
class CancelCall:
    """Cancel a call to the router because its caller is gone (one-way, or in a ``Call``).

    ``call_ref`` is the ``ref`` of the ``Call`` that carried the :class:`IntegrationCall`.
    The router cancels the attempt in flight (``CancelAttempt``) and replies to the call
    with the error ``cancelled``. In a ``Call`` the reply is the number of calls cancelled.
    """

    call_ref: Any


@dataclass(frozen=True)
class OutcomeReport:
    """A finished attempt, sent by the provider to its circuit breaker (one-way).

    ``outcome`` is ``success``, ``failure`` or ``ignored`` (counts neither way,
    for example a 4xx caused by the request itself). ``kind`` and ``status``
    describe a failure.
    """

    provider: str
    outcome: str
    duration: float
    kind: str | None = None
    status: int | None = None


@dataclass(frozen=True)
class BreakerUpdate:
    """The circuit breaker's state, sent to the router and health checker after each change.

    ``state`` is ``closed``, ``open`` or ``half_open``; ``retry_at`` is the
    epoch time an open breaker admits a probe; ``snapshot`` holds the figures
    for status displays.
    """

    provider: str
    state: str
    retry_at: float | None
    snapshot: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0


@dataclass(frozen=True)
class StatusUpdate:
    """A provider's health status, sent by its health checker to the router after each change.

    ``status`` is ``healthy``, ``failed``, ``testing`` or ``permanently_failed``.
    """

    provider: str
    status: str
    snapshot: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0


@dataclass(frozen=True)
class StateRequest:
    """Ask a breaker or health checker (in a ``Call``) for its current update message."""


@dataclass(frozen=True)
class Describe:
    """Ask any integration actor (in a ``Call``) for a dict describing its state."""


@dataclass(frozen=True)
class ResetProvider:
    """Operator request (in a ``Call``) to return a permanently failed provider to testing."""

    provider: str


@dataclass(frozen=True)
class Restore:
    """Operator request (in a ``Call``): reload state from the latest point at or before ``at``.

    ``at`` is epoch seconds. The reply is the restored point's time, or None
    when no point exists at or before ``at``.
    """

    at: float


@dataclass(frozen=True)
class SubscribeEvents:
    """Send :class:`IntegrationEvent` messages to ``address`` (None: the caller)."""

    address: Any = None


@dataclass(frozen=True)
class IntegrationEvent:
    """Something an operator or erlmcp wants to know, kinds in :data:`EVENT_KINDS`."""

    kind: str
    integration: str
    provider: str | None
    at: float
    details: dict[str, Any] = field(default_factory=dict)
