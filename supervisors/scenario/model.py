"""Supervision scenarios: a supervision tree plus the steps to run against it.

A scenario file is a JSON object with these keys:

``tree``
    The root supervisor (required), a supervisor object as described below.
``steps``
    The list of steps to run after the tree has started (required, may be empty).
``description``
    Free text for the reader of the file (optional, default empty).

A supervisor object has ``id`` (required, non-empty string, unique across the
whole tree), ``strategy`` (required: ``one_for_one``, ``one_for_all``,
``rest_for_one`` or ``simple_one_for_one``), ``intensity`` (restarts, integer
>= 0, default 1), ``period`` (seconds, integer >= 1, default 5) and
``children`` (required list). As a child it also has ``type``
(``"supervisor"``), ``restart`` (``permanent``, ``transient`` or
``temporary``, default ``permanent``) and ``shutdown`` (milliseconds as an
integer >= 0, ``"brutal_kill"`` or ``"infinity"``, default ``"infinity"``).

A worker object has ``id``, ``type`` (``"worker"``), ``restart`` (as above),
``shutdown`` (as above, default 5000) and ``stop_ms`` (milliseconds the worker
takes to stop on a shutdown request from its supervisor, integer >= 0,
default 0).

The children of a ``simple_one_for_one`` supervisor must be workers with the
same ``restart``, ``shutdown`` and ``stop_ms``; the first child is the template
and every listed child is started as a dynamic child once the supervisor is up.

A step is one of ``{"crash": ID}``, ``{"exit": ID, "reason": "normal" |
"shutdown"}`` (both name workers), ``{"kill": ID}`` (any id), ``{"wait_ms": N}``
(N >= 0) or ``{"stop": ROOT_ID}``.

Validation raises :class:`ScenarioError`, whose message names the JSON path
(for example ``tree.children[1].shutdown``), the invalid value and the valid
values.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "EXIT_REASONS",
    "RESTART_TYPES",
    "STRATEGIES",
    "CrashStep",
    "ExitStep",
    "KillStep",
    "Node",
    "Scenario",
    "ScenarioError",
    "Shutdown",
    "Step",
    "StopStep",
    "SupervisorNode",
    "WaitStep",
    "WorkerNode",
    "load_scenario",
    "parse_scenario",
]

logger = logging.getLogger(__name__)

STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one")
RESTART_TYPES = ("permanent", "transient", "temporary")
EXIT_REASONS = ("normal", "shutdown")
SHUTDOWN_WORDS = ("brutal_kill", "infinity")

# Milliseconds as an int, or "brutal_kill" / "infinity".
Shutdown = int | str

_SHUTDOWN_VALID = "an integer >= 0 (milliseconds), 'brutal_kill' or 'infinity'"


class ScenarioError(ValueError):
    """Invalid scenario. ``path`` is the JSON path of the invalid value, and
    ``detail`` describes the problem and the valid values."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.detail = detail


@dataclass(frozen=True)
class WorkerNode:
    """A worker: ``restart`` type, ``shutdown`` (ms, 'brutal_kill' or 'infinity'),
    ``stop_ms`` (ms it takes to stop on a shutdown request, >= 0)."""

    id: str
    restart: str = "permanent"
    shutdown: Shutdown = 5000
    stop_ms: int = 0

    @property
    def is_supervisor(self) -> bool:
        return False


@dataclass(frozen=True)
class SupervisorNode:
    """A supervisor: ``strategy``, ``intensity`` (restarts, >= 0) within ``period``
    (seconds, >= 1), its ``children`` in start order, and, as a child of another
    supervisor, its ``restart`` type and ``shutdown``."""

    id: str
    strategy: str
    children: tuple[Node, ...] = ()
    intensity: int = 1
    period: int = 5
    restart: str = "permanent"
    shutdown: Shutdown = "infinity"

    @property
    def is_supervisor(self) -> bool:
        return True


Node = WorkerNode | SupervisorNode


@dataclass(frozen=True)
class CrashStep:
    """Make worker ``id`` exit with an abnormal reason (``crash`` in Erlang)."""

    id: str


@dataclass(frozen=True)
class ExitStep:
    """Make worker ``id`` stop itself with ``reason`` ('normal' or 'shutdown')."""

    id: str
    reason: Literal["normal", "shutdown"]


@dataclass(frozen=True)
class KillStep:
    """Kill process ``id`` (SIGKILL, or ``exit(Pid, kill)`` in Erlang)."""

    id: str


@dataclass(frozen=True)
class WaitStep:
    """Let ``ms`` milliseconds pass."""

    ms: int


