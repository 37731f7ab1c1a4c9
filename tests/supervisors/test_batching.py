"""Messages one handler sends to one actor travel as one Batch and keep their order."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from supervisors import Call, ChildSpec, SupervisionError, SupFlags
from supervisors.api import CountChildren
from tests.supervisors.helpers import restarted, running_pid, wait_for
from tests.supervisors.workers import Echo, FanOut

pytestmark = pytest.mark.timeout(60)


def _start(system):
    system.start_root(
        "root",
        SupFlags("one_for_one", 5, 5),
        [ChildSpec("echo", Echo), ChildSpec("fan", FanOut)],
    )


def test_batch_keeps_order_of_calls(system):
    _start(system)
    bodies = [("echo", number) for number in range(50)]

    answers = system.call("root/fan", ("fan_out", "root/echo", bodies))

    assert answers == list(range(50))


def test_burst_of_replies_arrives_as_batch(system):
    _start(system)
    system.call("root/fan", ("fan_out", "root/echo", [("echo", 1), ("echo", 2)]))

    # The echo actor replied to both calls from one handler, so the replies came back
    # as one Batch. With one thespian message per send this count stays 0.
    assert system.call("root/fan", ("batches",)) >= 1


def test_crash_inside_batch_loses_no_call(system):
    _start(system)
    echo_pid = running_pid(system, "root", "echo")
    bodies = [("echo", 1), ("crash",), ("echo", 3), ("calls",)]

    answers = system.call("root/fan", ("fan_out", "root/echo", bodies))

    # The calls after the crash reach the restarted instance, which has counted
    # one call before ("calls",) itself.
    assert answers[0] == 1
    assert answers[1] == ("error", "actor_crashed")
    assert answers[2] == 3
    assert answers[3] == 2
    assert restarted(system, "root", "echo", echo_pid) != echo_pid


def test_sigkill_mid_batch_answers_every_call(system):
    _start(system)
    echo_pid = running_pid(system, "root", "echo")
    bodies = [("sleep", 0.001)] * 3000

    def kill_soon() -> None:
        # The client is not thread-safe; this thread only sends the signal.
        time.sleep(0.5)
        os.kill(echo_pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_soon)
    killer.start()
    try:
        answers = system.call("root/fan", ("fan_out", "root/echo", bodies, 20.0), timeout=30)
    finally:
        killer.join()

    # The killed instance took the rest of the batch with it. Its supervisor replies
    # "lost" to those calls, and no call may stay without a reply.
    assert answers.count("no reply") == 0
    assert set(answers) <= {"slept", ("error", "lost")}
    assert answers.count(("error", "lost")) > 0
    # Calls reach the echo actor in batches of at most MAX_BATCH, and the replies to a
    # batch leave once it is handled: those of the 0.5 s before the kill got out.
    assert answers.count("slept") >= 100


def test_unpicklable_reply_spares_rest_of_batch(system):
    _start(system)
    bodies = [("echo", 0), ("unpicklable",), ("echo", 2)]

    answers = system.call("root/fan", ("fan_out", "root/echo", bodies, 2.0), timeout=10)

    assert answers[0] == 0
    assert answers[1] == "no reply"
    assert answers[2] == 2


def test_invalid_address_crashes_actor_once(system, tmp_path):
    _start(system)
    journal = tmp_path / "journal"
    echo_pid = running_pid(system, "root", "echo")

    with pytest.raises(SupervisionError) as error:
        system.call("root/echo", ("bad_send", str(journal)))

    assert error.value.code == "actor_crashed"
    assert restarted(system, "root", "echo", echo_pid) != echo_pid
    # thespian runs a handler again when an exception escapes it; this one ran once.
    assert journal.read_text() == "x"


def test_invalid_address_in_batch_runs_once(system, tmp_path):
    _start(system)
    journal = tmp_path / "journal"
    bodies = [("bad_send", str(journal))] * 3

    answers = system.call("root/fan", ("fan_out", "root/echo", bodies, 5.0), timeout=10)

    # The first call crashes the instance; the other two reach its replacement and
    # crash it in turn.
    assert answers == [("error", "actor_crashed")] * 3
    assert journal.read_text() == "xxx"


def test_delivery_to_own_supervisor_keeps_order(system, tmp_path):
    _start(system)
    journal = tmp_path / "journal"
    casts = [("root/echo", ("record", tag, str(journal))) for tag in range(10)]
    # A path that ends at the root itself makes the root handle the message inside
    # the handler that delivers the batch.
    count = ("root/", Call("count", CountChildren()))
    messages = [*casts[:5], count, *casts[5:]]

    system.call("root/fan", ("send_named", messages))

    wait_for(lambda: len(journal.read_text().split()) >= 10 if journal.exists() else False)
    assert journal.read_text().split() == [str(tag) for tag in range(10)]
