"""Outbox: grouping by address, order, and errors of a send."""

from __future__ import annotations

import threading

import pytest

from supervisors.messages import Batch
from supervisors.outbox import MAX_BATCH, Outbox


class Address:
    """Stands in for thespian's addresses, which compare by value and are not hashable."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, port: int) -> None:
        self.port = port

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Address) and other.port == self.port

    def __repr__(self) -> str:
        return f"Address({self.port})"


def test_single_message_is_sent_unwrapped():
    sent = []
    outbox = Outbox(lambda address, message: sent.append((address, message)))

    outbox.add(Address(1), "a")
    outbox.flush()

    assert sent == [(Address(1), "a")]


def test_same_address_messages_form_batch():
    sent = []
    outbox = Outbox(lambda address, message: sent.append((address, message)))

    outbox.add(Address(1), "a")
    outbox.add(Address(2), "x")
    outbox.add(Address(1), "b")
    outbox.add(Address(1), "c")
    outbox.flush()

    assert sent == [(Address(1), Batch(("a", "b", "c"))), (Address(2), "x")]


def test_flush_empties_outbox():
    sent = []
    outbox = Outbox(lambda address, message: sent.append((address, message)))
    outbox.add(Address(1), "a")

    outbox.flush()
    outbox.flush()

    assert len(sent) == 1
    assert len(outbox) == 0


def test_failed_send_does_not_stop_others():
    sent = []

    def send(address: Address, message: object) -> None:
        if address.port == 1:
            raise ValueError("invalid address")
        sent.append((address, message))

    outbox = Outbox(send)
    outbox.add(Address(1), "a")
    outbox.add(Address(2), "b")

    with pytest.raises(ValueError, match="invalid address"):
        outbox.flush()

    assert sent == [(Address(2), "b")]
    assert len(outbox) == 0


def test_unpicklable_batch_goes_message_by_message():
    sent = []
    outbox = Outbox(lambda address, message: sent.append((address, message)))
    lock = threading.Lock()

    outbox.add(Address(1), "a")
    outbox.add(Address(1), lock)
    outbox.add(Address(1), "c")
    outbox.flush()

    # thespian poisons only the message that does not pickle, so the others still go.
    assert sent == [(Address(1), "a"), (Address(1), lock), (Address(1), "c")]


def test_long_group_splits_into_batches():
    sent = []
    outbox = Outbox(lambda address, message: sent.append((address, message)))
    count = 2 * MAX_BATCH + 1

    for number in range(count):
        outbox.add(Address(1), number)
    outbox.flush()

    assert [type(message).__name__ for _, message in sent] == ["Batch", "Batch", "int"]
    delivered = [*sent[0][1].messages, *sent[1][1].messages, sent[2][1]]
    assert delivered == list(range(count))
