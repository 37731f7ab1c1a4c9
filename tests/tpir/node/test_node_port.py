"""A real ``tpir run`` node spoken to over its stdin and stdout, as erlmcp does.

One node serves every test of this module; each test leaves it running and unharmed.
"""

from __future__ import annotations

import struct
import time
from typing import Any

import msgpack
import pytest

from tests.tpir.node.support import CHAT_REQUEST, INTEGRATION, NodeUnderTest, child_entry
from tpir.simulator import OPENAI_PATH, ProviderSimulator

pytestmark = pytest.mark.timeout(120)

MAX_FRAME_BYTES = 65536


def assert_ping_works(node: NodeUnderTest) -> None:
    reply = node.request("ping")
    assert reply["ok"] is True
    assert reply["result"] == "pong"


def test_node_ping_replies_pong(node: NodeUnderTest) -> None:
    node.send({"id": 1, "op": "ping"})

    assert node.reply_to(1) == {"id": 1, "ok": True, "result": "pong"}


def test_node_call_returns_result_and_attempts(
    node: NodeUnderTest, simulators: tuple[ProviderSimulator, ProviderSimulator]
) -> None:
    primary, _ = simulators
    before = primary.count(OPENAI_PATH)

    reply = node.request("call", integration=INTEGRATION, request=CHAT_REQUEST)

    assert reply["ok"] is True, reply
    assert reply["result"]["provider"] == "openai"
    assert reply["result"]["result"]["text"] == "Simulated reply to: hello"
    assert len(reply["result"]["attempts"]) == 1
    assert reply["result"]["attempts"][0]["outcome"] == "ok"
    assert primary.count(OPENAI_PATH) == before + 1


def test_node_call_error_keeps_router_code(node: NodeUnderTest) -> None:
    reply = node.request("call", integration=INTEGRATION, request={"no_messages": True})

    assert reply["ok"] is False
    assert reply["error"]["code"] == "invalid_request"
    assert_ping_works(node)


# (name, raw frame payload, expected error code, expected reply id)
BAD_FRAMES: list[tuple[str, bytes, str, Any]] = [
    ("reserved byte", b"\xc1", "invalid_msgpack", None),
    ("empty frame", b"", "invalid_msgpack", None),
    ("truncated map", b"\x82\xa2id\x01", "invalid_msgpack", None),
    ("trailing bytes", msgpack.packb({"id": 1, "op": "ping"}) + b"\xc0", "invalid_msgpack", None),
    ("array", msgpack.packb([1, "ping"]), "not_a_map", None),
    ("str", msgpack.packb("ping"), "not_a_map", None),
    ("bad utf8 with int id", b"\x83\xa2id\x07\xa2op\xa4ping\xa1x\xa1\xff", "invalid_utf8", 7),
    ("bad utf8 with str id", b"\x82\xa2id\xa2r1\xa2op\xa2\xc3\x28", "invalid_utf8", "r1"),
    ("bad utf8 in id", b"\x82\xa2id\xa1\xff\xa2op\xa4ping", "invalid_utf8", None),
    ("missing id", msgpack.packb({"op": "ping"}), "missing_field", None),
    ("missing op", msgpack.packb({"id": 5}), "missing_field", 5),
    ("float id", msgpack.packb({"id": 1.5, "op": "ping"}), "invalid_field", None),
    ("bool id", msgpack.packb({"id": True, "op": "ping"}), "invalid_field", None),
    ("nil id", msgpack.packb({"id": None, "op": "ping"}), "invalid_field", None),
    ("int op", msgpack.packb({"id": 6, "op": 12}), "invalid_field", 6),
    ("unknown op", msgpack.packb({"id": 8, "op": "launch"}), "unknown_op", 8),
    (
        "call without integration",
        msgpack.packb({"id": 10, "op": "call", "request": {}}),
        "invalid_argument",
        10,
    ),
    (
        "call with array request",
        msgpack.packb({"id": 11, "op": "call", "integration": "a", "request": [1]}),
        "invalid_argument",
        11,
    ),
    (
        "call with zero deadline",
        msgpack.packb({"id": 12, "op": "call", "integration": "a", "request": {}, "deadline": 0}),
        "invalid_argument",
        12,
    ),
    (
        "unknown argument",
        msgpack.packb({"id": "s", "op": "ping", "verbose": True}),
        "invalid_argument",
        "s",
    ),
    (
        "restore without offset",
        msgpack.packb({"id": 13, "op": "restore", "integration": "x", "at": "2024-01-01T00:00"}),
        "invalid_argument",
        13,
    ),
    (
        "recovery points with zero limit",
        msgpack.packb({"id": 14, "op": "recovery_points", "integration": "x", "limit": 0}),
        "invalid_argument",
        14,
    ),
    (
        "subscribe with unknown event",
        msgpack.packb({"id": 15, "op": "subscribe", "events": ["tick"]}),
        "invalid_argument",
        15,
    ),
    (
        "call to unknown integration",
        msgpack.packb({"id": 16, "op": "call", "integration": "payments", "request": {}}),
        "unknown_integration",
        16,
    ),
    (
        "status of unknown integration",
        msgpack.packb({"id": 17, "op": "status", "integration": "payments"}),
        "unknown_integration",
        17,
    ),
    (
        "reset of unknown provider",
        msgpack.packb(
            {"id": 18, "op": "reset_provider", "integration": INTEGRATION, "provider": "x"}
        ),
        "unknown_provider",
        18,
    ),
    (
        "terminate the bridge",
        msgpack.packb({"id": 19, "op": "terminate_child", "child": "bridge"}),
        "invalid_argument",
        19,
    ),
]


