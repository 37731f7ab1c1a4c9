"""Process bookkeeping for the demo: which processes a node consists of, and their end.

The demo kills actors and must leave no process behind. So it records the pid of every
process of the node: the main process, each actor of the ``tree`` result, and the
actor system's admin with its process group. At the end it checks them by pid. Linux
only: liveness and process groups are read from ``/proc``. A zombie counts as ended,
because it has exited and only waits for its parent to collect its status.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterable
from typing import Any

__all__ = [
    "find_child",
    "group_members",
    "is_running",
    "kill_by_pid",
    "parent_pid",
    "tree_pids",
    "wait_all_ended",
]

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.02


def _stat_fields(pid: int) -> list[str] | None:
    """Return the fields of ``/proc/<pid>/stat`` after the command name, or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            text = stat.read()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces, so split after it.
    return text.rsplit(")", 1)[1].split()


def is_running(pid: int) -> bool:
    """Return whether ``pid`` exists and has not exited (a zombie has exited)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def parent_pid(pid: int) -> int | None:
    """Return the parent's pid of ``pid``, or None when ``pid`` is gone."""
    fields = _stat_fields(pid)
    return int(fields[1]) if fields is not None else None


def group_members(pgid: int) -> set[int]:
    """Return the running processes of process group ``pgid``."""
    members: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None and fields[0] != "Z" and int(fields[2]) == pgid:
            members.add(int(entry))
    return members


def tree_pids(node: dict[str, Any]) -> set[int]:
    """Return the pid of every supervisor and child in a ``tree`` result or subtree."""
    pids: set[int] = set()
    if isinstance(node.get("pid"), int):
        pids.add(node["pid"])
    for child in node.get("children", []):
        if isinstance(child.get("pid"), int):
            pids.add(child["pid"])
        nested = child.get("supervisor")
        if isinstance(nested, dict):
            pids |= tree_pids(nested)
    return pids


def find_child(tree: dict[str, Any], path: str) -> dict[str, Any] | None:
    """Return the child map at ``path`` (``tpir/integrations/x/router``) in a ``tree``
    result, or None when a part of the path is missing."""
    parts = path.split("/")
    if parts[0] != tree.get("id"):
        return None
    node: dict[str, Any] | None = tree
    entry: dict[str, Any] | None = None
    for part in parts[1:]:
        if node is None:
            return None
        entry = next((c for c in node.get("children", []) if c.get("id") == part), None)
        if entry is None:
            return None
        nested = entry.get("supervisor")
        node = nested if isinstance(nested, dict) else None
    return entry


def wait_all_ended(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait up to ``timeout`` seconds for ``pids`` to end; return those still running."""
    pending = sorted(set(pids))
    deadline = time.monotonic() + timeout
    while True:
        pending = [pid for pid in pending if is_running(pid)]
        if not pending or time.monotonic() >= deadline:
            return pending
        time.sleep(_POLL_SECONDS)


def kill_by_pid(pids: Iterable[int]) -> None:
    """Send SIGKILL to each pid that still runs."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        logger.warning("killed leftover process %d", pid)
