"""Tests for actors.policy.retry."""

from __future__ import annotations

import asyncio
import random

import pytest

from actors.policy.backoff import Backoff
from actors.policy.retry import (
    Decision,
    ErrorKind,
    GiveUpReason,
    Outcome,
    RetryPolicy,
    decide,
    is_cancellation,
    is_safe_to_resend,
    may_have_reached_provider,
    retry_call,
    retry_call_async,
)
from tests.actors.policy.conftest import FakeClock

pytestmark = pytest.mark.timeout(30)

NO_JITTER = Backoff("exponential", initial_delay=1.0, max_delay=8.0, jitter="none")


def _decide(
    outcome: Outcome,
    *,
    attempt_no: int = 1,
    idempotent: bool = True,
    deadline_remaining: float | None = None,
    policy: RetryPolicy | None = None,
) -> Decision:
    return decide(
        attempt_no,
        outcome,
        idempotent=idempotent,
        deadline_remaining=deadline_remaining,
        policy=policy if policy is not None else RetryPolicy(backoff=NO_JITTER),
        rng=random.Random(0),
    )


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 529])
def test_decide_retries_default_statuses(status: int) -> None:
    assert _decide(Outcome.http(status)).retry


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422, 501])
def test_decide_gives_up_on_other_statuses(status: int) -> None:
    decision = _decide(Outcome.http(status))
    assert not decision.retry
    assert decision.reason is GiveUpReason.NOT_RETRYABLE


@pytest.mark.parametrize(
    "kind",
    [
        ErrorKind.CONNECT_ERROR,
        ErrorKind.CONNECT_TIMEOUT,
        ErrorKind.READ_TIMEOUT,
        ErrorKind.WRITE_ERROR,
        ErrorKind.REMOTE_PROTOCOL_ERROR,
        ErrorKind.DROPPED_MID_RESPONSE,
    ],
)
def test_decide_retries_network_failures(kind: ErrorKind) -> None:
    assert _decide(Outcome(kind)).retry


def test_decide_gives_up_on_invalid_response() -> None:
    decision = _decide(Outcome(ErrorKind.INVALID_RESPONSE))
    assert decision.reason is GiveUpReason.NOT_RETRYABLE


@pytest.mark.parametrize(
    ("kind", "reached"),
    [
        (ErrorKind.CONNECT_ERROR, False),
        (ErrorKind.CONNECT_TIMEOUT, False),
        (ErrorKind.READ_TIMEOUT, True),
        (ErrorKind.WRITE_ERROR, True),
        (ErrorKind.REMOTE_PROTOCOL_ERROR, True),
        (ErrorKind.DROPPED_MID_RESPONSE, True),
        (ErrorKind.HTTP_STATUS, True),
        (ErrorKind.CANCELLED, True),
        (ErrorKind.INVALID_RESPONSE, True),
    ],
)
def test_may_have_reached_provider_by_kind(kind: ErrorKind, reached: bool) -> None:
    assert may_have_reached_provider(kind) is reached


def test_decide_non_idempotent_not_retried_after_read_timeout() -> None:
    decision = _decide(Outcome(ErrorKind.READ_TIMEOUT), idempotent=False)
    assert not decision.retry
    assert decision.reason is GiveUpReason.NOT_IDEMPOTENT


def test_decide_non_idempotent_not_retried_after_500() -> None:
    decision = _decide(Outcome.http(500), idempotent=False)
    assert decision.reason is GiveUpReason.NOT_IDEMPOTENT


@pytest.mark.parametrize("status", [429, 503, 529])
def test_decide_non_idempotent_retried_after_unprocessed_status(status: int) -> None:
    decision = _decide(Outcome.http(status), idempotent=False)
    assert decision.retry


@pytest.mark.parametrize("kind", [ErrorKind.CONNECT_ERROR, ErrorKind.CONNECT_TIMEOUT])
def test_decide_non_idempotent_retried_before_send(kind: ErrorKind) -> None:
    assert _decide(Outcome(kind), idempotent=False).retry


def test_resend_blocked_after_send_unless_idempotent() -> None:
    assert not is_safe_to_resend(Outcome(ErrorKind.DROPPED_MID_RESPONSE), idempotent=False)
    assert is_safe_to_resend(Outcome(ErrorKind.CONNECT_ERROR), idempotent=False)
    assert is_safe_to_resend(Outcome(ErrorKind.DROPPED_MID_RESPONSE), idempotent=True)


def test_decide_never_retries_cancelled() -> None:
    decision = _decide(Outcome(ErrorKind.CANCELLED), idempotent=True)
    assert not decision.retry
    assert decision.reason is GiveUpReason.CANCELLED


def test_decide_gives_up_after_max_retries() -> None:
    policy = RetryPolicy(max_retries=2, backoff=NO_JITTER)
    assert _decide(Outcome.http(503), attempt_no=2, policy=policy).retry
    decision = _decide(Outcome.http(503), attempt_no=3, policy=policy)
    assert decision.reason is GiveUpReason.RETRIES_EXHAUSTED


def test_decide_delay_follows_backoff() -> None:
    delays = [_decide(Outcome.http(500), attempt_no=n).delay for n in (1, 2, 3)]
    assert delays == [1.0, 2.0, 4.0]


def test_decide_waits_for_longer_retry_after() -> None:
    decision = _decide(Outcome.http(429, retry_after=6.0))
    assert decision.delay == 6.0


def test_decide_ignores_retry_after_when_disabled() -> None:
    policy = RetryPolicy(backoff=NO_JITTER, respect_retry_after=False)
    decision = _decide(Outcome.http(429, retry_after=6.0), policy=policy)
    assert decision.delay == 1.0


