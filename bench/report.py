"""Writing a run's figures: ``latest.json``, a Markdown table and a chart."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["write_report"]

_INSTALL = "pip install -c constraints.txt -e '.[bench]'"


def _table(results: dict[str, Any]) -> str:
    details = results["details"]
    rows = [("clients", "pipeline", "PostgreSQL sync on", "PostgreSQL sync off")]
    for clients in ("16", "256", "512"):
        rows.append((clients, details["pipeline"][clients]["rps"], details["pg_sync_on"][clients]["rps"],
                     details["pg_sync_off"][clients]["rps"]))
    lines = ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    lines.insert(1, "|---" * len(rows[0]) + "|")
    keys = ["pipeline_rps", "pg_baseline_rps", "pg_baseline_sync_rps", "ratio_vs_pg",
            "aiokafka_loop_rps", "ratio_vs_aiokafka", "pipeline_rps_without_analytics",
            "pipeline_rps_with_analytics", "analytics_rps_ratio", "p50_ms", "p99_ms", "http_rps",
            "worker_rss_mb", "recovery_s_100k_skus"]
    figures = [f"| {key} | {results.get(key)} |" for key in keys]
    figures += [f"| p50 / p99 ms at {load} ({run['rps']}/s) | {run['p50_ms']} / {run['p99_ms']} |"
                for load, run in results.get("latency_by_load", {}).items()]
    goals = [f"| {goal} | {'met' if ok else 'not met'} |" for goal, ok in results["goals"].items()]
    return "\n".join([
        f"# Benchmark {results['started_at']}", "",
        "Decisions per second by concurrent clients (reserve one unit, then release it):", "",
        *lines, "", "| figure | value |", "|---|---|", *figures, "",
        "| goal | |", "|---|---|", *goals, "",
        "CPU milliseconds per decision at 256 clients, by process (what bounds the rates on this machine):",
        "", *_cpu_table(results.get("cpu_ms_per_decision", {})), "", *_machine_lines(details), "",
    ])


def _machine_lines(details: dict[str, Any]) -> list[str]:
    """How busy the machine was in each phase, and how much CPU the hypervisor took (steal)."""
    phases = {"pipeline, 256 clients": details["pipeline"]["256"], "raw loop": details["raw_loop"],
              "PostgreSQL (sync on), 256 clients": details["pg_sync_on"]["256"],
              "latency run": details["latency"]}
    if "latency_20" in details:
        phases["latency run at 20% of peak"] = details["latency_20"]
    lines = ["| phase | machine busy | steal |", "|---|---|---|"]
    for name, run in phases.items():
        cpu = run.get("cpu", {})
        lines.append(f"| {name} | {cpu.get('machine_busy')} | {cpu.get('machine_steal')} |")
    return lines


def _cpu_table(cpu: dict[str, dict[str, float] | None]) -> list[str]:
    cpu = {run: per for run, per in cpu.items() if per}  # a phase an older run did not have
    groups = sorted({g for per in cpu.values() for g in per if g != "total"})
    runs = list(cpu)
    lines = ["| process | " + " | ".join(runs) + " |", "|---" * (len(runs) + 1) + "|"]
    for group in [*groups, "total"]:
        cells = [str(cpu[run].get(group, "")) for run in runs]
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    return lines


def _chart(results: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib
    except ImportError as exc:  # optional: the figures do not depend on it
        raise ImportError(f"the benchmark chart needs matplotlib: {_INSTALL}") from exc
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    details = results["details"]
    clients = ["16", "256", "512"]
    series = [("pipeline", details["pipeline"]), ("PostgreSQL, synchronous_commit=on", details["pg_sync_on"]),
              ("PostgreSQL, synchronous_commit=off", details["pg_sync_off"])]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.27
    for i, (label, data) in enumerate(series):
        xs = [j + (i - 1) * width for j in range(len(clients))]
        ax.bar(xs, [data[c]["rps"] for c in clients], width, label=label)
    ax.axhline(results["aiokafka_loop_rps"], color="grey", linestyle="--",
               label="raw aiokafka loop (256 clients)")
    ax.set_xticks(range(len(clients)), [f"{c} clients" for c in clients])
    ax.set_ylabel("decisions per second")
    ax.set_title("Reservations under Zipf-skewed contention, same machine, same run")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(results: dict[str, Any], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / "latest.json", directory / "latest.md", directory / "latest.png"]
    paths[0].write_text(json.dumps(results, indent=2) + "\n")
    paths[1].write_text(_table(results))
    _chart(results, paths[2])
    return paths
