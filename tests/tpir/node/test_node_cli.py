"""The ``tpir`` CLI against a running node, through its control socket."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.tpir.node.support import (
    INTEGRATION,
    REPO_ROOT,
    NodeUnderTest,
    child_entry,
    run_cli,
)

pytestmark = pytest.mark.timeout(120)

SUPERVISORS = [
    "tpir",
    "tpir/integrations",
    f"tpir/integrations/{INTEGRATION}",
    f"tpir/integrations/{INTEGRATION}/breakers",
    f"tpir/integrations/{INTEGRATION}/providers",
    f"tpir/integrations/{INTEGRATION}/health",
]


def data_dir(node: NodeUnderTest) -> str:
    return str(node.config_path.parent / "data")


def supervisor_paths(tree: dict) -> list[str]:
    paths = [tree["path"]]
    for child in tree["children"]:
        nested = child.get("supervisor")
        if isinstance(nested, dict) and "path" in nested:
            paths += supervisor_paths(nested)
    return paths


def test_cli_tree_json_shows_whole_tree(node: NodeUnderTest) -> None:
    done = run_cli("tree", "--data-dir", data_dir(node), "--json")

    assert done.returncode == 0, done.stderr
    tree = json.loads(done.stdout)
    assert supervisor_paths(tree) == SUPERVISORS
    assert tree["intensity"] == 3
    assert tree["period"] == 10
    router = child_entry(tree, f"tpir/integrations/{INTEGRATION}/router")
    assert router["restarts"] == 0
    assert isinstance(router["pid"], int)
    breaker = child_entry(tree, f"tpir/integrations/{INTEGRATION}/breakers/anthropic")
    assert breaker["provider"]["breaker"] == "closed"
    assert breaker["provider"]["role"] == "secondary"


def test_cli_tree_text_lists_children(node: NodeUnderTest) -> None:
    done = run_cli("tree", "--data-dir", data_dir(node))

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("tpir  [supervisor; one_for_one, intensity 3 per 10 s")
    assert any("router  [worker; pid" in line and "restarts 0" in line for line in lines)
    assert any(
        "openai  [worker" in line and "primary, health healthy, breaker closed" in line
        for line in lines
    )
    assert any(line.startswith("└── bridge  [worker") for line in lines)


def test_cli_finds_node_through_config(node: NodeUnderTest) -> None:
    done = run_cli("tree", "--config", str(node.config_path), "--json")

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["id"] == "tpir"


def test_cli_finds_node_through_environment(node: NodeUnderTest) -> None:
    done = run_cli("status", "--json", env={"TPIR_DATA_DIR": data_dir(node)})

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["integrations"][0]["name"] == INTEGRATION


def test_cli_status_prints_providers(node: NodeUnderTest) -> None:
    done = run_cli("status", "--data-dir", data_dir(node))

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{INTEGRATION}: tier 1, timeout 4.0 s")
    assert lines[1].split() == ["PROVIDER", "KIND", "ROLE", "HEALTH", "BREAKER"]
    assert lines[2].split() == ["openai", "openai", "primary", "healthy", "closed"]
    assert lines[3].split() == ["anthropic", "anthropic", "secondary", "healthy", "closed"]


def test_cli_status_of_unknown_integration_fails(node: NodeUnderTest) -> None:
    done = run_cli("status", "--data-dir", data_dir(node), "payments")

    assert done.returncode == 1
    assert "unknown_integration" in done.stderr
    assert INTEGRATION in done.stderr


def test_cli_recovery_points_lists_points(node: NodeUnderTest) -> None:
    done = run_cli("recovery-points", INTEGRATION, "--data-dir", data_dir(node), "--limit", "3")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["CREATED", "(UTC)", "EPOCH", "ACTOR", "KIND", "VALID"]
    assert len(lines) == 4
    assert all(line.split()[-1] == "yes" for line in lines[1:])


def test_cli_restore_reports_actors(node: NodeUnderTest) -> None:
    done = run_cli(
        "restore", INTEGRATION, "--data-dir", data_dir(node), "--at", str(time.time()), "--json"
    )

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert len(result["actors"]) == 5
    assert result["integration"] == INTEGRATION


def test_cli_restore_rejects_bad_time(node: NodeUnderTest) -> None:
    done = run_cli("restore", INTEGRATION, "--data-dir", data_dir(node), "--at", "yesterday")

    assert done.returncode == 2
    assert "'--at'" in done.stderr
    assert "neither epoch seconds nor ISO 8601" in done.stderr


def test_cli_rejects_config_and_data_dir_together(node: NodeUnderTest) -> None:
    done = run_cli("tree", "--data-dir", data_dir(node), "--config", str(node.config_path))

    assert done.returncode == 2
    assert "not both" in done.stderr


def test_control_socket_is_private(node: NodeUnderTest) -> None:
    mode = os.stat(Path(data_dir(node)) / "tpir.sock").st_mode

    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


def test_cli_without_node_says_so(tmp_path: Path) -> None:
    done = run_cli("tree", "--data-dir", str(tmp_path))

    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip() == (
        f"no TPIR node is running: {tmp_path / 'tpir.sock'} does not exist; "
        "start one with `tpir run --config FILE`"
    )


def test_cli_with_stale_socket_says_refused(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "tpir.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()

    done = run_cli("status", "--data-dir", str(tmp_path))

    assert done.returncode == 1
    assert f"{path} refused the connection" in done.stderr


def test_cli_tree_watch_repeats_until_interrupted(node: NodeUnderTest) -> None:
    watcher = subprocess.Popen(
        [sys.executable, "-m", "tpir.cli", "tree", "--data-dir", data_dir(node), "--watch", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        assert watcher.stdout is not None
        headers = 0
        while headers < 2:
            line = watcher.stdout.readline()
            assert line, "the watcher ended before printing the tree twice"
            headers += line.startswith("tpir  [supervisor")
        watcher.send_signal(signal.SIGINT)
        status = watcher.wait(timeout=10)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait(timeout=10)
        for stream in (watcher.stdout, watcher.stderr):
            if stream is not None:
                stream.close()

    assert status == 0
