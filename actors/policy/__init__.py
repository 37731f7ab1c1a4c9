"""Pure resilience policies that provider actors, breaker actors and the router wrap.

The objects here do no I/O, start no threads and know nothing of thespian. Each one that
depends on time takes a clock, and each one that draws random numbers takes a
`random.Random`, so tests drive them with a fake clock and a seeded generator.

Clocks: the stateful objects take a clock returning epoch seconds, `time.time` by default.
Actors save policy state with `to_state()` into recovery points, and a restarted actor
rebuilds it with `from_state()`. Deadlines in that state (a breaker's retry time, ejection and
cooldown ends, the next recovery probe) are epoch seconds, so they keep their meaning across
a restart, where a `time.monotonic` value would not. A step of the system clock moves those
deadlines by the size of the step. Call durations are passed in by the caller, who should
measure them with `time.monotonic`, and `retry_call` measures its timeout with
`time.monotonic` because it saves no state.

Modules: `backoff` (delay schedules), `breaker` (circuit breaker), `retry` (failure
vocabulary and retry decisions), `cooldown` (per-provider cooldowns, Retry-After),
`ejection` (outlier ejection), `provider_status` (health status machine) and `selection`
(provider order for one request).
"""

from __future__ import annotations

from actors.policy.backoff import Backoff, BackoffKind, Jitter
from actors.policy.breaker import (
    BREAKER_TRANSITIONS,
    BreakerCause,
    BreakerEvent,
    BreakerSettings,
    BreakerSnapshot,
    BreakerState,
    CircuitBreaker,
    IllegalTransitionError,
    Permit,
    check_transition,
)
from actors.policy.cooldown import MAX_RETRY_AFTER, Cooldowns, parse_retry_after
from actors.policy.ejection import EjectionEvent, EjectionSettings, OutlierEjector
from actors.policy.provider_status import (
    STATUS_TRANSITIONS,
    HealthStatus,
    ProviderStatus,
    ProviderStatusSettings,
    Role,
    StatusCause,
    StatusEvent,
    check_status_transition,
)
from actors.policy.retry import (
    DEFAULT_RETRYABLE_KINDS,
    DEFAULT_RETRYABLE_STATUSES,
    Decision,
    ErrorKind,
    GiveUpReason,
    Outcome,
    RetryPolicy,
    decide,
    is_cancellation,
    is_safe_to_resend,
    may_have_reached_provider,
    retry_call,
    retry_call_async,
)
from actors.policy.selection import Candidate, order_candidates

__all__ = [
    "BREAKER_TRANSITIONS",
    "DEFAULT_RETRYABLE_KINDS",
    "DEFAULT_RETRYABLE_STATUSES",
    "MAX_RETRY_AFTER",
    "STATUS_TRANSITIONS",
    "Backoff",
    "BackoffKind",
    "BreakerCause",
    "BreakerEvent",
    "BreakerSettings",
    "BreakerSnapshot",
    "BreakerState",
    "Candidate",
    "CircuitBreaker",
    "Cooldowns",
    "Decision",
    "EjectionEvent",
    "EjectionSettings",
    "ErrorKind",
    "GiveUpReason",
    "HealthStatus",
    "IllegalTransitionError",
    "Jitter",
    "Outcome",
    "OutlierEjector",
    "Permit",
    "ProviderStatus",
    "ProviderStatusSettings",
    "RetryPolicy",
    "Role",
    "StatusCause",
    "StatusEvent",
    "check_status_transition",
    "check_transition",
    "decide",
    "is_cancellation",
    "is_safe_to_resend",
    "may_have_reached_provider",
    "order_candidates",
    "parse_retry_after",
    "retry_call",
    "retry_call_async",
]
