"""``tpir run``: the node's main process.

In this order, the main process:

1. claims stdout for frames (`tpir.bridge.stdio.claim_stdout`): descriptor 1 becomes
   stderr in this process and in every actor process forked from it;
2. sets up logging to stderr, as text or JSON lines (``--log-format``, else the
   configuration's ``node.log_format``), with the same settings for every actor process;
3. loads and validates the configuration; an invalid one ends the process with exit
   status 2 and a message that names each bad field;
4. starts the actor system, before any thread, event loop or database connection
   exists in this process, because thespian forks the actor processes from here;
5. starts the root supervisor ``tpir`` with ``integrations`` (`actors.tree`) and the
   bridge (`tpir.node.bridge_actor`) as children, subscribed to every child event;
6. waits until the bridge exits normally (end of port input), SIGTERM or SIGINT arrives,
   or the root supervisor gives up.

Shutdown stops the tree in reverse start order. When that takes longer than
`ROOT_STOP_SECONDS`, the remaining actor processes are killed by process group, so the
node exits within about two seconds of the end of its input even while actors are busy.

Exit status: 0 after end of input or a signal, 1 when the tree failed to start or the
root supervisor gave up, 2 for an invalid configuration.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections import deque
from pathlib import Path
from types import FrameType
from typing import Final

from actors.tree import ROOT, root_children, root_flags
from supervisors import ChildEvent, ChildSpec, LogSettings, SupervisionError, SupervisionSystem, api
from supervisors.procfs import process_running
from supervisors.reports import configure_logging
from tpir.bridge.stdio import claim_stdout
from tpir.config import Config, ConfigError, load_config
from tpir.node.bridge_actor import BridgeActor
from tpir.node.plans import BRIDGE_CHILD_ID

__all__ = [
    "run",
    "bridge_spec",
    "EXIT_OK",
    "EXIT_FAILED",
    "EXIT_INVALID_CONFIG",
    "ROOT_STOP_SECONDS",
]

logger = logging.getLogger(__name__)

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_INVALID_CONFIG: Final = 2

ROOT_STOP_SECONDS: Final = 1.0
"""Seconds the orderly stop of the tree may take before its processes are killed.

NOTE: chosen so that the time from end of input to exit stays under 2 s. A slower stop
is cut short by SIGKILL, so an actor may lose state that it would have saved in
``terminate``.
"""

# How long one wait for child events lasts, and so the delay before a signal is seen.
_POLL_SECONDS: Final = 0.1
# How long the main process waits for killed processes to be gone.
_KILL_WAIT_SECONDS: Final = 0.5
_BRIDGE_SHUTDOWN_MS: Final = 1000


def bridge_spec(config: Config, frames_fd: int, input_fd: int = 0) -> ChildSpec:
    """Return the bridge's child spec: transient, so an exit at end of input is final."""
    return ChildSpec(
        BRIDGE_CHILD_ID,
        BridgeActor,
        args=(config, frames_fd, input_fd),
        restart="transient",
        shutdown=_BRIDGE_SHUTDOWN_MS,
    )


def run(config_path: str, log_format: str | None = None) -> int:
    """Run a node until its input ends, a stop signal arrives or its root gives up; return
    the exit status."""
    frames_fd = claim_stdout()
    configure_logging(LogSettings(format=log_format or "text"))
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        logger.error("%s", exc)
        return EXIT_INVALID_CONFIG
    settings = LogSettings(
        level=config.node.log_level, format=log_format or str(config.node.log_format)
    )
    configure_logging(settings)
    return _NodeProcess(config, frames_fd, settings).run()