@dataclass(frozen=True)
class StopStep:
    """Shut the root supervisor ``id`` down in order."""

    id: str


Step = CrashStep | ExitStep | KillStep | WaitStep | StopStep


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: the root supervisor ``tree``, its ``steps`` and a
    free-text ``description``. Build it with :func:`load_scenario` or
    :func:`parse_scenario`, which check what this class assumes (unique ids,
    steps naming ids of the tree)."""

    tree: SupervisorNode
    steps: tuple[Step, ...] = ()
    description: str = ""
    _nodes: dict[str, Node] = field(init=False, repr=False, compare=False)
    _parents: dict[str, str | None] = field(init=False, repr=False, compare=False)
    _start_order: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        nodes: dict[str, Node] = {}
        parents: dict[str, str | None] = {}
        _index_tree(self.tree, None, nodes, parents)
        object.__setattr__(self, "_nodes", nodes)
        object.__setattr__(self, "_parents", parents)
        object.__setattr__(self, "_start_order", tuple(n.id for n in _walk(self.tree)))

    @property
    def root_id(self) -> str:
        return self.tree.id

    def nodes_in_start_order(self) -> tuple[Node, ...]:
        """Return every node in the order the tree starts them.

        A supervisor's children start before its own start completes, so they
        come first. A simple_one_for_one supervisor completes its start before
        it starts its dynamic children, so it comes before them.
        """
        return tuple(self._nodes[node_id] for node_id in self._start_order)

    def ids_in_start_order(self) -> tuple[str, ...]:
        return self._start_order

    def node(self, node_id: str) -> Node:
        """Return the node ``node_id``; raise KeyError for an id not in the tree."""
        try:
            return self._nodes[node_id]
        except KeyError:
            raise KeyError(f"id {node_id!r} not found in scenario tree {self.tree.id!r}") from None

    def has_id(self, node_id: str) -> bool:
        return node_id in self._nodes

    def parent_of(self, node_id: str) -> str | None:
        """Return the id of the supervisor of ``node_id``, or None for the root."""
        self.node(node_id)
        return self._parents[node_id]

    def descendants_of(self, node_id: str) -> tuple[str, ...]:
        """Return the ids of every node below ``node_id``, in start order."""
        node = self.node(node_id)
        if not isinstance(node, SupervisorNode):
            return ()
        return tuple(n.id for n in _walk(node) if n.id != node_id)

    def is_supervisor(self, node_id: str) -> bool:
        return self.node(node_id).is_supervisor

    def simple_one_for_one_children(self) -> dict[str, frozenset[str]]:
        """Return, for each simple_one_for_one supervisor id, the ids of its children."""
        return {
            node.id: frozenset(child.id for child in node.children)
            for node in self._nodes.values()
            if isinstance(node, SupervisorNode) and node.strategy == "simple_one_for_one"
        }


def _walk(node: Node) -> Iterator[Node]:
    if isinstance(node, WorkerNode):
        yield node
        return
    if node.strategy == "simple_one_for_one":
        yield node
        yield from node.children
        return
    for child in node.children:
        yield from _walk(child)
    yield node


def _index_tree(
    node: Node,
    parent: str | None,
    nodes: dict[str, Node],
    parents: dict[str, str | None],
) -> None:
    if node.id in nodes:
        raise ValueError(f"duplicate id {node.id!r} in scenario tree")
    nodes[node.id] = node
    parents[node.id] = parent
    if isinstance(node, SupervisorNode):
        for child in node.children:
            _index_tree(child, node.id, nodes, parents)


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Read and validate the scenario file at ``path``.

    Raises OSError when the file cannot be read. Raises ScenarioError, with a
    path that starts with the file name, when the file is not valid JSON or
    not a valid scenario.
    """
    name = os.fspath(path)
    with open(name, encoding="utf-8") as handle:
        text = handle.read()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ScenarioError(
            name, f"invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from None
    try:
        return parse_scenario(data)
    except ScenarioError as error:
        raise ScenarioError(f"{name}: {error.path}", error.detail) from None


def parse_scenario(data: Any) -> Scenario:
    """Validate decoded JSON ``data`` and build the :class:`Scenario`."""
    _require_object(data, "scenario")
    _reject_unknown_keys(data, "scenario", ("tree", "steps", "description"))
    if "tree" not in data:
        raise ScenarioError("tree", "missing; a scenario needs a root supervisor")
    if "steps" not in data:
        raise ScenarioError("steps", "missing; give a list of steps (it may be empty)")

    description = data.get("description", "")
    if not isinstance(description, str):
        raise ScenarioError("description", f"invalid value {description!r}; expected a string")

    seen: dict[str, str] = {}
    tree = _parse_supervisor(data["tree"], "tree", seen, is_root=True)
    scenario_ids = _IdIndex(tree)
    steps = _parse_steps(data["steps"], scenario_ids)
    logger.debug("parsed scenario %r: %d nodes, %d steps", tree.id, len(seen), len(steps))
    return Scenario(tree=tree, steps=steps, description=description)


class _IdIndex:
    """Ids of a parsed tree, for checking the steps against it."""

    def __init__(self, tree: SupervisorNode) -> None:
        self.root_id = tree.id
        self.kinds: dict[str, str] = {}
        stack: list[Node] = [tree]
        while stack:
            node = stack.pop()
            self.kinds[node.id] = "supervisor" if node.is_supervisor else "worker"
            if isinstance(node, SupervisorNode):
                stack.extend(node.children)


_SUPERVISOR_KEYS = (
    "id",
    "type",
    "strategy",
    "intensity",
    "period",
    "children",
    "restart",
    "shutdown",
)
_WORKER_KEYS = ("id", "type", "restart", "shutdown", "stop_ms")


def _parse_node(data: Any, path: str, seen: dict[str, str]) -> Node:
    _require_object(data, path)
    if "type" not in data:
        raise ScenarioError(f"{path}.type", "missing; expected 'worker' or 'supervisor'")
    kind = data["type"]
    if kind == "worker":
        return _parse_worker(data, path, seen)
    if kind == "supervisor":
        return _parse_supervisor(data, path, seen, is_root=False)
    raise ScenarioError(
        f"{path}.type", f"invalid value {kind!r}; expected 'worker' or 'supervisor'"
    )


def _parse_worker(data: Mapping[str, Any], path: str, seen: dict[str, str]) -> WorkerNode:
    _reject_unknown_keys(data, path, _WORKER_KEYS)
    node_id = _parse_id(data, path, seen)
    return WorkerNode(
        id=node_id,
        restart=_parse_choice(data, path, "restart", RESTART_TYPES, "permanent"),
        shutdown=_parse_shutdown(data, path, 5000),
        stop_ms=_parse_int(data, path, "stop_ms", minimum=0, default=0, unit="milliseconds"),
    )


def _parse_supervisor(
    data: Any, path: str, seen: dict[str, str], *, is_root: bool
) -> SupervisorNode:
    _require_object(data, path)
    _reject_unknown_keys(data, path, _SUPERVISOR_KEYS)
    if is_root and "type" in data and data["type"] != "supervisor":
        raise ScenarioError(
            f"{path}.type", f"invalid value {data['type']!r}; the root must be a 'supervisor'"
        )
    node_id = _parse_id(data, path, seen)
    if "strategy" not in data:
        raise ScenarioError(f"{path}.strategy", f"missing; expected one of {_quoted(STRATEGIES)}")
    strategy = _parse_choice(data, path, "strategy", STRATEGIES, None)
    intensity = _parse_int(data, path, "intensity", minimum=0, default=1, unit="restarts")
    period = _parse_int(data, path, "period", minimum=1, default=5, unit="seconds")
    restart = _parse_choice(data, path, "restart", RESTART_TYPES, "permanent")
    shutdown = _parse_shutdown(data, path, "infinity")

    if "children" not in data:
        raise ScenarioError(f"{path}.children", "missing; expected a list of child objects")
    raw_children = data["children"]
    if not isinstance(raw_children, list):
        raise ScenarioError(
            f"{path}.children", f"invalid value {raw_children!r}; expected a list of child objects"
        )
    children = tuple(
        _parse_node(child, f"{path}.children[{position}]", seen)
        for position, child in enumerate(raw_children)
    )
    if strategy == "simple_one_for_one":
        _check_simple_children(children, path)
    return SupervisorNode(
        id=node_id,
        strategy=strategy,
        children=children,
        intensity=intensity,
        period=period,
        restart=restart,
        shutdown=shutdown,
    )


def _check_simple_children(children: tuple[Node, ...], path: str) -> None:
    if not children:
        raise ScenarioError(
            f"{path}.children",
            "empty; a simple_one_for_one supervisor needs at least one child as its template",
        )
    for position, child in enumerate(children):
        if not isinstance(child, WorkerNode):
            raise ScenarioError(
                f"{path}.children[{position}].type",
                "invalid value 'supervisor'; children of a simple_one_for_one supervisor "
                "must be workers",
            )
    template = children[0]
    for position, child in enumerate(children):
        child_path = f"{path}.children[{position}]"
        for name in ("restart", "shutdown", "stop_ms"):
            value = getattr(child, name)
            expected = getattr(template, name)
            if value != expected:
                raise ScenarioError(
                    f"{child_path}.{name}",
                    f"invalid value {value!r}; children of a simple_one_for_one supervisor "
                    f"share the spec of the first child, which has {name} {expected!r}",
                )


def _parse_steps(data: Any, ids: _IdIndex) -> tuple[Step, ...]:
    if not isinstance(data, list):
        raise ScenarioError("steps", f"invalid value {data!r}; expected a list of step objects")
    return tuple(_parse_step(step, f"steps[{position}]", ids) for position, step in enumerate(data))


_STEP_ACTIONS = ("crash", "exit", "kill", "wait_ms", "stop")


def _parse_step(data: Any, path: str, ids: _IdIndex) -> Step:
    _require_object(data, path)
    actions = [key for key in _STEP_ACTIONS if key in data]
    if len(actions) != 1:
        raise ScenarioError(
            path,
            f"invalid step {data!r}; expected exactly one of the keys {_quoted(_STEP_ACTIONS)}",
        )
    action = actions[0]
    _reject_unknown_keys(data, path, ("exit", "reason") if action == "exit" else (action,))

    if action == "wait_ms":
        return WaitStep(
            ms=_parse_int(data, path, "wait_ms", minimum=0, default=None, unit="milliseconds")
        )

    target = data[action]
    target_path = f"{path}.{action}"
    if not isinstance(target, str) or target not in ids.kinds:
        raise ScenarioError(target_path, f"invalid value {target!r}; expected an id of the tree")

    if action == "kill":
        return KillStep(id=target)
    if action == "stop":
        if target != ids.root_id:
            raise ScenarioError(
                target_path, f"invalid value {target!r}; stop names the root {ids.root_id!r}"
            )
        return StopStep(id=target)
    if ids.kinds[target] != "worker":
        raise ScenarioError(
            target_path, f"invalid value {target!r}; {action} names workers only, not supervisors"
        )
    if action == "crash":
        return CrashStep(id=target)
    if "reason" not in data:
        raise ScenarioError(f"{path}.reason", f"missing; expected one of {_quoted(EXIT_REASONS)}")
    reason = _parse_choice(data, path, "reason", EXIT_REASONS, None)
    return ExitStep(id=target, reason=reason)  # type: ignore[arg-type]


def _require_object(data: Any, path: str) -> None:
    if not isinstance(data, dict):
        raise ScenarioError(path, f"invalid value {data!r}; expected a JSON object")


def _reject_unknown_keys(data: Mapping[str, Any], path: str, allowed: tuple[str, ...]) -> None:
    for key in data:
        if key not in allowed:
            raise ScenarioError(
                f"{path}.{key}", f"unknown key {key!r}; expected one of {_quoted(allowed)}"
            )


def _parse_id(data: Mapping[str, Any], path: str, seen: dict[str, str]) -> str:
    id_path = f"{path}.id"
    if "id" not in data:
        raise ScenarioError(id_path, "missing; expected a non-empty string")
    node_id = data["id"]
    if not isinstance(node_id, str) or not node_id:
        raise ScenarioError(id_path, f"invalid value {node_id!r}; expected a non-empty string")
    if node_id in seen:
        raise ScenarioError(
            id_path,
            f"duplicate id {node_id!r}, first used at {seen[node_id]}; ids are unique "
            "across the whole tree",
        )
    seen[node_id] = id_path
    return node_id


def _parse_choice(
    data: Mapping[str, Any], path: str, key: str, choices: tuple[str, ...], default: str | None
) -> str:
    value = data.get(key, default)
    if value not in choices:
        raise ScenarioError(
            f"{path}.{key}", f"invalid value {value!r}; expected one of {_quoted(choices)}"
        )
    return value


def _parse_int(
    data: Mapping[str, Any], path: str, key: str, *, minimum: int, default: int | None, unit: str
) -> int:
    value = data.get(key, default)
    # bool is a subclass of int, and true/false are never a count or a duration.
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ScenarioError(
            f"{path}.{key}", f"invalid value {value!r}; expected an integer >= {minimum} ({unit})"
        )
    return value


def _parse_shutdown(data: Mapping[str, Any], path: str, default: Shutdown) -> Shutdown:
    value = data.get("shutdown", default)
    if isinstance(value, str) and value in SHUTDOWN_WORDS:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ScenarioError(f"{path}.shutdown", f"invalid value {value!r}; expected {_SHUTDOWN_VALID}")


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(repr(value) for value in values)
