"""Delays between attempts: constant, linear or exponential backoff with optional jitter.

`Backoff` is a frozen value object. `Backoff.delay(attempt, rng)` returns the delay in seconds
before the retry that follows attempt number `attempt` (0 for the delay after the first
failure). The delay is always a finite float in [0, max_delay], for any attempt number, so
callers can pass an unbounded counter.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Backoff", "BackoffKind", "Jitter"]

logger = logging.getLogger(__name__)

# Largest int up to which every int converts to a float exactly.
_EXACT_FLOAT_INT = 2**53


class BackoffKind(StrEnum):
    """Growth rule of the base delay over attempt numbers, applied before jitter and the cap."""

    CONSTANT = "constant"
    LINEAR = "linear"
    EXPONENTIAL = "exponential"


class Jitter(StrEnum):
    """Named jitter modes. A float between 0 and 1 selects proportional jitter instead."""

    NONE = "none"
    FULL = "full"
    EQUAL = "equal"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Backoff schedule for retries and recovery probes.

    The base delay for attempt n (n = 0, 1, 2, ...) is:

    - constant: ``initial_delay``
    - linear: ``initial_delay * (n + 1)``
    - exponential: ``initial_delay * multiplier ** n``

    and is capped at ``max_delay``. Jitter then draws the delay from the base delay ``b``:

    - ``"none"``: ``b``
    - ``"full"``: uniform in [0, b]
    - ``"equal"``: uniform in [b/2, b]
    - a float ``f`` in [0, 1] (proportional jitter): uniform in [b·(1−f), b·(1+f)], then
      clamped to ``max_delay``. At the cap, draws above ``max_delay`` become ``max_delay``,
      so capped delays are not spread symmetrically.

    Options:
        kind: a `BackoffKind` or its string value. Default exponential.
        initial_delay: seconds, finite, >= 0. Default 0.1.
        max_delay: seconds, finite, >= initial_delay. Default 30.0.
        multiplier: growth factor per attempt for exponential backoff, finite, >= 1.0.
            Ignored by the other kinds. Default 2.0.
        jitter: ``"none"``, ``"full"``, ``"equal"`` (or the `Jitter` members), or a float
            in [0, 1] for proportional jitter. Default ``"full"``.
    """

    kind: BackoffKind | str = BackoffKind.EXPONENTIAL
    initial_delay: float = 0.1
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: Jitter | str | float = Jitter.FULL

    def __post_init__(self) -> None:
        try:
            kind = BackoffKind(self.kind)
        except ValueError:
            valid = ", ".join(k.value for k in BackoffKind)
            raise ValueError(f"Backoff.kind must be one of {valid}, got {self.kind!r}") from None
        object.__setattr__(self, "kind", kind)

        _check_seconds("initial_delay", self.initial_delay, 0.0)
        _check_seconds("max_delay", self.max_delay, float(self.initial_delay))
        if not _is_real(self.multiplier) or not math.isfinite(self.multiplier):
            raise ValueError(
                f"Backoff.multiplier must be a finite number >= 1.0, got {self.multiplier!r}"
            )
        if self.multiplier < 1.0:
            raise ValueError(f"Backoff.multiplier must be >= 1.0, got {self.multiplier!r}")

        object.__setattr__(self, "jitter", _parse_jitter(self.jitter))

    def base_delay(self, attempt: int) -> float:
        """Return the delay in seconds for `attempt` before jitter, capped at max_delay."""
        _check_attempt(attempt)
        initial = float(self.initial_delay)
        cap = float(self.max_delay)
        if initial == 0.0 or cap == 0.0:
            return 0.0

        if self.kind is BackoffKind.CONSTANT:
            return initial

        if self.kind is BackoffKind.LINEAR:
            steps = attempt + 1
            if steps <= _EXACT_FLOAT_INT:
                return min(initial * steps, cap)
            # math.log accepts ints of any size, where float(steps) would overflow.
            log_delay = math.log(initial) + math.log(steps)
            if log_delay >= math.log(cap):
                return cap
            return min(math.exp(log_delay), cap)

        # Exponential: work in log space, because multiplier ** attempt overflows a float
        # long before attempt reaches 10**6. The saturating attempt number is finite
        # whenever log(multiplier) > 0, and the comparison with the int is exact.
        log_multiplier = math.log(self.multiplier)
        if log_multiplier == 0.0:
            return initial
        saturating_attempt = (math.log(cap) - math.log(initial)) / log_multiplier
        if attempt >= saturating_attempt:
            return cap
        return min(math.exp(math.log(initial) + attempt * log_multiplier), cap)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Return the jittered delay in seconds before the retry after attempt `attempt`.

        `attempt` counts from 0 and may be any non-negative int. The result is finite and
        within [0, max_delay]. `rng` is only used when jitter is not ``"none"``.
        """
        base = self.base_delay(attempt)
        jitter = self.jitter
        if jitter is Jitter.NONE:
            delay = base
        elif jitter is Jitter.FULL:
            delay = rng.uniform(0.0, base)
        elif jitter is Jitter.EQUAL:
            delay = base / 2.0 + rng.uniform(0.0, base / 2.0)
        else:
            fraction = float(jitter)
            delay = rng.uniform(base * (1.0 - fraction), base * (1.0 + fraction))
        # uniform() may round a hair past its bounds, and proportional jitter exceeds the cap.
        return min(max(delay, 0.0), float(self.max_delay))

    def to_state(self) -> dict[str, Any]:
        """Return the settings as a dict of JSON-safe values."""
        jitter = self.jitter.value if isinstance(self.jitter, Jitter) else float(self.jitter)
        return {
            "kind": BackoffKind(self.kind).value,
            "initial_delay": float(self.initial_delay),
            "max_delay": float(self.max_delay),
            "multiplier": float(self.multiplier),
            "jitter": jitter,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Backoff:
        """Build a Backoff from a dict made by `to_state`. Missing keys take the defaults."""
        known = {"kind", "initial_delay", "max_delay", "multiplier", "jitter"}
        unknown = sorted(set(state) - known)
        if unknown:
            raise ValueError(
                f"Backoff state has unknown keys {unknown}, valid keys: {sorted(known)}"
            )
        return cls(**state)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_seconds(field: str, value: object, minimum: float) -> None:
    if not _is_real(value) or not math.isfinite(value):  # type: ignore[arg-type]
        raise ValueError(f"Backoff.{field} must be a finite number of seconds, got {value!r}")
    if value < minimum:  # type: ignore[operator]
        raise ValueError(f"Backoff.{field} must be >= {minimum} s, got {value!r}")


def _check_attempt(attempt: object) -> None:
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 0:
        raise ValueError(f"attempt must be an int >= 0, got {attempt!r}")


def _parse_jitter(jitter: object) -> Jitter | float:
    if isinstance(jitter, str):
        try:
            return Jitter(jitter)
        except ValueError:
            pass
    elif _is_real(jitter) and 0.0 <= jitter <= 1.0:  # type: ignore[operator]
        return float(jitter)  # type: ignore[arg-type]
    valid = ", ".join(repr(j.value) for j in Jitter)
    raise ValueError(f"Backoff.jitter must be one of {valid} or a number in [0, 1], got {jitter!r}")
