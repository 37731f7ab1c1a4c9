"""Child specifications and supervisor flags, validated when they are built.

A child spec tells a supervisor how to start, restart and stop one child; the
supervisor flags tell it how to react when a child exits. The keys, their
meaning and their defaults are OTP's:

``ChildSpec``
    ``id``
        Name of the child, unique among its siblings (required). Callers reach a
        child by this name, and the name survives restarts.
    ``start``
        The actor class to start, a subclass of :class:`supervisors.GenActor`
        (required), with ``args`` and ``kwargs`` for its ``init``.
    ``restart``
        ``permanent`` (always restarted), ``transient`` (restarted only after an
        abnormal exit, that is any reason but ``normal`` and ``shutdown``) or
        ``temporary`` (never restarted). Default ``permanent``.
    ``shutdown``
        ``brutal_kill`` (SIGKILL at once), a timeout in milliseconds (ask the
        child to stop, then SIGKILL when the timeout runs out) or ``infinity``
        (wait as long as it takes). Default 5000 for a worker and ``infinity``
        for a supervisor.
    ``type``
        ``worker`` or ``supervisor``. Default ``worker``.
    ``significant``
        Whether this child's exit can stop its supervisor under
        ``auto_shutdown``; only a transient or temporary child can be
        significant. Default False.
    ``backoff``
        Optional :class:`RestartBackoff`, beyond OTP: the delay before each
        restart of this child. Default None (restart at once, as OTP does).
    ``start_timeout``
        Seconds a start may take before it counts as a start error, beyond OTP
        (OTP waits forever). Default 30.
    ``standby``
        Beyond OTP: keep one idle, already forked process of this child's
        class, so that a restart skips the fork and the transport set-up
        (several milliseconds). Costs one idle process. Default False.

``SupFlags``
    ``strategy``
        ``one_for_one``, ``one_for_all``, ``rest_for_one`` or
        ``simple_one_for_one``. Default ``one_for_one``.
    ``intensity``, ``period``
        More than ``intensity`` restarts within ``period`` seconds make the
        supervisor stop all its children and exit with reason ``shutdown``.
        Defaults 1 and 5.
    ``auto_shutdown``
        ``never``, ``any_significant`` or ``all_significant``. Default ``never``.

Example::

    ChildSpec(id="cache", start=CacheWorker, args=(128,), restart="transient", shutdown=2000)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ChildSpec",
    "SupFlags",
    "RestartBackoff",
    "SpecError",
    "RESTART_TYPES",
    "STRATEGIES",
    "AUTO_SHUTDOWN",
    "CHILD_TYPES",
    "Shutdown",
]

RESTART_TYPES = ("permanent", "transient", "temporary")
STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one")
AUTO_SHUTDOWN = ("never", "any_significant", "all_significant")
CHILD_TYPES = ("worker", "supervisor")

Shutdown = int | Literal["brutal_kill", "infinity"]


class SpecError(ValueError):
    """A child spec or supervisor flags value is invalid."""


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SpecError(f"invalid {name} {value!r}: expected one of {', '.join(choices)}")


@dataclass(frozen=True)
class RestartBackoff:
    """Delay before restarting a child, growing with consecutive quick crashes.

    ``minimum`` and ``maximum`` are seconds (``0 <= minimum <= maximum``);
    ``jitter`` is a fraction in ``[0, 1]`` of the delay drawn at random and
    subtracted from it, so that siblings crashing together restart apart. The
    delay doubles from ``minimum`` for every restart still counted in the
    supervisor's intensity window and never exceeds ``maximum``.
    """

    minimum: float = 0.01
    maximum: float = 1.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if not 0 <= self.minimum <= self.maximum:
            raise SpecError(
                f"invalid backoff minimum {self.minimum!r} and maximum {self.maximum!r}: "
                "expected 0 <= minimum <= maximum"
            )
        if not 0 <= self.jitter <= 1:
            raise SpecError(f"invalid backoff jitter {self.jitter!r}: expected 0 <= jitter <= 1")

    def delay(self, recent_restarts: int, random_fraction: float) -> float:
        """Return the delay in seconds before a restart.

        ``recent_restarts`` counts the restarts already inside the intensity
        window; ``random_fraction`` is a number in ``[0, 1)``.
        """
        exponent = min(max(recent_restarts, 0), 60)
        base = min(self.maximum, self.minimum * (2.0**exponent))
        return base - base * self.jitter * random_fraction


@dataclass(frozen=True)
class ChildSpec:
    """How a supervisor starts, restarts and stops one child (see the module doc)."""

    id: str
    start: type
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    restart: str = "permanent"
    shutdown: Shutdown | None = None
    type: str = "worker"
    significant: bool = False
    backoff: RestartBackoff | None = None
    start_timeout: float = 30.0
    standby: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id or "/" in self.id:
            raise SpecError(f"invalid child id {self.id!r}: expected a non-empty str without '/'")
        if not isinstance(self.start, type):
            raise SpecError(f"invalid start {self.start!r} for child {self.id!r}: expected a class")
        _check_choice(f"restart for child {self.id!r}", self.restart, RESTART_TYPES)
        _check_choice(f"type for child {self.id!r}", self.type, CHILD_TYPES)
        if self.shutdown is None:
            object.__setattr__(self, "shutdown", "infinity" if self.type == "supervisor" else 5000)
        shutdown = self.shutdown
        if isinstance(shutdown, bool) or not (
            shutdown in ("brutal_kill", "infinity") or (isinstance(shutdown, int) and shutdown >= 0)
        ):
            raise SpecError(
                f"invalid shutdown {shutdown!r} for child {self.id!r}: "
                "expected 'brutal_kill', 'infinity' or a timeout in ms >= 0"
            )
        if self.significant and self.restart == "permanent":
            raise SpecError(
                f"invalid significant True for child {self.id!r}: "
                "a permanent child cannot be significant"
            )
        if self.start_timeout <= 0:
            raise SpecError(
                f"invalid start_timeout {self.start_timeout!r} for child {self.id!r}: expected > 0"
            )

    @property
    def shutdown_seconds(self) -> float | None:
        """Return the shutdown timeout in seconds, 0 for brutal_kill, None for infinity."""
        if self.shutdown == "brutal_kill":
            return 0.0
        if self.shutdown == "infinity":
            return None
        assert isinstance(self.shutdown, int)
        return self.shutdown / 1000.0

    def with_id(self, child_id: str, extra_args: tuple[Any, ...] = ()) -> ChildSpec:
        """Return a copy with another id and ``extra_args`` appended to ``args``."""
        return ChildSpec(
            id=child_id,
            start=self.start,
            args=self.args + extra_args,
            kwargs=dict(self.kwargs),
            restart=self.restart,
            shutdown=self.shutdown,
            type=self.type,
            significant=self.significant,
            backoff=self.backoff,
            start_timeout=self.start_timeout,
            standby=self.standby,
        )


@dataclass(frozen=True)
class SupFlags:
    """How a supervisor reacts to its children's exits (see the module doc)."""

    strategy: str = "one_for_one"
    intensity: int = 1
    period: float = 5.0
    auto_shutdown: str = "never"

    def __post_init__(self) -> None:
        _check_choice("strategy", self.strategy, STRATEGIES)
        _check_choice("auto_shutdown", self.auto_shutdown, AUTO_SHUTDOWN)
        if isinstance(self.intensity, bool) or not isinstance(self.intensity, int):
            raise SpecError(f"invalid intensity {self.intensity!r}: expected an int >= 0")
        if self.intensity < 0:
            raise SpecError(f"invalid intensity {self.intensity!r}: expected an int >= 0")
        if isinstance(self.period, bool) or not isinstance(self.period, int | float):
            raise SpecError(f"invalid period {self.period!r}: expected seconds > 0")
        if self.period <= 0:
            raise SpecError(f"invalid period {self.period!r}: expected seconds > 0")
        if self.strategy == "simple_one_for_one" and self.auto_shutdown != "never":
            raise SpecError(
                f"invalid auto_shutdown {self.auto_shutdown!r} with strategy simple_one_for_one: "
                "expected 'never'"
            )
