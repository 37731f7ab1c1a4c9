"""Pure parts of the bridge: request plans, the views built from replies, wire values."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import pytest

from actors.messages import BreakerUpdate, IntegrationCall, Restore, StatusUpdate
from supervisors import api
from supervisors.messages import ErrorInfo, Reply
from tpir.bridge.protocol import ProtocolError, Request
from tpir.config import load_config
from tpir.node.plans import (
    CALL_GRACE_SECONDS,
    Plan,
    build_plan,
    supervisor_path,
)
from tpir.node.views import annotate_tree, status_result
from tpir.node.wire import parse_timestamp, to_wire

pytestmark = pytest.mark.timeout(30)

CONFIG = load_config()
INTEGRATION = CONFIG.integrations[0]
ROUTER = "tpir/integrations/llm_provider/router"


def request(op: str, **args: Any) -> Request:
    return Request(7, op, MappingProxyType(args))


def plan_of(op: str, **args: Any) -> Plan:
    plan = build_plan(request(op, **args), CONFIG)
    assert isinstance(plan, Plan), plan
    return plan


def ok(value: Any) -> Reply:
    return Reply(0, value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "tpir"),
        ("tpir", "tpir"),
        ("/tpir/integrations/", "tpir/integrations"),
        ("integrations/llm_provider", "tpir/integrations/llm_provider"),
        ("", "tpir"),
    ],
)
def test_supervisor_path_resolves_argument(value: str | None, expected: str) -> None:
    assert supervisor_path(value) == expected


def test_call_plan_targets_router_with_deadline() -> None:
    plan = plan_of("call", integration="llm_provider", request={"messages": []}, deadline=2.5)

    (target,) = plan.targets
    assert target.path == ROUTER
    assert target.integration == "llm_provider"
    assert isinstance(target.body, IntegrationCall)
    assert target.body.deadline == 2.5
    assert plan.timeout == 2.5 + CALL_GRACE_SECONDS


def test_call_plan_defaults_to_integration_timeout() -> None:
    plan = plan_of("call", integration="llm_provider", request={}, idempotency_key="k1")

    assert plan.timeout == INTEGRATION.timeout + CALL_GRACE_SECONDS
    assert plan.targets[0].body.idempotency_key == "k1"


def test_call_plan_passes_router_error_code() -> None:
    plan = plan_of("call", integration="llm_provider", request={})
    error = Reply(0, error=ErrorInfo("deadline_exceeded", "too slow", {"attempts": []}))

    outcome = plan.finish({ROUTER: error})

    assert isinstance(outcome, ProtocolError)
    assert outcome.code == "deadline_exceeded"
    assert outcome.details == {"attempts": []}


def test_unknown_integration_lists_known_ones() -> None:
    outcome = build_plan(request("call", integration="payments", request={}), CONFIG)

    assert isinstance(outcome, ProtocolError)
    assert outcome.code == "unknown_integration"
    assert outcome.details["known_integrations"] == ["llm_provider"]
    assert outcome.request_id == 7


def test_unknown_provider_lists_known_ones() -> None:
    outcome = build_plan(
        request("reset_provider", integration="llm_provider", provider="mistral"), CONFIG
    )

    assert isinstance(outcome, ProtocolError)
    assert outcome.code == "unknown_provider"
    assert outcome.details["known_providers"] == ["openai", "anthropic"]


def test_terminating_bridge_is_rejected() -> None:
    outcome = build_plan(request("terminate_child", child="bridge"), CONFIG)

    assert isinstance(outcome, ProtocolError)
    assert outcome.code == "invalid_argument"


def test_restore_plan_asks_every_stateful_actor() -> None:
    plan = plan_of("restore", integration="llm_provider", at="2024-05-01T00:00:00+00:00")

    paths = sorted(target.path for target in plan.targets)
    assert paths == sorted(
        [
            "tpir/integrations/llm_provider/breakers/openai",
            "tpir/integrations/llm_provider/breakers/anthropic",
            "tpir/integrations/llm_provider/health/openai",
            "tpir/integrations/llm_provider/health/anthropic",
            ROUTER,
        ]
    )
    assert all(isinstance(target.body, Restore) for target in plan.targets)
    assert plan.targets[0].body.at == 1714521600.0


def test_restore_result_reports_each_actor() -> None:
    plan = plan_of("restore", integration="llm_provider", at=100.0)
    replies = {target.path: ok(None) for target in plan.targets}
    replies[ROUTER] = ok(99.5)
    replies["tpir/integrations/llm_provider/health/openai"] = Reply(
        0, error=ErrorInfo("timeout", "no reply")
    )

    result = plan.finish(replies)

    assert result["actors"][ROUTER]["restored_at"] == 99.5
    assert result["actors"]["tpir/integrations/llm_provider/breakers/openai"]["restored_at"] is None
    assert result["actors"]["tpir/integrations/llm_provider/health/openai"] == {
        "error": "timeout: no reply"
    }


def test_tree_plan_asks_root_for_snapshot() -> None:
    plan = plan_of("tree")

    assert plan.targets[0].path == "tpir"
    assert isinstance(plan.targets[0].body, api.Snapshot)
    assert plan.targets[0].body.timeout < plan.timeout


def test_plan_rejects_bridge_own_operation() -> None:
    with pytest.raises(ValueError, match="handles it itself"):
        build_plan(request("ping"), CONFIG)


def state_replies() -> dict[str, Reply]:
    base = "tpir/integrations/llm_provider"
    return {
        f"{base}/breakers/openai": ok(BreakerUpdate("openai", "open", 123.0)),
        f"{base}/health/openai": ok(StatusUpdate("openai", "failed")),
        f"{base}/breakers/anthropic": ok({"state": "closed", "retry_at": None}),
        ROUTER: ok({"calls_in_flight": 0}),
    }


def test_status_view_merges_breaker_and_health() -> None:
    result = status_result(CONFIG.integrations, state_replies(), "tpir")

    (view,) = result["integrations"]
    openai, anthropic = view["providers"]
    assert openai["role"] == "primary"
    assert openai["breaker"] == "open"
    assert openai["retry_at"] == 123.0
    assert openai["status"] == "failed"
    assert anthropic["breaker"] == "closed"
    assert anthropic["status"] is None
    assert view["errors"] == ["health checker of anthropic: no reply"]


def test_tree_view_annotates_provider_workers() -> None:
    def worker(child_id: str) -> dict[str, Any]:
        return {"id": child_id, "pid": 1, "status": "running", "restarts": 0}

    def group(child_id: str) -> dict[str, Any]:
        path = f"tpir/integrations/llm_provider/{child_id}"
        children = [worker("openai"), worker("anthropic")]
        return {"id": child_id, "supervisor": {"path": path, "children": children}}

    integration = {
        "id": "llm_provider",
        "supervisor": {
            "path": "tpir/integrations/llm_provider",
            "children": [group("breakers"), group("health"), worker("router")],
        },
    }
    integrations = {"id": "integrations", "supervisor": {"path": "tpir/integrations"}}
    integrations["supervisor"]["children"] = [integration]
    snapshot = {"id": "tpir", "path": "tpir", "children": [integrations]}

    tree = annotate_tree(snapshot, CONFIG.integrations, state_replies(), "tpir")

    node = tree["children"][0]["supervisor"]["children"][0]["supervisor"]
    breakers = node["children"][0]["supervisor"]["children"]
    assert breakers[0]["provider"] == {"role": "primary", "status": "failed", "breaker": "open"}
    assert node["integration"]["name"] == "llm_provider"
    assert "provider" not in node["children"][2]


class Color(enum.Enum):
    RED = "red"


@dataclass(frozen=True)
class Point:
    x: float
    tags: frozenset[str]


def test_to_wire_converts_python_values() -> None:
    value = {"point": Point(math.nan, frozenset({"b", "a"})), 3: (Color.RED, b"\x00")}

    assert to_wire(value) == {"point": {"x": None, "tags": ["a", "b"]}, 3: ["red", b"\x00"]}


def test_to_wire_falls_back_to_repr() -> None:
    assert to_wire(object) == repr(object)


def test_parse_timestamp_reads_iso_with_offset() -> None:
    assert parse_timestamp("1970-01-01T01:00:00+01:00") == 0.0


def test_parse_timestamp_rejects_iso_without_offset() -> None:
    with pytest.raises(ValueError, match="needs a UTC offset"):
        parse_timestamp("2024-05-01T12:00:00")
