"""Scenarios run on a real Erlang/OTP supervisor tree through escript.

The expected sequences below are written out by hand from the semantics of
OTP's ``supervisor`` module (stdlib). Children stop in reverse start order
and start in start order. A permanent child is always restarted, a transient
one only after an abnormal exit, and a temporary one never. one_for_all and
rest_for_one stop the affected siblings before restarting them, and drop the
temporary ones. A supervisor over its intensity stops its children and exits
with ``shutdown``. simple_one_for_one children stop in parallel.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from supervisors.scenario.compare import compare
from supervisors.scenario.model import Scenario, load_scenario, parse_scenario
from supervisors.scenario.otp import (
    Atom,
    EscriptNotFoundError,
    OtpRunError,
    encode_term,
    run_otp,
    scenario_terms,
)

pytestmark = pytest.mark.timeout(120)

needs_escript = pytest.mark.skipif(shutil.which("escript") is None, reason="escript not on PATH")

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"


def started(*ids: str) -> list[dict[str, Any]]:
    return [{"event": "started", "id": node_id} for node_id in ids]


def terminated(*pairs: str) -> list[dict[str, Any]]:
    """Terminated lines from 'id:reason' strings."""
    lines = []
    for pair in pairs:
        node_id, reason = pair.split(":")
        lines.append({"event": "terminated", "id": node_id, "reason": reason})
    return lines


def step(number: int, *alive: str) -> list[dict[str, Any]]:
    return [{"step": number, "alive": sorted(alive)}]


EXPECTED: dict[str, list[dict[str, Any]]] = {
    "one_for_one_restart_types.json": [
        *started("perm", "trans", "temp", "root"),
        *terminated("perm:crash"),
        *started("perm"),
        *step(0, "perm", "root", "temp", "trans"),
        *terminated("trans:crash"),
        *started("trans"),
        *step(1, "perm", "root", "temp", "trans"),
        # A permanent worker is restarted even after a normal exit.
        *terminated("perm:normal"),
        *started("perm"),
        *step(2, "perm", "root", "temp", "trans"),
        # A transient worker is not restarted after shutdown, a temporary one never.
        *terminated("trans:shutdown"),
        *step(3, "perm", "root", "temp"),
        *terminated("temp:crash"),
        *step(4, "perm", "root"),
        *terminated("perm:shutdown", "root:shutdown"),
        *step(5),
    ],
    "one_for_all.json": [
        *started("a", "b", "c", "d", "root"),
        # The temporary c is stopped with the others and not started again.
        *terminated("b:crash", "d:shutdown", "c:shutdown", "a:shutdown"),
        *started("a", "b", "d"),
        *step(0, "a", "b", "d", "root"),
        *terminated("a:normal", "d:shutdown", "b:shutdown"),
        *started("a", "b", "d"),
        *step(1, "a", "b", "d", "root"),
        *terminated("b:normal"),
        *step(2, "a", "d", "root"),
        *terminated("d:shutdown", "a:shutdown", "root:shutdown"),
        *step(3),
    ],
    "rest_for_one.json": [
        *started("a", "b", "c", "d", "root"),
        *terminated("b:crash", "d:shutdown", "c:shutdown"),
        *started("b", "d"),
        *step(0, "a", "b", "d", "root"),
        *terminated("a:killed", "d:shutdown", "b:shutdown"),
        *started("a", "b", "d"),
        *step(1, "a", "b", "d", "root"),
        *terminated("d:shutdown"),
        *started("d"),
        *step(2, "a", "b", "d", "root"),
        *terminated("d:shutdown", "b:shutdown", "a:shutdown", "root:shutdown"),
        *step(3),
    ],
    "restart_intensity.json": [
        *started("w1", "fast", "w2", "slow", "root"),
        *terminated("w1:crash"),
        *started("w1"),
        *step(0, "fast", "root", "slow", "w1", "w2"),
        # The second restart within 5 s is at fast's intensity of 2, still allowed.
        *terminated("w1:crash"),
        *started("w1"),
        *step(1, "fast", "root", "slow", "w1", "w2"),
        *terminated("w2:crash"),
        *started("w2"),
        *step(2, "fast", "root", "slow", "w1", "w2"),
        *step(3, "fast", "root", "slow", "w1", "w2"),
        # 2.2 s later the first restart of slow is outside its 1 s period.
        *terminated("w2:crash"),
        *started("w2"),
        *step(4, "fast", "root", "slow", "w1", "w2"),
        # The third restart of fast within 5 s is one too many, so root restarts fast.
        *terminated("w1:crash", "fast:shutdown"),
        *started("w1", "fast"),
        *step(5, "fast", "root", "slow", "w1", "w2"),
        *terminated("w2:shutdown", "slow:shutdown", "w1:shutdown", "fast:shutdown"),
        *terminated("root:shutdown"),
        *step(6),
    ],
    "nested_escalation.json": [
        *started("w", "inner", "m2", "mid", "r2", "root"),
        *terminated("w:crash", "inner:shutdown", "m2:shutdown", "mid:shutdown"),
        *started("w", "inner", "m2", "mid"),
        *step(0, "inner", "m2", "mid", "r2", "root", "w"),
        *terminated("w:crash", "inner:shutdown", "m2:shutdown", "mid:shutdown"),
        *terminated("r2:shutdown", "root:shutdown"),
        *step(1),
        # The root is gone, so the stop step does nothing.
        *step(2),
    ],
    "kill.json": [
        *started("w1", "a", "b", "inner", "sub", "w2", "root"),
        *terminated("w1:killed"),
        *started("w1"),
        *step(0, "a", "b", "inner", "root", "sub", "w1", "w2"),
        *terminated("sub:killed", "inner:killed", "b:killed", "a:killed"),
        *started("a", "b", "inner", "sub"),
        *step(1, "a", "b", "inner", "root", "sub", "w1", "w2"),
        *terminated("w2:killed"),
        *step(2, "a", "b", "inner", "root", "sub", "w1"),
        *step(3, "a", "b", "inner", "root", "sub", "w1"),
        *terminated("b:shutdown", "inner:shutdown", "a:shutdown", "sub:shutdown"),
        *terminated("w1:shutdown", "root:shutdown"),
        *step(4),
    ],
    "shutdown_order.json": [
        *started("quick", "slow", "brute", "patient", "s1", "s2", "sub", "root"),
        *step(0, "brute", "patient", "quick", "root", "s1", "s2", "slow", "sub"),
        *terminated("s2:shutdown", "s1:shutdown", "sub:shutdown", "patient:shutdown"),
        *terminated("brute:killed", "slow:killed", "quick:shutdown", "root:shutdown"),
        *step(1),
    ],
    "simple_one_for_one.json": [
        *started("log", "pool", "c1", "c2", "c3", "temps", "t1", "t2", "root"),
        *terminated("c2:crash"),
        *started("c2"),
        *step(0, "c1", "c2", "c3", "log", "pool", "root", "t1", "t2", "temps"),
        *terminated("c1:normal"),
        *step(1, "c2", "c3", "log", "pool", "root", "t1", "t2", "temps"),
        *terminated("c3:killed"),
        *started("c3"),
        *step(2, "c2", "c3", "log", "pool", "root", "t1", "t2", "temps"),
        *terminated("t1:crash"),
        *step(3, "c2", "c3", "log", "pool", "root", "t2", "temps"),
        *terminated("t2:shutdown", "temps:shutdown", "c2:shutdown", "c3:shutdown"),
        *terminated("pool:shutdown", "log:shutdown", "root:shutdown"),
        *step(4),
    ],
    "simple_one_for_one_kill.json": [
        *started("w", "pool", "p1", "p2", "p3", "root"),
        *terminated("p1:normal"),
        *started("p1"),
        *step(0, "p1", "p2", "p3", "pool", "root", "w"),
        *terminated("pool:killed", "p1:killed", "p2:killed", "p3:killed"),
        *started("pool", "p1", "p2", "p3"),
        *step(1, "p1", "p2", "p3", "pool", "root", "w"),
        *terminated("p1:killed", "p2:killed", "p3:killed"),
        *terminated("pool:shutdown", "w:shutdown", "root:shutdown"),
        *step(2),
    ],
}


def session_members(session_id: int) -> list[int]:
    """Return the pids of live processes whose session id is ``session_id``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name, which is in parentheses and may contain spaces.
        fields = stat.rsplit(")", 1)[1].split()
        state, session = fields[0], int(fields[3])
        if session == session_id and state != "Z":
            members.append(int(entry.name))
    return members


