"""Backoff kinds and jitter settings shared by the retry and recovery sections.

The delay before retry n (n = 0 for the first retry) grows with the backoff kind:

- ``constant``: ``initial_delay``
- ``linear``: ``initial_delay * (n + 1)``
- ``exponential``: ``initial_delay * multiplier ** n``

The result is capped at ``max_delay``, then jitter draws the actual delay from the
capped delay ``d``:

- ``"none"``: exactly ``d``
- ``"full"``: uniform in ``[0, d]``
- ``"equal"``: uniform in ``[d/2, d]``
- a fraction ``f`` in ``[0, 1]``: uniform in ``[d*(1-f), d*(1+f)]``, then capped at
  ``max_delay`` again (proportional jitter, also called a randomization factor)
"""

from __future__ import annotations

from enum import StrEnum

from tpir.config._checks import Bounds, FieldChecker, describe_value

__all__ = ["BackoffKind", "JitterMode", "check_jitter"]

_FRACTION = Bounds(0.0, 1.0)


class BackoffKind(StrEnum):
    """Growth rule of the delay from one retry to the next."""

    CONSTANT = "constant"
    LINEAR = "linear"
    EXPONENTIAL = "exponential"


class JitterMode(StrEnum):
    """Named jitter modes. A float fraction in [0, 1] selects proportional jitter instead."""

    NONE = "none"
    FULL = "full"
    EQUAL = "equal"


def check_jitter(check: FieldChecker, field: str) -> JitterMode | float | None:
    """Check a jitter setting: a `JitterMode` name or a fraction from 0 to 1.

    A fraction is stored as a float. An int 0 or 1 is accepted as a fraction.
    """
    value = check.get(field)
    if isinstance(value, str):
        try:
            mode = JitterMode(value)
        except ValueError:
            pass
        else:
            check.store(field, mode)
            return mode
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if _FRACTION.contains(float(value)):
            check.store(field, float(value))
            return float(value)

    modes = ", ".join(repr(mode.value) for mode in JitterMode)
    check.issue(
        field,
        f"invalid value {describe_value(value)} (expected one of {modes}, "
        f"or a fraction from 0 to 1 for proportional jitter)",
    )
    return None
