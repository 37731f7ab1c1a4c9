"""Retry decisions: the failure vocabulary shared by adapters, `RetryPolicy` and `decide`.

Adapters classify each failed attempt as an `Outcome` (an `ErrorKind`, plus the status code
for HTTP responses). `decide` turns an outcome into a `Decision` to retry after a delay or to
give up, and `retry_call` / `retry_call_async` apply a policy to plain Python callables.

Whether a request may be sent again depends on where it failed. A failure before the request
was sent (`connect_error`, `connect_timeout`) cannot have reached the provider, so any request
may be retried or sent to another provider. After the request was sent, the provider may have
acted on it, so a non-idempotent request (a POST without an idempotency key) is never resent:
not to the same provider and not to another one. Cancellation is never retried.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from actors.policy.backoff import Backoff

__all__ = [
    "NOT_PROCESSED_STATUSES",
    "DEFAULT_RETRYABLE_KINDS",
    "DEFAULT_RETRYABLE_STATUSES",
    "Decision",
    "ErrorKind",
    "GiveUpReason",
    "Outcome",
    "RetryPolicy",
    "decide",
    "is_cancellation",
    "is_safe_to_resend",
    "may_have_reached_provider",
    "retry_call",
    "retry_call_async",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ErrorKind(StrEnum):
    """Classification of a failed attempt, shared by all adapters."""

    CONNECT_ERROR = "connect_error"
    """Failed before the request was sent: connection refused, DNS failure, TLS handshake."""
    CONNECT_TIMEOUT = "connect_timeout"
    """Timed out while connecting, before the request was sent."""
    READ_TIMEOUT = "read_timeout"
    """Timed out waiting for the response after the request was sent."""
    WRITE_ERROR = "write_error"
    """Failed or timed out while sending the request, so part of it may have arrived."""
    REMOTE_PROTOCOL_ERROR = "remote_protocol_error"
    """The provider broke the HTTP protocol, for example closed the connection before a
    response started."""
    DROPPED_MID_RESPONSE = "dropped_mid_response"
    """The connection closed while the response body was being read."""
    HTTP_STATUS = "http_status"
    """The provider responded with a status code that the adapter treats as a failure."""
    CANCELLED = "cancelled"
    """The caller cancelled the attempt. Never retried."""
    INVALID_RESPONSE = "invalid_response"
    """The response arrived but could not be parsed, for example malformed JSON."""


_BEFORE_SEND = frozenset({ErrorKind.CONNECT_ERROR, ErrorKind.CONNECT_TIMEOUT})

DEFAULT_RETRYABLE_KINDS: frozenset[ErrorKind] = frozenset(
    {
        ErrorKind.CONNECT_ERROR,
        ErrorKind.CONNECT_TIMEOUT,
        ErrorKind.READ_TIMEOUT,
        ErrorKind.WRITE_ERROR,
        ErrorKind.REMOTE_PROTOCOL_ERROR,
        ErrorKind.DROPPED_MID_RESPONSE,
    }
)
"""Error kinds retried by default: network failures and timeouts. `http_status` is judged by
status code, and `invalid_response` is not retried because a malformed body usually repeats."""

DEFAULT_RETRYABLE_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504, 529})

# Answers in which the provider says it did not process the request: 429 Too Many
# Requests (RFC 6585), 503 Service Unavailable (RFC 9110, section 15.6.4) and
# Anthropic's 529 overloaded. Resending after them is safe even without idempotency.
NOT_PROCESSED_STATUSES: frozenset[int] = frozenset({429, 503, 529})
"""Status codes retried by default. 529 is the status of the Anthropic API's overloaded_error."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """Classified failure of one attempt.

    Options:
        kind: the `ErrorKind`, or its string value.
        status_code: the HTTP status code, 100..599. Required for `http_status` and rejected
            for every other kind.
        retry_after: seconds the provider asked the caller to wait (from `Retry-After`),
            finite and >= 0, or None. Default None.
    """

    kind: ErrorKind | str
    status_code: int | None = None
    retry_after: float | None = None

    def __post_init__(self) -> None:
        try:
            kind = ErrorKind(self.kind)
        except ValueError:
            valid = ", ".join(k.value for k in ErrorKind)
            raise ValueError(f"Outcome.kind must be one of {valid}, got {self.kind!r}") from None
        object.__setattr__(self, "kind", kind)

        if kind is ErrorKind.HTTP_STATUS:
            code = self.status_code
            if not isinstance(code, int) or isinstance(code, bool) or not 100 <= code <= 599:
                raise ValueError(
                    f"Outcome.status_code must be an int in 100..599 for http_status, got {code!r}"
                )
        elif self.status_code is not None:
            raise ValueError(
                f"Outcome.status_code must be None for {kind.value}, got {self.status_code!r}"
            )

        retry_after = self.retry_after
        if retry_after is not None and (
            not isinstance(retry_after, int | float)
            or isinstance(retry_after, bool)
            or not math.isfinite(retry_after)
            or retry_after < 0
        ):
            raise ValueError(
                f"Outcome.retry_after must be a finite number of seconds >= 0 or None, "
                f"got {retry_after!r}"
            )

    @classmethod
    def http(cls, status_code: int, retry_after: float | None = None) -> Outcome:
        """Build the outcome for an HTTP response with `status_code`."""
        return cls(ErrorKind.HTTP_STATUS, status_code, retry_after)


def may_have_reached_provider(kind: ErrorKind | str) -> bool:
    """Return whether a failure of `kind` may have happened after the provider got the request.

    Only `connect_error` and `connect_timeout` are known to fail before sending. Cancellation
    may strike at any point, so it counts as possibly delivered.
    """
    return ErrorKind(kind) not in _BEFORE_SEND


def is_safe_to_resend(outcome: Outcome, *, idempotent: bool) -> bool:
    """Return whether the request may be sent again, to the same or another provider.

    This is False after a cancellation, and for a non-idempotent request after any failure
    that may have reached the provider, except an answer that says the provider did not
    process the request (`NOT_PROCESSED_STATUSES`). It ignores retryability and retry
    budgets.
    """
    if outcome.kind is ErrorKind.CANCELLED:
        return False
    if outcome.kind is ErrorKind.HTTP_STATUS and outcome.status_code in NOT_PROCESSED_STATUSES:
        return True
    return idempotent or not may_have_reached_provider(outcome.kind)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and after which failures a call is retried.

    Options:
        max_retries: retries after the first attempt, an int in 0..1000. Default 3.
        backoff: the delay schedule between attempts. Default: exponential from 0.1 s,
            capped at 30 s, full jitter.
        retryable: error kinds that are retried. `cancelled` is rejected because cancellation
            is never retried. Default `DEFAULT_RETRYABLE_KINDS`.
        retryable_statuses: status codes of `http_status` outcomes that are retried, each in
            100..599. Default `DEFAULT_RETRYABLE_STATUSES` (429, 500, 502, 503, 504, 529).
        respect_retry_after: wait at least the provider's `Retry-After` when it is longer than
            the backoff delay. Default True.
    """

    max_retries: int = 3
    backoff: Backoff = field(default_factory=Backoff)
    retryable: frozenset[ErrorKind] = DEFAULT_RETRYABLE_KINDS
    retryable_statuses: frozenset[int] = DEFAULT_RETRYABLE_STATUSES
    respect_retry_after: bool = True

    def __post_init__(self) -> None:
        retries = self.max_retries
        if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 1000:
            raise ValueError(f"RetryPolicy.max_retries must be an int in 0..1000, got {retries!r}")
        if not isinstance(self.backoff, Backoff):
            raise ValueError(f"RetryPolicy.backoff must be a Backoff, got {self.backoff!r}")

        kinds = frozenset(ErrorKind(kind) for kind in self.retryable)
        if ErrorKind.CANCELLED in kinds:
            raise ValueError("RetryPolicy.retryable must not contain 'cancelled'")
        object.__setattr__(self, "retryable", kinds)

        for code in self.retryable_statuses:
            if not isinstance(code, int) or isinstance(code, bool) or not 100 <= code <= 599:
                raise ValueError(
                    f"RetryPolicy.retryable_statuses must contain ints in 100..599, got {code!r}"
                )
        object.__setattr__(self, "retryable_statuses", frozenset(self.retryable_statuses))

    def is_retryable(self, outcome: Outcome) -> bool:
        """Return whether the policy retries `outcome`, ignoring idempotency and budgets."""
        if outcome.kind is ErrorKind.CANCELLED:
            return False
        if outcome.kind is ErrorKind.HTTP_STATUS:
            return outcome.status_code in self.retryable_statuses
        return outcome.kind in self.retryable


