"""The ``[node]`` section: where the node keeps its data, how it listens and logs.

Options:

- ``data_dir``: folder for the recovery-point database and other state. Default
  ``$TPIR_DATA_DIR``, else ``$XDG_STATE_HOME/tpir``, else ``~/.local/state/tpir``.
  In a file, a relative path is relative to the file's folder.
- ``database``: the recovery-point database, as a file path or a SQLAlchemy URL.
  A relative file path is relative to ``data_dir``. A URL must use SQLite
  (``sqlite://``, ``sqlite+pysqlite://`` or ``sqlite+aiosqlite://``) and name a file,
  not ``:memory:``, because recovery points must survive a restart. Default
  ``<data_dir>/recovery.sqlite3``.
- ``admin_port``: TCP port of the thespian actor system's admin, 1 to 65535, or 0 to
  pick a free port at start. Default 0.
- ``listen_address``: address the actor transport binds to. Default ``127.0.0.1``.
  The transport unpickles every message it receives, and unpickling runs code, so any
  host that can reach this address can run code as the node's user. Set another
  address only on a network where every host is trusted.
- ``log_format``: ``"text"`` or ``"json"``. Default text.
- ``log_level``: ``DEBUG``, ``INFO``, ``WARNING``, ``ERROR`` or ``CRITICAL``, in any
  case. Default INFO.
- ``max_frame_bytes``: largest port frame accepted from erlmcp, 1024 (1 KiB) to
  1073741824 (1 GiB). Default 16777216 (16 MiB).
- ``recovery_point_retention``: recovery points kept per actor. Either an integer
  (the count) or a table with ``count`` (1 to 1000000, default 100) and ``max_age``
  (seconds, greater than 0; default unset, meaning no age limit).
- ``checkpoint_interval``: seconds between checkpoints of actor state to the store,
  greater than 0 and at most 1, so that state reaches the store within 1 s.
  Default 0.5.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Final

from tpir.config._checks import Bounds, FieldChecker, describe_value, toml_type_name

__all__ = [
    "DEFAULT_DATABASE_FILE",
    "LOG_LEVELS",
    "LogFormat",
    "NodeConfig",
    "RetentionConfig",
    "default_data_dir",
    "expand_home",
    "is_loopback",
]

DEFAULT_DATABASE_FILE: Final = "recovery.sqlite3"
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_SQLITE_DRIVERS: Final = ("sqlite", "sqlite+pysqlite", "sqlite+aiosqlite")
# RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
_HOST_NAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


class LogFormat(StrEnum):
    """Format of the node's log records."""

    TEXT = "text"
    JSON = "json"


