"""The shared scenario observer: ordering, alive set and the two canonical rules."""

from __future__ import annotations

from typing import Any

import pytest

from supervisors.scenario.model import Scenario, parse_scenario
from supervisors.scenario.observer import Observer, RawEvent, canonical_reason

pytestmark = pytest.mark.timeout(30)


def make_scenario() -> Scenario:
    return parse_scenario(
        {
            "tree": {
                "id": "root",
                "strategy": "one_for_one",
                "children": [
                    {"id": "w", "type": "worker"},
                    {
                        "id": "sub",
                        "type": "supervisor",
                        "strategy": "one_for_one",
                        "children": [
                            {"id": "a", "type": "worker"},
                            {
                                "id": "inner",
                                "type": "supervisor",
                                "strategy": "one_for_one",
                                "children": [{"id": "b", "type": "worker"}],
                            },
                        ],
                    },
                    {
                        "id": "pool",
                        "type": "supervisor",
                        "strategy": "simple_one_for_one",
                        "children": [
                            {"id": "p3", "type": "worker"},
                            {"id": "p1", "type": "worker"},
                            {"id": "p2", "type": "worker"},
                        ],
                    },
                    {
                        "id": "other",
                        "type": "supervisor",
                        "strategy": "simple_one_for_one",
                        "children": [
                            {"id": "o1", "type": "worker"},
                            {"id": "o0", "type": "worker"},
                        ],
                    },
                ],
            },
            "steps": [],
        }
    )


def started(node_id: str) -> dict[str, Any]:
    return {"event": "started", "id": node_id}


def terminated(node_id: str, reason: str) -> dict[str, Any]:
    return {"event": "terminated", "id": node_id, "reason": reason}


def start_tree(observer: Observer) -> None:
    """Report the whole tree started, one id per timestamp, instance 'ID#1'."""
    for timestamp, node_id in enumerate(make_scenario().ids_in_start_order()):
        observer.add(RawEvent.started(timestamp, node_id, f"{node_id}#1"))
    observer.flush()


def test_flush_sorts_events_by_timestamp() -> None:
    observer = Observer(make_scenario())
    observer.add(RawEvent.started(30, "root"))
    observer.add(RawEvent.started(10, "w"))
    observer.add(RawEvent.started(20, "a"))

    assert observer.flush() == [started("w"), started("a"), started("root")]


def test_flush_equal_timestamps_keep_order() -> None:
    observer = Observer(make_scenario())
    observer.add(RawEvent.started(5, "a"))
    observer.add(RawEvent.started(5, "w"))

    assert observer.flush() == [started("a"), started("w")]


def test_flush_empties_pending_events() -> None:
    observer = Observer(make_scenario())
    observer.add(RawEvent.started(1, "w"))
    observer.flush()

    assert observer.pending == 0
    assert observer.flush() == []


def test_step_line_lists_alive_ids_sorted() -> None:
    observer = Observer(make_scenario())
    observer.add(RawEvent.started(1, "w"))
    observer.add(RawEvent.started(2, "a"))
    observer.add(RawEvent.started(3, "root"))
    observer.add(RawEvent.terminated(4, "w", "crash"))
    observer.flush()

    assert observer.step_line(3) == {"step": 3, "alive": ["a", "root"]}


def test_terminated_of_dead_id_is_ignored() -> None:
    observer = Observer(make_scenario())
    observer.add(RawEvent.terminated(1, "w", "crash"))

    assert observer.flush() == []


def test_terminated_of_older_instance_is_ignored() -> None:
    observer = Observer(make_scenario())
    observer.add(RawEvent.started(1, "w", "<0.90.0>"))
    observer.add(RawEvent.terminated(2, "w", "shutdown", "<0.80.0>"))

    assert observer.flush() == [started("w")]
    assert observer.alive == frozenset({"w"})


def test_terminated_without_instance_matches() -> None:
    observer = Observer(make_scenario())
    observer.add(RawEvent.started(1, "w", "<0.90.0>"))
    observer.add(RawEvent.terminated(2, "w", "normal"))

    assert observer.flush() == [started("w"), terminated("w", "normal")]


def test_killed_supervisor_kills_descendants() -> None:
    observer = Observer(make_scenario())
    start_tree(observer)
    observer.add(RawEvent.terminated(100, "sub", "killed", "sub#1"))

    assert observer.flush() == [
        terminated("sub", "killed"),
        terminated("inner", "killed"),
        terminated("b", "killed"),
        terminated("a", "killed"),
    ]


def test_killed_supervisor_order_follows_restarts() -> None:
    observer = Observer(make_scenario())
    start_tree(observer)
    # a restarted after b started, so a is now the latest started descendant.
    observer.add(RawEvent.terminated(100, "a", "crash", "a#1"))
    observer.add(RawEvent.started(101, "a", "a#2"))
    observer.add(RawEvent.terminated(102, "sub", "killed", "sub#1"))

    assert observer.flush()[-3:] == [
        terminated("a", "killed"),
        terminated("inner", "killed"),
        terminated("b", "killed"),
    ]


