"""How the provider actor judges a finished attempt, as pure functions.

``breaker_outcome`` decides what the circuit breaker hears about an attempt. The rule is
that the breaker counts what reflects the provider's health and ignores what the caller
caused:

- ``success``: the adapter returned a result.
- ``failure``: transport failures (connect errors, timeouts, connections dropped), 5xx
  statuses, 408, 429 (rate limits and exhausted quotas alike), 401 and 403 (the
  configured credentials are rejected, so every later call fails too) and
  ``invalid_response`` (the provider sent something unusable).
- ``ignored``: ``invalid_request`` and ``cancelled``, which say nothing about the
  provider, and every other 4xx status, which the request itself caused (400, 404, 413,
  422 and so on).

The other functions build the failure dicts that the actor sends when no adapter outcome
exists: an attempt with an unusable timeout, and an adapter that raised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from actors.adapters import Failure, FailureKind
from actors.adapters.base import MAX_TIMEOUT_SECONDS

__all__ = [
    "BREAKER_OUTCOMES",
    "PROVIDER_FAULT_CLIENT_STATUSES",
    "breaker_outcome",
    "check_attempt_timeout",
    "invalid_attempt_failure",
    "unexpected_error_failure",
]

BREAKER_OUTCOMES: Final = ("success", "failure", "ignored")
"""Values of ``OutcomeReport.outcome``."""

PROVIDER_FAULT_CLIENT_STATUSES: Final = frozenset({401, 403, 408, 429})
"""4xx statuses that count as provider failures. Every other 4xx is ignored."""

_IGNORED_KINDS: Final = frozenset({FailureKind.INVALID_REQUEST.value, FailureKind.CANCELLED.value})


def breaker_outcome(failure: Mapping[str, Any] | None) -> str:
    """Return ``success``, ``failure`` or ``ignored`` for a finished attempt.

    ``failure`` is the attempt's failure dict (``Failure.to_dict()``), or None for a
    success. The module docstring gives the rule. A failure of an unknown kind counts as
    a failure, so that a new transport error kind still opens the breaker.
    """
    if failure is None:
        return "success"
    kind = str(failure.get("kind"))
    if kind in _IGNORED_KINDS:
        return "ignored"
    if kind == FailureKind.HTTP_STATUS.value:
        status = failure.get("status")
        if (
            isinstance(status, int)
            and 400 <= status < 500
            and status not in PROVIDER_FAULT_CLIENT_STATUSES
        ):
            return "ignored"
    return "failure"


def check_attempt_timeout(timeout: object) -> str | None:
    """Return why ``timeout`` cannot be an attempt's per-try timeout, or None if it can.

    A valid timeout is a finite number of seconds greater than 0 and at most 3600, the
    range the adapters accept.
    """
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or not 0 < timeout <= MAX_TIMEOUT_SECONDS
    ):
        return (
            f"timeout: invalid value {timeout!r}; expected seconds greater than 0 and at "
            f"most {MAX_TIMEOUT_SECONDS:g}"
        )
    return None


def invalid_attempt_failure(provider: str, message: str) -> dict[str, Any]:
    """Build the ``invalid_request`` failure dict for an attempt that was never sent."""
    failure = Failure(
        kind=FailureKind.INVALID_REQUEST,
        provider=provider,
        message=message,
        may_have_reached_provider=False,
        retryable=False,
    )
    return failure.to_dict()


def unexpected_error_failure(provider: str, error: str) -> dict[str, Any]:
    """Build the failure dict for an attempt whose adapter raised ``error`` (type and text).

    Adapters return every transport and protocol failure as a ``Failure``, so an exception
    means a bug, most likely while parsing a response. The request may have reached the
    provider, and retrying would repeat the bug, so the failure is not retryable.
    """
    # NOTE: FailureKind has no kind for internal errors; invalid_response is the closest
    # kind that the retry policy and the breaker already treat as non-retryable failures.
    failure = Failure(
        kind=FailureKind.INVALID_RESPONSE,
        provider=provider,
        message=f"the adapter raised an unexpected error: {error}",
        may_have_reached_provider=True,
        retryable=False,
    )
    return failure.to_dict()
