"""Status and tree views built from the replies of the integration actors.

Pure functions: they take the configuration and the ``Reply`` of each actor asked, and
return the maps that the ``status`` and ``tree`` operations send. A provider's role and
kind come from the configuration, its breaker state from its circuit breaker's
``BreakerUpdate`` and its health status from its health checker's ``StatusUpdate``
(both replies to ``StateRequest``). The router's ``Describe`` answer is passed on as it
is, because its fields belong to the router.

Reply keys are the actor paths of `tpir.node.plans`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actors.names import breaker_path, health_path, integration_path, router_path
from supervisors.messages import Reply
from tpir.config import Integration, Provider
from tpir.node.wire import iso_time, to_wire

__all__ = [
    "annotate_tree",
    "integration_view",
    "point_view",
    "provider_view",
    "reply_error_text",
    "status_result",
]

_WORKER_GROUPS = ("breakers", "providers", "health")


def reply_error_text(reply: Reply | None) -> str:
    """Return ``code: message`` of an error reply, or ``no reply`` for None."""
    if reply is None:
        return "no reply"
    if reply.error is None:
        return "ok"
    return f"{reply.error.code}: {reply.error.message}"


def _field(value: Any, name: str) -> Any:
    """Read ``name`` from a dataclass reply or a map reply, None when absent."""
    if isinstance(value, Mapping):
        return value.get(name)
    return getattr(value, name, None)


def provider_view(
    integration: str, provider: Provider, replies: Mapping[str, Reply], root: str
) -> tuple[dict[str, Any], list[str]]:
    """Return one provider's view and the errors met while building it."""
    errors: list[str] = []
    view: dict[str, Any] = {
        "name": provider.name,
        "kind": str(provider.kind),
        "role": str(provider.role),
        "weight": provider.weight,
        "breaker": None,
        "retry_at": None,
        "status": None,
    }

    breaker = replies.get(breaker_path(integration, provider.name, root))
    if breaker is not None and breaker.ok:
        view["breaker"] = to_wire(_field(breaker.value, "state"))
        view["retry_at"] = to_wire(_field(breaker.value, "retry_at"))
        view["breaker_details"] = to_wire(_field(breaker.value, "snapshot"))
    else:
        errors.append(f"breaker of {provider.name}: {reply_error_text(breaker)}")

    health = replies.get(health_path(integration, provider.name, root))
    if health is not None and health.ok:
        view["status"] = to_wire(_field(health.value, "status"))
        view["health_details"] = to_wire(_field(health.value, "snapshot"))
    else:
        errors.append(f"health checker of {provider.name}: {reply_error_text(health)}")
    return view, errors


def integration_view(
    integration: Integration, replies: Mapping[str, Reply], root: str
) -> dict[str, Any]:
    """Return the view of one integration: settings, router state, providers, errors."""
    errors: list[str] = []
    providers = []
    for provider in integration.providers:
        view, provider_errors = provider_view(integration.name, provider, replies, root)
        providers.append(view)
        errors.extend(provider_errors)

    router = replies.get(router_path(integration.name, root))
    router_state = None
    if router is not None and router.ok:
        router_state = to_wire(router.value)
    else:
        errors.append(f"router: {reply_error_text(router)}")

    return {
        "name": integration.name,
        "tier": integration.tier,
        "timeout": integration.timeout,
        "router": router_state,
        "providers": providers,
        "errors": errors,
    }


def status_result(
    integrations: tuple[Integration, ...], replies: Mapping[str, Reply], root: str
) -> dict[str, Any]:
    """Return the ``status`` result: one view per integration, in configuration order."""
    return {"integrations": [integration_view(item, replies, root) for item in integrations]}


def annotate_tree(
    snapshot: dict[str, Any],
    integrations: tuple[Integration, ...],
    replies: Mapping[str, Reply],
    root: str,
) -> dict[str, Any]:
    """Return the supervisor snapshot with the integration views merged in.

    Each integration supervisor's map gains ``integration`` (its view), and each worker
    of its ``breakers``, ``providers`` and ``health`` supervisors gains ``provider``
    with the role, health status and breaker state of the provider it serves.
    """
    tree = to_wire(snapshot)
    for integration in integrations:
        view = integration_view(integration, replies, root)
        node = _find_supervisor(tree, integration_path(integration.name, root))
        if node is None:
            continue
        node["integration"] = view
        summaries = {
            provider["name"]: {
                "role": provider["role"],
                "status": provider["status"],
                "breaker": provider["breaker"],
            }
            for provider in view["providers"]
        }
        for child in node.get("children", []):
            group = child.get("supervisor")
            if child.get("id") not in _WORKER_GROUPS or not isinstance(group, dict):
                continue
            for worker in group.get("children", []):
                summary = summaries.get(worker.get("id"))
                if summary is not None:
                    worker["provider"] = summary
    return tree


def _find_supervisor(node: dict[str, Any], path: str) -> dict[str, Any] | None:
    if node.get("path") == path:
        return node
    for child in node.get("children", []):
        nested = child.get("supervisor")
        if isinstance(nested, dict) and "path" in nested:
            found = _find_supervisor(nested, path)
            if found is not None:
                return found
    return None


def point_view(point: Any) -> dict[str, Any]:
    """Return a recovery point as a map, with its time in ISO 8601 and its validity."""
    return {
        "actor_key": point.actor_key,
        "kind": point.kind,
        "created_at": point.created_at,
        "created_at_iso": iso_time(point.created_at),
        "seq": point.seq,
        "valid": point.checksum_matches(),
        "state": to_wire(point.state),
    }
