"""Structured supervisor reports and log set-up for actor processes.

A supervisor report is one log record at ERROR level with four fixed fields,
as OTP's ``supervisor_report``:

``supervisor``
    Path of the supervisor that reports, for example ``root/llm_provider``.
``context``
    ``start_error``, ``child_terminated``, ``shutdown_error`` or
    ``reached_max_restart_intensity``.
``reason``
    The exit or error reason, as text.
``offender``
    The child concerned: its id, pid, restart type, shutdown and type.

Each event is reported once, by the supervisor that handles it. Logs go to
stderr or to a file, never to stdout, because stdout carries the port
protocol.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LogSettings",
    "configure_logging",
    "report",
    "REPORT_CONTEXTS",
    "JsonFormatter",
    "TextFormatter",
]

REPORT_CONTEXTS = (
    "start_error",
    "child_terminated",
    "shutdown_error",
    "reached_max_restart_intensity",
)
_REPORT_FIELDS = ("supervisor", "context", "reason", "offender")
_PACKAGES = ("supervisors", "actors", "tpir")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogSettings:
    """Where and how actor processes log.

    ``level`` is a logging level name; ``format`` is ``text`` or ``json``
    (one JSON object per line); ``path`` is a file to append to, or None for
    stderr.
    """

    level: str = "INFO"
    format: str = "text"
    path: str | None = None


class JsonFormatter(logging.Formatter):
    """One JSON object per line with time, level, logger, message and report fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": round(record.created, 6),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        for name in _REPORT_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """Plain text: time, level, logger, process id and message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s")


def configure_logging(settings: LogSettings | None) -> None:
    """Attach one handler to this project's package loggers in this process.

    Actor processes need this because thespian replaces the logging root in
    every actor process with a forwarder to its own logger process.
    """
    settings = settings or LogSettings()
    if settings.path:
        handler: logging.Handler = logging.FileHandler(settings.path, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    targets = [logging.getLogger(name) for name in _PACKAGES]
    # Module-level loggers created before the fork belong to the logging
    # manager that thespian has since replaced, so they no longer reach the
    # package loggers above; give each of them the handler directly.
    for module_name, module in list(sys.modules.items()):
        if module_name.split(".")[0] in _PACKAGES:
            module_logger = getattr(module, "logger", None)
            if isinstance(module_logger, logging.Logger):
                targets.append(module_logger)
    level = settings.level.upper()
    for target in targets:
        for old in list(target.handlers):
            target.removeHandler(old)
        target.addHandler(handler)
        target.setLevel(level)
        target.propagate = False


def report(supervisor: str, context: str, reason: str, offender: dict[str, Any]) -> None:
    """Log one supervisor report with the four fixed fields."""
    assert context in REPORT_CONTEXTS, context
    offender_text = " ".join(f"{key}={value}" for key, value in offender.items())
    logger.error(
        "supervisor report: supervisor=%s context=%s reason=%s offender=[%s]",
        supervisor,
        context,
        reason,
        offender_text,
        extra={
            "supervisor": supervisor,
            "context": context,
            "reason": reason,
            "offender": offender,
            "report_time": time.time(),
        },
    )
