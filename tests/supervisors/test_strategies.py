"""Restart strategies and restart types, on real actor processes."""

from __future__ import annotations

import os
import signal

import pytest

from supervisors import ChildSpec, SupervisionError, SupFlags
from tests.supervisors.helpers import child, restarted, running_pid, wait_for
from tests.supervisors.workers import Echo

pytestmark = pytest.mark.timeout(60)


def _three(restart: str = "permanent") -> list[ChildSpec]:
    return [ChildSpec(name, Echo, restart=restart) for name in ("w1", "w2", "w3")]


def _pids(system, names=("w1", "w2", "w3")):
    return {name: running_pid(system, "root", name) for name in names}


def test_one_for_one_restarts_only_crashed_child(system):
    system.start_root("root", SupFlags("one_for_one", 5, 5), _three())
    before = _pids(system)
    with pytest.raises(SupervisionError, match="actor_crashed"):
        system.call("root/w2", ("crash",))
    restarted(system, "root", "w2", before["w2"])
    after = _pids(system)
    assert after["w1"] == before["w1"]
    assert after["w3"] == before["w3"]
    assert child(system, "root", "w2")["restarts"] == 1


def test_one_for_all_restarts_every_child(system):
    system.start_root("root", SupFlags("one_for_all", 5, 5), _three())
    before = _pids(system)
    system.send_to("root/w2", "crash")
    for name in ("w1", "w2", "w3"):
        restarted(system, "root", name, before[name])


def test_rest_for_one_restarts_later_children(system):
    system.start_root("root", SupFlags("rest_for_one", 5, 5), _three())
    before = _pids(system)
    system.send_to("root/w2", "crash")
    restarted(system, "root", "w2", before["w2"])
    restarted(system, "root", "w3", before["w3"])
    assert running_pid(system, "root", "w1") == before["w1"]


def test_transient_child_not_restarted_on_normal_exit(system):
    system.start_root(
        "root", SupFlags("one_for_one", 5, 5), [ChildSpec("t", Echo, restart="transient")]
    )
    system.call("root/t", ("stop", "normal"))
    entry = wait_for(lambda: (c := child(system, "root", "t")) and c["status"] == "undefined" and c)
    assert entry["pid"] is None


def test_transient_child_not_restarted_on_shutdown_exit(system):
    system.start_root(
        "root", SupFlags("one_for_one", 5, 5), [ChildSpec("t", Echo, restart="transient")]
    )
    system.call("root/t", ("stop", "shutdown"))
    entry = wait_for(lambda: (c := child(system, "root", "t")) and c["status"] == "undefined" and c)
    assert entry["restarts"] == 0


def test_transient_child_restarted_after_crash(system):
    system.start_root(
        "root", SupFlags("one_for_one", 5, 5), [ChildSpec("t", Echo, restart="transient")]
    )
    pid = running_pid(system, "root", "t")
    system.send_to("root/t", "crash")
    restarted(system, "root", "t", pid)


def test_transient_child_restarted_after_abnormal_stop(system):
    system.start_root(
        "root", SupFlags("one_for_one", 5, 5), [ChildSpec("t", Echo, restart="transient")]
    )
    pid = running_pid(system, "root", "t")
    system.call("root/t", ("stop", "bad_state"))
    restarted(system, "root", "t", pid)


def test_temporary_child_removed_after_crash(system):
    system.start_root(
        "root", SupFlags("one_for_one", 5, 5), [ChildSpec("tmp", Echo, restart="temporary")]
    )
    system.send_to("root/tmp", "crash")
    wait_for(lambda: child(system, "root", "tmp") is None or None)
    assert system.count_children("root")["specs"] == 0


def test_permanent_child_restarted_after_normal_exit(system):
    system.start_root("root", SupFlags("one_for_one", 5, 5), [ChildSpec("p", Echo)])
    pid = running_pid(system, "root", "p")
    system.call("root/p", ("stop", "normal"))
    restarted(system, "root", "p", pid)


def test_one_for_all_removes_temporary_sibling(system):
    specs = [
        ChildSpec("w1", Echo),
        ChildSpec("tmp", Echo, restart="temporary"),
        ChildSpec("w3", Echo),
    ]
    system.start_root("root", SupFlags("one_for_all", 5, 5), specs)
    w1 = running_pid(system, "root", "w1")
    system.send_to("root/w3", "crash")
    restarted(system, "root", "w1", w1)
    assert [c["id"] for c in system.which_children("root")] == ["w1", "w3"]


def test_rest_for_one_restarts_transient_that_exited_normally(system):
    specs = [
        ChildSpec("w1", Echo),
        ChildSpec("t", Echo, restart="transient"),
        ChildSpec("w3", Echo),
    ]
    system.start_root("root", SupFlags("rest_for_one", 5, 5), specs)
    system.call("root/t", ("stop", "normal"))
    wait_for(lambda: child(system, "root", "t")["status"] == "undefined")
    system.send_to("root/w1", "crash")
    running_pid(system, "root", "t")


def test_killed_worker_is_restarted(system):
    system.start_root("root", SupFlags("one_for_one", 5, 5), _three())
    pid = running_pid(system, "root", "w1")
    os.kill(pid, signal.SIGKILL)
    new_pid = restarted(system, "root", "w1", pid)
    assert system.call("root/w1", ("pid",)) == new_pid
