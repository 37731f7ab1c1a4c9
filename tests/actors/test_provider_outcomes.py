"""The provider actor's pure rules: breaker outcomes, timeout checks, failure dicts, totals."""

from __future__ import annotations

import math

import pytest

from actors.adapters import Failure, FailureKind
from actors.adapters.errors import status_failure
from actors.provider import (
    AttemptTotals,
    breaker_outcome,
    check_attempt_timeout,
    invalid_attempt_failure,
    unexpected_error_failure,
)

pytestmark = pytest.mark.timeout(10)

FAILURE_KEYS = (
    "kind",
    "message",
    "may_have_reached_provider",
    "retryable",
    "status",
    "retry_after",
)


def _transport(kind: FailureKind) -> dict[str, object]:
    failure = Failure(
        kind=kind,
        provider="openai",
        message="transport failure",
        may_have_reached_provider=kind is not FailureKind.CONNECT_ERROR,
        retryable=True,
    )
    return failure.to_dict()


def _status(status: int, **options: object) -> dict[str, object]:
    return status_failure(provider="openai", status=status, message="error", **options).to_dict()


def test_breaker_outcome_success_without_failure():
    assert breaker_outcome(None) == "success"


@pytest.mark.parametrize(
    "kind",
    [
        FailureKind.CONNECT_ERROR,
        FailureKind.CONNECT_TIMEOUT,
        FailureKind.WRITE_TIMEOUT,
        FailureKind.WRITE_ERROR,
        FailureKind.READ_TIMEOUT,
        FailureKind.DROPPED_MID_RESPONSE,
    ],
)
def test_breaker_outcome_transport_kind_is_failure(kind):
    assert breaker_outcome(_transport(kind)) == "failure"


@pytest.mark.parametrize("status", [500, 502, 503, 504, 529, 501, 505])
def test_breaker_outcome_5xx_is_failure(status):
    assert breaker_outcome(_status(status)) == "failure"


@pytest.mark.parametrize("status", [401, 403, 408, 429])
def test_breaker_outcome_provider_fault_4xx_is_failure(status):
    assert breaker_outcome(_status(status)) == "failure"


def test_breaker_outcome_quota_429_is_failure():
    quota = _status(429, error_code="insufficient_quota", retryable=False)
    assert breaker_outcome(quota) == "failure"


@pytest.mark.parametrize("status", [400, 404, 409, 413, 422])
def test_breaker_outcome_request_4xx_is_ignored(status):
    assert breaker_outcome(_status(status)) == "ignored"


@pytest.mark.parametrize("kind", [FailureKind.INVALID_REQUEST, FailureKind.CANCELLED])
def test_breaker_outcome_caller_kind_is_ignored(kind):
    failure = Failure(
        kind=kind,
        provider="openai",
        message="not the provider's fault",
        may_have_reached_provider=False,
        retryable=False,
    ).to_dict()
    assert breaker_outcome(failure) == "ignored"


def test_breaker_outcome_invalid_response_is_failure():
    failure = Failure(
        kind=FailureKind.INVALID_RESPONSE,
        provider="openai",
        message="truncated JSON",
        may_have_reached_provider=True,
        retryable=False,
        status=200,
    ).to_dict()
    assert breaker_outcome(failure) == "failure"


def test_breaker_outcome_unknown_kind_is_failure():
    assert breaker_outcome({"kind": "tls_error", "status": None}) == "failure"


@pytest.mark.parametrize("timeout", [0.001, 0.5, 1, 3600])
def test_check_attempt_timeout_accepts_valid(timeout):
    assert check_attempt_timeout(timeout) is None


@pytest.mark.parametrize("timeout", [0, -1.0, 3600.5, math.inf, math.nan, True, "1", None])
def test_check_attempt_timeout_rejects_invalid(timeout):
    problem = check_attempt_timeout(timeout)
    assert problem is not None
    assert problem.startswith("timeout: invalid value")
    assert "greater than 0" in problem


def test_invalid_attempt_failure_fields():
    failure = invalid_attempt_failure("openai", "timeout: invalid value 0")
    for key in FAILURE_KEYS:
        assert key in failure, key
    assert failure["kind"] == "invalid_request"
    assert failure["may_have_reached_provider"] is False
    assert failure["retryable"] is False
    assert failure["message"] == "timeout: invalid value 0"


def test_unexpected_error_failure_fields():
    failure = unexpected_error_failure("openai", "KeyError: 'choices'")
    for key in FAILURE_KEYS:
        assert key in failure, key
    assert failure["kind"] == "invalid_response"
    assert failure["may_have_reached_provider"] is True
    assert failure["retryable"] is False
    assert "KeyError: 'choices'" in failure["message"]


def test_attempt_totals_count_and_keep_last_failure():
    totals = AttemptTotals()
    totals.record_success()
    totals.record_failure("http_status", 503, 100.0)
    totals.record_failure("read_timeout", None, 200.0)
    totals.record_cancelled(2)
    described = totals.to_dict()
    assert described["successes"] == 1
    assert described["failures"] == 2
    assert described["cancelled"] == 2
    assert described["last_failure_kind"] == "read_timeout"
    assert described["last_failure_status"] is None
    assert described["last_failure_at"] == 200.0
