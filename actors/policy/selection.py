"""Provider selection: the order in which one request tries its providers.

`order_candidates` keeps only providers that can take the call now: healthy, breaker
admitting, not cooling down, not ejected and within their retry budget for this request. It
returns primaries first, then secondaries, then fallbacks. Within a role the order is a
weighted random draw when any provider of that role has a weight, and configuration order
otherwise. Providers being tested for recovery come last, in the same role order: they get
no traffic while a healthy provider can take the call, but a call is not failed while one of
them could serve it (after a node restart, every provider may resume as testing).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from actors.policy.provider_status import HealthStatus, Role

__all__ = ["Candidate", "order_candidates"]

logger = logging.getLogger(__name__)

_ROLE_ORDER = (Role.PRIMARY, Role.SECONDARY, Role.FALLBACK)


@dataclass(frozen=True, slots=True)
class Candidate:
    """Availability of one provider for one request, the input to `order_candidates`.

    Options:
        name: provider name, unique among the candidates.
        role: the provider's `Role` or its string value.
        weight: relative share for weighted order within the role, finite and >= 0, or None.
            In a role where some providers have weights, None counts as 1.0, and weight 0
            puts the provider after all providers with positive weights. Default None.
        status: the provider's `HealthStatus`. Healthy providers are selected first and
            testing ones as a last resort.
            Default healthy.
        breaker_admits: whether the provider's circuit breaker admits a call. Default True.
        cooling: whether the provider is in a cooldown. Default False.
        ejected: whether outlier ejection has taken it out of rotation. Default False.
        retry_budget: times this provider may be tried again within one request, an int
            >= 0. A provider already tried more than retry_budget times is skipped.
            Default 0, so each provider is tried at most once per request.
    """

    name: str
    role: Role | str = Role.PRIMARY
    weight: float | None = None
    status: HealthStatus | str = HealthStatus.HEALTHY
    breaker_admits: bool = True
    cooling: bool = False
    ejected: bool = False
    retry_budget: int = 0

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "role", Role(self.role))
        except ValueError:
            valid = ", ".join(r.value for r in Role)
            raise ValueError(
                f"Candidate.role must be one of {valid}, got {self.role!r} for {self.name!r}"
            ) from None
        try:
            object.__setattr__(self, "status", HealthStatus(self.status))
        except ValueError:
            valid = ", ".join(s.value for s in HealthStatus)
            raise ValueError(
                f"Candidate.status must be one of {valid}, got {self.status!r} for {self.name!r}"
            ) from None

        weight = self.weight
        if weight is not None and (
            not isinstance(weight, int | float)
            or isinstance(weight, bool)
            or not math.isfinite(weight)
            or weight < 0
        ):
            raise ValueError(
                f"Candidate.weight must be a finite number >= 0 or None, got {weight!r} "
                f"for {self.name!r}"
            )
        budget = self.retry_budget
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 0:
            raise ValueError(
                f"Candidate.retry_budget must be an int >= 0, got {budget!r} for {self.name!r}"
            )

    def is_available(self, tries: int, *, status: HealthStatus = HealthStatus.HEALTHY) -> bool:
        """Return whether this provider can take the call after `tries` earlier tries.

        ``status`` is the health status the provider must have (healthy, or testing for
        the last-resort pass).
        """
        return (
            self.status is status
            and self.breaker_admits
            and not self.cooling
            and not self.ejected
            and tries <= self.retry_budget
        )


def order_candidates(
    candidates: Sequence[Candidate],
    *,
    tries: Mapping[str, int] | None = None,
    rng: random.Random,
) -> list[Candidate]:
    """Return the available candidates in the order to try them.

    `tries` maps provider names to the number of times this request has tried them already
    (missing names count 0). `rng` draws the weighted order and is not used for roles
    without weights. Raises ValueError when two candidates share a name.
    """
    seen: set[str] = set()
    for candidate in candidates:
        if candidate.name in seen:
            raise ValueError(f"candidate names must be unique, got {candidate.name!r} twice")
        seen.add(candidate.name)

    counts = tries if tries is not None else {}
    available = [c for c in candidates if c.is_available(counts.get(c.name, 0))]
    skipped = len(candidates) - len(available)
    if skipped:
        logger.debug("selection skipped %d of %d providers", skipped, len(candidates))

    testing = [
        c for c in candidates if c.is_available(counts.get(c.name, 0), status=HealthStatus.TESTING)
    ]
    return _by_role(available, rng) + _by_role(testing, rng)


def _by_role(candidates: Sequence[Candidate], rng: random.Random) -> list[Candidate]:
    ordered: list[Candidate] = []
    for role in _ROLE_ORDER:
        in_role = [c for c in candidates if c.role is role]
        if any(c.weight is not None for c in in_role):
            ordered.extend(_weighted_order(in_role, rng))
        else:
            ordered.extend(in_role)
    return ordered


def _weighted_order(candidates: Iterable[Candidate], rng: random.Random) -> list[Candidate]:
    """Draw candidates without replacement, each with probability proportional to its weight.

    Zero-weight candidates follow all others in configuration order.
    """
    remaining = [(c, 1.0 if c.weight is None else float(c.weight)) for c in candidates]
    zero_weight = [c for c, weight in remaining if weight == 0.0]
    remaining = [(c, weight) for c, weight in remaining if weight > 0.0]

    ordered: list[Candidate] = []
    while remaining:
        total = sum(weight for _, weight in remaining)
        point = rng.random() * total
        chosen = len(remaining) - 1
        for index, (_, weight) in enumerate(remaining):
            point -= weight
            if point < 0.0:
                chosen = index
                break
        ordered.append(remaining.pop(chosen)[0])
    ordered.extend(zero_weight)
    return ordered