def expand_home(path: str, environ: Mapping[str, str]) -> Path:
    """Expand a leading ``~`` with ``HOME`` from ``environ`` (or the user database)."""
    if path == "~" or path.startswith("~/"):
        home = environ.get("HOME") or str(Path.home())
        return Path(home + path[1:])
    return Path(path).expanduser()


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Return the default data folder: ``$TPIR_DATA_DIR``, ``$XDG_STATE_HOME/tpir`` or
    ``~/.local/state/tpir``, whichever is found first."""
    env = os.environ if environ is None else environ
    configured = env.get("TPIR_DATA_DIR")
    if configured:
        return expand_home(configured, env).absolute()
    state_home = env.get("XDG_STATE_HOME")
    # The XDG spec says to ignore a relative XDG_STATE_HOME.
    if state_home and Path(state_home).is_absolute():
        return Path(state_home) / "tpir"
    return expand_home("~/.local/state/tpir", env)


@dataclass(frozen=True)
class RetentionConfig:
    """How many recovery points the store keeps per actor, and for how long.

    ``count``: points kept per actor, 1 to 1000000. Default 100.
    ``max_age``: seconds after which points are dropped, greater than 0, or None for no
    age limit. Default None. The store keeps the newest valid point of each actor even
    when it is older than ``max_age``.
    """

    count: int = 100
    max_age: float | None = None

    def __post_init__(self) -> None:
        check = FieldChecker(self)
        check.integer("count", Bounds(1, 1_000_000, unit="points"))
        check.seconds("max_age", Bounds(0, min_exclusive=True, unit="s"), optional=True)
        check.raise_if_issues()


@dataclass(frozen=True)
class NodeConfig:
    """Settings of the node process. The module docstring lists each option.

    After construction, `data_dir` is an absolute `Path` and `database` is an absolute
    file path or a SQLite URL, never empty.
    """

    data_dir: Path = field(default_factory=default_data_dir)
    database: str = ""
    admin_port: int = 0
    listen_address: str = "127.0.0.1"
    log_format: LogFormat = LogFormat.TEXT
    log_level: str = "INFO"
    max_frame_bytes: int = 16 * 1024 * 1024
    recovery_point_retention: RetentionConfig = field(default_factory=RetentionConfig)
    checkpoint_interval: float = 0.5

    def __post_init__(self) -> None:
        check = FieldChecker(self)
        data_dir = _check_data_dir(check)
        _check_database(check, data_dir)
        check.integer("admin_port", Bounds(0, 65535))
        _check_listen_address(check)
        check.choice("log_format", LogFormat)
        _check_log_level(check)
        check.integer("max_frame_bytes", Bounds(1024, 1024**3, unit="bytes"))
        check.instance("recovery_point_retention", RetentionConfig)
        check.seconds("checkpoint_interval", Bounds(0, 1, min_exclusive=True, unit="s"))
        check.raise_if_issues()

    @property
    def listens_on_loopback(self) -> bool:
        """Whether `listen_address` accepts connections from this host only."""
        return is_loopback(self.listen_address)

    @property
    def database_is_url(self) -> bool:
        """Whether `database` is a SQLAlchemy URL rather than a file path."""
        return "://" in self.database


def is_loopback(address: str) -> bool:
    """Return whether a host name or IP address is reachable from this host only."""
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _check_data_dir(check: FieldChecker) -> Path | None:
    value = check.get("data_dir")
    if isinstance(value, str) and value:
        value = Path(value)
    if not isinstance(value, os.PathLike):
        check.issue(
            "data_dir",
            f"expected a folder path, got {describe_value(value)} ({toml_type_name(value)})",
        )
        return None
    path = Path(value).expanduser().absolute()
    check.store("data_dir", path)
    return path


def _check_database(check: FieldChecker, data_dir: Path | None) -> None:
    value = check.get("database")
    if not isinstance(value, str):
        check.issue(
            "database",
            f"expected a file path or a SQLite URL, got {describe_value(value)} "
            f"({toml_type_name(value)})",
        )
        return

    if "://" in value:
        _check_database_url(check, value)
        return

    if data_dir is None:
        return
    path = Path(value).expanduser() if value else Path(DEFAULT_DATABASE_FILE)
    if not path.is_absolute():
        path = data_dir / path
    check.store("database", str(path))


def _check_database_url(check: FieldChecker, url_text: str) -> None:
    # Imported here so that loading a configuration with a plain path skips SQLAlchemy.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(url_text)
    except ArgumentError:
        # The URL may contain a password, so it is not repeated in the message.
        check.issue("database", "invalid SQLAlchemy URL (expected a form such as sqlite:///path)")
        return
    if url.drivername not in _SQLITE_DRIVERS:
        allowed = ", ".join(f"{driver}://" for driver in _SQLITE_DRIVERS)
        check.issue(
            "database",
            f"unsupported database {url.drivername!r} (expected {allowed}: the "
            "recovery-point store runs on SQLite)",
        )
        return
    if url.database in (None, "", ":memory:"):
        check.issue(
            "database",
            f"{url_text!r} names an in-memory database (expected a file, so that recovery "
            "points survive a restart)",
        )


def _check_listen_address(check: FieldChecker) -> None:
    value = check.text("listen_address", max_length=253)
    if value is None:
        return
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if _HOST_NAME.fullmatch(value) is None:
            check.issue(
                "listen_address",
                f"{describe_value(value)} is not an IP address or host name",
            )


def _check_log_level(check: FieldChecker) -> None:
    value = check.get("log_level")
    if isinstance(value, str) and value.upper() in LOG_LEVELS:
        check.store("log_level", value.upper())
        return
    check.issue(
        "log_level",
        f"invalid value {describe_value(value)} (expected one of {', '.join(LOG_LEVELS)})",
    )
