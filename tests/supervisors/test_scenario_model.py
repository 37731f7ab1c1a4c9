"""Loading and validating scenario files, and the tree helpers the runners use."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from supervisors.scenario.model import (
    CrashStep,
    ExitStep,
    KillStep,
    ScenarioError,
    StopStep,
    SupervisorNode,
    WaitStep,
    WorkerNode,
    load_scenario,
    parse_scenario,
)

pytestmark = pytest.mark.timeout(30)

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"


def base_scenario() -> dict[str, Any]:
    return {
        "tree": {
            "id": "root",
            "strategy": "one_for_one",
            "children": [
                {"id": "w1", "type": "worker"},
                {"id": "w2", "type": "worker", "restart": "transient", "shutdown": 100},
                {
                    "id": "sub",
                    "type": "supervisor",
                    "strategy": "one_for_all",
                    "children": [{"id": "w3", "type": "worker", "stop_ms": 50}],
                },
                {
                    "id": "pool",
                    "type": "supervisor",
                    "strategy": "simple_one_for_one",
                    "children": [
                        {"id": "p1", "type": "worker", "restart": "temporary"},
                        {"id": "p2", "type": "worker", "restart": "temporary"},
                    ],
                },
            ],
        },
        "steps": [
            {"crash": "w1"},
            {"exit": "w2", "reason": "normal"},
            {"kill": "sub"},
            {"wait_ms": 10},
            {"stop": "root"},
        ],
    }


def test_parse_applies_defaults() -> None:
    scenario = parse_scenario(base_scenario())
    root = scenario.tree
    worker = scenario.node("w1")
    sub = scenario.node("sub")

    assert root.intensity == 1
    assert root.period == 5
    assert worker == WorkerNode(id="w1", restart="permanent", shutdown=5000, stop_ms=0)
    assert isinstance(sub, SupervisorNode)
    assert sub.shutdown == "infinity"
    assert sub.restart == "permanent"


def test_parse_keeps_given_values() -> None:
    scenario = parse_scenario(base_scenario())

    assert scenario.node("w2") == WorkerNode(id="w2", restart="transient", shutdown=100)
    assert scenario.node("w3") == WorkerNode(id="w3", stop_ms=50)


def test_parse_builds_steps() -> None:
    scenario = parse_scenario(base_scenario())

    assert scenario.steps == (
        CrashStep("w1"),
        ExitStep("w2", "normal"),
        KillStep("sub"),
        WaitStep(10),
        StopStep("root"),
    )


def test_start_order_children_first() -> None:
    scenario = parse_scenario(base_scenario())

    assert scenario.ids_in_start_order() == ("w1", "w2", "w3", "sub", "pool", "p1", "p2", "root")


def test_parent_of_returns_supervisor_or_none() -> None:
    scenario = parse_scenario(base_scenario())

    assert scenario.parent_of("w3") == "sub"
    assert scenario.parent_of("p2") == "pool"
    assert scenario.parent_of("root") is None


def test_descendants_in_start_order() -> None:
    scenario = parse_scenario(base_scenario())

    assert scenario.descendants_of("root") == ("w1", "w2", "w3", "sub", "pool", "p1", "p2")
    assert scenario.descendants_of("pool") == ("p1", "p2")
    assert scenario.descendants_of("w1") == ()


def test_is_supervisor_tells_kinds_apart() -> None:
    scenario = parse_scenario(base_scenario())

    assert scenario.is_supervisor("sub")
    assert not scenario.is_supervisor("w3")


def test_simple_one_for_one_children_maps_pool() -> None:
    scenario = parse_scenario(base_scenario())

    assert scenario.simple_one_for_one_children() == {"pool": frozenset({"p1", "p2"})}


def test_node_unknown_id_raises_key_error() -> None:
    scenario = parse_scenario(base_scenario())

    with pytest.raises(KeyError, match="nope"):
        scenario.node("nope")


def _set(path: list[Any], value: Any) -> Any:
    """Return a mutation that sets base_scenario()[path...] = value."""

    def mutate(data: dict[str, Any]) -> None:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _delete(path: list[Any]) -> Any:
    def mutate(data: dict[str, Any]) -> None:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


CHILDREN = ["tree", "children"]
POOL_CHILDREN = [*CHILDREN, 3, "children"]

INVALID_CASES = [
    ("negative shutdown", _set([*CHILDREN, 1, "shutdown"], -5), "tree.children[1].shutdown", "-5"),
    (
        "unknown shutdown word",
        _set([*CHILDREN, 0, "shutdown"], "never"),
        "tree.children[0].shutdown",
        "'never'",
    ),
    (
        "unknown strategy",
        _set(["tree", "strategy"], "one_for_none"),
        "tree.strategy",
        "'one_for_none'",
    ),
    ("missing strategy", _delete(["tree", "strategy"]), "tree.strategy", "missing"),
    ("negative intensity", _set(["tree", "intensity"], -1), "tree.intensity", "-1"),
    ("boolean intensity", _set(["tree", "intensity"], True), "tree.intensity", "True"),
    ("zero period", _set([*CHILDREN, 2, "period"], 0), "tree.children[2].period", "0"),
    ("float stop_ms", _set([*CHILDREN, 0, "stop_ms"], 1.5), "tree.children[0].stop_ms", "1.5"),
    (
        "unknown restart",
        _set([*CHILDREN, 0, "restart"], "sometimes"),
        "tree.children[0].restart",
        "'sometimes'",
    ),
    ("missing type", _delete([*CHILDREN, 0, "type"]), "tree.children[0].type", "missing"),
    ("unknown type", _set([*CHILDREN, 0, "type"], "actor"), "tree.children[0].type", "'actor'"),
    ("root typed worker", _set(["tree", "type"], "worker"), "tree.type", "'worker'"),
    ("empty id", _set([*CHILDREN, 0, "id"], ""), "tree.children[0].id", "''"),
    ("numeric id", _set([*CHILDREN, 0, "id"], 7), "tree.children[0].id", "7"),
    (
        "duplicate id",
        _set([*CHILDREN, 2, "children", 0, "id"], "w1"),
        "tree.children[2].children[0].id",
        "'w1'",
    ),
    ("misspelled key", _set([*CHILDREN, 0, "stop_sm"], 5), "tree.children[0].stop_sm", "'stop_sm'"),
    (
        "stop_ms on supervisor",
        _set([*CHILDREN, 2, "stop_ms"], 5),
        "tree.children[2].stop_ms",
        "'stop_ms'",
    ),
    (
        "missing children",
        _delete([*CHILDREN, 2, "children"]),
        "tree.children[2].children",
        "missing",
    ),
    ("simple pool without children", _set(POOL_CHILDREN, []), "tree.children[3].children", "empty"),
    (
        "simple pool with supervisor child",
        _set(
            [*POOL_CHILDREN, 1],
            {"id": "s", "type": "supervisor", "strategy": "one_for_one", "children": []},
        ),
        "tree.children[3].children[1].type",
        "'supervisor'",
    ),
    (
        "simple pool with other restart",
        _set([*POOL_CHILDREN, 1, "restart"], "permanent"),
        "tree.children[3].children[1].restart",
        "'permanent'",
    ),
    (
        "simple pool with other stop_ms",
        _set([*POOL_CHILDREN, 1, "stop_ms"], 9),
        "tree.children[3].children[1].stop_ms",
        "9",
    ),
    ("missing steps", _delete(["steps"]), "steps", "missing"),
    ("steps not a list", _set(["steps"], {"crash": "w1"}), "steps", "{'crash': 'w1'}"),
    ("crash of a supervisor", _set(["steps", 0], {"crash": "sub"}), "steps[0].crash", "'sub'"),
    ("crash of unknown id", _set(["steps", 0], {"crash": "ghost"}), "steps[0].crash", "'ghost'"),
    ("exit without reason", _set(["steps", 1], {"exit": "w2"}), "steps[1].reason", "missing"),
    (
        "exit with crash reason",
        _set(["steps", 1], {"exit": "w2", "reason": "crash"}),
        "steps[1].reason",
        "'crash'",
    ),
    (
        "exit of a supervisor",
        _set(["steps", 1], {"exit": "pool", "reason": "normal"}),
        "steps[1].exit",
        "'pool'",
    ),
    (
        "two actions in one step",
        _set(["steps", 2], {"kill": "w1", "crash": "w1"}),
        "steps[2]",
        "'kill'",
    ),
    (
        "reason on a kill step",
        _set(["steps", 2], {"kill": "w1", "reason": "normal"}),
        "steps[2].reason",
        "'reason'",
    ),
    ("negative wait", _set(["steps", 3], {"wait_ms": -10}), "steps[3].wait_ms", "-10"),
    ("stop of a non-root", _set(["steps", 4], {"stop": "sub"}), "steps[4].stop", "'sub'"),
    ("unknown top-level key", _set(["extra"], 1), "scenario.extra", "'extra'"),
]


@pytest.mark.parametrize(
    ("mutate", "path", "value_text"),
    [case[1:] for case in INVALID_CASES],
    ids=[case[0] for case in INVALID_CASES],
)
def test_parse_error_names_path_and_value(mutate: Any, path: str, value_text: str) -> None:
    data = copy.deepcopy(base_scenario())
    mutate(data)

    with pytest.raises(ScenarioError) as raised:
        parse_scenario(data)

    assert raised.value.path == path
    assert value_text in raised.value.detail


def test_parse_error_lists_valid_strategies() -> None:
    data = base_scenario()
    data["tree"]["strategy"] = "one_for_none"

    with pytest.raises(ScenarioError) as raised:
        parse_scenario(data)

    for strategy in ("one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one"):
        assert repr(strategy) in str(raised.value)


def test_parse_error_shutdown_names_valid_forms() -> None:
    data = base_scenario()
    data["tree"]["children"][0]["shutdown"] = -1

    with pytest.raises(ScenarioError) as raised:
        parse_scenario(data)

    assert "'brutal_kill'" in raised.value.detail
    assert "'infinity'" in raised.value.detail
    assert "integer >= 0" in raised.value.detail


def test_parse_duplicate_id_names_first_use() -> None:
    data = base_scenario()
    data["tree"]["children"][2]["children"][0]["id"] = "w1"

    with pytest.raises(ScenarioError) as raised:
        parse_scenario(data)

    assert "tree.children[0].id" in raised.value.detail


def test_load_prefixes_path_with_file_name(tmp_path: Path) -> None:
    data = base_scenario()
    data["tree"]["children"][1]["shutdown"] = "soon"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")

    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)

    assert raised.value.path == f"{path}: tree.children[1].shutdown"
    assert "'soon'" in str(raised.value)


def test_load_invalid_json_names_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "tree": {,\n}', encoding="utf-8")

    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)

    assert raised.value.path == str(path)
    assert "line 2" in raised.value.detail


def test_load_missing_file_raises_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_scenario(tmp_path / "absent.json")


@pytest.mark.parametrize("path", sorted(SCENARIO_DIR.glob("*.json")), ids=lambda path: path.name)
def test_scenario_file_loads(path: Path) -> None:
    scenario = load_scenario(path)

    assert scenario.root_id == scenario.tree.id


def test_scenario_files_keep_waits_short() -> None:
    for path in sorted(SCENARIO_DIR.glob("*.json")):
        scenario = load_scenario(path)
        total_ms = sum(step.ms for step in scenario.steps if isinstance(step, WaitStep))
        assert total_ms < 3000, path.name
