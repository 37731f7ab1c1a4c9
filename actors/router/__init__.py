"""The router's pure call logic: per-call plans, the provider replica and routing rules.

Nothing here sends messages or starts timers. `actors.router_actor.RouterActor` drives
these objects, and the tests drive them with a fake clock.

Modules: `attempts` (attempt records and failures), `rules` (per-provider rules from the
configuration, request checks, idempotency), `replica` (the router's view of breaker
state, health, cooldowns and ejection) and `plan` (the per-call state machine).
"""

from __future__ import annotations

from actors.router.attempts import (
    NO_REPLY,
    PROVIDER_CRASHED,
    PROVIDER_UNAVAILABLE,
    AttemptFailure,
    AttemptRecord,
)
from actors.router.plan import (
    MIN_ATTEMPT_TIMEOUT,
    Action,
    CallPlan,
    Finish,
    SendAttempt,
    WaitUntil,
)
from actors.router.replica import STATE_VERSION, FailureEffects, Replica
from actors.router.rules import (
    MAX_DEADLINE,
    ProviderRules,
    RequestCheck,
    build_validators,
    check_call,
    ejection_settings,
    is_idempotent,
    retry_policy,
    rules_for,
)

__all__ = [
    "MAX_DEADLINE",
    "MIN_ATTEMPT_TIMEOUT",
    "NO_REPLY",
    "PROVIDER_CRASHED",
    "PROVIDER_UNAVAILABLE",
    "STATE_VERSION",
    "Action",
    "AttemptFailure",
    "AttemptRecord",
    "CallPlan",
    "FailureEffects",
    "Finish",
    "ProviderRules",
    "Replica",
    "RequestCheck",
    "SendAttempt",
    "WaitUntil",
    "build_validators",
    "check_call",
    "ejection_settings",
    "is_idempotent",
    "retry_policy",
    "rules_for",
]
