"""Helpers of the provider actor (:mod:`actors.provider_actor`).

Modules:

- ``loop``: an asyncio event loop on a private thread.
- ``completions``: results handed to the actor's select loop through a pipe.
- ``runner``: adapter attempts on that loop, sharing one ``httpx.AsyncClient``.
- ``outcomes``: what the circuit breaker hears about an attempt (pure functions).
- ``stats``: attempt counters for ``Describe``.
"""

from __future__ import annotations

from actors.provider.completions import CompletionChannel
from actors.provider.loop import LoopThread
from actors.provider.outcomes import (
    BREAKER_OUTCOMES,
    PROVIDER_FAULT_CLIENT_STATUSES,
    breaker_outcome,
    check_attempt_timeout,
    invalid_attempt_failure,
    unexpected_error_failure,
)
from actors.provider.runner import (
    DEFAULT_MAX_CONNECTIONS,
    AttemptRunner,
    Finished,
    build_client,
)
from actors.provider.stats import AttemptTotals

__all__ = [
    "BREAKER_OUTCOMES",
    "DEFAULT_MAX_CONNECTIONS",
    "PROVIDER_FAULT_CLIENT_STATUSES",
    "AttemptRunner",
    "AttemptTotals",
    "CompletionChannel",
    "Finished",
    "LoopThread",
    "breaker_outcome",
    "build_client",
    "check_attempt_timeout",
    "invalid_attempt_failure",
    "unexpected_error_failure",
]
