"""The ``retry`` section: how often and after which failures a call to a provider is retried.

Options (each can be set per integration and overridden per provider):

- ``max_retries``: retries after the first attempt, 0 to 100. Default 3.
- ``backoff``: ``"constant"``, ``"linear"`` or ``"exponential"``. Default exponential.
- ``initial_delay``: seconds before the first retry, 0 to 3600. Default 0.5.
- ``max_delay``: upper bound of any delay in seconds, ``initial_delay`` to 3600.
  Default 30.
- ``multiplier``: growth factor per retry, 1 to 10, used only by exponential backoff.
  Default 2.
- ``jitter``: ``"none"``, ``"full"``, ``"equal"`` or a fraction from 0 to 1 for
  proportional jitter. Default ``"full"``.
- ``retryable``: the failures that are retried, a list of error kinds (see `ErrorKind`)
  and HTTP status codes (integers, 400 to 599). Default: ``connect_error``,
  ``connect_timeout``, ``read_timeout``, 429, 500, 502, 503, 504 and 529 (the status
  Anthropic's API returns when it is overloaded).

The delay formulas are in `tpir.config.backoff`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from tpir.config._checks import (
    Bounds,
    FieldChecker,
    describe_value,
    format_number,
    toml_type_name,
)
from tpir.config.backoff import BackoffKind, JitterMode, check_jitter

__all__ = ["DEFAULT_RETRYABLE", "ErrorKind", "RetryConfig"]


class ErrorKind(StrEnum):
    """Failures other than an HTTP status that can be listed in ``retry.retryable``."""

    CONNECT_ERROR = "connect_error"
    """The connection failed before the request was sent (refused, reset, DNS, TLS)."""
    CONNECT_TIMEOUT = "connect_timeout"
    """No connection was ready within the timeout, so nothing was sent."""
    READ_TIMEOUT = "read_timeout"
    """The request was sent but no response arrived within the timeout."""
    WRITE_ERROR = "write_error"
    """Sending the request failed, so part of it may have reached the provider."""
    REMOTE_PROTOCOL_ERROR = "remote_protocol_error"
    """The provider broke the HTTP protocol, for example closed before responding."""
    DROPPED_MID_RESPONSE = "dropped_mid_response"
    """The connection closed while the response body was being read."""
    INVALID_RESPONSE = "invalid_response"
    """The response arrived but could not be parsed."""


DEFAULT_RETRYABLE: Final[frozenset[ErrorKind | int]] = frozenset(
    {
        ErrorKind.CONNECT_ERROR,
        ErrorKind.CONNECT_TIMEOUT,
        ErrorKind.READ_TIMEOUT,
        429,
        500,
        502,
        503,
        504,
        529,
    }
)
"""Failures retried when ``retry.retryable`` is not set."""

_STATUS_BOUNDS = Bounds(400, 599)

# Kinds that the adapters report but that make no sense in a retryable list.
_NOT_LISTABLE = {
    "cancelled": "cancellation is never retried",
    "http_status": "list the status codes themselves as integers, such as 503",
}


@dataclass(frozen=True)
class RetryConfig:
    """Retry policy of one provider. The module docstring lists each option."""

    max_retries: int = 3
    backoff: BackoffKind = BackoffKind.EXPONENTIAL
    initial_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: JitterMode | float = JitterMode.FULL
    retryable: frozenset[ErrorKind | int] = DEFAULT_RETRYABLE

    def __post_init__(self) -> None:
        check = FieldChecker(self)
        check.integer("max_retries", Bounds(0, 100))
        check.choice("backoff", BackoffKind)
        initial = check.seconds("initial_delay", Bounds(0, 3600, unit="s"))
        maximum = check.seconds("max_delay", Bounds(0, 3600, unit="s"))
        check.number("multiplier", Bounds(1, 10))
        check_jitter(check, "jitter")
        _check_retryable(check, "retryable")

        if initial is not None and maximum is not None and maximum < initial:
            check.issue(
                "max_delay",
                f"max_delay ({format_number(maximum)} s) must be at least initial_delay "
                f"({format_number(initial)} s)",
                related=("initial_delay",),
            )
        check.raise_if_issues()

    @property
    def retryable_kinds(self) -> frozenset[ErrorKind]:
        """The error kinds in `retryable`."""
        return frozenset(item for item in self.retryable if isinstance(item, ErrorKind))

    @property
    def retryable_statuses(self) -> frozenset[int]:
        """The HTTP status codes in `retryable`."""
        return frozenset(item for item in self.retryable if not isinstance(item, ErrorKind))

    def is_retryable(self, failure: ErrorKind | str | int) -> bool:
        """Return whether a failure (an error kind or an HTTP status code) is retried."""
        if isinstance(failure, str) and not isinstance(failure, ErrorKind):
            try:
                failure = ErrorKind(failure)
            except ValueError:
                return False
        return failure in self.retryable


def _check_retryable(check: FieldChecker, field: str) -> None:
    value = check.get(field)
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        check.issue(
            field,
            f"expected an array of error kinds and status codes, got {describe_value(value)} "
            f"({toml_type_name(value)})",
        )
        return

    kinds = ", ".join(repr(kind.value) for kind in ErrorKind)
    items: set[ErrorKind | int] = set()
    valid = True
    for index, item in enumerate(value):
        item_field = f"{field}[{index}]"
        if isinstance(item, str):
            if item in _NOT_LISTABLE:
                check.issue(item_field, f"{item!r} cannot be listed: {_NOT_LISTABLE[item]}")
                valid = False
                continue
            try:
                items.add(ErrorKind(item))
            except ValueError:
                check.issue(
                    item_field,
                    f"unknown error kind {item!r} (expected one of {kinds}, "
                    f"or an HTTP status code as an integer)",
                )
                valid = False
            continue
        if isinstance(item, int) and not isinstance(item, bool):
            if not _STATUS_BOUNDS.contains(item):
                check.issue(
                    item_field,
                    f"HTTP status {item} is out of range (valid range: {_STATUS_BOUNDS})",
                )
                valid = False
                continue
            items.add(item)
            continue
        check.issue(
            item_field,
            f"expected an error kind (string) or an HTTP status code (integer), "
            f"got {describe_value(item)} ({toml_type_name(item)})",
        )
        valid = False

    if valid:
        check.store(field, frozenset(items))
