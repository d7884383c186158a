"""bench/__main__.summarize and bench/report.write_report on the details of a recorded run."""
from __future__ import annotations

import copy
import json
from pathlib import Path

from bench.__main__ import summarize
from bench.report import write_report
from bench.workload import WorkloadSpec

RECORDED = Path(__file__).resolve().parents[2] / "bench" / "results" / "latest.json"


def test_the_results_and_the_table_carry_the_latency_at_both_loads(tmp_path, monkeypatch):
    # The chart needs matplotlib, an extra of `make bench` only.
    monkeypatch.setattr("bench.report._chart", lambda results, path: path.write_bytes(b""))
    details = copy.deepcopy(json.loads(RECORDED.read_text())["details"])
    details["latency_20"] = {**details["latency"], "rps": 100.0, "p50_ms": 12.5, "p99_ms": 31.0}
    results = summarize(details, "2026-01-01T00:00:00+00:00", 1.0, 100.0, WorkloadSpec(prefix="b"))

    assert results["latency_by_load"]["20% of peak"] == {"rps": 100.0, "p50_ms": 12.5, "p99_ms": 31.0}
    assert results["latency_by_load"]["60% of peak"]["p99_ms"] == results["p99_ms"]
    assert set(results["goals"]) >= {"p99 < 50 ms at 60% of peak", "ratio_vs_pg >= 5"}
    written = write_report(results, tmp_path)
    table = (tmp_path / "latest.md").read_text()
    assert "| p50 / p99 ms at 20% of peak (100.0/s) | 12.5 / 31.0 |" in table
    assert "latency run at 20% of peak" in table
    assert all(path.exists() for path in written)