class GiveUpReason(StrEnum):
    """Reason that `decide` gave up retrying."""

    CANCELLED = "cancelled"
    NOT_RETRYABLE = "not_retryable"
    NOT_IDEMPOTENT = "not_idempotent"
    RETRIES_EXHAUSTED = "retries_exhausted"
    DEADLINE = "deadline"


@dataclass(frozen=True, slots=True)
class Decision:
    """Result of `decide`: retry after `delay` seconds, or give up for `reason`."""

    retry: bool
    delay: float = 0.0
    reason: GiveUpReason | None = None

    @classmethod
    def retry_later(cls, delay: float) -> Decision:
        """Build a decision to retry after `delay` seconds."""
        return cls(retry=True, delay=delay)

    @classmethod
    def give_up(cls, reason: GiveUpReason) -> Decision:
        """Build a decision to stop retrying for `reason`."""
        return cls(retry=False, reason=reason)


def decide(
    attempt_no: int,
    error: Outcome,
    *,
    idempotent: bool,
    deadline_remaining: float | None,
    policy: RetryPolicy,
    rng: random.Random,
) -> Decision:
    """Decide whether to retry after attempt number `attempt_no` (1 for the first call) failed.

    Retryability is judged from this attempt's `error` alone, so a retryable 429 followed by
    a 400 gives up at the 400. The checks run in this order: cancellation, retryability,
    idempotency (`is_safe_to_resend`), the retry budget, then the deadline. The delay is the
    backoff delay for this attempt, raised to the provider's `retry_after` when the policy
    respects it. The call gives up with `deadline` when that delay would not end before
    `deadline_remaining` seconds (None means no deadline).
    """
    if not isinstance(attempt_no, int) or isinstance(attempt_no, bool) or attempt_no < 1:
        raise ValueError(f"attempt_no must be an int >= 1, got {attempt_no!r}")

    if error.kind is ErrorKind.CANCELLED:
        return Decision.give_up(GiveUpReason.CANCELLED)
    if not policy.is_retryable(error):
        return Decision.give_up(GiveUpReason.NOT_RETRYABLE)
    if not is_safe_to_resend(error, idempotent=idempotent):
        return Decision.give_up(GiveUpReason.NOT_IDEMPOTENT)
    if attempt_no > policy.max_retries:
        return Decision.give_up(GiveUpReason.RETRIES_EXHAUSTED)

    delay = policy.backoff.delay(attempt_no - 1, rng)
    if policy.respect_retry_after and error.retry_after is not None:
        delay = max(delay, float(error.retry_after))
    if deadline_remaining is not None and delay >= deadline_remaining:
        return Decision.give_up(GiveUpReason.DEADLINE)
    return Decision.retry_later(delay)


