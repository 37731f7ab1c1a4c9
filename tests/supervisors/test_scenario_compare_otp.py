"""Every scenario file gives the same events on our supervisors and on real Erlang/OTP."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCENARIOS = sorted((Path(__file__).resolve().parents[1] / "scenarios").glob("*.json"))

pytestmark = [
    pytest.mark.erlang,
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("escript") is None, reason="escript is not on PATH"),
]


def test_scenario_files_exist():
    assert len(SCENARIOS) >= 8


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[path.stem for path in SCENARIOS])
def test_compare_with_otp(scenario):
    result = subprocess.run(
        [sys.executable, "-m", "supervisors.scenario", "--compare", str(scenario)],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, (
        f"{scenario.name} differs:\n{result.stdout}\n{result.stderr[-3000:]}"
    )
