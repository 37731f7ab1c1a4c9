"""Timers of a running actor: cancellation, stops and batches within one wakeup."""

from __future__ import annotations

import time

import pytest

from supervisors import ChildSpec, SupervisionError, SupFlags
from tests.supervisors.helpers import wait_for
from tests.supervisors.workers import Clock, FanOut

pytestmark = pytest.mark.timeout(60)


def _start(system):
    system.start_root(
        "root",
        SupFlags("one_for_one", 5, 5),
        [ChildSpec("clock", Clock), ChildSpec("fan", FanOut)],
    )


def test_timer_cancelled_by_same_wakeup(system, tmp_path):
    _start(system)
    journal = tmp_path / "journal"

    system.call("root/clock", ("two", 0.05, "cancel", str(journal)))
    wait_for(lambda: journal.exists())
    time.sleep(0.3)

    assert journal.read_text().split() == ["first"]


def test_no_timer_after_stop(system, tmp_path):
    _start(system)
    journal = tmp_path / "journal"

    system.call("root/clock", ("two", 0.05, "stop", str(journal)))
    wait_for(lambda: journal.exists() and "terminate" in journal.read_text())
    time.sleep(0.3)

    assert journal.read_text().split() == ["first", "terminate"]


def test_infinite_delay_fails_the_call(system):
    _start(system)

    with pytest.raises(SupervisionError) as error:
        system.call("root/clock", ("timer", float("inf")))

    assert error.value.code == "actor_crashed"
    assert "invalid timer delay inf" in str(error.value)


def test_timer_fires_during_burst(system):
    _start(system)
    system.call("root/clock", ("timer", 0.05))
    # 250 calls of 4 ms each reach the clock as batches. A wakeup can only run between
    # two batches, so the size of a batch bounds how late the timer fires.
    bodies = [("work", 0.004)] * 250

    answers = system.call("root/fan", ("fan_out", "root/clock", bodies, 20.0), timeout=30)

    assert answers == ["worked"] * 250
    lateness = system.call("root/clock", ("lateness",))
    assert lateness is not None
    assert lateness < 0.5
