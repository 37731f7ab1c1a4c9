"""Behaviors of the provider simulator: what it does with the next request.

A behavior is chosen by a mode and its parameters:

- `"normal"` or `200`: respond normally. Parameters: `text` (reply text, default
  "Simulated reply to: <last user message>"), `finish_reason` (stop, length, tool_calls
  or content_filter, default stop, or length when `max_tokens` cuts the text), `delay`.
- an HTTP status from 400 to 599: respond with that status and the dialect's error body.
  Parameters: `retry_after` is the `Retry-After` header, seconds as a number or an HTTP
  date as a string (default 1 for 429, none otherwise). `message`, `error_type` and
  `error_code` override the error body. `delay` waits before responding.
- `"slow"`: wait `delay` seconds (required, greater than 0), then respond normally.
  Parameters: those of normal.
- `"hang"`: never respond. The request waits until a later `set_mode`, `script` or
  `reset` moves the target away from hang, and then gets a normal response. If the
  simulator stops or starts refusing first, its connection is closed without a response.
- `"malformed"`: status 200 with a truncated JSON body. Parameter: `delay`.
- `"missing_fields"`: status 200 with valid JSON that lacks the dialect's required
  fields. Parameter: `delay`.
- `"close_mid_response"`: send the headers and half of a normal body, then close the
  connection. Parameter: `delay`.
- `"refuse"`: close the listening socket so that connects fail with ECONNREFUSED, and
  close open connections. Parameter: `duration` is the time in seconds until the listener
  reopens by itself, greater than 0 and at most 3600. Without it, the listener stays
  closed until a later `set_mode`, `recover` or `reset`. `refuse` is a state of the whole
  server, so it cannot be a script step.

All delays and durations are seconds, from 0 to 3600.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_SECONDS",
    "MODE_NAMES",
    "TARGETS",
    "Behavior",
    "ModeTable",
    "parse_behavior",
    "parse_step",
]

MODE_NAMES = (
    "normal",
    "slow",
    "hang",
    "malformed",
    "missing_fields",
    "close_mid_response",
    "refuse",
)
TARGETS = ("api", "health", "all")
"""`api` is every path except /health and /_control, `health` is /health, `all` is both."""

MAX_SECONDS = 3600.0
NORMALIZED_FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter")

_ANSWER_PARAMS = frozenset({"delay"})
_NORMAL_PARAMS = _ANSWER_PARAMS | {"text", "finish_reason"}
_STATUS_PARAMS = _ANSWER_PARAMS | {"retry_after", "message", "error_type", "error_code"}
_PARAMS_BY_MODE: dict[str, frozenset[str]] = {
    "normal": _NORMAL_PARAMS,
    "slow": _NORMAL_PARAMS,
    "status": _STATUS_PARAMS,
    "hang": frozenset(),
    "malformed": _ANSWER_PARAMS,
    "missing_fields": _ANSWER_PARAMS,
    "close_mid_response": _ANSWER_PARAMS,
    "refuse": frozenset({"duration"}),
}


@dataclass(frozen=True)
class Behavior:
    """A validated mode with its parameters. Build it with `parse_behavior`."""

    mode: str
    status: int = 200
    delay: float = 0.0
    text: str | None = None
    finish_reason: str | None = None
    retry_after: str | None = None
    message: str | None = None
    error_type: str | None = None
    error_code: str | None = None
    duration: float | None = None

    def describe(self) -> str:
        """Return a short label such as "status 503" or "normal after 1.5 s" for logs."""
        label = f"status {self.status}" if self.mode == "status" else self.mode
        if self.delay:
            label += f" after {self.delay:g} s"
        if self.duration is not None:
            label += f" for {self.duration:g} s"
        return label


NORMAL = Behavior(mode="normal")


def _seconds(name: str, value: Any, *, allow_zero: bool) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or value > MAX_SECONDS
        or (value == 0 and not allow_zero)
    ):
        lower = "0" if allow_zero else "greater than 0"
        raise ValueError(
            f"{name}: invalid value {value!r}; expected seconds from {lower} to {MAX_SECONDS:g}"
        )
    return float(value)


def _optional_string(name: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name}: invalid value {value!r}; expected a string")
    return value


def _retry_after(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        if isinstance(value, str) and ("\r" in value or "\n" in value):
            raise ValueError("retry_after: invalid value; line breaks are not allowed")
        return value
    seconds = _seconds("retry_after", value, allow_zero=True)
    return str(int(seconds)) if seconds.is_integer() else f"{seconds:g}"


def parse_behavior(mode: str | int, params: Mapping[str, Any] | None = None) -> Behavior:
    """Validate a mode and its parameters. Raises ValueError naming the bad value."""
    params = dict(params or {})
    status = 200
    if isinstance(mode, bool):
        raise ValueError(f"mode: invalid value {mode!r}; expected an HTTP status or a mode name")
    if isinstance(mode, int):
        if mode == 200:
            mode = "normal"
        elif 400 <= mode <= 599:
            status = mode
            mode = "status"
        else:
            raise ValueError(
                f"mode: invalid status {mode}; expected 200 or a status from 400 to 599"
            )
    elif mode not in MODE_NAMES:
        raise ValueError(
            f"mode: invalid value {mode!r}; expected an HTTP status or one of "
            f"{', '.join(MODE_NAMES)}"
        )

    unknown = set(params) - _PARAMS_BY_MODE[mode]
    if unknown:
        allowed = ", ".join(sorted(_PARAMS_BY_MODE[mode])) or "none"
        raise ValueError(
            f"params: {', '.join(sorted(unknown))} not valid for mode {mode!r}; "
            f"valid parameters: {allowed}"
        )

    delay = params.get("delay", 0.0)
    if mode == "slow" and "delay" not in params:
        raise ValueError("delay: missing; mode 'slow' needs a delay in seconds")
    delay = _seconds("delay", delay, allow_zero=mode != "slow")

    finish_reason = params.get("finish_reason")
    if finish_reason is not None and finish_reason not in NORMALIZED_FINISH_REASONS:
        raise ValueError(
            f"finish_reason: invalid value {finish_reason!r}; expected one of "
            f"{', '.join(NORMALIZED_FINISH_REASONS)}"
        )

    retry_after = _retry_after(params.get("retry_after"))
    if mode == "status" and status == 429 and "retry_after" not in params:
        retry_after = "1"

    duration = params.get("duration")
    if duration is not None:
        duration = _seconds("duration", duration, allow_zero=False)

    return Behavior(
        mode="normal" if mode == "slow" else mode,
        status=status,
        delay=delay,
        text=_optional_string("text", params.get("text")),
        finish_reason=finish_reason,
        retry_after=retry_after,
        message=_optional_string("message", params.get("message")),
        error_type=_optional_string("error_type", params.get("error_type")),
        error_code=_optional_string("error_code", params.get("error_code")),
        duration=duration,
    )


def parse_step(step: Any) -> Behavior:
    """Validate one script step: a status, a mode name, `{"mode": ..., **params}` or
    `(mode, params)`. Raises ValueError for `refuse`, which is not per request."""
    if isinstance(step, Mapping):
        params = dict(step)
        if "mode" not in params:
            raise ValueError(f"script step {step!r}: missing 'mode'")
        behavior = parse_behavior(params.pop("mode"), params)
    elif isinstance(step, tuple) and len(step) == 2:
        behavior = parse_behavior(step[0], step[1])
    else:
        behavior = parse_behavior(step)
    if behavior.mode == "refuse":
        raise ValueError(
            "script step 'refuse': not allowed; refusing closes the listener, so no later "
            "request could consume the next step. Use set_mode('refuse', duration=...)"
        )
    return behavior


class ModeTable:
    """The behavior of one target: a persistent behavior and a queue of script steps.

    Not thread-safe: the simulator calls it under its own lock. `generation` grows on
    every change, which is how hanging requests notice that they were released.
    """

    def __init__(self) -> None:
        self.persistent: Behavior = NORMAL
        self.steps: deque[Behavior] = deque()
        self.generation = 0

    def set(self, behavior: Behavior) -> None:
        """Make `behavior` persistent and drop the remaining script steps."""
        self.persistent = behavior
        self.steps.clear()
        self.generation += 1

    def script(self, behaviors: Iterable[Behavior]) -> None:
        """Replace the script. Each request consumes one step, then the persistent one applies."""
        self.steps = deque(behaviors)
        self.generation += 1

    def next(self) -> Behavior:
        """Return the behavior for the next request, consuming a script step if any."""
        if self.steps:
            return self.steps.popleft()
        return self.persistent

    def state(self) -> dict[str, Any]:
        """Describe the persistent behavior and the remaining steps, for the control API."""
        return {
            "mode": self.persistent.describe(),
            "script": [step.describe() for step in self.steps],
        }
