"""Actors used by the supervisor tests; importable by every actor process."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from supervisors import IGNORE, NOREPLY, Call, Caller, GenActor, Reply
from supervisors.messages import Batch


class Echo(GenActor):
    """Replies to ("echo", x) with x, ("pid",) with its pid, ("crash",) by raising,
    ("stop", reason) by stopping; counts calls in its state.

    ("unpicklable",) replies with a lock, which thespian cannot send. ("bad_send",
    journal) appends "x" to ``journal`` and then sends to an invalid address. The cast
    ("record", tag, journal) appends ``tag`` and a newline to ``journal``."""

    def init(self, stop_ms: int = 0, journal: str | None = None) -> None:
        self.stop_ms = stop_ms
        self.calls = 0
        self.journal = journal

    def handle_call(self, body: Any, caller: Caller) -> Any:
        self.calls += 1
        kind = body[0]
        if kind == "echo":
            return body[1]
        if kind == "pid":
            return os.getpid()
        if kind == "calls":
            return self.calls
        if kind == "crash":
            raise RuntimeError("asked to crash")
        if kind == "stop":
            self.stop(body[1])
            return "stopping"
        if kind == "append_then_crash":
            with open(body[1], "a", encoding="utf-8") as out:
                out.write("x")
            raise RuntimeError("crash after a side effect")
        if kind == "sleep":
            time.sleep(body[1])
            return "slept"
        if kind == "unpicklable":
            return threading.Lock()
        if kind == "bad_send":
            with open(body[1], "a", encoding="utf-8") as out:
                out.write("x")
            self.send("not an address", "lost")
            return "sent"
        raise ValueError(f"bad request {body!r}")

    def handle_cast(self, message: Any, sender: Any) -> None:
        if message == "crash":
            raise RuntimeError("asked to crash")
        if isinstance(message, tuple) and message[0] == "record":
            with open(message[2], "a", encoding="utf-8") as out:
                out.write(f"{message[1]}\n")
            return
        super().handle_cast(message, sender)

    def terminate(self, reason: str) -> None:
        if self.journal:
            with open(self.journal, "a", encoding="utf-8") as out:
                out.write(f"{self.name} {reason} {time.monotonic()}\n")
        if reason == "shutdown" and self.stop_ms:
            time.sleep(self.stop_ms / 1000.0)


class FailingStart(GenActor):
    """Raises in init."""

    def init(self) -> None:
        raise RuntimeError("cannot start")


class IgnoreAfterFirst(GenActor):
    """Starts the first time, then returns IGNORE from every later start (marker file)."""

    def init(self, marker: str) -> Any:
        path = Path(marker)
        if path.exists():
            return IGNORE
        path.write_text("started once")
        return None

    def handle_call(self, body: Any, caller: Caller) -> Any:
        if body == ("crash",):
            raise RuntimeError("asked to crash")
        return os.getpid()


class FanOut(GenActor):
    """Sends several calls to one actor from one handler and collects the replies.

    ``("fan_out", path, bodies[, timeout])`` sends one call per body to the actor at
    ``path`` by name, all from the same handler. Its reply lists what each call
    returned, in the order of ``bodies``: a value, or ``("error", code)``. With a
    ``timeout`` in seconds it replies then at the latest, with ``"no reply"`` for the
    calls still unanswered. ``("send_named", [(path, message), ...])`` sends each
    message by name from one handler. ``("batches",)`` replies with the number of
    `Batch` messages this actor has received.
    """

    def __init__(self) -> None:
        super().__init__()
        self.batches = 0
        self.pending: dict[int, tuple[Caller, list[Any], int]] = {}
        self.next_id = 0

    def receiveMessage(self, message: Any, sender: Any) -> Any:  # noqa: N802 - thespian API
        if isinstance(message, Batch):
            self.batches += 1
        return super().receiveMessage(message, sender)

    def handle_call(self, body: Any, caller: Caller) -> Any:
        if body[0] == "batches":
            return self.batches
        if body[0] == "send_named":
            for path, message in body[1]:
                self.send_named(path, message)
            return len(body[1])
        path, bodies = body[1], body[2]
        self.next_id += 1
        self.pending[self.next_id] = (caller, ["no reply"] * len(bodies), len(bodies))
        for index, each in enumerate(bodies):
            self.send_named(path, Call((self.next_id, index), each, self.myAddress))
        if len(body) > 3:
            self.send_after(body[3], self.next_id)
        return NOREPLY

    def handle_timeout(self, payload: Any) -> None:
        entry = self.pending.pop(payload, None)
        if entry is not None:
            self.reply(entry[0], entry[1])

    def handle_cast(self, message: Any, sender: Any) -> None:
        if not isinstance(message, Reply):
            super().handle_cast(message, sender)
            return
        fan_id, index = message.ref
        if fan_id not in self.pending:
            return  # its reply went out at the timeout
        caller, answers, missing = self.pending[fan_id]
        if answers[index] != "no reply":
            return  # a second reply, such as "lost" after a killed instance's value
        answers[index] = message.value if message.error is None else ("error", message.error.code)
        if missing == 1:
            del self.pending[fan_id]
            self.reply(caller, answers)
        else:
            self.pending[fan_id] = (caller, answers, missing - 1)


class Clock(GenActor):
    """Sets timers on request and records when they fire.

    ``("timer", delay)`` sets a timer and replies "set"; ``("lateness",)`` replies with
    how many seconds late the last such timer fired, or None. ``("two", delay, action,
    journal)`` sets two timers with the same delay: the first one's handler writes
    "first" to ``journal`` and then cancels the second (``action`` "cancel") or stops
    the actor (``action`` "stop"). The second writes "second", and ``terminate``
    writes "terminate". ``("work", seconds)`` sleeps, standing for a slow handler.
    """

    def init(self) -> None:
        self.lateness: float | None = None
        self.second_token: int | None = None
        self.journal: str | None = None

    def handle_call(self, body: Any, caller: Caller) -> Any:
        kind = body[0]
        if kind == "timer":
            self.send_after(body[1], ("timer", time.monotonic() + body[1]))
            return "set"
        if kind == "lateness":
            return self.lateness
        if kind == "two":
            _, delay, action, journal = body
            self.journal = journal
            self.send_after(delay, ("first", action))
            self.second_token = self.send_after(delay, ("second",))
            return "set"
        if kind == "work":
            time.sleep(body[1])
            return "worked"
        raise ValueError(f"bad request {body!r}")

    def handle_timeout(self, payload: Any) -> None:
        if payload[0] == "timer":
            self.lateness = time.monotonic() - payload[1]
            return
        self._write(payload[0])
        if payload[0] == "first" and payload[1] == "cancel":
            self.cancel_timer(self.second_token)
        elif payload[0] == "first" and payload[1] == "stop":
            self.stop("normal")

    def terminate(self, reason: str) -> None:
        self._write("terminate")

    def _write(self, line: str) -> None:
        if self.journal is not None:
            with open(self.journal, "a", encoding="utf-8") as out:
                out.write(f"{line}\n")