def assert_no_processes_left(pid: int) -> None:
    deadline = time.monotonic() + 5.0
    while session_members(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert session_members(pid) == []
    assert not Path(f"/proc/{pid}").exists()


def run_and_track(scenario: Scenario, **options: Any) -> tuple[list[dict[str, Any]], list[int]]:
    pids: list[int] = []
    lines = list(run_otp(scenario, on_spawn=pids.append, **options))
    return lines, pids


def scenario_paths() -> list[Path]:
    return sorted(SCENARIO_DIR.glob("*.json"))


def test_expectations_cover_eight_scenarios() -> None:
    present = {path.name for path in scenario_paths()}

    assert len(set(EXPECTED) & present) >= 8


@pytest.mark.erlang
@needs_escript
@pytest.mark.parametrize("path", scenario_paths(), ids=lambda path: path.name)
def test_otp_scenario_output(path: Path) -> None:
    scenario = load_scenario(path)

    lines, pids = run_and_track(scenario)

    assert len(pids) == 1
    assert_no_processes_left(pids[0])
    step_lines = [line for line in lines if "step" in line]
    assert [line["step"] for line in step_lines] == list(range(len(scenario.steps)))
    if path.name in EXPECTED:
        assert compare(lines, EXPECTED[path.name]) is None, compare(lines, EXPECTED[path.name])


def tiny_scenario(steps: list[dict[str, Any]], worker_id: str = "w") -> Scenario:
    return parse_scenario(
        {
            "tree": {
                "id": "root",
                "strategy": "one_for_one",
                "children": [{"id": worker_id, "type": "worker"}],
            },
            "steps": steps,
        }
    )


def test_run_otp_missing_escript_raises(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-escript")

    with pytest.raises(EscriptNotFoundError, match="no-such-escript"):
        run_otp(tiny_scenario([]), escript=missing)


@needs_escript
def test_run_otp_rejects_zero_timeout() -> None:
    with pytest.raises(ValueError, match="timeout"):
        run_otp(tiny_scenario([]), timeout=0)


@pytest.mark.erlang
@needs_escript
def test_run_otp_timeout_kills_script() -> None:
    scenario = tiny_scenario([{"wait_ms": 20000}])
    pids: list[int] = []

    with pytest.raises(OtpRunError, match="timed out"):
        list(run_otp(scenario, timeout=3.0, on_spawn=pids.append))

    assert len(pids) == 1
    assert_no_processes_left(pids[0])


@pytest.mark.erlang
@needs_escript
def test_run_otp_close_early_kills_script() -> None:
    scenario = tiny_scenario([{"wait_ms": 20000}])
    pids: list[int] = []
    lines = run_otp(scenario, on_spawn=pids.append)

    first = next(lines)
    lines.close()  # type: ignore[attr-defined]

    assert first == {"event": "started", "id": "w"}
    assert_no_processes_left(pids[0])


@pytest.mark.erlang
@needs_escript
def test_run_otp_odd_ids_round_trip() -> None:
    odd_id = 'we"ird \\ id é'
    scenario = tiny_scenario([{"crash": odd_id}], worker_id=odd_id)

    lines, _pids = run_and_track(scenario)

    assert lines == [
        *started(odd_id, "root"),
        *terminated(f"{odd_id}:crash"),
        *started(odd_id),
        *step(0, odd_id, "root"),
    ]


@pytest.mark.erlang
@pytest.mark.skipif(shutil.which("erl") is None, reason="erl not on PATH")
def test_encode_term_reads_back_in_erlang(tmp_path: Path) -> None:
    value = (
        Atom("it's"),
        'quote " and \\ backslash',
        "é",
        "",
        [1, -2, []],
        {Atom("flag"): True, Atom("off"): False},
        (),
    )
    expected = (
        "{'it\\'s', <<\"quote \\\" and \\\\ backslash\">>, <<195,169>>, <<>>,"
        " [1, -2, []], #{flag => true, off => false}, {}}"
    )
    path = tmp_path / "value.terms"
    path.write_text(encode_term(value) + ".\n", encoding="utf-8")
    program = (
        f'{{ok, [Value]}} = file:consult("{path}"), '
        f'io:format("~p", [Value =:= {expected}]), halt().'
    )

    result = subprocess.run(
        ["erl", "-noshell", "-eval", program], capture_output=True, text=True, timeout=60
    )

    assert result.stdout == "true", result.stderr


def test_encode_term_rejects_float() -> None:
    with pytest.raises(TypeError, match="float"):
        encode_term(1.5)


def test_encode_term_rejects_non_ascii_atom() -> None:
    with pytest.raises(ValueError, match="ASCII"):
        encode_term(Atom("é"))


def test_scenario_terms_numbering() -> None:
    scenario = load_scenario(SCENARIO_DIR / "kill.json")

    text, ids = scenario_terms(scenario)

    assert ids == ["w1", "a", "b", "inner", "sub", "w2", "root"]
    assert "{'root', 6}." in text.splitlines()
    assert "{'steps', [{'kill', 0}, {'kill', 4}, {'kill', 5}, {'kill', 5}, {'stop', 6}]}." in text
