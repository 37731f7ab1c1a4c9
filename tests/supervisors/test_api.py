"""The supervisor API: which_children, count_children, start/terminate/restart/delete, specs."""

from __future__ import annotations

import pytest

from supervisors import ChildSpec, SupervisionError, Supervisor, SupFlags
from tests.supervisors.helpers import child, running_pid
from tests.supervisors.workers import Echo

pytestmark = pytest.mark.timeout(60)


def _tree(system):
    sub = ChildSpec("sub", Supervisor, args=(SupFlags(), [ChildSpec("a", Echo)]), type="supervisor")
    system.start_root("root", SupFlags("one_for_one", 3, 5), [ChildSpec("w", Echo), sub])


def test_which_children_lists_id_pid_status_type(system):
    _tree(system)
    entries = {entry["id"]: entry for entry in system.which_children("root")}
    assert entries["w"]["type"] == "worker"
    assert entries["sub"]["type"] == "supervisor"
    assert entries["w"]["status"] == "running"
    assert isinstance(entries["w"]["pid"], int)


def test_count_children(system):
    _tree(system)
    assert system.count_children("root") == {
        "specs": 2,
        "active": 2,
        "supervisors": 1,
        "workers": 1,
    }


def test_terminate_child_keeps_spec(system):
    _tree(system)
    system.terminate_child("root", "w")
    assert child(system, "root", "w")["status"] == "undefined"


def test_restart_child_starts_terminated_child(system):
    _tree(system)
    system.terminate_child("root", "w")
    result = system.restart_child("root", "w")
    assert result["pid"] == running_pid(system, "root", "w")


def test_restart_child_of_running_child_is_error(system):
    _tree(system)
    with pytest.raises(SupervisionError) as error:
        system.restart_child("root", "w")
    assert error.value.code == "running"


def test_delete_child_of_running_child_is_error(system):
    _tree(system)
    with pytest.raises(SupervisionError) as error:
        system.delete_child("root", "w")
    assert error.value.code == "running"


def test_delete_child_removes_terminated_spec(system):
    _tree(system)
    system.terminate_child("root", "w")
    system.delete_child("root", "w")
    assert child(system, "root", "w") is None


def test_start_child_adds_static_child(system):
    _tree(system)
    system.start_child("root", ChildSpec("extra", Echo))
    assert system.call("root/extra", ("echo", 7)) == 7


def test_start_child_with_existing_id_is_error(system):
    _tree(system)
    with pytest.raises(SupervisionError) as error:
        system.start_child("root", ChildSpec("w", Echo))
    assert error.value.code == "already_started"


def test_get_childspec_returns_spec(system):
    _tree(system)
    spec = system.get_childspec("root", "w")
    assert spec.start is Echo


def test_get_childspec_of_unknown_child_is_not_found(system):
    _tree(system)
    with pytest.raises(SupervisionError) as error:
        system.get_childspec("root", "nope")
    assert error.value.code == "not_found"


def test_nested_supervisor_reached_by_path(system):
    _tree(system)
    assert [entry["id"] for entry in system.which_children("root/sub")] == ["a"]


def test_snapshot_includes_nested_supervisors(system):
    _tree(system)
    snapshot = system.snapshot()
    sub = next(entry for entry in snapshot["children"] if entry["id"] == "sub")
    assert snapshot["strategy"] == "one_for_one"
    assert snapshot["intensity"] == 3
    assert sub["supervisor"]["children"][0]["id"] == "a"


def test_snapshot_counts_restarts(system):
    _tree(system)
    pid = running_pid(system, "root/sub", "a")
    system.send_to("root/sub/a", "crash")
    from tests.supervisors.helpers import restarted

    restarted(system, "root/sub", "a", pid)
    sub = next(entry for entry in system.snapshot()["children"] if entry["id"] == "sub")
    assert sub["supervisor"]["children"][0]["restarts"] == 1


def test_call_to_unknown_child_is_not_running(system):
    _tree(system)
    with pytest.raises(SupervisionError) as error:
        system.call("root/ghost", ("echo", 1))
    assert error.value.code == "not_running"
