"""Messages one handler sends to one actor travel as one Batch and keep their order."""

from __future__ import annotations

import pytest

from supervisors import ChildSpec, SupFlags
from tests.supervisors.helpers import restarted, running_pid
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