def test_decide_gives_up_when_delay_exceeds_deadline() -> None:
    decision = _decide(Outcome.http(429, retry_after=6.0), deadline_remaining=5.0)
    assert decision.reason is GiveUpReason.DEADLINE


def test_decide_judges_each_attempt() -> None:
    """S5: 429, then 400, then a 200 that is never requested: two calls, the 400 returned."""
    responses = iter([429, 400, 200])
    policy = RetryPolicy(max_retries=3, backoff=NO_JITTER)
    calls = 0
    attempt_no = 0
    while True:
        status = next(responses)
        calls += 1
        attempt_no += 1
        if status < 400:
            final: Outcome | int = status
            break
        outcome = Outcome.http(status)
        decision = _decide(outcome, attempt_no=attempt_no, policy=policy)
        if not decision.retry:
            final = outcome
            break

    assert calls == 2
    assert final == Outcome.http(400)
    assert decision.reason is GiveUpReason.NOT_RETRYABLE


def test_decide_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError, match="attempt_no must be an int >= 1, got 0"):
        _decide(Outcome.http(500), attempt_no=0)


def test_outcome_requires_status_for_http() -> None:
    with pytest.raises(ValueError, match=r"status_code must be an int in 100\.\.599"):
        Outcome(ErrorKind.HTTP_STATUS)


def test_outcome_rejects_status_for_other_kinds() -> None:
    with pytest.raises(ValueError, match="status_code must be None for read_timeout, got 500"):
        Outcome(ErrorKind.READ_TIMEOUT, 500)


def test_outcome_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="Outcome.kind must be one of .*got 'oops'"):
        Outcome("oops")


def test_outcome_rejects_negative_retry_after() -> None:
    with pytest.raises(ValueError, match="retry_after must be a finite number"):
        Outcome.http(429, retry_after=-1.0)


def test_retry_policy_rejects_cancelled_kind() -> None:
    with pytest.raises(ValueError, match="must not contain 'cancelled'"):
        RetryPolicy(retryable=frozenset({ErrorKind.CANCELLED}))


def test_retry_policy_rejects_bad_max_retries() -> None:
    with pytest.raises(ValueError, match=r"max_retries must be an int in 0\.\.1000, got -1"):
        RetryPolicy(max_retries=-1)


def test_is_cancellation_by_type() -> None:
    assert is_cancellation(asyncio.CancelledError())
    assert is_cancellation(KeyboardInterrupt())
    assert not is_cancellation(TimeoutError())


class _Script:
    """Callable that raises the queued exceptions in turn, then returns "done"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def _not_value_error(exc: BaseException) -> bool:
    return not isinstance(exc, ValueError)


@pytest.mark.parametrize("interrupt", [asyncio.CancelledError, KeyboardInterrupt])
def test_retry_call_never_retries_cancellation(interrupt: type[BaseException]) -> None:
    """S4: cancellation propagates after one attempt and without sleeping."""
    script = _Script(interrupt(), OSError("never reached"))
    sleeps: list[float] = []
    policy = RetryPolicy(max_retries=5, backoff=NO_JITTER)

    with pytest.raises(interrupt):
        retry_call(script, policy, retry_on=_not_value_error, sleep=sleeps.append)
    assert script.calls == 1
    assert sleeps == []


def test_retry_call_async_never_retries_cancelled_task() -> None:
    """S4 with a real task cancellation."""
    calls = 0
    sleeps: list[float] = []

    async def slow_call() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(10)
        return "late"

    async def record_sleep(delay: float) -> None:
        sleeps.append(delay)

    async def main() -> None:
        policy = RetryPolicy(max_retries=5, backoff=NO_JITTER)
        task = asyncio.create_task(
            retry_call_async(slow_call, policy, retry_on=_not_value_error, sleep=record_sleep)
        )
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert calls == 1
    assert sleeps == []


def test_retry_call_retries_then_returns(clock: FakeClock) -> None:
    script = _Script(OSError("reset"), TimeoutError("slow"))
    sleeps: list[float] = []
    policy = RetryPolicy(max_retries=3, backoff=NO_JITTER)

    result = retry_call(script, policy, retry_on=_not_value_error, sleep=sleeps.append, clock=clock)
    assert result == "done"
    assert script.calls == 3
    assert sleeps == [1.0, 2.0]


def test_retry_call_raises_last_error_after_max_retries() -> None:
    script = _Script(OSError("first"), OSError("second"), OSError("third"))
    policy = RetryPolicy(max_retries=2, backoff=NO_JITTER)

    with pytest.raises(OSError, match="third"):
        retry_call(script, policy, retry_on=_not_value_error, sleep=lambda _: None)
    assert script.calls == 3


def test_retry_call_does_not_retry_rejected_error() -> None:
    script = _Script(ValueError("bad input"))
    sleeps: list[float] = []

    with pytest.raises(ValueError, match="bad input"):
        retry_call(script, RetryPolicy(), retry_on=_not_value_error, sleep=sleeps.append)
    assert script.calls == 1
    assert sleeps == []


def test_retry_call_stops_at_timeout(clock: FakeClock) -> None:
    script = _Script(OSError("a"), OSError("b"), OSError("c"))
    policy = RetryPolicy(max_retries=5, backoff=NO_JITTER)

    def sleep(delay: float) -> None:
        clock.advance(delay)

    # Delays are 1 s then 2 s: the second would end at 3 s, past the 2.5 s timeout.
    with pytest.raises(OSError, match="b"):
        retry_call(script, policy, retry_on=_not_value_error, sleep=sleep, clock=clock, timeout=2.5)
    assert script.calls == 2
