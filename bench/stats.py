"""Counting decisions inside a measurement window, and their latency percentiles."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Window", "percentile"]


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0..100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Window:
    """Decisions completed between ``start`` and ``end`` (perf_counter seconds) are counted."""

    start: float
    end: float
    decisions: int = 0
    timeouts: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)

    def record(self, kind: str | None, latency_s: float) -> None:
        now = time.perf_counter()
        if not self.start <= now <= self.end:
            return
        if kind is None:
            self.timeouts += 1
            return
        self.decisions += 1
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        self.latencies_s.append(latency_s)

    def summary(self) -> dict[str, Any]:
        seconds = self.end - self.start
        ms = [x * 1000 for x in self.latencies_s]
        return {
            "seconds": round(seconds, 3),
            "decisions": self.decisions,
            "rps": round(self.decisions / seconds, 1),
            "timeouts": self.timeouts,
            "kinds": self.kinds,
            "p50_ms": round(percentile(ms, 50), 2),
            "p99_ms": round(percentile(ms, 99), 2),
        }
