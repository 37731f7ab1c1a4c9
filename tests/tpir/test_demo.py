"""``tpir demo`` run as a subprocess, as the README's first command runs it.

Each run gets a unique marker in its environment, which every process it starts
inherits (the Erlang VM, the node, the actor system's admin and every actor). After the
demo exits, no process carrying the marker may remain.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support.processes import is_running

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
MARKER = "TPIR_DEMO_TEST_RUN"
# The demo takes about 40 s on 2 idle cores; the limit leaves room for a loaded machine.
DEMO_TIMEOUT_S = 150.0
SUMMARY = re.compile(
    r"^demo passed: (?P<sent>\d+) calls sent, (?P<answered>\d+) answered, "
    r"(?P<failed>\d+) failed at the caller \((?P<unexcused>\d+) while a healthy provider "
    r"existed\), (?P<failovers>\d+) failovers, (?P<transitions>\d+) breaker transitions, "
    r"(?P<restarts>\d+) restarts",
    re.MULTILINE,
)


def marked_processes(marker: str) -> list[int]:
    """Return the running processes whose environment contains ``MARKER=marker``."""
    needle = f"{MARKER}={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as environ:
                variables = environ.read().split(b"\0")
        except OSError:
            continue
        if needle in variables and is_running(int(entry)):
            found.append(int(entry))
    return found


def run_demo(*args: str, env: dict[str, str] | None = None) -> tuple[str, int, list[int]]:
    """Run ``tpir demo ARGS``; return its output, its exit status and leftover pids.

    Leftover processes are killed by pid before returning, so a failing test leaves
    nothing behind either.
    """
    marker = uuid.uuid4().hex
    environment = dict(env if env is not None else os.environ)
    environment[MARKER] = marker
    environment["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(REPO_ROOT), environment.get("PYTHONPATH", "")) if part
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "tpir.cli", "demo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
        cwd=REPO_ROOT,
    )
    try:
        output, _ = process.communicate(timeout=DEMO_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        output += f"\n[test] the demo did not finish within {DEMO_TIMEOUT_S:g} s"
    leftover = marked_processes(marker)
    for pid in leftover:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return output, process.returncode, leftover


def check_passed_run(output: str, status: int, leftover: list[int]) -> None:
    assert status == 0, output
    summary = SUMMARY.search(output)
    assert summary is not None, output
    assert summary["unexcused"] == "0", output
    assert int(summary["answered"]) > 0, output
    assert int(summary["transitions"]) > 0, output
    assert summary["restarts"] == "3", output
    assert "the live supervision tree now:" in output
    assert leftover == []


@pytest.mark.timeout(DEMO_TIMEOUT_S + 60)
def test_demo_default_driver_passes_and_cleans_up() -> None:
    started = time.monotonic()
    output, status, leftover = run_demo()

    check_passed_run(output, status, leftover)
    expected_driver = "real Erlang VM" if shutil.which("erl") and shutil.which("erlc") else "Python"
    assert f"driver: a {expected_driver}" in output
    assert time.monotonic() - started < 60.0, output


@pytest.mark.timeout(DEMO_TIMEOUT_S + 60)
@pytest.mark.skipif(
    shutil.which("erl") is None or shutil.which("erlc") is None,
    reason="without erl the default run already uses the Python driver",
)
def test_demo_python_driver_passes_and_cleans_up() -> None:
    output, status, leftover = run_demo("--driver", "python")

    check_passed_run(output, status, leftover)
    assert "driver: a Python port driver" in output


@pytest.mark.timeout(60)
def test_demo_erlang_driver_without_erl_exits_2() -> None:
    # Only the interpreter's own folder on PATH: no erl, no erlc.
    env = dict(os.environ, PATH=str(Path(sys.executable).parent))

    output, status, leftover = run_demo("--driver", "erlang", env=env)

    assert status == 2, output
    assert "the Erlang driver cannot run: erl and erlc not found on PATH" in output
    assert leftover == []
