"""Loopback-only sockets and structured supervisor reports."""

from __future__ import annotations

import json
import os

import pytest

from supervisors import ChildSpec, Supervisor, SupFlags
from supervisors.reports import REPORT_CONTEXTS
from tests.supervisors.helpers import restarted, running_pid
from tests.supervisors.workers import Echo, FailingStart
from tests.support.processes import group_members, listening_sockets

pytestmark = pytest.mark.timeout(60)


def test_every_socket_listens_on_loopback_only(system):
    sub = ChildSpec("sub", Supervisor, args=(SupFlags(), [ChildSpec("a", Echo)]), type="supervisor")
    system.start_root("root", SupFlags(), [ChildSpec("w", Echo), sub])
    members = group_members(os.getpgid(system.admin_pid))
    sockets = listening_sockets(members)
    assert len(sockets) >= 4
    assert {address for address, _port in sockets} == {"127.0.0.1"}


def test_admin_listens_on_its_port(system):
    system.start_root("root", SupFlags(), [ChildSpec("w", Echo)])
    sockets = listening_sockets([system.admin_pid])
    assert ("127.0.0.1", system.admin_port) in sockets


def _records(log_path):
    return [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]


def test_child_terminated_report_has_fixed_fields(system, log_path):
    system.start_root("root", SupFlags("one_for_one", 5, 5), [ChildSpec("w", Echo)])
    pid = running_pid(system, "root", "w")
    system.send_to("root/w", "crash")
    restarted(system, "root", "w", pid)
    reports = [r for r in _records(log_path) if r.get("context") == "child_terminated"]
    assert len(reports) == 1
    report = reports[0]
    assert report["supervisor"] == "root"
    assert report["reason"] == "RuntimeError: asked to crash"
    assert report["offender"]["id"] == "w"
    assert report["offender"]["pid"] == pid


def test_start_error_report_is_logged_once(system, log_path):
    sub = ChildSpec(
        "sub", Supervisor, args=(SupFlags(), [ChildSpec("bad", FailingStart)]), type="supervisor"
    )
    with pytest.raises(Exception, match="failed to start"):
        system.start_root("root", SupFlags(), [sub])
    reports = [r for r in _records(log_path) if r.get("context") == "start_error"]
    assert [(r["supervisor"], r["offender"]["id"]) for r in reports] == [
        ("root/sub", "bad"),
        ("root", "sub"),
    ]


def test_report_contexts_are_otp_names():
    assert REPORT_CONTEXTS == (
        "start_error",
        "child_terminated",
        "shutdown_error",
        "reached_max_restart_intensity",
    )
