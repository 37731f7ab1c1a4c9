"""Shared helpers for the benchmarks: percentiles and the machine description."""

from __future__ import annotations

import os
import platform
import statistics

__all__ = ["percentile", "summary", "machine"]


def percentile(samples: list[float], fraction: float) -> float:
    """Return the ``fraction`` percentile (0..1) by nearest rank."""
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "runs": len(samples),
        "median": statistics.median(samples),
        "p99": percentile(samples, 0.99),
        "max": max(samples),
    }


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()}"
