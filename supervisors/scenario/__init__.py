"""Supervision scenarios: run one scenario file on our supervisors and on OTP's.

A scenario is a supervision tree plus a list of steps (crash, exit, kill,
wait, stop). ``docs/scenarios.md`` describes the file format and the two
canonical rules that make the output of both runners comparable.

* :mod:`supervisors.scenario.model` loads and validates scenario files.
* :mod:`supervisors.scenario.observer` turns raw events into output lines,
  shared by both runners.
* :mod:`supervisors.scenario.otp` runs a scenario on Erlang/OTP through
  ``escript``.
* :mod:`supervisors.scenario.compare` diffs the output of the two runners.

Nothing here imports thespian; the runner for our implementation lives in
``supervisors.scenario.ours``, which this package does not import.
"""

from __future__ import annotations

from supervisors.scenario.compare import canonical_json, compare
from supervisors.scenario.model import (
    CrashStep,
    ExitStep,
    KillStep,
    Node,
    Scenario,
    ScenarioError,
    Step,
    StopStep,
    SupervisorNode,
    WaitStep,
    WorkerNode,
    load_scenario,
    parse_scenario,
)
from supervisors.scenario.observer import Observer, RawEvent, canonical_reason
from supervisors.scenario.otp import EscriptNotFoundError, OtpRunError, default_timeout, run_otp

__all__ = [
    "CrashStep",
    "EscriptNotFoundError",
    "ExitStep",
    "KillStep",
    "Node",
    "Observer",
    "OtpRunError",
    "RawEvent",
    "Scenario",
    "ScenarioError",
    "Step",
    "StopStep",
    "SupervisorNode",
    "WaitStep",
    "WorkerNode",
    "canonical_json",
    "canonical_reason",
    "compare",
    "default_timeout",
    "load_scenario",
    "parse_scenario",
    "run_otp",
]
