"""Tests for actors.router.plan: the per-call state machine, driven by a fake clock."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from actors.messages import BreakerUpdate, StatusUpdate
from actors.router import CallPlan, Finish, SendAttempt, WaitUntil
from tests.actors.router.conftest import (
    FakeClock,
    failure,
    http_failure,
    plan_for,
    replica_of,
    rules,
)

pytestmark = pytest.mark.timeout(30)

RETRYABLE_FAILURES = [
    http_failure(429),
    http_failure(500),
    http_failure(502),
    http_failure(503),
    http_failure(504),
    http_failure(529),
    failure("connect_error"),
    failure("connect_timeout"),
    failure("read_timeout"),
]


def _fail(plan: CallPlan, action: SendAttempt, data: dict, duration: float = 0.01):
    return plan.on_result(action.attempt_no, ok=False, duration=duration, failure=data)


def _succeed(plan: CallPlan, action: SendAttempt, value: object = None):
    return plan.on_result(action.attempt_no, ok=True, duration=0.01, value=value or {"text": "hi"})


def _two_providers(clock: FakeClock, **kwargs: object):
    return replica_of(clock, rules("openai", **kwargs), rules("anthropic", "secondary", **kwargs))


# -- selection --------------------------------------------------------------------------


def test_plan_sends_first_to_primary(clock: FakeClock) -> None:
    replica = replica_of(
        clock, rules("backup", "fallback"), rules("second", "secondary"), rules("first")
    )
    action = plan_for(replica, clock).start()
    assert isinstance(action, SendAttempt)
    assert action.provider == "first"


def test_plan_keeps_configuration_order_within_role(clock: FakeClock) -> None:
    replica = replica_of(clock, rules("b"), rules("a"))
    action = plan_for(replica, clock).start()
    assert action.provider == "b"


def test_plan_falls_back_after_secondaries(clock: FakeClock) -> None:
    replica = replica_of(
        clock,
        rules("first", max_retries=0),
        rules("second", "secondary", max_retries=0),
        rules("backup", "fallback", max_retries=0),
    )
    plan = plan_for(replica, clock)
    order = []
    action = plan.start()
    while isinstance(action, SendAttempt):
        order.append(action.provider)
        action = _fail(plan, action, http_failure(503))
    assert order == ["first", "second", "backup"]


@pytest.mark.parametrize(
    ("update", "reason"),
    [
        (BreakerUpdate("openai", "open", retry_at=None), "circuit breaker is open"),
        (StatusUpdate("openai", "failed"), "health status is failed"),
        (StatusUpdate("openai", "testing"), "health status is testing"),
    ],
)
def test_plan_skips_unavailable_primary(clock: FakeClock, update: object, reason: str) -> None:
    replica = _two_providers(clock)
    if isinstance(update, BreakerUpdate):
        replica.apply_breaker(update)
    else:
        replica.apply_status(update)
    action = plan_for(replica, clock).start()
    assert action.provider == "anthropic"
    assert replica.skip_reason("openai") == reason


def test_plan_skips_cooling_primary(clock: FakeClock) -> None:
    replica = _two_providers(clock)
    replica.record_failure("openai", retry_after=5.0)
    action = plan_for(replica, clock).start()
    assert action.provider == "anthropic"


def test_plan_skips_ejected_primary(clock: FakeClock) -> None:
    replica = _two_providers(clock, consecutive_failures=2)
    replica.record_failure("openai", retry_after=None)
    replica.record_failure("openai", retry_after=None)
    action = plan_for(replica, clock).start()
    assert action.provider == "anthropic"
    assert replica.skip_reason("openai").startswith("ejected until")


def test_plan_skips_provider_rejecting_request(clock: FakeClock) -> None:
    replica = _two_providers(clock)
    plan = plan_for(replica, clock, eligible=["anthropic"], rejected={"openai": "model: missing"})
    assert plan.start().provider == "anthropic"


def test_plan_probes_open_breaker_after_retry_at(clock: FakeClock) -> None:
    replica = _two_providers(clock)
    replica.apply_breaker(BreakerUpdate("openai", "open", retry_at=clock() + 2.0))
    assert plan_for(replica, clock, call_id="a").start().provider == "anthropic"
    clock.advance(2.0)
    assert plan_for(replica, clock, call_id="b").start().provider == "openai"


def test_plan_half_open_admits_permitted_probes(clock: FakeClock) -> None:
    replica = _two_providers(clock, half_open_permitted_calls=2)
    replica.apply_breaker(BreakerUpdate("openai", "half_open", retry_at=None))
    chosen = [plan_for(replica, clock, call_id=str(i)).start().provider for i in range(3)]
    assert chosen == ["openai", "openai", "anthropic"]


def test_plan_half_open_slot_frees_after_probe(clock: FakeClock) -> None:
    replica = _two_providers(clock)
    replica.apply_breaker(BreakerUpdate("openai", "half_open", retry_at=None))
    probe = plan_for(replica, clock, call_id="probe")
    first = probe.start()
    assert plan_for(replica, clock, call_id="other").start().provider == "anthropic"
    _succeed(probe, first)
    assert plan_for(replica, clock, call_id="later").start().provider == "openai"


def test_plan_weighted_selection_uses_both_providers(clock: FakeClock) -> None:
    replica = replica_of(clock, rules("a", weight=3.0), rules("b", weight=1.0))
    rng = random.Random(99)
    counts: Counter[str] = Counter()
    for index in range(400):
        plan = plan_for(replica, clock, rng=rng, call_id=str(index))
        action = plan.start()
        counts[action.provider] += 1
        _succeed(plan, action)
    assert counts["a"] > counts["b"]
    assert counts["b"] > 50


# -- failover and retries -----------------------------------------------------------------


def test_plan_fails_over_at_once_after_503(clock: FakeClock) -> None:
    replica = _two_providers(clock)
    plan = plan_for(replica, clock)
    first = plan.start()
    second = _fail(plan, first, http_failure(503))
    assert isinstance(second, SendAttempt)
    assert second.provider == "anthropic"


def test_plan_success_after_failover_reports_failover(clock: FakeClock) -> None:
    replica = _two_providers(clock)
    plan = plan_for(replica, clock)
    second = _fail(plan, plan.start(), http_failure(503))
    finish = _succeed(plan, second, {"text": "ok"})
    assert isinstance(finish, Finish)
    assert finish.ok
    assert finish.failover
    assert finish.value["provider"] == "anthropic"
    assert finish.value["result"] == {"text": "ok"}
    assert [a["outcome"] for a in finish.value["attempts"]] == ["http_status", "ok"]


def test_plan_success_on_first_try_is_not_failover(clock: FakeClock) -> None:
    replica = _two_providers(clock)
    plan = plan_for(replica, clock)
    finish = _succeed(plan, plan.start())
    assert finish.ok
    assert not finish.failover
    assert finish.value["attempts"][0]["provider"] == "openai"


def test_plan_attempt_record_has_contract_keys(clock: FakeClock) -> None:
    replica = _two_providers(clock)
    plan = plan_for(replica, clock)
    finish = _succeed(plan, plan.start(), {"status": 201, "body": None})
    record = finish.value["attempts"][0]
    assert record == {
        "provider": "openai",
        "attempt": 1,
        "outcome": "ok",
        "status": 201,
        "duration": 0.01,
    }


@pytest.mark.parametrize("data", RETRYABLE_FAILURES, ids=lambda d: str(d["status"] or d["kind"]))
def test_plan_retries_retryable_failure(clock: FakeClock, data: dict) -> None:
    replica = replica_of(clock, rules("only", max_retries=3))
    plan = plan_for(replica, clock)
    action = _fail(plan, plan.start(), data)
    if isinstance(action, WaitUntil):
        clock.now = action.at
        action = plan.on_wait_elapsed()
    assert isinstance(action, SendAttempt)
    assert action.provider == "only"
    assert action.attempt_no == 2


def test_plan_retry_waits_for_backoff(clock: FakeClock) -> None:
    replica = replica_of(clock, rules("only", max_retries=3, initial_delay=0.1, max_delay=0.4))
    plan = plan_for(replica, clock)
    start = clock()
    action = _fail(plan, plan.start(), http_failure(503))
    assert isinstance(action, WaitUntil)
    assert action.at == pytest.approx(start + 0.1)


def test_plan_backoff_delays_never_exceed_max_delay(clock: FakeClock) -> None:
    replica = replica_of(
        clock, rules("only", max_retries=6, max_delay=0.4, consecutive_failures=100)
    )
    plan = plan_for(replica, clock, deadline=60.0)
    action = plan.start()
    delays = []
    while isinstance(action, SendAttempt):
        waited = _fail(plan, action, http_failure(503))
        if not isinstance(waited, WaitUntil):
            break
        delays.append(waited.at - clock())
        clock.now = waited.at
        action = plan.on_wait_elapsed()
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.4, 0.4, 0.4])


def test_plan_prefers_ready_secondary_over_backing_off_primary(clock: FakeClock) -> None:
    replica = _two_providers(clock, max_retries=2)
    plan = plan_for(replica, clock)
    second = _fail(plan, plan.start(), http_failure(503))
    assert second.provider == "anthropic"
    waited = _fail(plan, second, http_failure(503))
    assert isinstance(waited, WaitUntil)
    clock.now = waited.at
    assert plan.on_wait_elapsed().provider == "openai"


def test_plan_tries_each_provider_budget_plus_one_times(clock: FakeClock) -> None:
    replica = _two_providers(clock, max_retries=2)
    plan = plan_for(replica, clock, deadline=60.0)
    action = plan.start()
    sent: Counter[str] = Counter()
    while not isinstance(action, Finish):
        if isinstance(action, WaitUntil):
            clock.now = action.at
            action = plan.on_wait_elapsed()
            continue
        sent[action.provider] += 1
        action = _fail(plan, action, http_failure(503))
    assert sent == {"openai": 3, "anthropic": 3}
    assert action.code == "all_providers_failed"


def test_plan_all_providers_failed_lists_every_attempt(clock: FakeClock) -> None:
    replica = _two_providers(clock, max_retries=0)
    plan = plan_for(replica, clock)
    second = _fail(plan, plan.start(), http_failure(503))
    finish = _fail(plan, second, failure("read_timeout"))
    assert finish.code == "all_providers_failed"
    assert "openai #1: http_status 503" in finish.message
    assert "anthropic #2: read_timeout" in finish.message
    assert [a["provider"] for a in finish.details["attempts"]] == ["openai", "anthropic"]


def test_plan_s5_returns_400_after_429(clock: FakeClock) -> None:
    replica = replica_of(clock, rules("only", max_retries=3))
    plan = plan_for(replica, clock)
    action = _fail(plan, plan.start(), http_failure(429, retry_after=0.5))
    assert isinstance(action, WaitUntil)
    clock.now = action.at
    second = plan.on_wait_elapsed()
    finish = _fail(plan, second, http_failure(400))
    assert finish.code == "provider_error"
    assert finish.details["status"] == 400
    assert len(finish.details["attempts"]) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_plan_returns_client_error_at_once(clock: FakeClock, status: int) -> None:
    replica = _two_providers(clock)
    plan = plan_for(replica, clock)
    finish = _fail(plan, plan.start(), http_failure(status))
    assert finish.code == "provider_error"
    assert finish.details["status"] == status
    assert finish.details["provider"] == "openai"


def test_plan_client_error_does_not_count_towards_ejection(clock: FakeClock) -> None:
    replica = _two_providers(clock, consecutive_failures=1)
    plan = plan_for(replica, clock)
    _fail(plan, plan.start(), http_failure(400))
    assert replica.skip_reason("openai") is None


def test_plan_missing_reply_does_not_count_towards_ejection(clock: FakeClock) -> None:
    replica = _two_providers(clock, consecutive_failures=1)
    plan = plan_for(replica, clock)
    first = plan.start()
    plan.on_no_reply(first.attempt_no)
    assert replica.skip_reason("openai") is None


def test_plan_fails_over_after_non_retryable_provider_failure(clock: FakeClock) -> None:
    replica = _two_providers(clock, max_retries=3)
    plan = plan_for(replica, clock)
    second = _fail(plan, plan.start(), failure("invalid_response"))
    assert second.provider == "anthropic"
    finish = _fail(plan, second, http_failure(501))
    assert finish.code == "all_providers_failed"
    assert plan.tries("openai") == 1


def test_plan_invalid_request_failure_ends_call(clock: FakeClock) -> None:
    replica = _two_providers(clock)
    plan = plan_for(replica, clock)
    finish = _fail(plan, plan.start(), failure("invalid_request"))
    assert finish.code == "invalid_request"


# -- Retry-After and cooldowns ------------------------------------------------------------


def test_plan_honours_retry_after_on_same_provider(clock: FakeClock) -> None:
    replica = replica_of(clock, rules("only", max_retries=3, initial_delay=0.1))
    plan = plan_for(replica, clock)
    start = clock()
    action = _fail(plan, plan.start(), http_failure(429, retry_after=2.0))
    assert isinstance(action, WaitUntil)
    assert action.at == pytest.approx(start + 2.0)


def test_plan_retry_after_starts_cooldown(clock: FakeClock) -> None:
    replica = _two_providers(clock)
    plan = plan_for(replica, clock)
    _fail(plan, plan.start(), http_failure(429, retry_after=3.0))
    assert replica.describe("openai")["cooling_until"] == pytest.approx(clock() + 3.0)


def test_plan_shorter_retry_after_keeps_longer_cooldown(clock: FakeClock) -> None:
    replica = _two_providers(clock)
    replica.record_failure("openai", retry_after=10.0)
    clock.advance(1.0)
    replica.apply_breaker(BreakerUpdate("anthropic", "open", retry_at=None))
    replica.record_failure("openai", retry_after=1.0)
    assert replica.describe("openai")["cooling_until"] == pytest.approx(clock() + 9.0)


def test_plan_records_both_failed_providers(clock: FakeClock) -> None:
    replica = _two_providers(clock, max_retries=0)
    plan = plan_for(replica, clock)
    second = _fail(plan, plan.start(), http_failure(503, retry_after=4.0))
    _fail(plan, second, http_failure(529, retry_after=6.0))
    openai = replica.describe("openai")
    anthropic = replica.describe("anthropic")
    assert openai["totals"]["failures"] == 1
    assert anthropic["totals"]["failures"] == 1
    assert openai["cooling_until"] == pytest.approx(clock() + 4.0)
    assert anthropic["cooling_until"] == pytest.approx(clock() + 6.0)
    assert openai["failure_streak"] == 1
    assert anthropic["failure_streak"] == 1


def test_plan_waits_for_cooldown_within_deadline(clock: FakeClock) -> None:
    replica = replica_of(clock, rules("only"))
    replica.record_failure("only", retry_after=1.5)
    plan = plan_for(replica, clock, deadline=3.0)
    action = plan.start()
    assert isinstance(action, WaitUntil)
    assert action.at == pytest.approx(clock() + 1.5)
    clock.now = action.at
    assert plan.on_wait_elapsed().provider == "only"


# -- no provider --------------------------------------------------------------------------


def test_plan_no_provider_available_gives_each_reason(clock: FakeClock) -> None:
    replica = _two_providers(clock)
    replica.apply_status(StatusUpdate("openai", "failed"))
    replica.apply_breaker(BreakerUpdate("anthropic", "open", retry_at=clock() + 60.0))
    finish = plan_for(replica, clock, deadline=3.0, integration="llm").start()
    assert finish.code == "no_provider_available"
    assert finish.details["providers"]["openai"] == "health status is failed"
    assert finish.details["providers"]["anthropic"].startswith("circuit breaker is open until")
    assert "integration llm" in finish.message


def test_plan_no_provider_when_cooldown_outlasts_deadline(clock: FakeClock) -> None:
    replica = replica_of(clock, rules("only"))
    replica.record_failure("only", retry_after=30.0)
    finish = plan_for(replica, clock, deadline=3.0).start()
    assert finish.code == "no_provider_available"
    assert finish.details["providers"]["only"].startswith("cooling down until")


def test_plan_breaker_trip_mid_call_moves_traffic(clock: FakeClock) -> None:
    replica = replica_of(clock, rules("openai", max_retries=3), rules("anthropic", "secondary"))
    plan = plan_for(replica, clock)
    first = plan.start()
    replica.apply_breaker(BreakerUpdate("openai", "open", retry_at=clock() + 30.0))
    second = _fail(plan, first, http_failure(503))
    assert second.provider == "anthropic"
    assert _succeed(plan, second).ok


# -- deadline and cancellation -----------------------------------------------------------


def test_plan_per_try_timeout_is_provider_timeout(clock: FakeClock) -> None:
    replica = replica_of(clock, rules("only", timeout=0.5))
    action = plan_for(replica, clock, deadline=3.0).start()
    assert action.timeout == pytest.approx(0.5)


def test_plan_per_try_timeout_capped_by_deadline(clock: FakeClock) -> None:
    replica = _two_providers(clock, timeout=2.0)
    plan = plan_for(replica, clock, deadline=3.0)
    first = plan.start()
    clock.advance(2.0)
    second = _fail(plan, first, failure("read_timeout"), duration=2.0)
    assert second.provider == "anthropic"
    assert second.timeout == pytest.approx(1.0)


def test_plan_deadline_cancels_attempt_in_flight(clock: FakeClock) -> None:
    replica = _two_providers(clock)
    plan = plan_for(replica, clock, deadline=1.0)
    plan.start()
    clock.advance(1.0)
    finish = plan.on_deadline()
    assert finish.code == "deadline_exceeded"
    assert finish.cancel == "openai"


def test_plan_never_retries_after_deadline(clock: FakeClock) -> None:
    replica = _two_providers(clock)
    plan = plan_for(replica, clock, deadline=1.0)
    first = plan.start()
    clock.advance(1.0)
    plan.on_deadline()
    assert _fail(plan, first, failure("read_timeout")) is None
    assert plan.on_wait_elapsed() is None


def test_plan_deadline_during_backoff_cancels_nothing(clock: FakeClock) -> None:
    replica = replica_of(clock, rules("only", max_retries=3, initial_delay=0.5, max_delay=1.0))
    plan = plan_for(replica, clock, deadline=1.0)
    waited = _fail(plan, plan.start(), http_failure(503))
    assert isinstance(waited, WaitUntil)
    clock.advance(1.0)
    finish = plan.on_deadline()
    assert finish.code == "deadline_exceeded"
    assert finish.cancel is None


def test_plan_gives_up_when_backoff_passes_deadline(clock: FakeClock) -> None:
    replica = replica_of(clock, rules("only", max_retries=3, initial_delay=0.5, max_delay=1.0))
    plan = plan_for(replica, clock, deadline=0.4)
    finish = _fail(plan, plan.start(), http_failure(503))
    assert finish.code == "all_providers_failed"
    assert finish.details["skipped"]["only"] == "deadline"


def test_plan_timeout_at_deadline_exceeds_deadline(clock: FakeClock) -> None:
    replica = _two_providers(clock)
    plan = plan_for(replica, clock, deadline=1.0)
    first = plan.start()
    clock.advance(1.0)
    finish = _fail(plan, first, failure("read_timeout"), duration=1.0)
    assert finish.code == "deadline_exceeded"


def test_plan_cancel_cancels_attempt_in_flight(clock: FakeClock) -> None:
    replica = _two_providers(clock)
    plan = plan_for(replica, clock)
    plan.start()
    finish = plan.cancel()
    assert finish.code == "cancelled"
    assert finish.cancel == "openai"


def test_plan_cancel_frees_half_open_probe(clock: FakeClock) -> None:
    replica = _two_providers(clock)
    replica.apply_breaker(BreakerUpdate("openai", "half_open", retry_at=None))
    plan = plan_for(replica, clock, call_id="probe")
    plan.start()
    plan.cancel()
    assert plan_for(replica, clock, call_id="next").start().provider == "openai"


# -- idempotency --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [failure("read_timeout"), failure("dropped_mid_response"), http_failure(500)],
    ids=["read_timeout", "dropped_mid_response", "500"],
)
def test_plan_non_idempotent_not_retried_after_reaching(clock: FakeClock, data: dict) -> None:
    replica = _two_providers(clock, max_retries=3)
    plan = plan_for(replica, clock, idempotent=False)
    finish = _fail(plan, plan.start(), data)
    assert finish.code == "not_retried"
    assert len(finish.details["attempts"]) == 1


@pytest.mark.parametrize("status", [429, 503, 529])
def test_plan_non_idempotent_fails_over_after_unprocessed_status(
    clock: FakeClock, status: int
) -> None:
    replica = _two_providers(clock, max_retries=0)
    plan = plan_for(replica, clock, idempotent=False)
    action = _fail(plan, plan.start(), http_failure(status))
    assert action.provider == "anthropic"


@pytest.mark.parametrize("kind", ["connect_error", "connect_timeout"])
def test_plan_non_idempotent_fails_over_before_sending(clock: FakeClock, kind: str) -> None:
    replica = _two_providers(clock, max_retries=3)
    plan = plan_for(replica, clock, idempotent=False)
    action = _fail(plan, plan.start(), failure(kind))
    assert isinstance(action, SendAttempt)
    assert action.provider == "anthropic"


def test_plan_non_idempotent_retried_when_provider_actor_down(clock: FakeClock) -> None:
    replica = _two_providers(clock)
    plan = plan_for(replica, clock, idempotent=False)
    first = plan.start()
    action = plan.on_error_reply(first.attempt_no, "not_running", "provider actor is gone")
    assert action.provider == "anthropic"


def test_plan_non_idempotent_not_retried_after_provider_crash(clock: FakeClock) -> None:
    replica = _two_providers(clock)
    plan = plan_for(replica, clock, idempotent=False)
    first = plan.start()
    finish = plan.on_error_reply(first.attempt_no, "actor_crashed", "boom")
    assert finish.code == "not_retried"


def test_plan_idempotent_retried_after_read_timeout(clock: FakeClock) -> None:
    replica = _two_providers(clock)
    plan = plan_for(replica, clock, idempotent=True)
    action = _fail(plan, plan.start(), failure("read_timeout"))
    assert action.provider == "anthropic"


# -- lost replies and stale events --------------------------------------------------------


def test_plan_no_reply_counts_as_timeout_and_cancels(clock: FakeClock) -> None:
    replica = _two_providers(clock)
    plan = plan_for(replica, clock)
    first = plan.start()
    clock.advance(1.25)
    action = plan.on_no_reply(first.attempt_no)
    assert action.provider == "anthropic"
    assert action.cancel == "openai"
    assert plan.attempts[0]["outcome"] == "no_reply"
    assert plan.attempts[0]["duration"] == pytest.approx(1.25)


def test_plan_ignores_result_of_other_attempt(clock: FakeClock) -> None:
    replica = _two_providers(clock)
    plan = plan_for(replica, clock)
    first = plan.start()
    assert plan.on_result(first.attempt_no + 1, ok=True, duration=0.0) is None
    assert plan.in_flight == ("openai", first.attempt_no)


def test_plan_ignores_late_result_after_no_reply(clock: FakeClock) -> None:
    replica = _two_providers(clock)
    plan = plan_for(replica, clock)
    first = plan.start()
    plan.on_no_reply(first.attempt_no)
    assert _succeed(plan, first) is None


def test_plan_ignores_wait_timer_while_attempt_in_flight(clock: FakeClock) -> None:
    replica = _two_providers(clock)
    plan = plan_for(replica, clock)
    plan.start()
    assert plan.on_wait_elapsed() is None


def test_plan_rejects_zero_deadline(clock: FakeClock) -> None:
    replica = _two_providers(clock)
    with pytest.raises(ValueError, match="deadline"):
        plan_for(replica, clock, deadline=0.0)
