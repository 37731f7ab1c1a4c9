"""A hand-built integration tree for the breaker and health-checker tests, and helpers.

The tree matches `actors.names`: ``tpir`` → ``integrations`` → ``<integration>``
(rest_for_one) → ``breakers`` / ``health`` supervisors and a ``router``. The router is a
`Recorder` that keeps every message it receives, and so is a health checker when a test
only needs to see what the breaker sends there.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from actors.breaker_actor import CircuitBreakerActor
from actors.health_actor import HealthCheckerActor
from actors.messages import BreakerUpdate, Describe, StatusUpdate
from actors.names import ROOT
from supervisors import (
    Caller,
    ChildSpec,
    GenActor,
    LogSettings,
    SupervisionSystem,
    Supervisor,
    SupFlags,
)
from tests.supervisors.helpers import restarted, running_pid, wait_for
from tests.support.processes import group_members, wait_all_dead
from tpir.config import Config, parse_config
from tpir.simulator import ProviderSimulator

__all__ = [
    "INTEGRATION",
    "PROVIDER",
    "Recorder",
    "actor_system",
    "build_config",
    "build_tree",
    "kill_and_wait",
    "latest_point",
    "point_rows",
    "recorded",
    "simulator",
    "start_tree",
    "wait_for",
    "wait_for_point",
]

INTEGRATION = "llm_provider"
PROVIDER = "openai"
_FLAGS = SupFlags("one_for_one", intensity=10, period=10)


class Recorder(GenActor):
    """Stub router or health checker that records every update it receives.

    ``Call(Describe())`` returns the received `BreakerUpdate` and `StatusUpdate`
    messages, oldest first.
    """

    def init(self) -> None:
        self.received: list[Any] = []

    def handle_cast(self, message: Any, sender: Any) -> None:
        if isinstance(message, BreakerUpdate | StatusUpdate):
            self.received.append(message)
        else:
            super().handle_cast(message, sender)

    def handle_call(self, body: Any, caller: Caller) -> Any:
        if isinstance(body, Describe):
            return list(self.received)
        return super().handle_call(body, caller)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return json.dumps(str(value))


def _table(name: str, values: Mapping[str, Any]) -> str:
    lines = [f"[{name}]"]
    nested = []
    for key, value in values.items():
        if isinstance(value, Mapping):
            nested.append(_table(f"{name}.{key}", value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join([*lines, *nested]) + "\n"


def build_config(
    tmp_path: Path,
    base_url: str = "http://127.0.0.1:9/v1",
    *,
    checkpoint_interval: float = 0.5,
    circuit_breaker: Mapping[str, Any] | None = None,
    health_check: Mapping[str, Any] | None = None,
    recovery: Mapping[str, Any] | None = None,
    api_key: str | None = None,
) -> Config:
    """Return a configuration with one openai provider and its store in ``tmp_path``.

    The default ``base_url`` points at the discard port of 127.0.0.1, for tests that
    send no request. Health checks are disabled unless ``health_check`` is given.
    """
    node = {
        "data_dir": str(tmp_path),
        "database": str(tmp_path / "recovery.sqlite3"),
        "checkpoint_interval": checkpoint_interval,
    }
    text = _table("node", node)
    text += f'\n[[integrations]]\nname = "{INTEGRATION}"\ntier = 1\ntimeout = 5.0\n'
    sections = {
        "circuit_breaker": circuit_breaker,
        "health_check": health_check or {"enabled": False},
        "recovery": recovery,
    }
    for section, values in sections.items():
        if values:
            text += "\n" + _table(f"integrations.{section}", values)
    provider = {
        "name": PROVIDER,
        "kind": "openai",
        "base_url": base_url,
        "model": "gpt-4o-mini",
        "timeout": 1.0,
    }
    environ = {"HOME": str(tmp_path)}
    if api_key is not None:
        provider["api_key_env"] = "TPIR_TEST_API_KEY"
        environ["TPIR_TEST_API_KEY"] = api_key
    text += "\n[[integrations.providers]]\n"
    text += "".join(f"{key} = {_toml_value(value)}\n" for key, value in provider.items())
    return parse_config(text, environ=environ)


def build_tree(config: Config, *, health: str = "stub") -> list[ChildSpec]:
    """Return the children of the root ``tpir`` for one integration.

    ``health`` is ``stub`` (a `Recorder` per provider) or ``real`` (`HealthCheckerActor`).
    """
    integration = config.integrations[0]
    breakers = []
    checkers = []
    for provider in integration.providers:
        args = (integration.name, provider, config.node)
        breakers.append(ChildSpec(provider.name, CircuitBreakerActor, args=args))
        if health == "real":
            checkers.append(ChildSpec(provider.name, HealthCheckerActor, args=args))
        else:
            checkers.append(ChildSpec(provider.name, Recorder))
    members = [
        ChildSpec("breakers", Supervisor, args=(_FLAGS, breakers), type="supervisor"),
        ChildSpec("health", Supervisor, args=(_FLAGS, checkers), type="supervisor"),
        ChildSpec("router", Recorder),
    ]
    integration_sup = ChildSpec(
        integration.name,
        Supervisor,
        args=(SupFlags("rest_for_one", intensity=10, period=10), members),
        type="supervisor",
    )
    return [
        ChildSpec("integrations", Supervisor, args=(_FLAGS, [integration_sup]), type="supervisor")
    ]


def start_tree(system: SupervisionSystem, config: Config, *, health: str = "stub") -> None:
    system.start_root(ROOT, _FLAGS, build_tree(config, health=health))


def recorded(system: SupervisionSystem, path: str) -> list[Any]:
    """Return the messages a `Recorder` at ``path`` has received."""
    return list(system.call(path, Describe()))


def kill_and_wait(system: SupervisionSystem, supervisor: str, child_id: str) -> int:
    """SIGKILL a child's process and return the pid of the instance that replaced it."""
    pid = running_pid(system, supervisor, child_id)
    os.kill(pid, signal.SIGKILL)
    return restarted(system, supervisor, child_id, pid)


