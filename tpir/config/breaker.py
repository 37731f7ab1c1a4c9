"""The ``circuit_breaker`` section: when a provider's breaker opens and how it closes again.

The breaker opens on exactly one failure rule, chosen by which key is set:

- ``failure_threshold``: this many consecutive failed calls, 1 to 1000.
- ``failure_rate_threshold``: this percentage of failed calls in the sliding window
  (1 to 100), once the window contains at least ``minimum_calls`` calls. The breaker opens
  when the rate is at or above the threshold.

Setting both in one section is an error. A section that sets one of them replaces the
other one inherited from the integration, so a provider can switch rules. When neither
is set anywhere, ``failure_threshold = 5`` applies.

The other options:

- ``window_type``: ``"count"`` (the last ``window_size`` calls) or ``"time"`` (the calls
  of the last ``window_seconds``). Default count.
- ``window_size``: calls in a count window, 1 to 10000. Default 100.
- ``window_seconds``: length of a time window, greater than 0 and at most 3600. Default 60.
- ``minimum_calls``: calls the window must contain before any rate is computed, 1 to 10000,
  and at most ``window_size`` for a count window. Default 10.
- ``slow_call_duration``: seconds after which a call counts as slow, greater than 0 and
  at most 3600. Default 60.
- ``slow_call_rate_threshold``: percentage of slow calls in the window that opens the
  breaker, 1 to 100. Default 100. The slow-call rule applies with either failure rule.
- ``open_duration``: seconds the breaker stays open before it lets probe calls through
  (half-open), greater than 0 and at most 86400. Default 30.
- ``half_open_permitted_calls``: probe calls let through while half-open, 1 to 1000.
  Default 3.
- ``max_wait_in_half_open``: seconds the breaker may stay half-open before it opens
  again, 0 to 86400, where 0 means no limit. Default 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from tpir.config._checks import Bounds, FieldChecker

__all__ = ["DEFAULT_FAILURE_THRESHOLD", "CircuitBreakerConfig", "WindowType"]

DEFAULT_FAILURE_THRESHOLD: Final = 5
"""Consecutive failures that open the breaker when no failure rule is configured."""

_PERCENT = Bounds(1, 100, unit="percent")


class WindowType(StrEnum):
    """Kind of sliding window over recent calls."""

    COUNT = "count"
    TIME = "time"


@dataclass(frozen=True)
class CircuitBreakerConfig:
    """Circuit breaker settings of one provider. The module docstring lists each option.

    After construction exactly one of `failure_threshold` and `failure_rate_threshold`
    is set, and `uses_failure_rate` returns which.
    """

    failure_threshold: int | None = None
    failure_rate_threshold: float | None = None
    window_type: WindowType = WindowType.COUNT
    window_size: int = 100
    window_seconds: float = 60.0
    minimum_calls: int = 10
    slow_call_duration: float = 60.0
    slow_call_rate_threshold: float = 100.0
    open_duration: float = 30.0
    half_open_permitted_calls: int = 3
    max_wait_in_half_open: float = 0.0

    def __post_init__(self) -> None:
        check = FieldChecker(self)
        check.integer("failure_threshold", Bounds(1, 1000), optional=True)
        check.number("failure_rate_threshold", _PERCENT, optional=True)
        window_type = check.choice("window_type", WindowType)
        window_size = check.integer("window_size", Bounds(1, 10000, unit="calls"))
        check.seconds("window_seconds", Bounds(0, 3600, min_exclusive=True, unit="s"))
        minimum_calls = check.integer("minimum_calls", Bounds(1, 10000, unit="calls"))
        check.seconds("slow_call_duration", Bounds(0, 3600, min_exclusive=True, unit="s"))
        check.number("slow_call_rate_threshold", _PERCENT)
        check.seconds("open_duration", Bounds(0, 86400, min_exclusive=True, unit="s"))
        check.integer("half_open_permitted_calls", Bounds(1, 1000))
        check.seconds("max_wait_in_half_open", Bounds(0, 86400, unit="s"))

        if self.failure_threshold is not None and self.failure_rate_threshold is not None:
            check.issue(
                "failure_rate_threshold",
                "failure_threshold and failure_rate_threshold cannot both be set: choose "
                "consecutive failures (failure_threshold) or a failure rate in the window "
                "(failure_rate_threshold)",
                related=("failure_threshold",),
            )
        elif self.failure_threshold is None and self.failure_rate_threshold is None:
            check.store("failure_threshold", DEFAULT_FAILURE_THRESHOLD)

        if (
            window_type is WindowType.COUNT
            and window_size is not None
            and minimum_calls is not None
            and minimum_calls > window_size
        ):
            check.issue(
                "minimum_calls",
                f"minimum_calls ({minimum_calls}) must be at most window_size ({window_size}) "
                "for a count window, or no rate could ever be computed",
                related=("window_size",),
            )
        check.raise_if_issues()

    @property
    def uses_failure_rate(self) -> bool:
        """Whether the breaker opens on the failure rate rather than consecutive failures."""
        return self.failure_rate_threshold is not None
