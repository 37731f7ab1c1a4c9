"""Tests for actors.router.rules and actors.router.attempts: config conversion and checks."""

from __future__ import annotations

import math
import random

import pytest

from actors.policy.retry import ErrorKind, Outcome
from actors.router import (
    AttemptFailure,
    build_validators,
    check_call,
    is_idempotent,
    retry_policy,
    rules_for,
)
from tpir.config import RetryConfig, load_config, parse_config

pytestmark = pytest.mark.timeout(30)

CHAT = {"messages": [{"role": "user", "content": "hello"}]}

_TWO_HTTP = """
[[integrations]]
name = "payments"
tier = 1
timeout = 5.0

[[integrations.providers]]
name = "stripe"
kind = "http"
base_url = "http://127.0.0.1:9/v1"
weight = 3

[[integrations.providers]]
name = "adyen"
kind = "http"
base_url = "http://127.0.0.1:9/v2"

[[integrations.providers]]
name = "backup"
kind = "http"
role = "fallback"
base_url = "http://127.0.0.1:9/v3"
"""

_MIXED_MODELS = """
[[integrations]]
name = "llm"
tier = 1

[[integrations.providers]]
name = "openai"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"

[[integrations.providers]]
name = "anthropic"
kind = "anthropic"
role = "secondary"
base_url = "http://127.0.0.1:9/v1"
model = "claude"
"""


def _llm():
    return load_config().integration("llm_provider")


def test_retry_policy_keeps_config_retries() -> None:
    policy = retry_policy(RetryConfig(max_retries=4))
    assert policy.max_retries == 4


def test_retry_policy_retries_default_statuses() -> None:
    policy = retry_policy(RetryConfig())
    for status in (429, 500, 502, 503, 504, 529):
        assert policy.is_retryable(Outcome.http(status))


def test_retry_policy_does_not_retry_400() -> None:
    assert not retry_policy(RetryConfig()).is_retryable(Outcome.http(400))


def test_retry_policy_retries_default_kinds() -> None:
    policy = retry_policy(RetryConfig())
    assert policy.retryable == {
        ErrorKind.CONNECT_ERROR,
        ErrorKind.CONNECT_TIMEOUT,
        ErrorKind.READ_TIMEOUT,
    }


def test_retry_policy_delays_stay_within_max_delay() -> None:
    policy = retry_policy(RetryConfig(initial_delay=0.05, max_delay=0.2, jitter=0.5))
    delays = [policy.backoff.delay(n, random.Random(n)) for n in range(50)]
    assert all(math.isfinite(d) and 0 <= d <= 0.2 for d in delays)


def test_rules_for_uses_provider_timeout() -> None:
    built = rules_for(_llm().providers)
    assert built["openai"].timeout == pytest.approx(0.5)
    assert built["anthropic"].role == "secondary"


def test_rules_for_keeps_order_for_default_weights() -> None:
    built = rules_for(_llm().providers)
    assert built["openai"].weight is None


def test_rules_for_weights_role_with_set_weight() -> None:
    providers = parse_config(_TWO_HTTP).integration("payments").providers
    built = rules_for(providers)
    assert built["stripe"].weight == pytest.approx(3.0)
    assert built["adyen"].weight == pytest.approx(1.0)
    assert built["backup"].weight is None


@pytest.mark.parametrize(
    ("request_", "kinds", "key", "expected"),
    [
        (CHAT, ["openai"], None, True),
        (CHAT, ["anthropic"], "key-1", True),
        ({"method": "GET", "path": "/"}, ["http"], None, True),
        ({"method": "put", "path": "/"}, ["http"], None, True),
        ({"method": "DELETE", "path": "/"}, ["http"], None, True),
        ({"method": "POST", "path": "/"}, ["http"], None, False),
        ({"method": "patch", "path": "/"}, ["http"], None, False),
        ({"method": "POST", "path": "/"}, ["http"], "key-2", True),
    ],
)
def test_is_idempotent(request_: dict, kinds: list[str], key: str | None, expected: bool) -> None:
    assert is_idempotent(request_, kinds, key) is expected