def test_killed_supervisor_skips_dead_descendants() -> None:
    observer = Observer(make_scenario())
    start_tree(observer)
    observer.add(RawEvent.terminated(100, "a", "normal", "a#1"))
    observer.add(RawEvent.terminated(101, "sub", "killed", "sub#1"))

    assert observer.flush() == [
        terminated("a", "normal"),
        terminated("sub", "killed"),
        terminated("inner", "killed"),
        terminated("b", "killed"),
    ]


def test_killed_supervisor_ignores_late_reports() -> None:
    observer = Observer(make_scenario())
    start_tree(observer)
    observer.add(RawEvent.terminated(100, "sub", "killed", "sub#1"))
    observer.add(RawEvent.started(101, "a", "a#2"))
    # The old instances of a and b die after the new a has started.
    observer.add(RawEvent.terminated(102, "a", "killed", "a#1"))
    observer.add(RawEvent.terminated(103, "b", "shutdown", "b#1"))
    lines = observer.flush()

    assert lines[-1] == started("a")
    assert len(lines) == 5
    assert "a" in observer.alive
    assert "b" not in observer.alive


def test_killed_supervisor_late_report_later() -> None:
    observer = Observer(make_scenario())
    start_tree(observer)
    observer.add(RawEvent.terminated(100, "inner", "killed", "inner#1"))
    observer.flush()
    observer.add(RawEvent.terminated(101, "b", "killed", "b#1"))

    assert observer.flush() == []


def test_killed_worker_reports_only_itself() -> None:
    observer = Observer(make_scenario())
    start_tree(observer)
    observer.add(RawEvent.terminated(100, "w", "killed", "w#1"))

    assert observer.flush() == [terminated("w", "killed")]


def test_shutdown_supervisor_spares_descendants() -> None:
    observer = Observer(make_scenario())
    start_tree(observer)
    observer.add(RawEvent.terminated(100, "sub", "shutdown", "sub#1"))
    observer.flush()

    assert {"a", "b", "inner"} <= observer.alive


def test_simple_children_run_sorted_by_id() -> None:
    observer = Observer(make_scenario())
    start_tree(observer)
    observer.add(RawEvent.terminated(100, "p2", "shutdown", "p2#1"))
    observer.add(RawEvent.terminated(101, "p3", "shutdown", "p3#1"))
    observer.add(RawEvent.terminated(102, "p1", "killed", "p1#1"))
    observer.add(RawEvent.terminated(103, "pool", "shutdown", "pool#1"))

    assert observer.flush() == [
        terminated("p1", "killed"),
        terminated("p2", "shutdown"),
        terminated("p3", "shutdown"),
        terminated("pool", "shutdown"),
    ]


def test_simple_children_runs_split_by_other_lines() -> None:
    observer = Observer(make_scenario())
    start_tree(observer)
    observer.add(RawEvent.terminated(100, "p3", "crash", "p3#1"))
    observer.add(RawEvent.started(101, "p3", "p3#2"))
    observer.add(RawEvent.terminated(102, "p2", "crash", "p2#1"))
    observer.add(RawEvent.terminated(103, "p1", "crash", "p1#1"))

    assert observer.flush() == [
        terminated("p3", "crash"),
        started("p3"),
        terminated("p1", "crash"),
        terminated("p2", "crash"),
    ]


def test_simple_children_runs_split_by_pool() -> None:
    observer = Observer(make_scenario())
    start_tree(observer)
    observer.add(RawEvent.terminated(100, "p2", "shutdown", "p2#1"))
    observer.add(RawEvent.terminated(101, "p1", "shutdown", "p1#1"))
    observer.add(RawEvent.terminated(102, "o1", "shutdown", "o1#1"))
    observer.add(RawEvent.terminated(103, "o0", "shutdown", "o0#1"))

    assert observer.flush() == [
        terminated("p1", "shutdown"),
        terminated("p2", "shutdown"),
        terminated("o0", "shutdown"),
        terminated("o1", "shutdown"),
    ]


def test_killed_pool_children_sorted_by_id() -> None:
    observer = Observer(make_scenario())
    start_tree(observer)
    observer.add(RawEvent.terminated(100, "pool", "killed", "pool#1"))

    assert observer.flush() == [
        terminated("pool", "killed"),
        terminated("p1", "killed"),
        terminated("p2", "killed"),
        terminated("p3", "killed"),
    ]


def test_add_rejects_unknown_id() -> None:
    observer = Observer(make_scenario())

    with pytest.raises(ValueError, match="ghost"):
        observer.add(RawEvent.started(1, "ghost"))


def test_raw_event_rejects_unknown_reason() -> None:
    with pytest.raises(ValueError, match="'boom'"):
        RawEvent.terminated(1, "w", "boom")


def test_raw_event_rejects_reason_on_started() -> None:
    with pytest.raises(ValueError, match="'normal'"):
        RawEvent(1, "started", "w", "normal")


def test_raw_event_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="'restarted'"):
        RawEvent(1, "restarted", "w")


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("normal", "normal"),
        ("shutdown", "shutdown"),
        (("shutdown", "because"), "shutdown"),
        ("killed", "killed"),
        ("crash", "crash"),
        ("kill", "crash"),
        (("badmatch", 1), "crash"),
        (None, "crash"),
    ],
)
def test_canonical_reason_maps_exit_reasons(reason: Any, expected: str) -> None:
    assert canonical_reason(reason) == expected
