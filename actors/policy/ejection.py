"""Outlier ejection: take a provider out of rotation after a streak of consecutive failures.

After `consecutive_failures` failures in a row, a provider is ejected for
``base_ejection_time * n`` seconds, where n counts its ejections including this one, capped at
`max_ejection_time`. The failure streak resets to zero when the provider is ejected and when
a call to it succeeds, so a re-admitted provider needs a full new streak to be ejected again.

The ejection count decays: once an ejection has ended, each full `base_ejection_time` without
a new ejection lowers the count by one. A provider that stays well for long enough therefore
starts again from the base ejection time.

The clock returns epoch seconds (default `time.time`), because ejection end times are saved
by `to_state` and must mean the same after a process restart.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["EjectionEvent", "EjectionSettings", "OutlierEjector"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EjectionSettings:
    """Thresholds and durations for outlier ejection.

    Options:
        consecutive_failures: failures in a row that eject a provider, an int in
            1..1_000_000. Default 5.
        base_ejection_time: seconds of the first ejection and step of later ones, finite and
            > 0. Default 30.0.
        max_ejection_time: upper bound in seconds for one ejection, finite and
            >= base_ejection_time. Default 300.0.
    """

    consecutive_failures: int = 5
    base_ejection_time: float = 30.0
    max_ejection_time: float = 300.0

    def __post_init__(self) -> None:
        count = self.consecutive_failures
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1_000_000:
            raise ValueError(
                f"EjectionSettings.consecutive_failures must be an int in 1..1000000, got {count!r}"
            )
        base = self.base_ejection_time
        if not _is_finite_number(base) or base <= 0:
            raise ValueError(
                f"EjectionSettings.base_ejection_time must be finite seconds > 0, got {base!r}"
            )
        limit = self.max_ejection_time
        if not _is_finite_number(limit) or limit < base:
            raise ValueError(
                f"EjectionSettings.max_ejection_time must be finite seconds >= "
                f"base_ejection_time ({base}), got {limit!r}"
            )


@dataclass(frozen=True, slots=True)
class EjectionEvent:
    """Record of one ejection: the provider, when, until when (epoch seconds) and its count."""

    provider: str
    at: float
    until: float
    ejection_count: int


@dataclass(slots=True)
class _Record:
    streak: int = 0
    ejections: int = 0
    ejected_until: float | None = None
    # Start of the current decay period. Set to the end of each ejection.
    decay_from: float | None = None


class OutlierEjector:
    """Failure streaks and ejections of a set of providers, keyed by provider name.

    Options:
        settings: the `EjectionSettings`. Default: 5 failures, 30 s base, 300 s maximum.
        clock: callable returning the current time in epoch seconds. Default `time.time`.

    Failures reported while a provider is ejected are ignored. They come from calls that
    started before the ejection, and counting them would shorten the next streak.
    """

    def __init__(
        self,
        settings: EjectionSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings if settings is not None else EjectionSettings()
        self._clock = clock
        self._records: dict[str, _Record] = {}

    @property
    def settings(self) -> EjectionSettings:
        """The thresholds and durations in use."""
        return self._settings

    def record_failure(self, provider: str) -> EjectionEvent | None:
        """Count a failed call to `provider`. Returns the ejection it caused, if any."""
        now = self._clock()
        record = self._records.setdefault(provider, _Record())
        if self._is_ejected(record, now):
            logger.debug("ignoring failure of ejected provider %s", provider)
            return None

        self._decay(record, now)
        record.streak += 1
        if record.streak < self._settings.consecutive_failures:
            return None

        record.ejections += 1
        duration = min(
            self._settings.base_ejection_time * record.ejections,
            self._settings.max_ejection_time,
        )
        record.ejected_until = now + duration
        record.decay_from = record.ejected_until
        record.streak = 0
        logger.warning(
            "ejected provider %s for %.1f s after %d consecutive failures (ejection %d)",
            provider,
            duration,
            self._settings.consecutive_failures,
            record.ejections,
        )
        return EjectionEvent(provider, now, record.ejected_until, record.ejections)

    def record_success(self, provider: str) -> None:
        """Count a successful call to `provider`, which ends its failure streak."""
        record = self._records.setdefault(provider, _Record())
        record.streak = 0

    def is_ejected(self, provider: str) -> bool:
        """Return whether `provider` is out of rotation now."""
        record = self._records.get(provider)
        return record is not None and self._is_ejected(record, self._clock())

    def ejected_until(self, provider: str) -> float | None:
        """Return the end of the current ejection in epoch seconds, or None if not ejected."""
        record = self._records.get(provider)
        if record is None or not self._is_ejected(record, self._clock()):
            return None
        return record.ejected_until

    def ejection_count(self, provider: str) -> int:
        """Return the ejection count of `provider` after decay, which sets the next duration."""
        record = self._records.get(provider)
        if record is None:
            return 0
        self._decay(record, self._clock())
        return record.ejections

    def failure_streak(self, provider: str) -> int:
        """Return the number of consecutive failures of `provider` since its last reset."""
        record = self._records.get(provider)
        return 0 if record is None else record.streak

    def to_state(self) -> dict[str, Any]:
        """Return streaks, counts and ejection times as a dict of JSON-safe values."""
        providers = {
            name: {
                "streak": record.streak,
                "ejections": record.ejections,
                "ejected_until": record.ejected_until,
                "decay_from": record.decay_from,
            }
            for name, record in self._records.items()
        }
        return {"version": 1, "providers": providers}

    @classmethod
    def from_state(
        cls,
        state: dict[str, Any],
        settings: EjectionSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> OutlierEjector:
        """Build an ejector from a dict made by `to_state`."""
        version = state.get("version")
        if version != 1:
            raise ValueError(f"OutlierEjector state version must be 1, got {version!r}")
        providers = state.get("providers")
        if not isinstance(providers, dict):
            raise ValueError(f"OutlierEjector state 'providers' must be a dict, got {providers!r}")

        ejector = cls(settings, clock=clock)
        for name, entry in providers.items():
            try:
                record = _Record(
                    streak=int(entry["streak"]),
                    ejections=int(entry["ejections"]),
                    ejected_until=_optional_float(entry["ejected_until"]),
                    decay_from=_optional_float(entry["decay_from"]),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(
                    f"OutlierEjector state for provider {name!r} is invalid: {exc!r}"
                ) from exc
            ejector._records[str(name)] = record
        return ejector

    @staticmethod
    def _is_ejected(record: _Record, now: float) -> bool:
        return record.ejected_until is not None and now < record.ejected_until

    def _decay(self, record: _Record, now: float) -> None:
        if record.ejections == 0 or record.decay_from is None:
            return
        if self._is_ejected(record, now):
            return
        periods = math.floor((now - record.decay_from) / self._settings.base_ejection_time)
        if periods <= 0:
            return
        record.ejections -= min(periods, record.ejections)
        record.decay_from += periods * self._settings.base_ejection_time


def _is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _optional_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