def test_check_call_accepts_chat_request() -> None:
    check = check_call(CHAT, None, None, build_validators(_llm().providers))
    assert check.error is None
    assert check.eligible == ("openai", "anthropic")


@pytest.mark.parametrize(
    ("request_", "deadline", "key", "field"),
    [
        ("hello", None, None, "request"),
        (CHAT, 0, None, "deadline"),
        (CHAT, -1.0, None, "deadline"),
        (CHAT, float("nan"), None, "deadline"),
        (CHAT, 7200.0, None, "deadline"),
        (CHAT, True, None, "deadline"),
        (CHAT, None, "bad\nkey", "idempotency_key"),
        ({"method": "GET", "path": "/"}, None, None, "messages"),
        ({"messages": []}, None, None, "messages"),
    ],
)
def test_check_call_rejects_invalid_call(
    request_: object, deadline: object, key: object, field: str
) -> None:
    check = check_call(request_, deadline, key, build_validators(_llm().providers))
    assert check.error is not None
    assert field in check.error


def test_check_call_rejects_chat_request_for_http_integration() -> None:
    providers = parse_config(_TWO_HTTP).integration("payments").providers
    check = check_call(CHAT, None, None, build_validators(providers))
    assert check.error is not None
    assert "fits no provider" in check.error


def test_check_call_lists_provider_that_rejected_request() -> None:
    providers = parse_config(_MIXED_MODELS).integration("llm").providers
    check = check_call(CHAT, 2.0, None, build_validators(providers))
    assert check.eligible == ("anthropic",)
    assert "model: missing" in check.rejected["openai"]


# -- attempts ---------------------------------------------------------------------------


def test_attempt_failure_parses_adapter_dict() -> None:
    parsed = AttemptFailure.from_dict(
        {
            "kind": "http_status",
            "provider": "openai",
            "message": "overloaded",
            "may_have_reached_provider": True,
            "retryable": True,
            "status": 529,
            "retry_after": 2,
            "error_type": "overloaded_error",
        }
    )
    assert parsed.status == 529
    assert parsed.retry_after == pytest.approx(2.0)
    assert parsed.to_outcome() == Outcome.http(529, 2.0)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("write_timeout", ErrorKind.WRITE_ERROR),
        ("no_reply", ErrorKind.READ_TIMEOUT),
        ("provider_crashed", ErrorKind.READ_TIMEOUT),
        ("provider_unavailable", ErrorKind.CONNECT_ERROR),
        ("connect_error", ErrorKind.CONNECT_ERROR),
        ("something_new", ErrorKind.INVALID_RESPONSE),
    ],
)
def test_attempt_failure_maps_kind_to_policy(kind: str, expected: ErrorKind) -> None:
    assert AttemptFailure(kind, "text").to_outcome().kind is expected


def test_attempt_failure_without_reach_flag_counts_as_reached() -> None:
    parsed = AttemptFailure.from_dict({"kind": "read_timeout", "message": "slow"})
    assert parsed.may_have_reached_provider is True


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "http_status", "status": 999},
        {"kind": "http_status", "status": "503"},
        {"kind": "http_status", "status": True},
    ],
)
def test_attempt_failure_drops_invalid_status(data: dict) -> None:
    parsed = AttemptFailure.from_dict(data)
    assert parsed.status is None
    assert parsed.to_outcome().kind is ErrorKind.INVALID_RESPONSE


@pytest.mark.parametrize("retry_after", [-1, float("inf"), "soon", True])
def test_attempt_failure_drops_invalid_retry_after(retry_after: object) -> None:
    parsed = AttemptFailure.from_dict(
        {"kind": "http_status", "status": 429, "retry_after": retry_after}
    )
    assert parsed.retry_after is None


def test_attempt_failure_without_dict_is_crash() -> None:
    assert AttemptFailure.from_dict(None).kind == "provider_crashed"


def test_attempt_failure_client_error_is_4xx_status() -> None:
    assert AttemptFailure("http_status", "x", status=404).is_client_error
    assert not AttemptFailure("http_status", "x", status=503).is_client_error
