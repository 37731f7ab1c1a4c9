"""The pass-through adapter against the simulator's echo paths."""

from __future__ import annotations

import httpx
import pytest

from actors.adapters import FailureKind, HttpAdapter
from tests.actors.adapters.support import http_adapter, send
from tpir.simulator import ProviderSimulator

pytestmark = pytest.mark.timeout(30)


def test_http_json_body_echoed(simulator: ProviderSimulator) -> None:
    request = {
        "method": "POST",
        "path": "/v2/charges?expand=customer",
        "headers": {"X-Trace": "t-1"},
        "body": {"amount": 100, "currency": "eur"},
    }

    outcome = send(http_adapter(simulator), request)

    assert outcome.ok
    echo = outcome.value["body"]
    assert outcome.value["status"] == 200
    assert echo["method"] == "POST"
    assert echo["path"] == "/v2/charges"
    assert echo["query"] == "expand=customer"
    assert echo["body"] == {"amount": 100, "currency": "eur"}
    assert echo["headers"]["x-trace"] == "t-1"
    assert echo["headers"]["content-type"] == "application/json"


def test_http_result_headers_lower_case(simulator: ProviderSimulator) -> None:
    outcome = send(http_adapter(simulator), {"method": "GET", "path": "/status"})

    assert outcome.ok
    assert outcome.value["headers"]["content-type"] == "application/json"
    assert all(name == name.lower() for name in outcome.value["headers"])


def test_http_bytes_body_sent_unchanged(simulator: ProviderSimulator) -> None:
    request = {
        "method": "PUT",
        "path": "/blob",
        "headers": {"Content-Type": "application/octet-stream"},
        "body": b"\x00\x01\xff",
    }

    outcome = send(http_adapter(simulator), request)

    assert outcome.ok
    assert simulator.requests[-1].body == b"\x00\x01\xff"


def test_http_text_body_sent_as_utf8(simulator: ProviderSimulator) -> None:
    outcome = send(http_adapter(simulator), {"method": "POST", "path": "/t", "body": "grüße"})

    assert outcome.ok
    assert simulator.requests[-1].body == "grüße"


def test_http_api_key_sent_as_bearer(simulator: ProviderSimulator) -> None:
    adapter = http_adapter(simulator, api_key="pk-secret-value")
    request = {"method": "GET", "path": "/me", "headers": {"Authorization": "Basic abc"}}

    outcome = send(adapter, request)

    assert outcome.ok
    assert outcome.value["body"]["headers"]["authorization"] == "Bearer ***"


def test_http_not_found_not_retryable(simulator: ProviderSimulator) -> None:
    simulator.set_mode(404, message="no such charge")

    outcome = send(http_adapter(simulator), {"method": "GET", "path": "/charges/1"})

    assert outcome.kind is FailureKind.HTTP_STATUS
    assert outcome.status == 404
    assert outcome.retryable is False
    assert outcome.message == "no such charge"
    assert outcome.error_type == "not_found"


def test_http_gateway_html_error_message(simulator: ProviderSimulator) -> None:
    simulator.set_mode(502)

    outcome = send(http_adapter(simulator), {"method": "GET", "path": "/x"})

    assert outcome.status == 502
    assert "text/html" in outcome.message


@pytest.mark.parametrize(
    ("request_body", "field"),
    [
        ({"method": "BREW", "path": "/"}, "method"),
        ({"method": "GET", "path": "relative"}, "path"),
        ({"method": "GET", "path": "@evil.example/x"}, "path"),
        ({"method": "GET", "path": "//evil.example/x"}, "path"),
        ({"method": "GET", "path": "/a b"}, "path"),
        ({"method": "GET", "path": "/", "headers": {"Host": "other"}}, "headers"),
        ({"method": "GET", "path": "/", "headers": {"X": 1}}, "headers"),
        ({"method": "POST", "path": "/", "body": {1, 2}}, "body"),
        ({"method": "GET", "path": "/", "extra": 1}, "request"),
    ],
)
def test_http_invalid_request_names_field(request_body: dict[str, object], field: str) -> None:
    adapter = HttpAdapter(base_url="http://127.0.0.1:9")

    with pytest.raises(ValueError, match=f"^{field}:"):
        adapter.build_request(request_body)


def test_http_invalid_request_not_sent(simulator: ProviderSimulator) -> None:
    outcome = send(http_adapter(simulator), {"method": "GET", "path": "no-slash"})

    assert outcome.kind is FailureKind.INVALID_REQUEST
    assert simulator.count() == 0


def test_http_empty_body_is_none() -> None:
    adapter = HttpAdapter(base_url="http://127.0.0.1:9")

    outcome = adapter.parse_response(204, httpx.Headers(), b"")

    assert outcome.ok
    assert outcome.value["body"] is None


def test_http_binary_body_kept_as_bytes() -> None:
    adapter = HttpAdapter(base_url="http://127.0.0.1:9")
    headers = httpx.Headers({"content-type": "application/pdf"})

    outcome = adapter.parse_response(200, headers, b"%PDF-1.7")

    assert outcome.value["body"] == b"%PDF-1.7"


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("ftp://127.0.0.1/", "http:// or https://"),
        ("http://127.0.0.1:1/v1?x=1", "query or fragment"),
        ("127.0.0.1:8080", "http:// or https://"),
    ],
)
def test_adapter_rejects_bad_base_url(base_url: str, message: str) -> None:
    with pytest.raises(ValueError, match="base_url") as caught:
        HttpAdapter(base_url=base_url)

    assert message in str(caught.value)


def test_adapter_rejects_secret_static_header() -> None:
    with pytest.raises(ValueError, match="api_key"):
        HttpAdapter(base_url="http://127.0.0.1:9", headers={"Authorization": "Bearer x"})
