"""The worker actor that scenarios run on the Python side."""

from __future__ import annotations

import time
from typing import Any

from supervisors.actor import GenActor

__all__ = ["ScenarioWorker", "CRASH"]

CRASH = "scenario-crash"


class ScenarioWorker(GenActor):
    """A worker that crashes or stops on request and takes ``stop_ms`` to stop when asked.

    Messages: :data:`CRASH` makes it raise (exit reason ``crash``);
    ``("exit", reason)`` makes it stop itself with ``reason``.
    """

    def init(self, stop_ms: int = 0) -> None:
        self.stop_ms = stop_ms
        self.stopping_itself = False

    def handle_cast(self, message: Any, sender: Any) -> None:
        if message == CRASH:
            raise RuntimeError("scenario crash")
        if isinstance(message, tuple) and message[0] == "exit":
            self.stopping_itself = True
            self.stop(message[1])
            return
        super().handle_cast(message, sender)

    def terminate(self, reason: str) -> None:
        # Only a stop requested by the supervisor takes stop_ms, as in the
        # Erlang worker; a worker stopping itself exits at once.
        if reason == "shutdown" and self.stop_ms and not self.stopping_itself:
            time.sleep(self.stop_ms / 1000.0)
