"""Names that survive restarts, crash replies, and side effects that run once."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from supervisors import ChildSpec, SupervisionError, SupFlags
from tests.supervisors.helpers import restarted, running_pid
from tests.supervisors.workers import Echo

pytestmark = pytest.mark.timeout(60)


def test_crashing_call_gets_error_reply_and_runs_once(system, tmp_path):
    journal = tmp_path / "journal"
    system.start_root("root", SupFlags("one_for_one", 5, 5), [ChildSpec("w", Echo)])
    with pytest.raises(SupervisionError) as error:
        system.call("root/w", ("append_then_crash", str(journal)))
    assert error.value.code == "actor_crashed"
    assert journal.read_text() == "x"


def _child_pids(parent_pid: int) -> list[int]:
    with open(f"/proc/{parent_pid}/task/{parent_pid}/children", encoding="ascii") as children:
        return [int(pid) for pid in children.read().split()]


def test_calls_during_kills_all_get_replies(system):
    system.start_root("root", SupFlags("one_for_one", 50, 5), [ChildSpec("w", Echo)])
    kills = 0

    def killer() -> None:
        # The client is not thread-safe, so this thread finds the worker in /proc.
        nonlocal kills
        for _ in range(5):
            time.sleep(0.15)
            for pid in _child_pids(system.root_pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                    kills += 1
                except ProcessLookupError:
                    pass

    thread = threading.Thread(target=killer)
    answers, errors = 0, []
    thread.start()
    try:
        number = 0
        while thread.is_alive():
            number += 1
            try:
                assert system.call("root/w", ("echo", number), timeout=5) == number
                answers += 1
            except SupervisionError as exc:
                errors.append(exc.code)
    finally:
        thread.join()
    assert kills >= 3
    assert answers > 0
    assert set(errors) <= {"not_running", "lost"}


def test_message_sent_by_name_reaches_replacement(system):
    system.start_root("root", SupFlags("one_for_one", 5, 5), [ChildSpec("w", Echo)])
    pid = running_pid(system, "root", "w")
    os.kill(pid, signal.SIGKILL)
    assert system.call("root/w", ("pid",), timeout=5) != pid


def test_restart_after_exception_is_fast(system):
    system.start_root("root", SupFlags("one_for_one", 5, 5), [ChildSpec("w", Echo)])
    pid = running_pid(system, "root", "w")
    started = time.monotonic()
    system.send_to("root/w", "crash")
    restarted(system, "root", "w", pid)
    assert time.monotonic() - started < 2.0
