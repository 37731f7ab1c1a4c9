"""Process helpers for tests: liveness that treats zombies as dead, process groups."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

__all__ = ["is_running", "wait_all_dead", "group_members", "listening_sockets"]


def is_running(pid: int) -> bool:
    """Return True when ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return fields[0] != "Z"


def wait_all_dead(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait up to ``timeout`` seconds; return the pids still running."""
    pending = list(pids)
    deadline = time.monotonic() + timeout
    while True:
        pending = [pid for pid in pending if is_running(pid)]
        if not pending or time.monotonic() >= deadline:
            return pending
        time.sleep(0.02)


def group_members(pgid: int) -> list[int]:
    """Return the running processes whose process group is ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def listening_sockets(pids: Iterable[int]) -> list[tuple[str, int]]:
    """Return (ip, port) of every listening TCP socket owned by ``pids`` (IPv4 and IPv6)."""
    inodes: set[str] = set()
    for pid in pids:
        inodes |= _socket_inodes(pid)
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as lines:
                rows = lines.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            cols = row.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state != "0A" or inode not in inodes:
                continue
            address_hex, port_hex = local.split(":")
            found.append((_decode_address(address_hex), int(port_hex, 16)))
    return found


def _decode_address(address_hex: str) -> str:
    if len(address_hex) == 8:
        return ".".join(str(b) for b in reversed(bytes.fromhex(address_hex)))
    raw = bytes.fromhex(address_hex)
    words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]
    return ":".join(b"".join(words)[i : i + 2].hex() for i in range(0, 16, 2))
