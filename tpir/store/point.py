"""The recovery point: one stateful actor's state at one time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tpir.store.checksum import compute_checksum

__all__ = ["RecoveryPoint"]


@dataclass(frozen=True)
class RecoveryPoint:
    """One saved state of one actor.

    ``integration`` is the integration the actor belongs to (for example
    ``llm_provider``), ``actor_key`` identifies the actor instance across restarts
    (for example ``llm_provider/openai/breaker``) and ``kind`` names the actor type
    (for example ``breaker``, ``provider_status`` or ``integration``).
    ``state`` is a JSON-safe dict, and each point read from the store gets its own
    copy. ``created_at`` is in epoch seconds. ``checksum`` is the hex SHA-256 that
    ``tpir.store.checksum`` specifies. ``seq`` is the row id that the database
    assigned, which increases with every save. A point saved with an explicit
    earlier ``at`` can therefore have a higher ``seq`` than a newer point.
    """

    integration: str
    actor_key: str
    kind: str
    state: dict[str, Any] = field(hash=False)
    created_at: float
    checksum: str
    seq: int

    def checksum_matches(self) -> bool:
        """Recompute the checksum from the fields and compare it with the stored one.

        Returns False, too, when the fields can no longer be encoded, for example
        after a caller put a non-JSON-safe value into ``state``.
        """
        try:
            expected = compute_checksum(
                self.integration, self.actor_key, self.kind, self.created_at, self.state
            )
        except (TypeError, ValueError):
            return False
        return expected == self.checksum
