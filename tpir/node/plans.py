"""The calls that the bridge sends for each port operation, and how it builds the reply.

`build_plan` turns a validated request into a `Plan`: the calls to send (one `Target`
each, by actor path), how long to wait for their replies, and a function that builds the
reply from them. It is pure, so the bridge actor only sends, waits and replies.

Timeouts, in seconds:

- ``call``: the request's ``deadline``, else the integration's ``timeout``, plus
  `CALL_GRACE_SECONDS`, so that the router's own deadline error arrives first.
- ``status``, ``tree``, ``which_children``, ``reset_provider``: `QUERY_TIMEOUT_SECONDS`.
- ``restore``: `RESTORE_TIMEOUT_SECONDS`.
- ``restart_child``, ``terminate_child``: `CHANGE_TIMEOUT_SECONDS`, longer than a
  child's default start timeout of 30 s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from actors.messages import Describe, IntegrationCall, ResetProvider, Restore, StateRequest
from actors.names import ROOT, breaker_path, health_path, router_path
from supervisors import api
from supervisors.messages import Reply
from tpir.bridge.protocol import ErrorCode, ProtocolError, Request
from tpir.config import Config, Integration
from tpir.node.views import annotate_tree, reply_error_text, status_result
from tpir.node.wire import iso_time, parse_timestamp, to_wire

__all__ = [
    "CALL_GRACE_SECONDS",
    "CHANGE_TIMEOUT_SECONDS",
    "QUERY_TIMEOUT_SECONDS",
    "RESTORE_TIMEOUT_SECONDS",
    "BRIDGE_CHILD_ID",
    "Plan",
    "Target",
    "build_plan",
    "find_integration",
    "supervisor_path",
    "error_from_reply",
]

CALL_GRACE_SECONDS: Final = 1.0
QUERY_TIMEOUT_SECONDS: Final = 5.0
RESTORE_TIMEOUT_SECONDS: Final = 10.0
CHANGE_TIMEOUT_SECONDS: Final = 35.0
BRIDGE_CHILD_ID: Final = "bridge"

Finish = Callable[[Mapping[str, Reply]], Any]


@dataclass(frozen=True)
class Target:
    """One call to send: the actor's path, the call body and the router flag.

    ``integration`` is set when the target is that integration's router, whose address
    the bridge caches after its first reply.
    """

    path: str
    body: Any
    integration: str | None = None


@dataclass(frozen=True)
class Plan:
    """The calls of one request, the seconds to wait for them and the reply builder.

    ``finish`` receives every target's ``Reply`` keyed by target path (a missing reply is
    an error ``Reply`` with code ``timeout``) and returns the result to send, or a
    `ProtocolError` to send as an error reply.
    """

    targets: tuple[Target, ...]
    timeout: float
    finish: Finish


def error_from_reply(reply: Reply) -> ProtocolError:
    """Return the error reply for an actor's error ``Reply``, keeping its code."""
    assert reply.error is not None
    return ProtocolError(reply.error.code, reply.error.message, to_wire(reply.error.details))


def find_integration(config: Config, name: str, request_id: Any) -> Integration | ProtocolError:
    """Return the integration called ``name``, or the ``unknown_integration`` error."""
    for integration in config.integrations:
        if integration.name == name:
            return integration
    known = [integration.name for integration in config.integrations]
    return ProtocolError(
        "unknown_integration",
        f"unknown integration {name[:64]!r}. Known integrations: {', '.join(known) or 'none'}",
        {"integration": name[:64], "known_integrations": known},
        request_id,
    )


def supervisor_path(value: str | None, root: str = ROOT) -> str:
    """Return the full path of a supervisor argument: absent is the root, and a path
    without the root's name in front is taken as relative to the root."""
    if value is None:
        return root
    parts = [part for part in value.split("/") if part]
    if not parts:
        return root
    if parts[0] != root:
        parts.insert(0, root)
    return "/".join(parts)


def _single(path: str) -> Finish:
    def finish(replies: Mapping[str, Reply]) -> Any:
        reply = replies[path]
        return to_wire(reply.value) if reply.ok else error_from_reply(reply)

    return finish


def _state_targets(integration: Integration, root: str) -> list[Target]:
    targets = [Target(router_path(integration.name, root), Describe(), integration.name)]
    for provider in integration.providers:
        targets.append(Target(breaker_path(integration.name, provider.name, root), StateRequest()))
        targets.append(Target(health_path(integration.name, provider.name, root), StateRequest()))
    return targets


def _plan_call(request: Request, integration: Integration, root: str) -> Plan:
    args = request.args
    deadline = args.get("deadline")
    body = IntegrationCall(
        request=dict(args["request"]),
        deadline=float(deadline) if deadline is not None else None,
        idempotency_key=args.get("idempotency_key"),
        priority=int(args.get("priority", 0)),
    )
    budget = float(deadline) if deadline is not None else integration.timeout
    path = router_path(integration.name, root)
    return Plan((Target(path, body, integration.name),), budget + CALL_GRACE_SECONDS, _single(path))


