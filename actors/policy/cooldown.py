"""Per-provider cooldowns and `Retry-After` parsing.

A cooldown keeps a provider out of selection until a point in time, usually because it
responded with 429 or 503 and a `Retry-After` header. Cooldowns only ever extend: a later
failure with a shorter wait never ends an earlier, longer cooldown.

Times are epoch seconds (the `time.time` scale). They are saved by `to_state` and compared
with the caller's `now` after a restart, so callers must pass wall-clock time.
"""

from __future__ import annotations

import logging
import math
import re
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

__all__ = ["MAX_RETRY_AFTER", "Cooldowns", "parse_retry_after"]

logger = logging.getLogger(__name__)

MAX_RETRY_AFTER = 10.0**9
"""Upper bound in seconds (about 31.7 years) for parsed `Retry-After` delays, so that a huge
header value still gives a finite float."""

_DELAY_SECONDS = re.compile(r"[0-9]+")


def parse_retry_after(value: str | bytes | None, now: float) -> float | None:
    """Parse a `Retry-After` header value into the delay in seconds from `now`.

    RFC 9110 defines the value as ``HTTP-date / delay-seconds`` with ``delay-seconds =
    1*DIGIT``. Dates are parsed with `email.utils.parsedate_to_datetime`, which reads the
    IMF-fixdate, RFC 850 and asctime forms of HTTP-date. It also accepts numeric zone offsets,
    which HTTP-date does not allow, and honours them. A date without a zone is taken as UTC.
    `now` is the current time in epoch seconds. A date in the past gives 0.0. The result is
    capped at `MAX_RETRY_AFTER`. None, an empty value, a negative or fractional number, or an
    unparsable date give None.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    text = value.strip()
    if not text:
        return None

    if _DELAY_SECONDS.fullmatch(text):
        # Compare as ints so that a 400-digit value cannot overflow a float.
        return float(min(int(text), int(MAX_RETRY_AFTER)))

    try:
        date = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    return min(max(date.timestamp() - now, 0.0), MAX_RETRY_AFTER)


class Cooldowns:
    """End times of per-provider cooldowns, in epoch seconds.

    Provider names are arbitrary strings. Expired entries stay until `prune` removes them, and
    they do no harm, because `is_cooling` compares with the caller's `now`.
    """

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def extend(self, provider: str, until: float) -> float:
        """Extend the cooldown of `provider` to `until` epoch seconds, never shortening it.

        Returns the cooldown's end after the call, which is the later of `until` and the
        existing end.
        """
        if (
            not isinstance(until, int | float)
            or isinstance(until, bool)
            or not math.isfinite(until)
        ):
            raise ValueError(f"until must be finite epoch seconds, got {until!r} for {provider!r}")
        current = self._until.get(provider)
        if current is not None and current >= until:
            return current
        self._until[provider] = float(until)
        logger.info("provider %s cools down until %.3f", provider, until)
        return float(until)

    def extend_for(self, provider: str, seconds: float, now: float) -> float:
        """Extend the cooldown of `provider` to `now + seconds`. Returns the cooldown's end."""
        if (
            not isinstance(seconds, int | float)
            or isinstance(seconds, bool)
            or not math.isfinite(seconds)
            or seconds < 0
        ):
            raise ValueError(
                f"seconds must be a finite number >= 0, got {seconds!r} for {provider!r}"
            )
        return self.extend(provider, now + seconds)

    def is_cooling(self, provider: str, now: float) -> bool:
        """Return whether `provider` is cooling down at `now` epoch seconds."""
        until = self._until.get(provider)
        return until is not None and now < until

    def until(self, provider: str) -> float | None:
        """Return the end of the latest cooldown of `provider`, even if it has passed."""
        return self._until.get(provider)

    def prune(self, now: float) -> None:
        """Remove the cooldowns that ended at or before `now`."""
        self._until = {name: until for name, until in self._until.items() if until > now}

    def to_state(self) -> dict[str, Any]:
        """Return the cooldowns as a dict of JSON-safe values."""
        return {"version": 1, "until": dict(self._until)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Cooldowns:
        """Build Cooldowns from a dict made by `to_state`."""
        version = state.get("version")
        if version != 1:
            raise ValueError(f"Cooldowns state version must be 1, got {version!r}")
        entries = state.get("until")
        if not isinstance(entries, dict):
            raise ValueError(f"Cooldowns state 'until' must be a dict, got {entries!r}")
        cooldowns = cls()
        for provider, until in entries.items():
            cooldowns.extend(str(provider), until)
        return cooldowns
