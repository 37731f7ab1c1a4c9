"""Process liveness from ``/proc``, treating zombies as dead."""

from __future__ import annotations

__all__ = ["process_running"]


def process_running(pid: int | None) -> bool:
    """Return True when ``pid`` exists and is not a zombie (Linux ``/proc``)."""
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
