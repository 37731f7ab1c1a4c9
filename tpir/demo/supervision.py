"""A small supervision demo: a tree that restarts crashed and killed children.

It starts a real actor system with a root supervisor holding a worker and a
nested one_for_all supervisor, crashes a worker with an exception, kills
another with SIGKILL, and shows the tree after each step. Everything is
printed on stdout for a person to read; it exits 0 when every restart
happened as OTP would do it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any, TextIO

from supervisors import (
    Caller,
    ChildSpec,
    GenActor,
    LogSettings,
    SupervisionError,
    SupervisionSystem,
    Supervisor,
    SupFlags,
)

__all__ = ["DemoWorker", "run_supervision_demo"]


class DemoWorker(GenActor):
    """Answers ``"pid"`` with its process id and raises on ``"crash"``."""

    def handle_call(self, body: Any, caller: Caller) -> Any:
        if body == "crash":
            raise RuntimeError("crash requested by the demo")
        return os.getpid()


def _tree_lines(node: dict[str, Any], indent: str = "") -> list[str]:
    lines = [
        f"{indent}{node['id']}  supervisor {node['strategy']} "
        f"(intensity {node['intensity']} in {node['period']:g} s)  pid {node['pid']}"
    ]
    for child in node["children"]:
        if child.get("supervisor") and "children" in child["supervisor"]:
            lines.extend(_tree_lines(child["supervisor"], indent + "    "))
        else:
            lines.append(
                f"{indent}    {child['id']}  {child['type']} {child['status']}  "
                f"pid {child['pid']}  restarts {child['restarts']}"
            )
    return lines


def _wait_restarted(system: SupervisionSystem, path: str, old_pid: int) -> tuple[int, float]:
    started = time.monotonic()
    while True:
        try:
            pid = system.call(path, "pid", timeout=5)
        except SupervisionError:
            pid = old_pid
        if pid != old_pid:
            return pid, time.monotonic() - started
        time.sleep(0.005)


def run_supervision_demo(out: TextIO = sys.stdout, log_path: str | None = None) -> int:
    """Run the demo, printing to ``out``; return 0 when every restart happened."""
    pair = [ChildSpec("left", DemoWorker), ChildSpec("right", DemoWorker)]
    group = ChildSpec(
        "group", Supervisor, args=(SupFlags("one_for_all", 3, 10), pair), type="supervisor"
    )
    children = [ChildSpec("worker", DemoWorker), group]
    settings = LogSettings(path=log_path) if log_path else LogSettings(level="CRITICAL")
    with SupervisionSystem(log_settings=settings) as system:
        system.start_root("demo", SupFlags("one_for_one", 3, 10), children)
        print("started a tree on a local actor system:", file=out)
        print("\n".join(_tree_lines(system.snapshot())), file=out)

        worker = system.call("demo/worker", "pid")
        print(f"\n1. worker (pid {worker}) raises an exception", file=out)
        try:
            system.call("demo/worker", "crash")
        except SupervisionError as exc:
            print(f"   the caller gets: {exc}", file=out)
        new_worker, took = _wait_restarted(system, "demo/worker", worker)
        print(f"   one_for_one restarted it as pid {new_worker} in {took * 1000:.1f} ms", file=out)

        left = system.call("demo/group/left", "pid")
        right = system.call("demo/group/right", "pid")
        print(f"\n2. group/left (pid {left}) is killed with SIGKILL", file=out)
        os.kill(left, signal.SIGKILL)
        new_left, took = _wait_restarted(system, "demo/group/left", left)
        new_right, _ = _wait_restarted(system, "demo/group/right", right)
        print(
            f"   one_for_all restarted both: left pid {new_left}, right pid {new_right} "
            f"({took * 1000:.1f} ms)",
            file=out,
        )

        print("\nthe tree now:", file=out)
        snapshot = system.snapshot()
        print("\n".join(_tree_lines(snapshot)), file=out)
        restarts = {child["id"]: child["restarts"] for child in snapshot["children"]}
    ok = restarts.get("worker") == 1 and new_right != right
    print("\nsupervision demo " + ("passed" if ok else "FAILED"), file=out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run_supervision_demo())
