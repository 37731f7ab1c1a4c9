"""Field validation shared by the configuration dataclasses.

Each dataclass's ``__post_init__`` creates a `FieldChecker`, checks its fields one by one
and calls `FieldChecker.raise_if_issues` at the end, so one `ConfigError` lists every bad
field of the object. A check that succeeds may normalize the value (an ``int`` of seconds
becomes a ``float``, a string becomes its enum member) and stores it back on the frozen
instance.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, TypeVar

from tpir.config.errors import ConfigError, ConfigIssue

__all__ = [
    "MISSING",
    "NAME_PATTERN",
    "Bounds",
    "FieldChecker",
    "describe_value",
    "format_number",
    "toml_type_name",
]

E = TypeVar("E", bound=Enum)

NAME_PATTERN: Final = re.compile(r"[a-z0-9_]{1,64}")
"""Valid integration and provider names: they appear in field paths, logs and metrics."""

_MAX_SHOWN_CHARS = 60


class _Missing:
    """Type of `MISSING`, the value the loader passes for an absent required key."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final[Any] = _Missing()


def toml_type_name(value: object) -> str:
    """Return the TOML name of a parsed value's type, as users see it in their file."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return "date-time"
    return type(value).__name__


def describe_value(value: object) -> str:
    """Return a short printable form of a value for an error message."""
    text = repr(value)
    if isinstance(value, bool):
        text = "true" if value else "false"
    if len(text) > _MAX_SHOWN_CHARS:
        text = text[: _MAX_SHOWN_CHARS - 3] + "..."
    return text


def format_number(number: float) -> str:
    """Format a bound without a spurious ``.0`` or exponent (16777216, not 1.67772e+07)."""
    if float(number).is_integer():
        return str(int(number))
    return repr(float(number))


@dataclass(frozen=True)
class Bounds:
    """Valid range of a number, with the unit used in error messages."""

    minimum: float | None = None
    maximum: float | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    unit: str = ""

    def contains(self, number: float) -> bool:
        """Return whether ``number`` lies in the range. NaN never does."""
        if math.isnan(number):
            return False
        if self.minimum is not None:
            if number < self.minimum or (self.min_exclusive and number == self.minimum):
                return False
        if self.maximum is not None:
            if number > self.maximum or (self.max_exclusive and number == self.maximum):
                return False
        return True

    def __str__(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        low = None if self.minimum is None else format_number(self.minimum)
        high = None if self.maximum is None else format_number(self.maximum)
        if low is not None and high is not None and not (self.min_exclusive or self.max_exclusive):
            return f"{low} to {high}{unit}"

        parts = []
        if low is not None:
            parts.append(f"{'greater than' if self.min_exclusive else 'at least'} {low}{unit}")
        if high is not None:
            parts.append(f"{'less than' if self.max_exclusive else 'at most'} {high}{unit}")
        return " and ".join(parts) if parts else "any finite number"


class FieldChecker:
    """Validator for the fields of one frozen dataclass instance, collecting issues.

    Each check method reads the field, records an issue if the value is invalid and
    returns None, or stores the normalized value on the instance and returns it. Callers
    run cross-field checks only on values that came back valid.
    """

    def __init__(self, instance: object) -> None:
        self._instance = instance
        self._issues: list[ConfigIssue] = []

    @property
    def has_issues(self) -> bool:
        """Whether any check so far failed."""
        return bool(self._issues)

    def get(self, field: str) -> Any:
        """Return the current value of ``field``."""
        return getattr(self._instance, field)

    def store(self, field: str, value: object) -> None:
        """Store a normalized value on the frozen instance."""
        object.__setattr__(self._instance, field, value)

    def issue(self, field: str, message: str, related: Sequence[str] = ()) -> None:
        """Record a problem with ``field``."""
        self._issues.append(ConfigIssue(field, message, tuple(related)))

    def absorb(self, field: str, error: ConfigError) -> None:
        """Record the issues of a nested object's error under ``field``."""
        self._issues.extend(issue.with_prefix(field) for issue in error.issues)

    def raise_if_issues(self) -> None:
        """Raise a `ConfigError` listing every recorded issue, if there is any."""
        if self._issues:
            raise ConfigError(self._issues)

    def _present(self, field: str, value: object, optional: bool) -> bool:
        """Return whether a check should go on, recording a missing required value."""
        if value is MISSING:
            self.issue(field, "missing required key")
            return False
        if value is None:
            if not optional:
                self.issue(field, "missing required value (got None)")
            return False
        return True

    def _wrong_type(self, field: str, expected: str, value: object) -> None:
        self.issue(
            field, f"expected {expected}, got {describe_value(value)} ({toml_type_name(value)})"
        )

    def number(
        self, field: str, bounds: Bounds, *, optional: bool = False, expected: str = "a number"
    ) -> float | None:
        """Check a finite int or float within ``bounds`` and store it as a float."""
        value = self.get(field)
        if not self._present(field, value, optional):
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._wrong_type(field, expected, value)
            return None
        number = float(value)
        if not math.isfinite(number):
            self.issue(field, f"expected a finite number, got {describe_value(value)}")
            return None
        if not bounds.contains(number):
            self.issue(field, f"{describe_value(value)} is out of range (valid range: {bounds})")
            return None
        self.store(field, number)
        return number

    def seconds(self, field: str, bounds: Bounds, *, optional: bool = False) -> float | None:
        """Check a duration in seconds (an int or float) within ``bounds``."""
        return self.number(field, bounds, optional=optional, expected="a number of seconds")

    def integer(self, field: str, bounds: Bounds, *, optional: bool = False) -> int | None:
        """Check an int (not a bool, not a float) within ``bounds``."""
        value = self.get(field)
        if not self._present(field, value, optional):
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self._wrong_type(field, "an integer", value)
            return None
        if not bounds.contains(value):
            self.issue(field, f"{value} is out of range (valid range: {bounds})")
            return None
        return value

    def boolean(self, field: str) -> bool | None:
        """Check a bool."""
        value = self.get(field)
        if not self._present(field, value, optional=False):
            return None
        if not isinstance(value, bool):
            self._wrong_type(field, "true or false", value)
            return None
        return value

    def text(
        self,
        field: str,
        *,
        pattern: re.Pattern[str] | None = None,
        rule: str = "",
        max_length: int = 1024,
        optional: bool = False,
        hide_value: bool = False,
    ) -> str | None:
        """Check a non-empty string, optionally matching ``pattern`` as a whole.

        ``rule`` describes the pattern in words for the error message. ``hide_value``
        keeps the value out of the message, for fields where a user may have pasted a
        secret by mistake.
        """
        value = self.get(field)
        if not self._present(field, value, optional):
            return None
        if not isinstance(value, str):
            self._wrong_type(field, "a string", value)
            return None
        value_text = "the value (not shown)" if hide_value else describe_value(value)
        if not value:
            self.issue(field, "must not be empty")
            return None
        if len(value) > max_length:
            self.issue(field, f"{value_text} is too long (at most {max_length} characters)")
            return None
        if pattern is not None and pattern.fullmatch(value) is None:
            self.issue(field, f"{value_text} is invalid: {rule}")
            return None
        return value

    def choice(self, field: str, enum_type: type[E], *, optional: bool = False) -> E | None:
        """Check one of an enum's values (given as the member or its string value)."""
        value = self.get(field)
        if not self._present(field, value, optional):
            return None
        try:
            member = enum_type(value)
        except ValueError:
            allowed = ", ".join(repr(member.value) for member in enum_type)
            self.issue(field, f"invalid value {describe_value(value)} (expected one of {allowed})")
            return None
        self.store(field, member)
        return member

    def instance(self, field: str, cls: type[Any]) -> Any | None:
        """Check that a nested field contains an instance of ``cls``."""
        value = self.get(field)
        if not self._present(field, value, optional=False):
            return None
        if not isinstance(value, cls):
            self._wrong_type(field, f"a {cls.__name__}", value)
            return None
        return value
