"""Plain-text views of the node's ``tree``, ``status``, ``recovery_points`` and ``restore``
results, for the ``tpir`` CLI. Each function returns the lines to print."""

from __future__ import annotations

from typing import Any

from tpir.node.wire import iso_time

__all__ = ["render_tree", "render_status", "render_points", "render_restore"]


def _text(value: Any) -> str:
    return "-" if value is None else str(value)


def _flags_text(node: dict[str, Any]) -> str:
    return f"{node.get('strategy')}, intensity {node.get('intensity')} per {node.get('period')} s"


def _child_summary(child: dict[str, Any]) -> str:
    parts = [
        f"{child.get('type')}",
        f"pid {_text(child.get('pid'))}",
        _text(child.get("status")),
        f"restarts {child.get('restarts', 0)}",
    ]
    nested = child.get("supervisor")
    if isinstance(nested, dict) and "strategy" in nested:
        parts.append(_flags_text(nested))
    elif isinstance(nested, dict) and "error" in nested:
        parts.append(f"snapshot error: {nested['error']}")
    provider = child.get("provider")
    if isinstance(provider, dict):
        parts.append(
            f"{_text(provider.get('role'))}, health {_text(provider.get('status'))}, "
            f"breaker {_text(provider.get('breaker'))}"
        )
    if child.get("last_exit") and child.get("restarts"):
        parts.append(f"last exit: {child['last_exit']}")
    return f"{child.get('id')}  [" + "; ".join(parts) + "]"


def render_tree(tree: dict[str, Any]) -> list[str]:
    """Return the supervision tree: supervisors with strategy and restart intensity,
    children with pid, status and restart count, providers with role, health status
    and breaker state."""
    header = f"{_flags_text(tree)}, pid {_text(tree.get('pid'))}"
    lines = [f"{tree.get('id')}  [supervisor; {header}]"]
    _render_children(tree, "", lines)
    return lines


def _render_children(node: dict[str, Any], indent: str, lines: list[str]) -> None:
    children = node.get("children", [])
    for index, child in enumerate(children):
        last = index == len(children) - 1
        lines.append(indent + ("└── " if last else "├── ") + _child_summary(child))
        nested = child.get("supervisor")
        if isinstance(nested, dict) and "children" in nested:
            _render_children(nested, indent + ("    " if last else "│   "), lines)


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [
        indent
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def render_status(status: dict[str, Any]) -> list[str]:
    """Return each integration with its providers' role, health status and breaker."""
    lines: list[str] = []
    for integration in status.get("integrations", []):
        router = integration.get("router") or {}
        in_flight = router.get("calls_in_flight") if isinstance(router, dict) else None
        lines.append(
            f"{integration.get('name')}: tier {integration.get('tier')}, timeout "
            f"{integration.get('timeout')} s, calls in flight {_text(in_flight)}"
        )
        rows = [["PROVIDER", "KIND", "ROLE", "HEALTH", "BREAKER"]]
        for provider in integration.get("providers", []):
            rows.append(
                [
                    _text(provider.get("name")),
                    _text(provider.get("kind")),
                    _text(provider.get("role")),
                    _text(provider.get("status")),
                    _text(provider.get("breaker")),
                ]
            )
        lines.extend(_table(rows))
        for error in integration.get("errors", []):
            lines.append(f"  error: {error}")
    return lines


def render_points(result: dict[str, Any]) -> list[str]:
    """Return the recovery points of an integration, newest first."""
    points = result.get("points", [])
    if not points:
        return [f"no recovery points stored for {result.get('integration')}"]
    rows = [["CREATED (UTC)", "EPOCH", "ACTOR", "KIND", "VALID"]]
    for point in points:
        rows.append(
            [
                _text(point.get("created_at_iso")),
                f"{point.get('created_at', 0):.3f}",
                _text(point.get("actor_key")),
                _text(point.get("kind")),
                "yes" if point.get("valid") else "NO",
            ]
        )
    return _table(rows, indent="")


def render_restore(result: dict[str, Any]) -> list[str]:
    """Return what each actor of the integration restored."""
    lines = [f"restore of {result.get('integration')} to {iso_time(result.get('at'))}:"]
    rows = [["ACTOR", "RESTORED POINT"]]
    for path, outcome in (result.get("actors") or {}).items():
        if "error" in outcome:
            text = f"error: {outcome['error']}"
        elif outcome.get("restored_at") is None:
            text = "no point at or before that time"
        else:
            text = _text(outcome.get("restored_at_iso"))
        rows.append([path, text])
    return lines + _table(rows)