@pytest.mark.parametrize(
    ("payload", "code", "request_id"),
    [case[1:] for case in BAD_FRAMES],
    ids=[case[0] for case in BAD_FRAMES],
)
def test_node_rejects_bad_frame_then_serves(
    node: NodeUnderTest, payload: bytes, code: str, request_id: Any
) -> None:
    node.send_raw(payload)
    reply = node.receive()

    assert reply["ok"] is False
    assert reply["error"]["code"] == code
    assert reply["id"] == request_id
    assert isinstance(reply["error"]["message"], str)
    assert_ping_works(node)


def test_node_unknown_integration_names_known_ones(node: NodeUnderTest) -> None:
    reply = node.request("call", integration="payments", request={})

    assert "payments" in reply["error"]["message"]
    assert reply["error"]["details"]["known_integrations"] == [INTEGRATION]


def test_node_oversized_frame_keeps_sync(node: NodeUnderTest) -> None:
    big = msgpack.packb(
        {"id": 1, "op": "call", "integration": INTEGRATION, "request": {"blob": b"x" * 100_000}}
    )

    node.send_raw(big)
    reply = node.receive()

    assert reply["id"] is None
    assert reply["error"]["code"] == "frame_too_large"
    assert reply["error"]["details"] == {"length": len(big), "max_frame_bytes": MAX_FRAME_BYTES}
    assert_ping_works(node)


def test_node_oversized_then_ping_in_one_write(node: NodeUnderTest) -> None:
    oversized = b"\xc1" * (MAX_FRAME_BYTES + 1)
    ping = msgpack.packb({"id": 3, "op": "ping"})

    node.send_bytes(
        struct.pack(">I", len(oversized)) + oversized + struct.pack(">I", len(ping)) + ping
    )

    assert node.receive()["error"]["code"] == "frame_too_large"
    assert node.receive() == {"id": 3, "ok": True, "result": "pong"}


def test_node_answers_many_calls_in_any_order(node: NodeUnderTest) -> None:
    count = 30
    sent: list[int] = []
    for index in range(count):
        call_id = 1000 + index
        call = {"id": call_id, "op": "call", "integration": INTEGRATION, "request": CHAT_REQUEST}
        node.send(call)
        node.send({"id": 2000 + index, "op": "ping"})
        sent += [call_id, 2000 + index]

    replies = [node.receive(timeout=30) for _ in range(2 * count)]
    received = [reply["id"] for reply in replies]

    assert sorted(received) == sorted(sent)
    assert received != sent
    assert all(reply["ok"] for reply in replies), [r for r in replies if not r["ok"]][:3]
    assert node.next_item(timeout=0.5) is None


