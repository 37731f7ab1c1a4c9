"""Time from a crash to the replacement answering, for an exception and for SIGKILL.

Run: ``python -m benchmarks.restart [--runs 50]``. Each run crashes the
supervised worker, then calls it by name at once; the call waits in the
supervisor while the worker restarts and is answered by the replacement,
so the time measured is crash to first answer. The baseline is a call to
the same worker when nothing crashes, measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import signal
import time

from benchmarks.common import machine, summary
from supervisors import ChildSpec, SupervisionSystem, SupFlags
from tests.supervisors.workers import Echo


def _crash_to_answer(system: SupervisionSystem, hard: bool) -> float:
    pid = system.call("root/w", ("pid",))
    started = time.perf_counter()
    if hard:
        os.kill(pid, signal.SIGKILL)
    else:
        system.send_to("root/w", "crash")
    while True:
        new_pid = system.call("root/w", ("pid",), timeout=10)
        if new_pid != pid:
            return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument(
        "--standby", action="store_true", help="keep a pre-forked standby process for the worker"
    )
    args = parser.parse_args()

    with SupervisionSystem() as system:
        flags = SupFlags("one_for_one", intensity=args.runs * 3, period=3600)
        system.start_root("root", flags, [ChildSpec("w", Echo, standby=args.standby)])
        baseline = []
        for _ in range(args.runs):
            started = time.perf_counter()
            system.call("root/w", ("echo", 1))
            baseline.append(time.perf_counter() - started)
        results = {
            "exception": [_crash_to_answer(system, hard=False) for _ in range(args.runs)],
            "sigkill": [_crash_to_answer(system, hard=True) for _ in range(args.runs)],
        }

    base = summary(baseline)
    print(f"machine: {machine()}")
    print(f"baseline call by name, no crash: median {base['median'] * 1000:.2f} ms")
    print("| crash | runs | median ms | p99 ms | max ms | median / baseline |")
    print("|---|---|---|---|---|---|")
    for name, samples in results.items():
        figures = summary(samples)
        print(
            f"| {name} | {figures['runs']} | {figures['median'] * 1000:.1f} | "
            f"{figures['p99'] * 1000:.1f} | {figures['max'] * 1000:.1f} | "
            f"{figures['median'] / base['median']:.1f}x |"
        )


if __name__ == "__main__":
    main()
