"""``AttemptTotals``: counters of one provider actor's finished attempts, for ``Describe``.

The counters live only as long as the actor process. The provider's lasting state (its
breaker and health status) belongs to the breaker and the health checker, which save it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["AttemptTotals"]


@dataclass
class AttemptTotals:
    """Counts of attempts by result since the actor started, and the latest failure.

    ``successes`` and ``failures`` count attempts replied to with an ``AttemptResult``.
    ``cancelled`` counts attempts stopped by ``CancelAttempt``, which get no reply.
    ``last_failure_at`` is epoch seconds.
    """

    successes: int = 0
    failures: int = 0
    cancelled: int = 0
    last_failure_kind: str | None = None
    last_failure_status: int | None = None
    last_failure_at: float | None = None

    def record_success(self) -> None:
        self.successes += 1

    def record_failure(self, kind: str, status: int | None, at: float) -> None:
        self.failures += 1
        self.last_failure_kind = kind
        self.last_failure_status = status
        self.last_failure_at = at

    def record_cancelled(self, count: int = 1) -> None:
        self.cancelled += count

    def to_dict(self) -> dict[str, Any]:
        """Return the counters as plain types for ``Describe`` replies."""
        return {
            "successes": self.successes,
            "failures": self.failures,
            "cancelled": self.cancelled,
            "last_failure_kind": self.last_failure_kind,
            "last_failure_status": self.last_failure_status,
            "last_failure_at": self.last_failure_at,
        }
