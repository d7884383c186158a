"""Where the CPU goes: CPU seconds per process group over a phase, read from ``/proc``.

On two cores the broker, both workers, PostgreSQL and the load share the machine, so the rate of
a phase is bounded by the CPU each decision costs across all of them. ``CpuMeter`` takes a
snapshot before and after a phase and reports, per group, the CPU seconds spent and the share of
the machine, which the report turns into milliseconds of CPU per decision.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["GROUPS", "CpuMeter", "group_of", "per_decision_ms", "process_cpu"]

# First match wins; matched against the process's command line. The load processes are not here:
# they have exited by the end of a phase, so each reports its own CPU (``bench.workload.emit``).
GROUPS: tuple[tuple[str, str], ...] = (
    ("broker", "kafka.Kafka"),
    ("stock_worker", "streams stock"),
    ("ledger_worker", "streams ledger"),
    ("analytics_worker", "streams analytics"),
    ("raw_loop", "bench.raw_loop"),
    ("api", "-m api"),  # `python -m api` (api/__main__.py)
    ("postgres", "postgres"),
    ("redis", "redis-server"),
)
_TICK = os.sysconf("SC_CLK_TCK")


Groups = tuple[tuple[str, str], ...]


def group_of(cmdline: str, groups: Groups = GROUPS) -> str | None:
    return next((name for name, needle in groups if needle in cmdline), None)


def process_cpu(groups: Groups = GROUPS, proc: Path = Path("/proc")) -> dict[str, float]:
    """CPU seconds (user + system) used so far by every process of each group."""
    totals: dict[str, float] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # the process ended meanwhile
        group = group_of(cmdline, groups)
        if group is None:
            continue
        # Fields after the command name (which may hold spaces): utime, stime, cutime, cstime are
        # 14-17. The children's share counts too: PostgreSQL's backends end with their
        # connections, and the CPU they used moves to the postmaster's cutime when it reaps them.
        fields = stat[stat.rindex(")") + 2:].split()
        totals[group] = totals.get(group, 0.0) + sum(int(f) for f in fields[11:15]) / _TICK
    return totals


def _machine() -> tuple[float, float, float]:
    """(busy, steal, total) CPU seconds of the whole machine since boot.

    Steal is time the hypervisor gave this VM's CPUs to someone else: a run with much of it
    measured a slower machine."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle, steal = values[3] + values[4], values[7]  # idle + iowait; steal
    total = sum(values[:8])
    return (total - idle - steal) / _TICK, steal / _TICK, total / _TICK


@dataclass
class CpuMeter:
    """``start()`` before a phase, ``stop()`` after: CPU seconds per group in between."""
    groups: Groups = GROUPS
    started: dict[str, float] = field(default_factory=dict)
    machine: tuple[float, float, float] = (0.0, 0.0, 0.0)
    wall: float = 0.0

    def start(self) -> None:
        self.started, self.machine, self.wall = process_cpu(self.groups), _machine(), time.monotonic()

    def stop(self) -> dict:
        ended, machine, wall = process_cpu(self.groups), _machine(), time.monotonic() - self.wall
        used = {g: round(ended[g] - self.started.get(g, 0.0), 2) for g in ended}
        busy, steal, total = (now - then for now, then in zip(machine, self.machine))
        return {
            "wall_s": round(wall, 2),
            "cpu_s": {g: v for g, v in sorted(used.items(), key=lambda kv: -kv[1]) if v > 0},
            "machine_busy": round(busy / total, 3) if total else None,
            "machine_steal": round(steal / total, 3) if total else None,
            "cores": os.cpu_count(),
        }


def per_decision_ms(cpu: dict, rps: float) -> dict[str, float]:
    """Milliseconds of CPU each group spent per decision, from its share of the phase at ``rps``.

    By rate rather than by count: the phase also holds the load's warm-up, at the same rate."""
    if not rps or not cpu["wall_s"]:
        return {}
    per = {g: round(s / cpu["wall_s"] * 1000 / rps, 3) for g, s in cpu["cpu_s"].items()}
    per["total"] = round(sum(per.values()), 3)
    return per