class _NodeProcess:
    """The main process's part of the node: start, wait for a reason to stop, stop."""

    def __init__(self, config: Config, frames_fd: int, settings: LogSettings) -> None:
        self._config = config
        self._frames_fd = frames_fd
        self._settings = settings
        self._signal: str | None = None
        # Exits of the root's direct children, newest last, with the time they arrived.
        self._root_child_exits: deque[tuple[float, ChildEvent]] = deque(maxlen=32)

    def run(self) -> int:
        node = self._config.node
        # Created here, before any actor opens the store in it, so that the store
        # does not create it first with the default mode.
        Path(node.data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
        system = SupervisionSystem(
            node.admin_port, log_settings=self._settings, listen_address=node.listen_address
        )
        try:
            system.start()
        except Exception as exc:  # noqa: BLE001 - any failure to start ends the node
            logger.error("starting the actor system on port %d failed: %s", node.admin_port, exc)
            return EXIT_FAILED
        # Installed after the admin has forked, so that no actor process inherits them.
        self._install_signal_handlers()
        try:
            status = self._start_and_serve(system)
        finally:
            self._shutdown(system)
        return status

    def _start_and_serve(self, system: SupervisionSystem) -> int:
        children = root_children(self._config) + [bridge_spec(self._config, self._frames_fd)]
        try:
            system.start_root(ROOT, root_flags(), children, notify_starter=True)
        except SupervisionError as exc:
            logger.error("the supervision tree failed to start: %s", exc)
            return EXIT_FAILED
        logger.info(
            "node started: pid %d, actor system admin port %d, %d integrations, data folder %s",
            os.getpid(),
            system.admin_port,
            len(self._config.integrations),
            self._config.node.data_dir,
        )
        return self._serve(system, ROOT)

    def _serve(self, system: SupervisionSystem, root: str) -> int:
        bridge = f"{root}/{BRIDGE_CHILD_ID}"
        while True:
            if self._signal is not None:
                logger.info("received %s; stopping the node", self._signal)
                return EXIT_OK
            for event in system.events(wait=_POLL_SECONDS):
                if event.event != "terminated" or event.supervisor != root:
                    continue
                self._root_child_exits.append((time.monotonic(), event))
                if event.path != bridge:
                    continue
                if event.reason == "normal":
                    logger.info("the bridge reported the end of port input; stopping the node")
                    return EXIT_OK
                logger.warning(
                    "the bridge exited (%s); the root supervisor restarts it", event.reason
                )
            if system.root_exit is not None:
                logger.error("%s", self._describe_root_exit(system))
                return EXIT_FAILED
            if not process_running(system.root_pid):
                # Killed from outside (SIGKILL, OOM killer): it sent no exit, and
                # the bridge, which reads the port, died with it.
                logger.error(
                    "the root supervisor's process %s is gone without an exit; "
                    "the node is stopping",
                    system.root_pid,
                )
                return EXIT_FAILED

    def _describe_root_exit(self, system: SupervisionSystem) -> str:
        """Return one line saying that the root gave up, and why as far as is known."""
        exit_info = system.root_exit
        assert exit_info is not None
        flags = root_flags()
        now = time.monotonic()
        recent = [
            event
            for at, event in self._root_child_exits
            if now - at <= flags.period and event.reason not in ("normal", "shutdown")
        ]
        exits = ", ".join(f"{event.child} ({event.reason})" for event in recent) or "none seen"
        if exit_info.kind == "shutdown" and len(recent) > flags.intensity:
            cause = (
                f"its children exited more than {flags.intensity} times within "
                f"{flags.period:g} s, its maximum restart intensity"
            )
        else:
            cause = f"it exited with {exit_info.kind}: {exit_info.reason}"
        return (
            f"the root supervisor gave up and the node is stopping: {cause}; "
            f"recent child exits: {exits}"
        )

    def _install_signal_handlers(self) -> None:
        def request_stop(signum: int, frame: FrameType | None) -> None:
            self._signal = signal.Signals(signum).name

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)

    def _shutdown(self, system: SupervisionSystem) -> None:
        started = time.monotonic()
        if system.root_running():
            try:
                system.call(system.root_name or "", api.StopSupervisor(), timeout=ROOT_STOP_SECONDS)
            except SupervisionError as exc:
                logger.warning(
                    "the supervision tree did not stop within %g s (%s); killing its processes",
                    ROOT_STOP_SECONDS,
                    exc,
                )
                _kill_process_group(system.admin_pid)
                # Once the root's process is gone, stop() skips the orderly stop that
                # has just timed out and only closes the actor system.
                _wait_until_gone(system.root_pid, _KILL_WAIT_SECONDS)
        try:
            system.stop(timeout=ROOT_STOP_SECONDS)
        except Exception as exc:  # noqa: BLE001 - the process exits either way
            logger.error("stopping the actor system failed: %s", exc)
        logger.info("node stopped in %.2f s", time.monotonic() - started)


def _wait_until_gone(pid: int | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while process_running(pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def _kill_process_group(admin_pid: int | None) -> None:
    """SIGKILL the actor system's process group: the admin, its logger and every actor."""
    if admin_pid is None:
        return
    try:
        os.killpg(os.getpgid(admin_pid), signal.SIGKILL)
    except ProcessLookupError:
        pass
