"""The ``tpir`` command line: run a node, and inspect or restore a running one.

``tpir run`` starts a node that serves the port protocol on stdin and stdout (see
`tpir.node.main`). The other commands attach to a running node through its control
socket, ``<data_dir>/tpir.sock``, where the data folder comes from ``--data-dir``, else
the ``node.data_dir`` of ``--config``, else ``$TPIR_DATA_DIR``, else the default
(``$XDG_STATE_HOME/tpir`` or ``~/.local/state/tpir``).

Exit status: 0 on success, 1 when no node runs or the node replies with an error, 2
for invalid arguments or an invalid configuration file.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from tpir.config import ConfigError, default_data_dir, load_config
from tpir.node.client import ControlClient, NodeError, NodeNotRunningError
from tpir.node.paths import control_socket_path
from tpir.node.render import render_points, render_restore, render_status, render_tree

__all__ = ["main"]

_LOG_FORMATS = ("text", "json")
_DEFAULT_TIMEOUT_SECONDS = 10.0


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """TPIR: keeps erlmcp's calls to outside services working when those services fail."""


# Commands added by other modules (for example ``tpir demo``) register on ``main`` with
# ``main.add_command``.


@main.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML configuration file of the node.",
)
@click.option(
    "--log-format",
    type=click.Choice(_LOG_FORMATS),
    default=None,
    help="Log format on stderr: text or json (one JSON object per line). "
    "Default: the configuration's node.log_format.",
)
def run(config_path: Path, log_format: str | None) -> None:
    """Run a node: the port protocol on stdin and stdout, logs on stderr.

    The node stops when stdin ends or on SIGTERM.
    """
    from tpir.node.main import run as run_node

    sys.exit(run_node(str(config_path), log_format))


def _node_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options that find a running node and shape the output."""
    decorators = [
        click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="Find the node through the node.data_dir of this configuration file.",
        ),
        click.option(
            "--data-dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="Data folder of the node, which contains its control socket tpir.sock.",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print the raw result as JSON."),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=_DEFAULT_TIMEOUT_SECONDS,
            show_default=True,
            help="Seconds to wait for the node's reply.",
        ),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def _socket_path(config_path: Path | None, data_dir: Path | None) -> Path:
    if config_path is not None and data_dir is not None:
        raise click.UsageError("give --config or --data-dir, not both")
    if data_dir is not None:
        return control_socket_path(data_dir.expanduser().absolute())
    if config_path is not None:
        try:
            config = load_config(config_path)
        except ConfigError as exc:
            click.echo(f"tpir: {exc}", err=True)
            sys.exit(2)
        return control_socket_path(config.node.data_dir)
    return control_socket_path(default_data_dir())


def _ask(socket_path: Path, timeout: float, op: str, **args: Any) -> Any:
    """Send one request to the node and return its result, or exit with status 1."""
    try:
        with ControlClient(socket_path, timeout=timeout) as client:
            return client.request(op, **args)
    except NodeNotRunningError as exc:
        click.echo(
            f"no TPIR node is running: {exc}; start one with `tpir run --config FILE`",
            err=True,
        )
        sys.exit(1)
    except NodeError as exc:
        click.echo(f"tpir: request '{op}' failed: {exc}", err=True)
        sys.exit(1)


def _print(result: Any, as_json: bool, render: Callable[[Any], list[str]]) -> None:
    if as_json:
        click.echo(json.dumps(result, indent=2, sort_keys=True, default=str))
        return
    for line in render(result):
        click.echo(line)


@main.command()
@_node_options
@click.option(
    "--watch",
    type=click.FloatRange(min=0.1),
    is_flag=False,
    flag_value=2.0,
    default=None,
    help="Print the tree again every SECONDS (default 2 when given without a value) "
    "until interrupted.",
)
def tree(
    config_path: Path | None,
    data_dir: Path | None,
    as_json: bool,
    timeout: float,
    watch: float | None,
) -> None:
    """Print the live supervision tree: supervisors, children, providers."""
    socket_path = _socket_path(config_path, data_dir)
    if watch is None:
        _print(_ask(socket_path, timeout, "tree"), as_json, render_tree)
        return
    try:
        while True:
            result = _ask(socket_path, timeout, "tree")
            if sys.stdout.isatty():
                click.clear()
            click.echo(f"{datetime.now().isoformat(timespec='seconds')}  every {watch:g} s")
            _print(result, as_json, render_tree)
            time.sleep(watch)
    except KeyboardInterrupt:
        return


@main.command()
@_node_options
@click.argument("integration", required=False)
def status(
    config_path: Path | None,
    data_dir: Path | None,
    as_json: bool,
    timeout: float,
    integration: str | None,
) -> None:
    """Print the integrations and their providers: role, health status, breaker state."""
    socket_path = _socket_path(config_path, data_dir)
    _print(_ask(socket_path, timeout, "status", integration=integration), as_json, render_status)


@main.command("recovery-points")
@_node_options
@click.argument("integration")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Maximum number of points to list, newest first.",
)
def recovery_points(
    config_path: Path | None,
    data_dir: Path | None,
    as_json: bool,
    timeout: float,
    integration: str,
    limit: int,
) -> None:
    """List the stored recovery points of INTEGRATION, newest first."""
    socket_path = _socket_path(config_path, data_dir)
    result = _ask(socket_path, timeout, "recovery_points", integration=integration, limit=limit)
    _print(result, as_json, render_points)


def parse_time(text: str) -> float:
    """Return epoch seconds from epoch seconds or ISO 8601; a time without a UTC offset
    is local time. Raises click.BadParameter for anything else."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither epoch seconds nor ISO 8601 (such as 2024-05-01T12:00:00+00:00)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()
    return parsed.timestamp()


@main.command()
@_node_options
@click.argument("integration")
@click.option(
    "--at",
    "at_text",
    required=True,
    help="Time to restore to: ISO 8601 (local time without a UTC offset) or epoch seconds. "
    "Each actor reloads its newest recovery point at or before it.",
)
def restore(
    config_path: Path | None,
    data_dir: Path | None,
    as_json: bool,
    timeout: float,
    integration: str,
    at_text: str,
) -> None:
    """Restore the state of INTEGRATION's breakers, health checkers and router."""
    try:
        at = parse_time(at_text)
    except click.BadParameter as exc:
        exc.param_hint = "'--at'"
        raise
    socket_path = _socket_path(config_path, data_dir)
    result = _ask(socket_path, timeout, "restore", integration=integration, at=at)
    _print(result, as_json, render_restore)


def _add_demo_command() -> None:
    """Register ``tpir demo``, whose options and code live in `tpir.demo.main`."""
    from tpir.demo.main import demo_command

    main.add_command(demo_command)


_add_demo_command()


if __name__ == "__main__":
    main()
