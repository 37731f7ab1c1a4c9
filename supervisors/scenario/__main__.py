"""``python -m supervisors.scenario [--otp | --compare] FILE``: run a supervision scenario.

Without an option the scenario runs on this project's supervisors; ``--otp``
runs it on a real Erlang/OTP supervisor through ``escript``; ``--compare``
runs both and exits with 1 and a diff when their lines differ. Each output
line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from supervisors.scenario.compare import compare
from supervisors.scenario.model import ScenarioError, load_scenario


def _print(lines: list[dict]) -> None:
    for line in lines:
        print(json.dumps(line), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m supervisors.scenario", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--otp", action="store_true", help="run on real Erlang/OTP through escript")
    mode.add_argument("--compare", action="store_true", help="run on both and diff the lines")
    parser.add_argument("file", help="scenario JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    try:
        scenario = load_scenario(args.file)
    except (OSError, ScenarioError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from supervisors.scenario.otp import run_otp
    from supervisors.scenario.ours import run_ours

    if args.otp:
        for line in run_otp(scenario):
            _print([line])
        return 0
    if not args.compare:
        for line in run_ours(scenario):
            _print([line])
        return 0
    ours = list(run_ours(scenario))
    otp = list(run_otp(scenario))
    diff = compare(ours, otp)
    if diff is None:
        _print(ours)
        print(f"same events on both sides: {len(ours)} lines", file=sys.stderr)
        return 0
    print(diff)
    return 1


if __name__ == "__main__":
    sys.exit(main())
