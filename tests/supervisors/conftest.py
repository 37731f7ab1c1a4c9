from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisors import LogSettings, SupervisionSystem
from tests.support.processes import group_members, wait_all_dead


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "actors.log"


@pytest.fixture
def system(log_path: Path) -> Iterator[SupervisionSystem]:
    """An actor system on a free port; after the test, no process of it may be left."""
    sup_system = SupervisionSystem(log_settings=LogSettings(format="json", path=str(log_path)))
    sup_system.start()
    try:
        yield sup_system
    finally:
        admin_pid = sup_system.admin_pid
        pgid = os.getpgid(admin_pid) if admin_pid and os.path.exists(f"/proc/{admin_pid}") else None
        members = group_members(pgid) if pgid else []
        sup_system.stop(timeout=10)
        leftover = wait_all_dead(members, timeout=5)
        assert leftover == [], f"processes left after the test: {leftover}"
