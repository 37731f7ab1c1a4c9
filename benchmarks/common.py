"""Shared helpers for the benchmarks: percentiles, latency figures and the machine description."""

from __future__ import annotations

import os
import platform
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Latencies", "count_attempts", "machine", "percentile", "summary"]


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


@dataclass(frozen=True)
class Latencies:
    """Call durations in seconds, the calls per second when they ran concurrently, and
    for routed calls the number of attempts by provider and outcome (``openai ok``)."""

    samples: tuple[float, ...]
    failed: int = 0
    calls_per_second: float | None = None
    attempts: tuple[tuple[str, int], ...] = ()

    def describe_attempts(self) -> str:
        """Return the attempt counts as text, for example ``openai ok 510, ...``."""
        return ", ".join(f"{name} {count}" for name, count in self.attempts) or "none"

    @property
    def p50(self) -> float:
        return percentile(list(self.samples), 0.50)

    @property
    def p99(self) -> float:
        return percentile(list(self.samples), 0.99)


def count_attempts(results: Iterable[Any]) -> tuple[tuple[str, int], ...]:
    """Count the attempts listed in router results (or error details) by provider and
    outcome, most frequent first."""
    counts: Counter[str] = Counter()
    for result in results:
        attempts = result.get("attempts", []) if isinstance(result, dict) else []
        for attempt in attempts:
            counts[f"{attempt.get('provider')} {attempt.get('outcome')}"] += 1
    return tuple(counts.most_common())
