"""Tests of the Erlang client erlang/tpir_port.erl against the Python echo program.

A module fixture compiles tpir_port.erl and the check module tpir_port_check.erl with erlc
into a temporary folder. Each test runs one case of the check module in a fresh
``erl -noshell`` and asserts on the CHECK lines it prints.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import pytest

pytestmark = [
    pytest.mark.erlang,
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        shutil.which("erl") is None or shutil.which("erlc") is None,
        reason="erl and erlc are not on PATH",
    ),
]

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIENT_SOURCE = REPO_ROOT / "erlang" / "tpir_port.erl"
CHECK_SOURCE = Path(__file__).with_name("tpir_port_check.erl")
ECHO_PROGRAM = REPO_ROOT / "tests" / "tpir" / "port_echo.py"
CASE_TIMEOUT_S = 150.0


@dataclass
class CaseOutput:
    """What one run of the check module printed."""

    returncode: int
    checks: dict[str, str] = field(default_factory=dict)
    hex_encodings: dict[int, str] = field(default_factory=dict)
    os_pids: list[int] = field(default_factory=list)
    done: bool = False
    text: str = ""


@pytest.fixture(scope="module")
def beam_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("beam")
    for source in (CLIENT_SOURCE, CHECK_SOURCE):
        subprocess.run(
            ["erlc", "-Wall", "-o", str(output), str(source)],
            check=True,
            capture_output=True,
            timeout=120,
        )
    return output


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited but waits for its parent to reap it, so it counts as gone.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def run_case(beam_dir: Path, case: str) -> CaseOutput:
    """Run one case in a fresh VM, then make sure every echo program it started is gone."""
    command = [
        "erl",
        "-noshell",
        "-pa",
        str(beam_dir),
        "-run",
        "tpir_port_check",
        "main",
        case,
        sys.executable,
        str(ECHO_PROGRAM),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=beam_dir
    )
    try:
        stdout, _ = process.communicate(timeout=CASE_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)

    output = CaseOutput(returncode=process.returncode, text=stdout.decode("utf-8", "replace"))
    for line in output.text.splitlines():
        parts = line.split(" ", 2)
        if parts[0] == "CHECK" and len(parts) == 3:
            output.checks[parts[1]] = parts[2]
        elif parts[0] == "HEX" and len(parts) == 3:
            output.hex_encodings[int(parts[1])] = parts[2].strip().lower()
        elif parts[0] == "OSPID" and len(parts) == 2:
            output.os_pids.append(int(parts[1]))
        elif line.strip() == "DONE":
            output.done = True

    # The VM has halted, so its ports are closed and each echo program gets end of input.
    deadline = time.monotonic() + 10
    leftover = [pid for pid in output.os_pids if process_exists(pid)]
    while leftover and time.monotonic() < deadline:
        time.sleep(0.05)
        leftover = [pid for pid in leftover if process_exists(pid)]
    for pid in leftover:
        os.kill(pid, signal.SIGKILL)
    assert leftover == [], f"echo programs still running after the VM halted: {leftover}"
    return output


def assert_all_checks_pass(output: CaseOutput, expected_names: set[str]) -> None:
    assert output.returncode == 0, output.text
    assert output.done, output.text
    assert set(output.checks) >= expected_names, output.text
    for name, result in output.checks.items():
        assert result == "ok", f"{name}: {result}"


# The same values as samples() in tpir_port_check.erl, in the same order.
SAMPLES: list[object] = [
    0, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, 18446744073709551615,
    -1, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649,
    -9223372036854775808,
    1.5, -2.25, 1.0e300, 5.0e-324,
    None, True, False,
    "", "a" * 31, "a" * 32, "a" * 255, "a" * 256, "a" * 65535, "a" * 65536,
    "héllo ✓",
    b"", b"\xff" * 255, b"\x00" * 256, b"\x01" * 65535, b"\x02" * 65536,
    [], list(range(1, 16)), list(range(1, 17)), [0] * 65535, [1] * 65536,
    {}, {"k": [1, b"\x09"]},
    msgpack.ExtType(5, b"\x01"), msgpack.ExtType(5, b"\x01\x02"),
    msgpack.ExtType(5, b"\x01\x02\x03\x04"), msgpack.ExtType(5, b"\x07" * 8),
    msgpack.ExtType(5, b"\x07" * 16), msgpack.ExtType(9, b"\x01\x02\x03"),
    msgpack.ExtType(100, b"\x07" * 256), msgpack.ExtType(1, b"\x07" * 65536),
]  # fmt: skip


def test_erlang_encoding_matches_python_msgpack(beam_dir: Path) -> None:
    output = run_case(beam_dir, "encode_samples")

    assert output.done, output.text
    assert len(output.hex_encodings) == len(SAMPLES)
    for index, value in enumerate(SAMPLES):
        expected = msgpack.packb(value, use_bin_type=True).hex()
        assert output.hex_encodings[index] == expected, f"sample {index}: {value!r:.60}"


def test_erlang_codec_edge_cases(beam_dir: Path) -> None:
    output = run_case(beam_dir, "codec")

    assert_all_checks_pass(output, {"float32", "float32_nan", "int64_negative", "reserved_byte"})


def test_erlang_roundtrip_through_echo(beam_dir: Path) -> None:
    output = run_case(beam_dir, "roundtrip")

    assert_all_checks_pass(output, {f"{{roundtrip,{index}}}" for index in range(len(SAMPLES))})


def test_erlang_errors_come_back_as_error(beam_dir: Path) -> None:
    output = run_case(beam_dir, "errors")

    assert_all_checks_pass(output, {"unknown_op", "crash", "reserved_key", "call_after_stop"})


def test_erlang_timeout_drops_late_reply(beam_dir: Path) -> None:
    output = run_case(beam_dir, "timeout")

    assert_all_checks_pass(output, {"timed_out", "next_call_gets_own_reply", "no_stray_message"})


def test_erlang_subscriber_receives_events(beam_dir: Path) -> None:
    output = run_case(beam_dir, "subscribe")

    assert_all_checks_pass(output, {"event_received", "no_event_after_unsubscribe"})


def test_erlang_pipelined_calls_all_answered(beam_dir: Path) -> None:
    output = run_case(beam_dir, "pipelined")

    assert_all_checks_pass(output, {"all_answered", "none_wrong", "nothing_pending"})


def test_erlang_sigkill_fails_pending_then_restarts(beam_dir: Path) -> None:
    output = run_case(beam_dir, "kill_restart")

    assert_all_checks_pass(
        output,
        {"calls_pending", "pending_get_port_exited", "restarted", "call_after_restart"},
    )
    assert len(output.os_pids) == 2