def point_rows(database: Path, actor_key: str) -> list[dict[str, Any]]:
    """Return the stored points of an actor, newest first, read with plain SQL."""
    if not database.exists():
        return []
    with contextlib.closing(sqlite3.connect(database, timeout=10)) as connection:
        try:
            rows = connection.execute(
                "SELECT seq, created_at, state FROM recovery_points WHERE actor_key = ? "
                "ORDER BY created_at DESC, seq DESC",
                (actor_key,),
            ).fetchall()
        except sqlite3.OperationalError:
            return []
    return [{"seq": seq, "created_at": at, "state": json.loads(text)} for seq, at, text in rows]


def latest_point(database: Path, actor_key: str) -> dict[str, Any] | None:
    rows = point_rows(database, actor_key)
    return rows[0] if rows else None


def wait_for_point(
    database: Path, actor_key: str, predicate: Any, timeout: float = 5.0
) -> dict[str, Any]:
    """Wait until the newest point of ``actor_key`` satisfies ``predicate(state)``."""

    def found() -> dict[str, Any] | None:
        point = latest_point(database, actor_key)
        return point if point is not None and predicate(point["state"]) else None

    return wait_for(found, timeout=timeout, interval=0.01)


@contextlib.contextmanager
def actor_system(log_path: Path) -> Iterator[SupervisionSystem]:
    """Run an actor system on a free port; on exit, check that none of its processes is left.

    The same checks as the ``system`` fixture of ``tests/supervisors/conftest.py``.
    """
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


@contextlib.contextmanager
def simulator() -> Iterator[ProviderSimulator]:
    """Run a provider simulator on 127.0.0.1 and stop it on exit."""
    sim = ProviderSimulator("health-tests").start()
    try:
        yield sim
    finally:
        sim.stop()
