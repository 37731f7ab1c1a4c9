"""Shutdown order, shutdown timeouts, dynamic children, and no orphan processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from supervisors import ChildSpec, SupervisionError, Supervisor, SupFlags
from tests.supervisors.helpers import child, running_pid, wait_for
from tests.supervisors.workers import Echo, FailingStart, IgnoreAfterFirst
from tests.support.processes import is_running, wait_all_dead

pytestmark = pytest.mark.timeout(60)


def _journal(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()]


def test_stop_terminates_children_in_reverse_start_order(system, tmp_path):
    journal = tmp_path / "journal"
    specs = [ChildSpec(name, Echo, kwargs={"journal": str(journal)}) for name in ("w1", "w2", "w3")]
    system.start_root("root", SupFlags("one_for_one"), specs)
    system.call("root", __import__("supervisors.api", fromlist=["StopSupervisor"]).StopSupervisor())
    assert [entry[0] for entry in _journal(journal)] == ["w3", "w2", "w1"]


def test_slow_worker_killed_when_shutdown_timeout_runs_out(system, tmp_path):
    journal = tmp_path / "journal"
    specs = [
        ChildSpec("w1", Echo, kwargs={"journal": str(journal)}),
        ChildSpec("w2", Echo, kwargs={"journal": str(journal)}),
        ChildSpec("w3", Echo, kwargs={"journal": str(journal), "stop_ms": 5000}, shutdown=200),
    ]
    sub = ChildSpec("sup", Supervisor, args=(SupFlags("one_for_one"), specs), type="supervisor")
    system.start_root("root", SupFlags("one_for_one"), [sub])
    w3 = running_pid(system, "root/sup", "w3")
    started = time.monotonic()
    system.stop()
    elapsed = time.monotonic() - started
    assert [entry[0] for entry in _journal(journal)] == ["w3", "w2", "w1"]
    assert not is_running(w3)
    assert elapsed < 3.0


def test_worker_with_infinity_shutdown_is_waited_for(system, tmp_path):
    journal = tmp_path / "journal"
    specs = [
        ChildSpec(
            "slow", Echo, kwargs={"journal": str(journal), "stop_ms": 600}, shutdown="infinity"
        )
    ]
    system.start_root("root", SupFlags("one_for_one"), specs)
    started = time.monotonic()
    system.terminate_child("root", "slow")
    assert time.monotonic() - started >= 0.6


def test_brutal_kill_child_gets_no_terminate(system, tmp_path):
    journal = tmp_path / "journal"
    specs = [ChildSpec("b", Echo, kwargs={"journal": str(journal)}, shutdown="brutal_kill")]
    system.start_root("root", SupFlags("one_for_one"), specs)
    pid = running_pid(system, "root", "b")
    system.terminate_child("root", "b")
    assert wait_all_dead([pid], 1.0) == []
    assert not journal.exists()


def test_failed_child_start_aborts_supervisor_start(system, tmp_path):
    journal = tmp_path / "journal"
    specs = [
        ChildSpec("ok", Echo, kwargs={"journal": str(journal)}),
        ChildSpec("bad", FailingStart),
    ]
    with pytest.raises(SupervisionError, match="failed to start child 'bad'"):
        system.start_root("root", SupFlags("one_for_one"), specs)
    assert [entry[:2] for entry in _journal(journal)] == [["ok", "shutdown"]]


def test_simple_one_for_one_starts_dynamic_children(system):
    template = ChildSpec("worker", Echo, restart="transient")
    system.start_root("root", SupFlags("simple_one_for_one", 5, 5), [template])
    first = system.start_child("root", args=(0,), child_id="job-1")
    second = system.start_child("root", args=(0,))
    assert first["id"] == "job-1"
    assert second["id"] == "worker-2"
    assert system.count_children("root")["active"] == 2
    assert system.call("root/job-1", ("echo", "hi")) == "hi"


def test_simple_one_for_one_restarts_crashed_dynamic_child(system):
    system.start_root("root", SupFlags("simple_one_for_one", 5, 5), [ChildSpec("worker", Echo)])
    pid = system.start_child("root", child_id="job")["pid"]
    system.send_to("root/job", "crash")
    assert wait_for(lambda: (c := child(system, "root", "job")) and c["pid"] not in (None, pid))


def test_simple_one_for_one_removes_child_that_ignores_restart(system, tmp_path):
    marker = tmp_path / "marker"
    template = ChildSpec("worker", IgnoreAfterFirst, args=(str(marker),), restart="transient")
    sup = ChildSpec(
        "sup",
        Supervisor,
        args=(SupFlags("simple_one_for_one", 5, 5), [template]),
        type="supervisor",
    )
    system.start_root("root", SupFlags("one_for_one"), [sup])
    pid = system.start_child("root/sup", child_id="job")["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: system.which_children("root/sup") == [])
    system.terminate_child("root", "sup")
    assert child(system, "root", "sup")["status"] == "undefined"


def test_stop_of_nested_tree_with_slow_worker_kills_it_and_leaves_nothing(
    system, tmp_path, log_path
):
    journal = tmp_path / "journal"
    specs = [
        ChildSpec("w1", Echo, kwargs={"journal": str(journal)}),
        ChildSpec("w2", Echo, kwargs={"journal": str(journal)}),
        ChildSpec("w3", Echo, kwargs={"journal": str(journal), "stop_ms": 3000}, shutdown=300),
    ]
    sup = ChildSpec("sup", Supervisor, args=(SupFlags("one_for_one"), specs), type="supervisor")
    system.start_root("root", SupFlags("one_for_one"), [sup])
    pids = list(system.pids().values())
    system.stop()
    order = [entry[0] for entry in _journal(journal)]
    assert order == ["w3", "w2", "w1"]
    assert wait_all_dead(pids, 1.0) == []
    reports = [json.loads(line) for line in log_path.read_text().splitlines()]
    shutdown_errors = [r for r in reports if r.get("context") == "shutdown_error"]
    assert [(r["offender"]["id"], r["reason"]) for r in shutdown_errors] == [("w3", "killed")]


_CREATOR = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    from supervisors import ChildSpec, SupervisionSystem, SupFlags, Supervisor
    from tests.supervisors.workers import Echo
    system = SupervisionSystem().start()
    pair = [ChildSpec("a", Echo), ChildSpec("b", Echo)]
    sub = ChildSpec("sub", Supervisor, args=(SupFlags(), pair), type="supervisor")
    system.start_root("root", SupFlags(), [sub, ChildSpec("c", Echo)])
    pids = list(system.pids().values()) + [system.admin_pid]
    print(" ".join(str(p) for p in pids), flush=True)
    time.sleep(60)
    """
)


def _start_creator() -> tuple[subprocess.Popen[str], list[int]]:
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen(
        [sys.executable, "-c", _CREATOR.format(root=root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stdout.readline()
    return proc, [int(pid) for pid in line.split()]


def test_killing_creator_process_leaves_no_tree_process():
    proc, pids = _start_creator()
    try:
        assert len(pids) >= 6
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        assert wait_all_dead(pids, 1.0) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in pids:
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)


def test_killing_root_supervisor_leaves_no_tree_process():
    proc, pids = _start_creator()
    try:
        root_pid = pids[0]
        os.kill(root_pid, signal.SIGKILL)
        tree = [pid for pid in pids[:-1]]
        assert wait_all_dead(tree, 1.0) == []
    finally:
        proc.kill()
        proc.wait(5)
        for pid in pids:
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)