def _plan_status(integrations: tuple[Integration, ...], root: str) -> Plan:
    targets = [target for item in integrations for target in _state_targets(item, root)]

    def finish(replies: Mapping[str, Reply]) -> Any:
        return status_result(integrations, replies, root)

    return Plan(tuple(targets), QUERY_TIMEOUT_SECONDS, finish)


def _plan_tree(integrations: tuple[Integration, ...], root: str) -> Plan:
    # The root gathers its subtree's snapshots within this time, before the plan's
    # own timeout, so a slow supervisor shows up as an error inside the tree.
    snapshot = Target(root, api.Snapshot(QUERY_TIMEOUT_SECONDS * 0.6))
    targets = [snapshot] + [t for item in integrations for t in _state_targets(item, root)]

    def finish(replies: Mapping[str, Reply]) -> Any:
        reply = replies[root]
        if not reply.ok:
            return error_from_reply(reply)
        return annotate_tree(reply.value, integrations, replies, root)

    return Plan(tuple(targets), QUERY_TIMEOUT_SECONDS, finish)


def _plan_restore(request: Request, integration: Integration, root: str) -> Plan | ProtocolError:
    try:
        at = parse_timestamp(request.args["at"])
    except ValueError as exc:
        return ProtocolError(
            ErrorCode.INVALID_ARGUMENT,
            f"argument 'at' of operation 'restore' is invalid: {exc}",
            {"op": "restore", "argument": "at"},
            request.id,
        )
    paths = [breaker_path(integration.name, p.name, root) for p in integration.providers]
    paths += [health_path(integration.name, p.name, root) for p in integration.providers]
    router = router_path(integration.name, root)
    targets = [Target(path, Restore(at)) for path in paths]
    targets.append(Target(router, Restore(at), integration.name))

    def finish(replies: Mapping[str, Reply]) -> Any:
        restored: dict[str, Any] = {}
        for target in targets:
            reply = replies[target.path]
            if reply.ok:
                point_time = reply.value if isinstance(reply.value, int | float) else None
                restored[target.path] = {
                    "restored_at": point_time,
                    "restored_at_iso": iso_time(point_time),
                }
            else:
                restored[target.path] = {"error": reply_error_text(reply)}
        return {
            "integration": integration.name,
            "at": at,
            "at_iso": iso_time(at),
            "actors": restored,
        }

    return Plan(tuple(targets), RESTORE_TIMEOUT_SECONDS, finish)


def _plan_child_change(request: Request, root: str) -> Plan | ProtocolError:
    supervisor = supervisor_path(request.args.get("supervisor"), root)
    child = request.args["child"]
    if request.op == "terminate_child" and supervisor == root and child == BRIDGE_CHILD_ID:
        return ProtocolError(
            ErrorCode.INVALID_ARGUMENT,
            f"terminating child '{BRIDGE_CHILD_ID}' of '{root}' would end the connection "
            "that carries this request; stop the node by closing its input instead",
            {"op": request.op, "argument": "child"},
            request.id,
        )
    body = api.TerminateChild(child) if request.op == "terminate_child" else api.RestartChild(child)
    return Plan((Target(supervisor, body),), CHANGE_TIMEOUT_SECONDS, _single(supervisor))


def build_plan(request: Request, config: Config, root: str = ROOT) -> Plan | ProtocolError:
    """Return the plan of a request whose operation goes to actors.

    Raises ValueError for ``ping``, ``subscribe`` and ``recovery_points``, which the
    bridge handles itself, and for an operation missing from the protocol table.
    """
    op = request.op
    args = request.args
    if op in ("call", "restore", "reset_provider") or (
        op == "status" and args.get("integration") is not None
    ):
        found = find_integration(config, args["integration"], request.id)
        if isinstance(found, ProtocolError):
            return found
        integration = found
        if op == "call":
            return _plan_call(request, integration, root)
        if op == "restore":
            return _plan_restore(request, integration, root)
        if op == "status":
            return _plan_status((integration,), root)
        return _plan_reset(request, integration, root)
    if op == "status":
        return _plan_status(config.integrations, root)
    if op == "tree":
        return _plan_tree(config.integrations, root)
    if op == "which_children":
        path = supervisor_path(args.get("supervisor"), root)
        return Plan((Target(path, api.WhichChildren()),), QUERY_TIMEOUT_SECONDS, _single(path))
    if op in ("restart_child", "terminate_child"):
        return _plan_child_change(request, root)
    raise ValueError(f"operation {op!r} has no plan: the bridge handles it itself")


def _plan_reset(request: Request, integration: Integration, root: str) -> Plan | ProtocolError:
    name = request.args["provider"]
    known = [provider.name for provider in integration.providers]
    if name not in known:
        return ProtocolError(
            "unknown_provider",
            f"integration '{integration.name}' has no provider {name[:64]!r}. "
            f"Known providers: {', '.join(known)}",
            {"integration": integration.name, "provider": name[:64], "known_providers": known},
            request.id,
        )
    path = health_path(integration.name, name, root)
    return Plan((Target(path, ResetProvider(name)),), QUERY_TIMEOUT_SECONDS, _single(path))
