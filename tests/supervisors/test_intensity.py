"""Restart intensity, escalation and restart backoff."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from supervisors import ChildSpec, RestartBackoff, Supervisor, SupFlags
from supervisors.intensity import RestartWindow
from tests.supervisors.helpers import child, restarted, running_pid, wait_for
from tests.supervisors.workers import Echo

pytestmark = pytest.mark.timeout(60)


def test_window_admits_up_to_intensity():
    window = RestartWindow(intensity=2, period=5)
    assert window.admit(0.0)
    assert window.admit(1.0)
    assert not window.admit(2.0)


def test_window_forgets_restarts_older_than_period():
    window = RestartWindow(intensity=1, period=5)
    assert window.admit(0.0)
    assert window.admit(5.01)


def test_window_counts_restart_at_period_edge():
    window = RestartWindow(intensity=1, period=5)
    assert window.admit(0.0)
    assert not window.admit(5.0)


def test_window_with_zero_intensity_rejects_first_restart():
    assert not RestartWindow(intensity=0, period=5).admit(0.0)


def _reports(log_path, context):
    if not log_path.exists():
        return []
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    return [line for line in lines if line.get("context") == context]


def test_restarts_at_intensity_limit_keep_supervisor(system):
    sub = ChildSpec(
        "sub",
        Supervisor,
        args=(SupFlags("one_for_one", 2, 10), [ChildSpec("w", Echo)]),
        type="supervisor",
    )
    system.start_root("root", SupFlags("one_for_one", 5, 10), [sub])
    sub_pid = running_pid(system, "root", "sub")
    for _ in range(2):
        pid = running_pid(system, "root/sub", "w")
        system.send_to("root/sub/w", "crash")
        restarted(system, "root/sub", "w", pid)
    assert running_pid(system, "root", "sub") == sub_pid


def test_restarts_over_intensity_stop_supervisor(system, log_path):
    sub = ChildSpec(
        "sub",
        Supervisor,
        args=(SupFlags("one_for_one", 1, 10), [ChildSpec("w", Echo)]),
        type="supervisor",
    )
    system.start_root("root", SupFlags("one_for_one", 5, 10), [sub])
    sub_pid = running_pid(system, "root", "sub")
    for _ in range(2):
        pid = running_pid(system, "root/sub", "w")
        system.send_to("root/sub/w", "crash")
        wait_for(
            lambda old=pid: (
                child(system, "root/sub", "w") is None
                or child(system, "root/sub", "w")["pid"] != old
            )
        )
    new_sub = restarted(system, "root", "sub", sub_pid)
    assert new_sub != sub_pid
    assert len(_reports(log_path, "reached_max_restart_intensity")) == 1


def test_escalation_through_two_levels(system, log_path):
    inner = ChildSpec(
        "inner",
        Supervisor,
        args=(SupFlags("one_for_one", 0, 10), [ChildSpec("w", Echo)]),
        type="supervisor",
    )
    middle = ChildSpec(
        "middle", Supervisor, args=(SupFlags("one_for_one", 0, 10), [inner]), type="supervisor"
    )
    system.start_root(
        "root", SupFlags("one_for_one", 5, 10), [middle, ChildSpec("bystander", Echo)]
    )
    middle_pid = running_pid(system, "root", "middle")
    bystander = running_pid(system, "root", "bystander")
    system.send_to("root/middle/inner/w", "crash")
    restarted(system, "root", "middle", middle_pid)
    running_pid(system, "root/middle/inner", "w")
    assert running_pid(system, "root", "bystander") == bystander
    gave_up = {r["supervisor"] for r in _reports(log_path, "reached_max_restart_intensity")}
    assert gave_up == {"root/middle/inner", "root/middle"}


def test_root_giving_up_reports_exit(system):
    system.start_root("root", SupFlags("one_for_one", 0, 10), [ChildSpec("w", Echo)])
    system.send_to("root/w", "crash")
    wait_for(lambda: (system.pump(0.05), system.root_exit)[1])
    assert system.root_exit.kind == "shutdown"


def test_backoff_delays_restart(system):
    spec = ChildSpec("w", Echo, backoff=RestartBackoff(minimum=0.3, maximum=1.0, jitter=0.0))
    system.start_root("root", SupFlags("one_for_one", 5, 10), [spec])
    pid = running_pid(system, "root", "w")
    crashed_at = time.monotonic()
    system.send_to("root/w", "crash")
    restarted(system, "root", "w", pid)
    assert time.monotonic() - crashed_at >= 0.3


def test_backoff_grows_with_recent_restarts():
    backoff = RestartBackoff(minimum=0.1, maximum=1.0, jitter=0.0)
    assert [backoff.delay(n, 0.5) for n in range(5)] == [0.1, 0.2, 0.4, 0.8, 1.0]


def test_backoff_jitter_stays_below_delay():
    backoff = RestartBackoff(minimum=0.1, maximum=1.0, jitter=0.5)
    assert 0.05 <= backoff.delay(0, 0.999) <= 0.1


def test_message_during_backoff_reaches_new_instance(system):
    spec = ChildSpec("w", Echo, backoff=RestartBackoff(minimum=0.3, maximum=1.0, jitter=0.0))
    system.start_root("root", SupFlags("one_for_one", 5, 10), [spec])
    pid = running_pid(system, "root", "w")
    system.send_to("root/w", "crash")
    time.sleep(0.05)
    assert system.call("root/w", ("pid",), timeout=5) != pid


def test_kill_of_supervisor_restarts_it_with_children(system):
    sub = ChildSpec(
        "sub",
        Supervisor,
        args=(SupFlags("one_for_one", 1, 5), [ChildSpec("a", Echo), ChildSpec("b", Echo)]),
        type="supervisor",
    )
    system.start_root("root", SupFlags("one_for_one", 5, 5), [sub])
    sub_pid = running_pid(system, "root", "sub")
    old = [running_pid(system, "root/sub", name) for name in ("a", "b")]
    os.kill(sub_pid, signal.SIGKILL)
    restarted(system, "root", "sub", sub_pid)
    new = [running_pid(system, "root/sub", name) for name in ("a", "b")]
    assert set(new).isdisjoint(old)
    from tests.support.processes import wait_all_dead

    assert wait_all_dead(old, timeout=1.0) == []