def test_node_status_lists_providers(node: NodeUnderTest) -> None:
    reply = node.request("status")

    (integration,) = reply["result"]["integrations"]
    providers = {provider["name"]: provider for provider in integration["providers"]}
    assert integration["name"] == INTEGRATION
    assert providers["openai"]["role"] == "primary"
    assert providers["anthropic"]["role"] == "secondary"
    assert providers["openai"]["breaker"] == "closed"
    assert providers["openai"]["status"] == "healthy"
    assert integration["router"]["integration"] == INTEGRATION
    assert integration["errors"] == []


def test_node_tree_shows_supervisors_and_providers(node: NodeUnderTest) -> None:
    tree = node.request("tree")["result"]
    base = f"tpir/integrations/{INTEGRATION}"

    assert tree["id"] == "tpir"
    assert tree["strategy"] == "one_for_one"
    assert [child["id"] for child in tree["children"]] == ["integrations", "bridge"]
    integration = child_entry(tree, base)["supervisor"]
    assert integration["strategy"] == "rest_for_one"
    assert [child["id"] for child in integration["children"]] == [
        "breakers",
        "providers",
        "health",
        "router",
    ]
    breaker = child_entry(tree, f"{base}/breakers/openai")
    assert breaker["status"] == "running"
    assert breaker["restarts"] == 0
    assert breaker["provider"] == {"role": "primary", "status": "healthy", "breaker": "closed"}
    assert child_entry(tree, f"{base}/providers/anthropic")["provider"]["role"] == "secondary"


def test_node_which_children_defaults_to_root(node: NodeUnderTest) -> None:
    reply = node.request("which_children")

    assert [child["id"] for child in reply["result"]] == ["integrations", "bridge"]


def test_node_which_children_of_integration(node: NodeUnderTest) -> None:
    reply = node.request("which_children", supervisor=f"integrations/{INTEGRATION}/providers")

    assert [child["id"] for child in reply["result"]] == ["openai", "anthropic"]


def test_node_which_children_of_missing_supervisor(node: NodeUnderTest) -> None:
    reply = node.request("which_children", supervisor="integrations/payments")

    assert reply["ok"] is False
    assert "payments" in reply["error"]["message"]


def test_node_recovery_points_lists_valid_points(node: NodeUnderTest) -> None:
    node.request("call", integration=INTEGRATION, request=CHAT_REQUEST)
    time.sleep(0.5)

    reply = node.request("recovery_points", integration=INTEGRATION, limit=50)

    points = reply["result"]["points"]
    keys = {point["actor_key"] for point in points}
    assert f"{INTEGRATION}/router" in keys
    assert f"{INTEGRATION}/openai/breaker" in keys
    assert all(point["valid"] for point in points)
    assert len(points) <= 50


def test_node_restore_reports_every_actor(node: NodeUnderTest) -> None:
    reply = node.request("restore", integration=INTEGRATION, at=time.time())

    actors = reply["result"]["actors"]
    assert len(actors) == 5
    assert [path for path, outcome in actors.items() if "error" in outcome] == []
    assert actors[f"tpir/integrations/{INTEGRATION}/router"]["restored_at"] is not None


def test_node_restore_before_any_point_restores_nothing(node: NodeUnderTest) -> None:
    reply = node.request("restore", integration=INTEGRATION, at="2000-01-01T00:00:00+00:00")

    outcomes = reply["result"]["actors"].values()
    assert all(outcome["restored_at"] is None for outcome in outcomes)


def test_node_reset_of_healthy_provider_rejected(node: NodeUnderTest) -> None:
    reply = node.request("reset_provider", integration=INTEGRATION, provider="openai")

    assert reply["ok"] is False
    assert reply["error"]["code"] == "invalid_state"


def test_node_subscribe_replies_with_events(node: NodeUnderTest) -> None:
    reply = node.request("subscribe", events=["failover", "child_restarted"])

    assert reply["result"] == {"events": ["child_restarted", "failover"]}
