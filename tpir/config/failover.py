"""The ``failover`` section: when a failing provider is taken out of rotation, and for how long.

After ``consecutive_failures`` failed calls in a row, the provider is ejected: it gets
no calls for a while, and the other providers take its share. The n-th ejection lasts
``n * base_ejection_time`` seconds, capped at ``max_ejection_time``.

Options (each can be set per integration and overridden per provider):

- ``consecutive_failures``: failed calls in a row that eject the provider, 1 to 1000.
  Default 5.
- ``base_ejection_time``: seconds of the first ejection and the step of later ones,
  greater than 0 and at most 86400. Default 30.
- ``max_ejection_time``: upper bound in seconds of one ejection,
  ``base_ejection_time`` to 86400. Default 300.
"""

from __future__ import annotations

from dataclasses import dataclass

from tpir.config._checks import Bounds, FieldChecker, format_number

__all__ = ["FailoverConfig"]


@dataclass(frozen=True)
class FailoverConfig:
    """Ejection thresholds of one provider. The module docstring lists each option."""

    consecutive_failures: int = 5
    base_ejection_time: float = 30.0
    max_ejection_time: float = 300.0

    def __post_init__(self) -> None:
        check = FieldChecker(self)
        check.integer("consecutive_failures", Bounds(1, 1000))
        base = check.seconds("base_ejection_time", Bounds(0, 86400, min_exclusive=True, unit="s"))
        limit = check.seconds("max_ejection_time", Bounds(0, 86400, min_exclusive=True, unit="s"))

        if base is not None and limit is not None and limit < base:
            check.issue(
                "max_ejection_time",
                f"max_ejection_time ({format_number(limit)} s) must be at least "
                f"base_ejection_time ({format_number(base)} s)",
                related=("base_ejection_time",),
            )
        check.raise_if_issues()
