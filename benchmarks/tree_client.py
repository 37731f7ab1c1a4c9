"""The integration tree of `actors.tree` in a `SupervisionSystem` of the benchmark's process."""

from __future__ import annotations

import itertools
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from actors.messages import Describe, IntegrationCall
from actors.names import router_path
from actors.tree import ROOT, root_children, root_flags
from benchmarks.simulators import CHAT_REQUEST, INTEGRATION
from supervisors import Call, LogSettings, Reply, SupervisionSystem
from tpir.config import parse_config

__all__ = ["IntegrationTree", "RoutedReply"]

_START_SECONDS: Final = 60.0
_STOP_SECONDS: Final = 10.0

# -- the tree and its pipelined client ---------------------------------------------------------


@dataclass(frozen=True)
class RoutedReply:
    """A reply of the router to one pipelined call: the call's ``ref``, value or error."""

    ref: Any
    value: Any
    error: Any
    received_at: float


class IntegrationTree:
    """The node's integration tree (`actors.tree`) in a `SupervisionSystem` of this process.

    ``config_toml`` is the configuration text; actor logs go to ``log_path``. `send`
    and `receive` pipeline calls to the router; `call` makes one call and waits.
    """

    def __init__(self, config_toml: str, log_path: Path) -> None:
        self.config = parse_config(config_toml, environ={"HOME": str(log_path.parent)})
        self.system = SupervisionSystem(
            log_settings=LogSettings(level=self.config.node.log_level, path=str(log_path))
        )
        self._refs = itertools.count()
        self.router = ""

    def __enter__(self) -> IntegrationTree:
        self.system.start()
        try:
            self.system.start_root(ROOT, root_flags(), root_children(self.config))
            self.router = router_path(INTEGRATION, root=ROOT)
            self.system.call(self.router, Describe(), timeout=_START_SECONDS)
        except BaseException:
            self.system.stop(timeout=_STOP_SECONDS)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.system.stop(timeout=_STOP_SECONDS)

    def pids(self) -> dict[str, int]:
        """Return the pid of every actor of the tree, keyed by path."""
        return self.system.pids()

    def call(self, timeout: float = 10.0) -> Any:
        """Make one call to the router and return its result; raises SupervisionError."""
        return self.system.call(
            self.router,
            IntegrationCall(dict(CHAT_REQUEST), idempotency_key=uuid.uuid4().hex),
            timeout=timeout,
        )

    def send(self) -> Any:
        """Send one call to the router without waiting, and return its reference."""
        ref = ("bench", next(self._refs))
        call = IntegrationCall(dict(CHAT_REQUEST), idempotency_key=uuid.uuid4().hex)
        self.system.send_to(self.router, Call(ref, call))
        return ref

    def receive(self, until: float) -> RoutedReply | None:
        """Return the next reply to a call made with `send`, or None at ``until``.

        ``until`` is a `time.monotonic` value. Other messages are dropped.
        """
        while True:
            # NOTE: SupervisionSystem has no public call to collect replies to calls sent
            # with send_to, so this uses its private receive loop.
            message = self.system._listen(until)
            if message is None:
                return None
            if isinstance(message, Reply) and isinstance(message.ref, tuple):
                if message.ref[:1] == ("bench",):
                    return RoutedReply(message.ref, message.value, message.error, time.monotonic())
