"""The benchmark workload: Zipf-skewed SKUs, reservations of one unit, each followed by its release.

Every client loop is ``reserve(sku) -> decided -> release -> decided``: each client holds at most
one unit at a time, so stock never runs out and every phase sees the same mix (half reservations,
half releases) whatever its speed.
"""
from __future__ import annotations

import argparse
import bisect
import itertools
import json
import random
import time
import uuid
from dataclasses import dataclass

__all__ = ["Zipf", "WorkloadSpec", "sku_name", "add_load_arguments", "emit"]


def sku_name(prefix: str, index: int) -> str:
    return f"{prefix}-{index:05d}"


class Zipf:
    """Picks ranks 0..n-1 with probability proportional to 1 / (rank + 1) ** s (rank 0 is hottest)."""

    def __init__(self, n: int, s: float) -> None:
        weights = [1.0 / (k ** s) for k in range(1, n + 1)]
        self.cumulative = list(itertools.accumulate(weights))
        self.total = self.cumulative[-1]
        self.hottest_share = weights[0] / self.total

    def sample(self, rng: random.Random) -> int:
        return bisect.bisect_left(self.cumulative, rng.random() * self.total)


@dataclass(frozen=True)
class WorkloadSpec:
    prefix: str
    skus: int = 1000
    zipf_s: float = 1.2
    units_per_sku: int = 1000
    warehouse: str = "default"

    def sku(self, index: int) -> str:
        return sku_name(self.prefix, index)

    def all_skus(self) -> list[str]:
        return [self.sku(i) for i in range(self.skus)]


def new_id() -> str:
    return str(uuid.uuid4())


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every load process shares: the measured window and the workload."""
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--skus", type=int, default=1000)
    parser.add_argument("--zipf", type=float, default=1.2)
    parser.add_argument("--seed", type=int, default=1)


def emit(result: dict) -> None:
    """Print a load process's result as its last line, with the CPU the process itself used."""
    result["cpu_s"] = round(time.process_time(), 2)
    print(json.dumps(result))
