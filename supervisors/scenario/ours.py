"""Run a scenario on this project's supervisors, on a real thespian actor system."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

from supervisors.api import StopSupervisor
from supervisors.messages import ChildEvent
from supervisors.scenario.model import (
    CrashStep,
    ExitStep,
    KillStep,
    Scenario,
    StopStep,
    SupervisorNode,
    WaitStep,
    WorkerNode,
)
from supervisors.scenario.observer import Observer, RawEvent
from supervisors.scenario.pool import ScenarioPool
from supervisors.scenario.worker import CRASH, ScenarioWorker
from supervisors.spec import ChildSpec, SupFlags
from supervisors.supervisor import Supervisor
from supervisors.system import SupervisionError, SupervisionSystem

__all__ = ["run_ours", "QUIET_SECONDS"]

logger = logging.getLogger(__name__)

# A step ends once no event has arrived for this long, as on the OTP side.
QUIET_SECONDS = 0.1


def _flags(node: SupervisorNode) -> SupFlags:
    return SupFlags(node.strategy, node.intensity, float(node.period))


def _spec(node: WorkerNode | SupervisorNode) -> ChildSpec:
    if isinstance(node, WorkerNode):
        return ChildSpec(
            node.id,
            ScenarioWorker,
            args=(node.stop_ms,),
            restart=node.restart,
            shutdown=node.shutdown,
        )
    return ChildSpec(
        node.id,
        _supervisor_class(node),
        args=(_flags(node), _children(node)),
        kwargs=_supervisor_kwargs(node),
        restart=node.restart,
        shutdown=node.shutdown,
        type="supervisor",
    )


def _supervisor_class(node: SupervisorNode) -> type[Supervisor]:
    return ScenarioPool if node.strategy == "simple_one_for_one" else Supervisor


def _supervisor_kwargs(node: SupervisorNode) -> dict[str, Any]:
    if node.strategy != "simple_one_for_one":
        return {}
    return {"dynamic_ids": tuple(child.id for child in node.children)}


def _children(node: SupervisorNode) -> list[ChildSpec]:
    # The model guarantees a simple_one_for_one supervisor at least one child,
    # and that all its children share one spec: the first is the template.
    if node.strategy == "simple_one_for_one":
        return [_spec(node.children[0])]
    return [_spec(child) for child in node.children]


class _Run:
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.observer = Observer(scenario)
        self.system = SupervisionSystem()
        self.paths: dict[str, str] = {}
        self.root_alive = False

    def _index_paths(self, node: SupervisorNode, prefix: str) -> None:
        for child in node.children:
            self.paths[child.id] = f"{prefix}/{child.id}"
            if isinstance(child, SupervisorNode):
                self._index_paths(child, f"{prefix}/{child.id}")

    def collect(self, quiet: float = QUIET_SECONDS, at_least: float = 0.0) -> None:
        """Receive events for ``at_least`` seconds, then until the tree is quiet.

        Quiet means no event for ``quiet`` seconds and no supervisor in the
        middle of an operation (a restart, a shutdown, a start): a slow stop
        stays in the step that caused it, as on the OTP side.
        """
        started = time.monotonic()
        last = started
        while True:
            now = time.monotonic()
            if now - started >= at_least and now - last >= quiet and not self._busy():
                return
            if self._receive(quiet / 4):
                last = time.monotonic()

    def _receive(self, wait: float) -> bool:
        got = False
        for event in self.system.events(wait=wait):
            self._record(event)
            got = True
        if self.root_alive and self.system.root_exit is not None:
            exit_message = self.system.root_exit
            self.observer.add(
                RawEvent.terminated(exit_message.at, self.scenario.root_id, exit_message.kind)
            )
            self.root_alive = False
            got = True
        return got

    def _busy(self) -> bool:
        if not self.root_alive or not self.system.root_running():
            return False
        try:
            snapshot = self.system.snapshot(timeout=5)
        except SupervisionError:
            return False
        return _tree_busy(snapshot)

    def _record(self, event: ChildEvent) -> None:
        instance = None if event.pid is None else str(event.pid)
        if event.event == "started":
            self.observer.add(RawEvent.started(event.at, event.child, instance))
        else:
            reason = event.reason if event.reason in ("normal", "shutdown", "killed") else "crash"
            self.observer.add(RawEvent.terminated(event.at, event.child, reason, None))

    def start(self) -> None:
        root = self.scenario.tree
        self.paths[root.id] = root.id
        self._index_paths(root, root.id)
        self.system.start()
        self.system.start_root(
            root.id,
            _flags(root),
            _children(root),
            notify_starter=True,
            supervisor_class=_supervisor_class(root),
            supervisor_kwargs=_supervisor_kwargs(root),
        )
        self.root_alive = True
        self.observer.add(
            RawEvent.started(self.system.root_started_at, root.id, str(self.system.root_pid))
        )

    def run_step(self, step: Any) -> None:
        if isinstance(step, WaitStep):
            self.collect(at_least=step.ms / 1000.0)
            return
        if isinstance(step, StopStep):
            if self.root_alive and self.system.root_running():
                try:
                    self.system.call(step.id, StopSupervisor(), timeout=60)
                except SupervisionError as exc:
                    logger.warning("stop of %s failed: %s", step.id, exc)
            return
        pids = self._pids()
        if step.id not in pids:
            return
        if isinstance(step, KillStep):
            os.kill(pids[step.id], signal.SIGKILL)
            if step.id == self.scenario.root_id:
                self.observer.add(RawEvent.terminated(time.monotonic(), step.id, "killed"))
                self.root_alive = False
        elif isinstance(step, CrashStep):
            self.system.send_to(self.paths[step.id], CRASH)
        elif isinstance(step, ExitStep):
            self.system.send_to(self.paths[step.id], ("exit", step.reason))

    def _pids(self) -> dict[str, int]:
        if not self.root_alive or not self.system.root_running():
            return {}
        found = {}
        for path, pid in self.system.pids().items():
            found[path.rsplit("/", 1)[-1]] = pid
        return found


def _tree_busy(node: dict[str, Any]) -> bool:
    if node.get("busy"):
        return True
    for child in node["children"]:
        if child["status"] not in ("running", "undefined"):
            return True
        nested = child.get("supervisor")
        if isinstance(nested, dict) and "children" in nested and _tree_busy(nested):
            return True
    return False


def run_ours(scenario: Scenario) -> Iterator[dict[str, Any]]:
    """Run ``scenario`` on a fresh actor system and yield the output lines."""
    run = _Run(scenario)
    try:
        run.start()
        run.collect()
        yield from run.observer.flush()
        for number, step in enumerate(scenario.steps):
            run.run_step(step)
            run.collect()
            yield from run.observer.flush()
            yield run.observer.step_line(number)
    finally:
        run.system.stop(timeout=30)
