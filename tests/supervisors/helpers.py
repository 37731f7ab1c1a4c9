"""Small waits used by the supervisor tests (real time, bounded)."""

from __future__ import annotations

import time
from typing import Any

from supervisors import SupervisionError, SupervisionSystem


def child(system: SupervisionSystem, supervisor: str, child_id: str) -> dict[str, Any] | None:
    for entry in system.which_children(supervisor):
        if entry["id"] == child_id:
            return entry
    return None


def wait_for(condition: Any, timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll ``condition`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except SupervisionError as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last value {last!r})")


def running_pid(system: SupervisionSystem, supervisor: str, child_id: str) -> int:
    entry = wait_for(
        lambda: (c := child(system, supervisor, child_id)) and c["status"] == "running" and c
    )
    return int(entry["pid"])


def restarted(system: SupervisionSystem, supervisor: str, child_id: str, old_pid: int) -> int:
    entry = wait_for(
        lambda: (
            (c := child(system, supervisor, child_id))
            and c["status"] == "running"
            and c["pid"] != old_pid
            and c
        )
    )
    return int(entry["pid"])
