"""``SupervisionSystem``: start an actor system, run a supervision tree, talk to it.

This is the Python client of the supervisor API, used from outside the actor
system (the node's main process, the scenario runner, tests). It owns one
thespian ``multiprocTCPBase`` system on its own admin port and one root
supervisor.

thespian's external ``ask`` returns the next message from anyone, not the
reply to that ask. Every request here is therefore a ``Call`` with a fresh
reference, and messages with other references (late replies to calls that
timed out, events) are set aside instead of being taken for the answer.

Start the system before creating any thread, event loop or database
connection in the same process: thespian forks its admin and actors from
this process.

Example::

    with SupervisionSystem() as system:
        system.start_root("root", SupFlags("one_for_one"), [ChildSpec("w", start=Worker)])
        print(system.which_children("root"))
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import socket
import time
from collections import deque
from typing import Any

from thespian.actors import Actor, ActorExitRequest, ActorSystem

from supervisors import _platform, api
from supervisors.messages import (
    Batch,
    Call,
    ChildEvent,
    Deliver,
    Exiting,
    Init,
    Reply,
    Started,
    StartFailed,
)
from supervisors.procfs import process_running
from supervisors.reports import LogSettings
from supervisors.spec import ChildSpec, SupFlags
from supervisors.supervisor import Supervisor

__all__ = ["SupervisionSystem", "SupervisionError", "CallTimeout", "free_port"]

logger = logging.getLogger(__name__)

_THESPIAN_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "level": "WARNING",
        }
    },
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}


class SupervisionError(Exception):
    """A supervisor API call was answered with an error.

    ``code`` is the error's stable code (``not_found``, ``running``,
    ``not_running``, ``start_error`` and so on); ``details`` is optional data.
    """

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.details = details


class CallTimeout(SupervisionError):
    """No reply arrived within the call's timeout."""

    def __init__(self, message: str) -> None:
        super().__init__("timeout", message)


class _AdminProbe(Actor):  # type: ignore[misc]
    """Actor that replies with its parent's pid, the admin's, for cleanup by process group."""

    def receiveMessage(self, message: Any, sender: Any) -> None:  # noqa: N802 - thespian API
        if message == "admin pid":
            self.send(sender, os.getppid())


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((_platform.LOOPBACK, 0))
        return int(probe.getsockname()[1])