_CANCELLATION_TYPES: tuple[type[BaseException], ...] = (
    asyncio.CancelledError,
    KeyboardInterrupt,
    SystemExit,
    GeneratorExit,
)


def is_cancellation(exc: BaseException) -> bool:
    """Return whether `exc` cancels or stops the program rather than reporting a failure.

    These exceptions are never retried: `asyncio.CancelledError`, `KeyboardInterrupt`,
    `SystemExit` and `GeneratorExit`.
    """
    return isinstance(exc, _CANCELLATION_TYPES)


def _next_delay(
    exc: BaseException,
    retries_done: int,
    policy: RetryPolicy,
    retry_on: Callable[[BaseException], bool],
    rng: random.Random,
    deadline_at: float | None,
    now: float,
) -> float | None:
    """Return the delay before the next attempt, or None to re-raise `exc`."""
    if is_cancellation(exc) or not retry_on(exc):
        return None
    if retries_done >= policy.max_retries:
        return None
    delay = policy.backoff.delay(retries_done, rng)
    if deadline_at is not None and now + delay >= deadline_at:
        return None
    return delay


def retry_call(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    retry_on: Callable[[BaseException], bool],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    timeout: float | None = None,
    rng: random.Random | None = None,
) -> T:
    """Call `fn` until it returns, retrying the exceptions that `retry_on` accepts.

    Cancellation (see `is_cancellation`) propagates at once, before `retry_on` is asked. After
    `policy.max_retries` retries, or when the next delay would end after `timeout` seconds
    (measured by `clock` from the first call), the last exception propagates. The policy's
    `retryable` kinds are not used, because plain exceptions carry no `ErrorKind`.
    """
    generator = rng if rng is not None else random.Random()
    deadline_at = None if timeout is None else clock() + timeout
    retries_done = 0
    while True:
        try:
            return fn()
        except BaseException as exc:
            delay = _next_delay(
                exc, retries_done, policy, retry_on, generator, deadline_at, clock()
            )
            if delay is None:
                raise
            logger.info(
                "retrying %s after %s (retry %d of %d) in %.3f s",
                getattr(fn, "__qualname__", "call"),
                type(exc).__name__,
                retries_done + 1,
                policy.max_retries,
                delay,
            )
        sleep(delay)
        retries_done += 1


async def retry_call_async(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    retry_on: Callable[[BaseException], bool],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    timeout: float | None = None,
    rng: random.Random | None = None,
) -> T:
    """Await `fn()` until it returns, with the same rules as `retry_call`."""
    generator = rng if rng is not None else random.Random()
    deadline_at = None if timeout is None else clock() + timeout
    retries_done = 0
    while True:
        try:
            return await fn()
        except BaseException as exc:
            delay = _next_delay(
                exc, retries_done, policy, retry_on, generator, deadline_at, clock()
            )
            if delay is None:
                raise
            logger.info(
                "retrying %s after %s (retry %d of %d) in %.3f s",
                getattr(fn, "__qualname__", "call"),
                type(exc).__name__,
                retries_done + 1,
                policy.max_retries,
                delay,
            )
        await sleep(delay)
        retries_done += 1
