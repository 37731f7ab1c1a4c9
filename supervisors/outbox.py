"""``Outbox``: the messages one handler of an actor sends, grouped by address.

thespian's TCP transport delivers messages to one address one at a time, each after
the acknowledgement of the one before, so ten messages to one actor cost ten round
trips. An actor that collects what one handler sends and flushes it when the handler
returns sends those ten as one :class:`~supervisors.messages.Batch` instead. Messages
keep their order per address. A flush sends a single message as itself, so an actor
that sends one message per handler sends exactly what it did before.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

from supervisors.messages import Batch

__all__ = ["MAX_BATCH", "Outbox"]

MAX_BATCH = 32
"""Maximum number of messages in one Batch; more to one address go as several batches.

thespian runs no transmit and no wakeup while an actor handles a message, and a
batch is one thespian message. So the replies to a batch's first messages leave,
and the receiver's timers fire, only once the whole batch is handled. This bound
keeps that delay to the handling time of 32 messages, while a batch of 16 to 32
already carries most of the gain in throughput."""


class Outbox:
    """Messages waiting to be sent, in order per address.

    ``send`` is the function that really sends, thespian's ``Actor.send``. thespian's
    addresses are not hashable, so the groups are kept in a list and found by
    equality; one handler addresses only a few actors.
    """

    def __init__(self, send: Callable[[Any, Any], None]) -> None:
        self._send = send
        self._groups: list[tuple[Any, list[Any]]] = []

    def __len__(self) -> int:
        return sum(len(messages) for _, messages in self._groups)

    def add(self, address: Any, message: Any) -> None:
        """Queue ``message`` for ``address`` behind the messages already queued for it."""
        for queued_address, messages in self._groups:
            if queued_address == address:
                messages.append(message)
                return
        self._groups.append((address, [message]))

    def flush(self) -> None:
        """Send every queued message: one per address, a ``Batch`` where there are several.

        A send that raises (thespian rejects an invalid address) does not keep the
        other addresses from getting theirs: the first error is raised after all sends.
        The queue is empty afterwards.
        """
        groups, self._groups = self._groups, []
        error: Exception | None = None
        for address, messages in groups:
            for message in _envelopes(messages):
                try:
                    self._send(address, message)
                except Exception as exc:  # noqa: BLE001 - re-raised below, after the other sends
                    error = error or exc
        if error is not None:
            raise error


def _envelopes(messages: list[Any]) -> list[Any]:
    """Return what carries ``messages`` to one address: the message alone, or batches.

    thespian pickles a message whole and turns one that fails to pickle into a
    ``PoisonMessage`` for its sender. A batch with one such message would take every
    other message down with it, so a batch that does not pickle is sent message by
    message instead, and only the bad one is poisoned, as without batches.
    """
    if len(messages) == 1:
        return messages
    envelopes: list[Any] = []
    for start in range(0, len(messages), MAX_BATCH):
        chunk = messages[start : start + MAX_BATCH]
        if len(chunk) == 1:
            envelopes.extend(chunk)
            continue
        batch = Batch(tuple(chunk))
        try:
            pickle.dumps(batch, pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - pickle raises several types for unpicklable objects
            envelopes.extend(chunk)
        else:
            envelopes.append(batch)
    return envelopes
