"""The ``recovery`` section: how a failed provider is probed until it returns to service.

Options (each can be set per integration and overridden per provider):

- ``max_attempts``: recovery probes before the provider is marked permanently failed,
  0 to 1000000, where 0 means probing never stops. Default 0, because an outage of a
  third-party API ends eventually and a permanently failed provider stays out of
  service until the node restarts.
- ``recovery_threshold``: successful probes in a row before the provider returns to
  service, 1 to 100. Default 3.
- ``probe_backoff``: a table with the delay between probes, with the formulas of
  `tpir.config.backoff` for exponential backoff:

  - ``initial_delay``: seconds before the first probe, greater than 0 and at most
    3600. Default 1.
  - ``max_delay``: upper bound of any delay in seconds, ``initial_delay`` to 3600.
    Default 60.
  - ``multiplier``: growth factor per probe, 1 to 10 (1 keeps the delay constant).
    Default 2.
  - ``jitter``: ``"none"``, ``"full"``, ``"equal"`` or a fraction from 0 to 1.
    Default 0.2.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tpir.config._checks import Bounds, FieldChecker, format_number
from tpir.config.backoff import JitterMode, check_jitter

__all__ = ["ProbeBackoff", "RecoveryConfig"]


@dataclass(frozen=True)
class ProbeBackoff:
    """Exponential delay between recovery probes. The module docstring lists each option."""

    initial_delay: float = 1.0
    max_delay: float = 60.0
    multiplier: float = 2.0
    jitter: JitterMode | float = 0.2

    def __post_init__(self) -> None:
        check = FieldChecker(self)
        initial = check.seconds("initial_delay", Bounds(0, 3600, min_exclusive=True, unit="s"))
        maximum = check.seconds("max_delay", Bounds(0, 3600, min_exclusive=True, unit="s"))
        check.number("multiplier", Bounds(1, 10))
        check_jitter(check, "jitter")

        if initial is not None and maximum is not None and maximum < initial:
            check.issue(
                "max_delay",
                f"max_delay ({format_number(maximum)} s) must be at least initial_delay "
                f"({format_number(initial)} s)",
                related=("initial_delay",),
            )
        check.raise_if_issues()


@dataclass(frozen=True)
class RecoveryConfig:
    """Recovery probing of one failed provider. The module docstring lists each option."""

    max_attempts: int = 0
    probe_backoff: ProbeBackoff = field(default_factory=ProbeBackoff)
    recovery_threshold: int = 3

    def __post_init__(self) -> None:
        check = FieldChecker(self)
        check.integer("max_attempts", Bounds(0, 1_000_000))
        check.instance("probe_backoff", ProbeBackoff)
        check.integer("recovery_threshold", Bounds(1, 100))
        check.raise_if_issues()

    @property
    def probes_forever(self) -> bool:
        """Whether probing never gives up (``max_attempts`` is 0)."""
        return self.max_attempts == 0
