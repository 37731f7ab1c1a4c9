"""TimerQueue: due order, cancellation and the thespian wakeups it requests."""

from __future__ import annotations

from supervisors.timers import TimerQueue


def fire(timers: TimerQueue, at: float, now: float) -> tuple[list[object], float | None]:
    """Deliver a wakeup as GenActor does: take each due timer's payload in turn."""
    tokens, next_wakeup = timers.on_wakeup(at, now)
    payloads = []
    for token in tokens:
        found, payload = timers.take(token)
        if found:
            payloads.append(payload)
    return payloads, next_wakeup


def test_first_timer_requests_wakeup():
    timers = TimerQueue()

    token, wakeup = timers.add(10.0, "a")

    assert token == 1
    assert wakeup == 10.0


def test_later_timer_needs_no_wakeup():
    timers = TimerQueue()
    timers.add(10.0, "a")

    _, wakeup = timers.add(12.0, "b")

    assert wakeup is None


def test_earlier_timer_requests_own_wakeup():
    timers = TimerQueue()
    timers.add(10.0, "a")

    _, wakeup = timers.add(5.0, "b")

    assert wakeup == 5.0


def test_wakeup_fires_due_timers_in_order():
    timers = TimerQueue()
    timers.add(10.0, "c")
    timers.add(12.0, "late")
    timers.add(8.0, "a")  # requests its own wakeup at 8.0
    timers.add(9.0, "b")

    first, next_wakeup = fire(timers, 8.0, now=10.5)

    assert first == ["a", "b", "c"]
    # The wakeup at 10.0 is still pending in thespian and comes before 12.0.
    assert next_wakeup is None
    second, next_wakeup = fire(timers, 10.0, now=10.6)
    assert second == []
    assert next_wakeup == 12.0
    third, next_wakeup = fire(timers, 12.0, now=12.0)
    assert third == ["late"]
    assert next_wakeup is None
    assert len(timers) == 0


def test_early_wakeup_still_fires_timer():
    timers = TimerQueue()
    timers.add(10.0, "a")

    # thespian rounds delays to microseconds, so the wakeup may arrive just before 10.0.
    due, next_wakeup = fire(timers, 10.0, now=9.9999995)

    assert due == ["a"]
    assert next_wakeup is None


def test_cancelled_timer_never_fires():
    timers = TimerQueue()
    token, _ = timers.add(10.0, "a")
    timers.add(11.0, "b")

    assert timers.cancel(token) is True
    assert timers.cancel(token) is False
    due, next_wakeup = fire(timers, 10.0, now=10.0)

    assert due == []
    assert next_wakeup == 11.0


def test_cancel_all_leaves_queue_empty():
    timers = TimerQueue()
    tokens = [timers.add(float(second), second)[0] for second in range(3000)]

    for token in tokens:
        timers.cancel(token)

    assert len(timers) == 0
    due, next_wakeup = fire(timers, 0.0, now=5000.0)
    assert due == []
    assert next_wakeup is None


def test_many_calls_request_few_wakeups():
    timers = TimerQueue()
    requested = []
    # A call path: every call sets a timer 5 s ahead and cancels it when it ends.
    for call in range(10_000):
        now = call * 0.001
        token, wakeup = timers.add(now + 5.0, ("deadline", call))
        if wakeup is not None:
            requested.append(wakeup)
        timers.cancel(token)

    assert requested == [5.0]
    assert len(timers) == 0


def test_clear_drops_pending_timers():
    timers = TimerQueue()
    timers.add(1.0, "a")
    timers.add(2.0, "b")

    timers.clear()
    due, next_wakeup = fire(timers, 1.0, now=3.0)

    assert due == []
    assert next_wakeup is None


def test_cancel_during_delivery_stops_timer():
    timers = TimerQueue()
    timers.add(10.0, "a")
    second, _ = timers.add(10.0, "b")

    tokens, _ = timers.on_wakeup(10.0, now=10.0)
    first_found, first = timers.take(tokens[0])
    # The handler of "a" cancels "b", which is due at the same wakeup.
    timers.cancel(second)
    second_found, _ = timers.take(tokens[1])

    assert (first_found, first) == (True, "a")
    assert second_found is False
