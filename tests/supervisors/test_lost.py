"""LostCalls: held calls, calls that come back, and calls that had a lost reply."""

from __future__ import annotations

from supervisors.lost import LostCalls
from supervisors.messages import Call


def _call(ref: object, reply_to: str = "caller") -> Call:
    return Call(ref, ("body",), reply_to)


def test_returned_call_is_not_answered():
    lost = LostCalls(window=30.0)
    first, second = _call(1), _call(2)
    batch = lost.hold("root/w", [first, second])

    assert lost.came_back(_call(1)) is True
    path, answered = lost.release(batch, now=10.0)

    assert path == "root/w"
    assert answered == [second]


def test_call_needs_same_reply_address():
    lost = LostCalls(window=30.0)
    lost.hold("root/w", [_call(1, "caller-a")])

    assert lost.came_back(_call(1, "caller-b")) is False
    assert lost.came_back(_call(1, "caller-a")) is True


def test_answered_call_is_recognised_until_window_ends():
    lost = LostCalls(window=30.0)
    batch = lost.hold("root/w", [_call(1)])
    lost.release(batch, now=10.0)

    assert lost.came_back(_call(1)) is False
    assert lost.was_answered(_call(1), now=20.0) is True
    assert lost.was_answered(_call(2), now=20.0) is False
    assert lost.was_answered(_call(1), now=41.0) is False


def test_unhashable_reference_still_matches():
    lost = LostCalls(window=30.0)
    batch = lost.hold("root/w", [_call(["list", 1])])
    lost.release(batch, now=0.0)

    assert lost.was_answered(_call(["list", 1]), now=1.0) is True


def test_many_held_calls_come_back():
    lost = LostCalls(window=30.0)
    calls = [_call(("ref", number)) for number in range(20_000)]
    batch = lost.hold("root/w", calls)

    returned = sum(lost.came_back(_call(("ref", number))) for number in range(0, 20_000, 2))
    _, answered = lost.release(batch, now=0.0)

    assert returned == 10_000
    assert len(answered) == 10_000