class SupervisionSystem:
    """An actor system on ``admin_port`` (0 picks a free port) with one root supervisor.

    ``log_settings`` tells every actor process where to log. ``listen_address``
    other than ``127.0.0.1`` exposes the actor transport, which unpickles what
    it receives, to everyone who can reach that address.
    """

    def __init__(
        self,
        admin_port: int = 0,
        *,
        log_settings: LogSettings | None = None,
        listen_address: str = _platform.LOOPBACK,
    ) -> None:
        self.admin_port = admin_port or free_port()
        self.log_settings = log_settings
        self.listen_address = listen_address
        self.root_name: str | None = None
        self.root_address: Any = None
        self.root_pid: int | None = None
        self.root_started_at: float | None = None
        self.admin_pid: int | None = None
        self.admin_pgid: int | None = None
        self.root_exit: Exiting | None = None
        self._asys: Any = None
        self._refs = itertools.count(1)
        self._events: deque[ChildEvent] = deque()
        self._stray: deque[Any] = deque(maxlen=1000)
        # The rest of a Batch whose first message `_listen` has returned.
        self._unbatched: deque[Any] = deque()

    # -- lifetime -------------------------------------------------------------

    def start(self) -> SupervisionSystem:
        if self.listen_address != _platform.LOOPBACK:
            logger.warning(
                "actor system listening on %s: its transport unpickles what it receives",
                self.listen_address,
            )
        _platform.set_listen_address(self.listen_address)
        _platform.install()
        self._asys = ActorSystem(
            "multiprocTCPBase",
            capabilities={"Admin Port": self.admin_port},
            logDefs=_THESPIAN_LOGGING,
        )
        self.admin_pid = self._find_admin_pid()
        self.admin_pgid = os.getpgid(self.admin_pid)
        return self

    def _find_admin_pid(self) -> int:
        probe = self._asys.createActor(_AdminProbe)
        answer = self._asys.ask(probe, "admin pid", 10)
        self._asys.tell(probe, ActorExitRequest())
        if not isinstance(answer, int):
            raise SupervisionError(
                "start_error",
                f"actor system returned {answer!r} to its probe; expected the admin's pid",
            )
        return answer

    def __enter__(self) -> SupervisionSystem:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start_root(
        self,
        name: str,
        flags: SupFlags,
        children: list[ChildSpec],
        *,
        timeout: float = 30.0,
        notify_starter: bool = False,
        supervisor_class: type[Supervisor] = Supervisor,
        supervisor_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Start the root supervisor and wait until its children have started.

        With ``notify_starter`` the whole tree sends its child events to this
        client from the first start on; read them with ``events()``.
        """
        if self._asys is None:
            self.start()
        self.root_name = name
        self.root_address = self._asys.createActor(supervisor_class)
        self._asys.tell(
            self.root_address,
            Init(
                name=name,
                path=name,
                args=(flags, list(children)),
                kwargs={
                    "log_settings": self.log_settings,
                    "dead_letters": True,
                    "notify_parent": notify_starter,
                    **(supervisor_kwargs or {}),
                },
                log_settings=self.log_settings,
                supervised=False,
            ),
        )
        deadline = time.monotonic() + timeout
        while True:
            message = self._listen(deadline)
            if isinstance(message, Started):
                self.root_pid = message.pid
                self.root_started_at = message.at
                return
            if isinstance(message, StartFailed):
                self.root_address = None
                raise SupervisionError("start_error", f"root supervisor {name!r}: {message.reason}")
            if message is None:
                raise CallTimeout(f"root supervisor {name!r} did not start within {timeout} s")
            self._set_aside(message)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the tree in reverse start order, then the actor system; kill what is left."""
        if self._asys is None:
            return
        if self.root_running():
            try:
                self.call(self.root_name or "", api.StopSupervisor(), timeout=timeout)
            except SupervisionError as exc:
                logger.warning("root supervisor did not stop cleanly: %s", exc)
        try:
            if process_running(self.admin_pid):
                # thespian waits for its admin here, so a dead admin is skipped.
                self._asys.shutdown()
        finally:
            self._asys = None
            self._kill_leftovers()

    def root_running(self) -> bool:
        """Return True while the root supervisor's process runs and has not reported its exit."""
        if self.root_address is None or self.root_exit is not None:
            return False
        return process_running(self.root_pid)

    def _kill_leftovers(self) -> None:
        if self.admin_pgid is None:
            return
        try:
            os.killpg(self.admin_pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    # -- messaging ---------------------------------------------------------------

    def _listen(self, deadline: float) -> Any:
        if self._unbatched:
            message = self._unbatched.popleft()
        else:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            message = self._asys.listen(remaining)
            if isinstance(message, Batch):
                self._unbatched.extend(message.messages)
                message = self._unbatched.popleft() if self._unbatched else None
        if isinstance(message, Exiting) and self.root_pid is not None:
            self.root_exit = message
        return message

    def _set_aside(self, message: Any) -> None:
        if isinstance(message, ChildEvent):
            self._events.append(message)
        elif message is not None:
            self._stray.append(message)

    def send_to(self, path: str, message: Any) -> None:
        """Send ``message`` to the actor named by ``path`` (``root/sup/child``) without waiting."""
        self._asys.tell(self.root_address, self._route(path, message))

    def _route(self, path: str, message: Any) -> Any:
        parts = [part for part in path.split("/") if part]
        if not parts or parts[0] != self.root_name:
            raise SupervisionError(
                "not_found", f"path {path!r} is not under root {self.root_name!r}"
            )
        return Deliver(tuple(parts[1:]), message) if len(parts) > 1 else message

    def call(self, path: str, body: Any, *, timeout: float = 5.0) -> Any:
        """Send ``body`` as a call to the actor at ``path`` and return its reply value."""
        if self._asys is None or self.root_address is None:
            raise SupervisionError("not_running", "the supervision tree is not running")
        ref = next(self._refs)
        self._asys.tell(self.root_address, self._route(path, Call(ref, body)))
        deadline = time.monotonic() + timeout
        while True:
            message = self._listen(deadline)
            if message is None:
                raise CallTimeout(f"no reply from {path} within {timeout} s")
            if isinstance(message, Reply) and message.ref == ref:
                if message.error is not None:
                    raise SupervisionError(
                        message.error.code, message.error.message, message.error.details
                    )
                if isinstance(body, api.StopSupervisor) and path == self.root_name:
                    self.root_address = None
                return message.value
            self._set_aside(message)

    def events(self, wait: float = 0.0) -> list[ChildEvent]:
        """Return the child events received so far, waiting up to ``wait`` s for the first."""
        deadline = time.monotonic() + wait
        while not self._events and wait > 0:
            message = self._listen(deadline)
            if message is None:
                break
            self._set_aside(message)
        drained = list(self._events)
        self._events.clear()
        return drained

    def pump(self, duration: float) -> None:
        """Receive messages for ``duration`` seconds, keeping events for ``events()``."""
        deadline = time.monotonic() + duration
        while True:
            message = self._listen(deadline)
            if message is None:
                return
            self._set_aside(message)

    # -- supervisor API -----------------------------------------------------------

    def which_children(self, supervisor: str, *, timeout: float = 5.0) -> list[dict[str, Any]]:
        return list(self.call(supervisor, api.WhichChildren(), timeout=timeout))

    def count_children(self, supervisor: str, *, timeout: float = 5.0) -> dict[str, int]:
        return dict(self.call(supervisor, api.CountChildren(), timeout=timeout))

    def start_child(
        self,
        supervisor: str,
        spec: ChildSpec | None = None,
        *,
        args: tuple[Any, ...] = (),
        child_id: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        return dict(
            self.call(supervisor, api.StartChild(spec, tuple(args), child_id), timeout=timeout)
        )

    def terminate_child(self, supervisor: str, child_id: str, *, timeout: float = 30.0) -> None:
        self.call(supervisor, api.TerminateChild(child_id), timeout=timeout)

    def restart_child(
        self, supervisor: str, child_id: str, *, timeout: float = 30.0
    ) -> dict[str, Any]:
        return dict(self.call(supervisor, api.RestartChild(child_id), timeout=timeout))

    def delete_child(self, supervisor: str, child_id: str, *, timeout: float = 5.0) -> None:
        self.call(supervisor, api.DeleteChild(child_id), timeout=timeout)

    def get_childspec(self, supervisor: str, child_id: str, *, timeout: float = 5.0) -> ChildSpec:
        spec = self.call(supervisor, api.GetChildSpec(child_id), timeout=timeout)
        assert isinstance(spec, ChildSpec)
        return spec

    def snapshot(self, *, timeout: float = 5.0) -> dict[str, Any]:
        """Return the whole tree: supervisors with flags, children with pid, status, restarts."""
        return dict(self.call(self.root_name or "", api.Snapshot(timeout * 0.8), timeout=timeout))

    def subscribe(self, *, timeout: float = 5.0) -> None:
        """Receive ``ChildEvent`` messages of the whole tree; read them with ``events()``."""
        self.call(self.root_name or "", api.Subscribe(None), timeout=timeout)

    def pids(self) -> dict[str, int]:
        """Return the process id of every running actor of the tree, keyed by path."""
        found: dict[str, int] = {}

        def walk(node: dict[str, Any]) -> None:
            found[node["path"]] = node["pid"]
            for child in node["children"]:
                if child.get("supervisor") and "path" in child["supervisor"]:
                    walk(child["supervisor"])
                elif child["pid"] is not None:
                    found[f"{node['path']}/{child['id']}"] = child["pid"]

        walk(self.snapshot())
        return found
