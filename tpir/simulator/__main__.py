"""Run one provider simulator until SIGINT or SIGTERM: `python -m tpir.simulator --port N`.

Logs go to stderr. Nothing is written to stdout.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from tpir.simulator.server import ProviderSimulator

__all__ = ["main"]

logger = logging.getLogger(__name__)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tpir.simulator",
        description="Run a controllable OpenAI/Anthropic/HTTP provider simulator. Change its "
        "behavior with POST /_control, for example "
        '{"mode": 503} or {"mode": "slow", "delay": 2}.',
    )
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="TCP port to listen on, 0 to 65535 (default 0: pick a free port)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--name",
        default="simulator",
        help="name used in logs and health responses (default simulator)",
    )
    parser.add_argument(
        "--api-key-env",
        metavar="VARIABLE",
        help="environment variable holding the API key that requests must "
        "send (default: no key is required)",
    )
    parser.add_argument(
        "--port-file",
        type=Path,
        metavar="PATH",
        help="file to write the listening port to once the server is ready",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (default INFO)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the simulator and return the process exit status."""
    args = _parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            logger.error("environment variable %s is not set or empty", args.api_key_env)
            return 2

    stop_requested = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop_requested.set())

    try:
        simulator = ProviderSimulator(args.name, host=args.host, port=args.port, api_key=api_key)
        simulator.start()
    except (OSError, ValueError) as exc:
        logger.error("cannot start the simulator: %s", exc)
        return 1
    try:
        if args.port_file is not None:
            args.port_file.write_text(f"{simulator.port}\n", encoding="ascii")
        stop_requested.wait()
    finally:
        simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
