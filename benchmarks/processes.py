"""Reading the processes of a benchmark run from ``/proc``: CPU time, groups, parents."""

from __future__ import annotations

import os
from typing import Final

__all__ = [
    "cpu_rows",
    "group_members",
    "is_running",
    "load_average",
    "parent_pid",
    "process_cpu_seconds",
]

_CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    """Return the 1, 5 and 15 minute load averages as ``uptime`` prints them."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


# -- processes ---------------------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """Return the user plus system CPU seconds of ``pid``, or 0.0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def group_members(pgid: int) -> list[int]:
    """Return the running processes whose process group is ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def parent_pid(pid: int) -> int | None:
    """Return the parent's pid of ``pid``, or None when ``pid`` is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def is_running(pid: int) -> bool:
    """Return True when ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cpu_rows(
    before: dict[int, float], after: dict[int, float], labels: dict[int, str], calls: int
) -> list[str]:
    """Return Markdown table rows: CPU milliseconds per call and share, by process.

    ``before`` and ``after`` are `process_cpu_seconds` readings by pid, ``labels`` names
    each pid, and ``calls`` is the number of calls made between the readings.
    """
    spent = {pid: after[pid] - before[pid] for pid in labels}
    total = sum(spent.values())
    rows = []
    for pid, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        if seconds <= 0:
            continue
        rows.append(
            f"| {labels[pid]} | {seconds / calls * 1000:.2f} | {seconds / total * 100:.0f}% |"
        )
    rows.append(f"| all of the above | {total / calls * 1000:.2f} | 100% |")
    return rows
