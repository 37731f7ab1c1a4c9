"""Attempt records and failures, in the terms the router decides with.

A provider actor answers each `Attempt` with an `AttemptResult` whose failure is a plain
dict (`Failure.to_dict()` of `actors.adapters`). `AttemptFailure` parses that dict and
converts it to the `actors.policy.retry.Outcome` that the retry policy judges.

The router adds three failure kinds of its own, for attempts that the provider actor
did not answer with an `AttemptResult`:

- `no_reply`: no answer within the per-try timeout plus the router's grace period, or
  the supervisor's `lost` error for an attempt whose provider actor was killed. Judged
  as a read timeout, because the request may have been sent.
- `provider_unavailable`: the provider actor was not running, so the supervisor
  answered with `not_running`. Nothing was sent, so it is judged as a connect error.
- `provider_crashed`: the provider actor crashed while it handled the attempt, or
  answered with any other error. Judged as a read timeout, because the request may
  have been sent.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from actors.policy.retry import ErrorKind, Outcome

__all__ = [
    "NO_REPLY",
    "PROVIDER_CRASHED",
    "PROVIDER_UNAVAILABLE",
    "AttemptFailure",
    "AttemptRecord",
]

logger = logging.getLogger(__name__)

NO_REPLY: Final = "no_reply"
PROVIDER_UNAVAILABLE: Final = "provider_unavailable"
PROVIDER_CRASHED: Final = "provider_crashed"

# Failure kinds of the adapters and of this module that the retry policy names differently.
_POLICY_KIND: Final[Mapping[str, ErrorKind]] = {
    "write_timeout": ErrorKind.WRITE_ERROR,
    NO_REPLY: ErrorKind.READ_TIMEOUT,
    PROVIDER_CRASHED: ErrorKind.READ_TIMEOUT,
    PROVIDER_UNAVAILABLE: ErrorKind.CONNECT_ERROR,
}


@dataclass(frozen=True)
class AttemptRecord:
    """One finished attempt of a call, as listed in replies and error details.

    ``outcome`` is ``ok`` or the failure kind, ``status`` the HTTP status when one is
    known (None otherwise), ``duration`` seconds.
    """

    provider: str
    attempt: int
    outcome: str
    status: int | None
    duration: float

    def to_dict(self) -> dict[str, Any]:
        """Return the record as the dict that callers receive."""
        return {
            "provider": self.provider,
            "attempt": self.attempt,
            "outcome": self.outcome,
            "status": self.status,
            "duration": round(self.duration, 6),
        }

    def describe(self) -> str:
        """Return a short text such as ``openai #1: http_status 503 after 0.012 s``."""
        status = f" {self.status}" if self.status is not None and self.outcome != "ok" else ""
        return (
            f"{self.provider} #{self.attempt}: {self.outcome}{status} after {self.duration:.3f} s"
        )


@dataclass(frozen=True)
class AttemptFailure:
    """A failed attempt: the failure dict of an `AttemptResult`, checked.

    ``kind`` is an adapter `FailureKind` value or one of this module's kinds.
    ``may_have_reached_provider`` is True unless the failure certainly happened before
    any request byte was sent. ``retry_after`` is the provider's requested wait in
    seconds, finite and >= 0, or None.
    """

    kind: str
    message: str
    may_have_reached_provider: bool = True
    status: int | None = None
    retry_after: float | None = None
    error_type: str | None = None
    error_code: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> AttemptFailure:
        """Build a failure from a `Failure.to_dict()` dict, tolerating missing or bad fields.

        A missing kind becomes ``provider_crashed``, a missing reach flag counts as
        reached (the safe side for non-idempotent requests), and an invalid status or
        Retry-After value is dropped with a warning.
        """
        if not isinstance(data, Mapping):
            return cls(PROVIDER_CRASHED, f"the provider returned no failure details: {data!r}")

        kind = data.get("kind")
        if not isinstance(kind, str) or not kind:
            kind = PROVIDER_CRASHED
        status = data.get("status")
        if status is not None and (
            isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599
        ):
            logger.warning("ignoring invalid status %r in a %s failure", status, kind)
            status = None
        retry_after = data.get("retry_after")
        if retry_after is not None and (
            isinstance(retry_after, bool)
            or not isinstance(retry_after, int | float)
            or not math.isfinite(retry_after)
            or retry_after < 0
        ):
            logger.warning("ignoring invalid retry_after %r in a %s failure", retry_after, kind)
            retry_after = None
        reached = data.get("may_have_reached_provider")
        return cls(
            kind=kind,
            message=str(data.get("message") or kind),
            may_have_reached_provider=reached is not False,
            status=status,
            retry_after=None if retry_after is None else float(retry_after),
            error_type=_optional_text(data.get("error_type")),
            error_code=_optional_text(data.get("error_code")),
        )

    @property
    def is_invalid_request(self) -> bool:
        """Whether the provider's adapter rejected the request before sending it."""
        return self.kind == "invalid_request"

    @property
    def is_client_error(self) -> bool:
        """Whether the provider responded with a 4xx status, which blames the request."""
        return self.kind == "http_status" and self.status is not None and 400 <= self.status < 500

    def to_outcome(self) -> Outcome:
        """Return the retry policy's view of this failure.

        Kinds the policy does not know are judged as ``invalid_response``, which the
        default policies do not retry. An ``http_status`` failure without a valid status
        is judged the same way.
        """
        if self.kind == "http_status":
            if self.status is None:
                return Outcome(ErrorKind.INVALID_RESPONSE)
            return Outcome.http(self.status, self.retry_after)
        kind = _POLICY_KIND.get(self.kind)
        if kind is None:
            try:
                kind = ErrorKind(self.kind)
            except ValueError:
                logger.warning("judging unknown failure kind %r as invalid_response", self.kind)
                kind = ErrorKind.INVALID_RESPONSE
        return Outcome(kind, retry_after=self.retry_after)

    def to_details(self) -> dict[str, Any]:
        """Return the fields a caller needs to understand a provider error."""
        return {
            "kind": self.kind,
            "status": self.status,
            "error_type": self.error_type,
            "error_code": self.error_code,
            "message": self.message,
        }


def _optional_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
