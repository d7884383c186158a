"""``make bench``: every phase of the benchmark in one bounded run (see ``bench/README.md``).

    python -m bench [--seconds 12] [--recovery-skus 100000]

Expects the stack of ``scripts/stack.sh`` (``make bench`` starts it). Starts its own stock and
ledger workers, a raw aiokafka loop and the API as child processes, drives each phase from
separate load processes, and stops everything it started.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.analytics import analytics_caught_up, analytics_lag
from bench.cpu import CpuMeter, per_decision_ms
from bench.kafka_load import LOOP_COMMANDS, LOOP_EVENTS, make_pipe
from bench.pg_baseline import asyncpg_dsn, prepare
from bench.procs import ROOT, Child, rss_mb, run_json
from bench.report import write_report
from bench.seeding import create_skus, seconds_until_serving, stock_skus
from bench.workload import WorkloadSpec, sku_name
from common.settings import Settings, get_settings
from streams.admin import ensure_topics
from streams.topics import TopicSpec

__all__ = ["main"]

log = logging.getLogger("bench")
CLIENTS = (16, 256, 512)
PY = sys.executable
# The longest the analytics worker gets to join its group and count the backlog before it is measured.
ANALYTICS_CATCH_UP_TIMEOUT_S = 300
# How many times the 256-client pipeline is measured without, then with, the analytics worker.
ANALYTICS_PAIRS = 3
METRICS_OFF = {"INVENTORY_WORKER_METRICS_PORT": "0", "INVENTORY_LEDGER_METRICS_PORT": "0"}


class Bench:
    def __init__(self, args: argparse.Namespace, settings: Settings) -> None:
        self.args, self.settings = args, settings
        self.out = ROOT / "bench" / "results"
        self.logdir = self.out / "logs"
        self.workdir = Path(tempfile.mkdtemp(prefix="inventory-bench-"))
        self.spec = WorkloadSpec(prefix=f"b{int(time.time())}")
        self.children: list[Child] = []

    def child(self, name: str, *args: str, env: dict[str, str] | None = None) -> Child:
        # Metrics servers off: a restarted worker must never wait for its predecessor's port.
        proc = Child(name, [PY, *args], self.logdir,
                     {"INVENTORY_WORKER_DATA_DIR": str(self.workdir / name), **METRICS_OFF, **(env or {})}).start()
        self.children.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.children):
            proc.stop()

    def load(self, module: str, *args: str) -> dict:
        common = ["--seconds", str(self.args.seconds), "--warmup", str(self.args.warmup),
                  "--prefix", self.spec.prefix, "--skus", str(self.spec.skus), "--zipf", str(self.spec.zipf_s)]
        return run_json(module, *args, *common, timeout_s=self.args.seconds * 10 + 120)

    async def metered(self, module: str, *args: str) -> dict:
        """One load process's phase, with the CPU every process spent on it (bench/cpu.py)."""
        return await self.metered_loads(module, [list(args)])

    async def metered_loads(self, module: str, per_process: list[list[str]]) -> dict:
        meter = CpuMeter()
        meter.start()
        run = await self.loads(module, per_process)
        cpu = meter.stop()
        cpu["cpu_s"]["load"] = round(sum(p.get("cpu_s", 0.0) for p in run.get("parts", [run])), 2)
        run["cpu"] = cpu
        run["cpu_ms_per_decision"] = per_decision_ms(cpu, run["rps"])
        return run

    async def loads(self, module: str, per_process: list[list[str]]) -> dict:
        """The same phase from several load processes at once; their decisions add up."""
        parts = await asyncio.gather(*(asyncio.to_thread(self.load, module, *a) for a in per_process))
        if len(parts) == 1:
            return parts[0]
        merged = {**parts[0], "processes": len(parts), "parts": parts}
        merged["decisions"] = sum(p["decisions"] for p in parts)
        merged["rps"] = round(sum(p["rps"] for p in parts), 1)
        merged["timeouts"] = sum(p["timeouts"] for p in parts)
        merged["clients"] = sum(p["clients"] for p in parts)
        return merged

    # ----------------------------------------------------------------------------- phases
    async def start_workers(self) -> float:
        self.stock = self.child("stock", "-m", "streams", "stock", "--loglevel", "warn")
        self.child("ledger", "-m", "streams", "ledger", "--loglevel", "warn")
        return await seconds_until_serving(self.pipe, time.perf_counter())

    async def pipeline(self) -> dict[str, dict]:
        runs = {}
        for clients in CLIENTS:
            runs[str(clients)] = await self.metered("bench.kafka_load", "--mode", "pipeline",
                                                    "--clients", str(clients))
            log.info("pipeline %s clients: %s decisions/s", clients, runs[str(clients)]["rps"])
        return runs

    async def latency(self, peak_rps: float, share: float = 0.6) -> dict:
        rate = round(share * peak_rps, 1)
        run = await self.metered("bench.kafka_load", "--mode", "pipeline", "--rate", str(rate))
        log.info("latency at %s/s: p50 %s ms, p99 %s ms", rate, run["p50_ms"], run["p99_ms"])
        return run

    async def with_analytics(self) -> dict:
        """The 256-client pipeline side by side without and with the analytics worker counting the
        same events, alternating ``ANALYTICS_PAIRS`` times so that the machine's drift and the
        hypervisor's steal fall on both alike. Without: the worker is stopped (SIGSTOP: no CPU, no
        fetches). With: it is resumed and has counted what it missed first, so what is measured is
        its steady cost, not a catch-up. The reservation path must not slow down because of it."""
        analytics = self.child("analytics", "-m", "streams", "analytics", "--loglevel", "warn",
                               env={"INVENTORY_ANALYTICS_DATA_DIR": str(self.workdir / "analytics-data"),
                                    "INVENTORY_ANALYTICS_METRICS_PORT": "0"})
        withouts, withs = [], []
        try:
            backlog = await analytics_lag(self.settings)
            began = time.perf_counter()
            caught_up = await analytics_caught_up(self.settings, ANALYTICS_CATCH_UP_TIMEOUT_S)
            catch_up_s = round(time.perf_counter() - began, 1) if caught_up else None
            for _ in range(ANALYTICS_PAIRS):
                analytics.pause()
                withouts.append(await self.pipeline_256())
                analytics.resume()
                await analytics_caught_up(self.settings, ANALYTICS_CATCH_UP_TIMEOUT_S)
                run = await self.pipeline_256()
                run["lag_at_end"] = await analytics_lag(self.settings)
                withs.append(run)
        finally:
            analytics.stop()
        without, run = _median_run(withouts), _median_run(withs)
        summary = {**run, "backlog_events": backlog, "catch_up_s": catch_up_s, "without_rps": without["rps"],
                   "ratio": round(run["rps"] / without["rps"], 3) if without["rps"] else None,
                   "rps_by_pair": [[a["rps"], b["rps"]] for a, b in zip(withouts, withs)],
                   "without_runs": withouts, "with_runs": withs, "without_median_cpu": without["cpu_ms_per_decision"]}
        log.info("pipeline at 256 clients, median of %s: %s/s without the analytics worker, %s/s with it "
                 "(ratio %s; pairs %s)", ANALYTICS_PAIRS, without["rps"], run["rps"], summary["ratio"],
                 summary["rps_by_pair"])
        return summary

    async def pipeline_256(self) -> dict:
        return await self.metered("bench.kafka_load", "--mode", "pipeline", "--clients", "256")

    async def raw_loop(self) -> dict:
        loop = self.child("raw-loop", "-m", "bench.raw_loop")
        pipe = make_pipe("loop", self.settings.kafka_bootstrap_servers)
        await pipe.start()
        try:
            await seconds_until_serving(pipe, time.perf_counter())
        finally:
            await pipe.stop()
        run = await self.metered("bench.kafka_load", "--mode", "loop", "--clients", "256")
        loop.stop()
        log.info("raw aiokafka loop at 256 clients: %s/s", run["rps"])
        return run

    async def postgres(self, synchronous_commit: str) -> dict[str, dict]:
        runs = {}
        for clients in CLIENTS:
            half = str(clients // 2)
            args = ["--clients", half, "--connections", "32", "--synchronous-commit", synchronous_commit]
            runs[str(clients)] = await self.metered_loads("bench.pg_baseline",
                                                          [[*args, "--seed", "1"], [*args, "--seed", "2"]])
            log.info("PostgreSQL (synchronous_commit=%s) %s clients: %s/s", synchronous_commit,
                     clients, runs[str(clients)]["rps"])
        return runs

    async def http(self) -> dict:
        port = self.args.api_port
        # The API runs as in production (real secrets); the load process signs its operator token
        # with the same secret (inherited), and no rate limit slows the measurement.
        os.environ.update(INVENTORY_JWT_SECRET=secrets.token_urlsafe(48),
                          INVENTORY_ADMIN_PASSWORD=secrets.token_urlsafe(24),
                          INVENTORY_RATE_LIMIT="100000000/minute")
        api = self.child("api", "-m", "api", env={"INVENTORY_LOG_LEVEL": "WARNING",
                                                  "INVENTORY_API_PORT": str(port)})
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url) as client:
            for _ in range(120):
                try:
                    if (await client.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.5)
        run = await self.metered("bench.http_load", "--url", url, "--clients", "256")
        api.stop()
        log.info("HTTP edge at 256 clients: %s/s", run["rps"])
        return run

    async def recovery(self) -> dict:
        skus = [sku_name(f"{self.spec.prefix}r", i) for i in range(self.args.recovery_skus)]
        started = time.perf_counter()
        created = await create_skus(self.pipe, skus, in_flight=5000)
        filled_s = time.perf_counter() - started
        log.info("%s SKUs in state after %.1fs; restarting the stock worker", created, filled_s)
        self.stock.stop()
        restarted = time.perf_counter()
        # Same data directory: the worker restarts on its own machine, with its local state.
        self.stock = self.child("stock-restarted", "-m", "streams", "stock", "--loglevel", "warn",
                                env={"INVENTORY_WORKER_DATA_DIR": str(self.workdir / "stock")})
        try:
            seconds = await seconds_until_serving(self.pipe, restarted, self.args.recovery_timeout_s)
        except TimeoutError:
            log.warning("not serving %ss after the restart", self.args.recovery_timeout_s)
            return {"skus": created, "fill_s": round(filled_s, 1), "restart_to_serving_s": None,
                    "timed_out_after_s": self.args.recovery_timeout_s}
        log.info("serving again %.2fs after the restart", seconds)
        return {"skus": created, "fill_s": round(filled_s, 1), "restart_to_serving_s": round(seconds, 2)}

    # ------------------------------------------------------------------------------- run
    async def run(self) -> dict:
        started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        begin = time.perf_counter()
        await ensure_topics(self.settings)
        await _ensure_loop_topics(self.settings)
        self.pipe = make_pipe("pipeline", self.settings.kafka_bootstrap_servers)
        await self.pipe.start()
        try:
            ready_s = await self.start_workers()
            log.info("workers serving after %.1fs; seeding %s SKUs", ready_s, self.spec.skus)
            await stock_skus(self.pipe, self.spec)
            await prepare(asyncpg_dsn(self.settings.database_url), self.spec)
            details = {"pipeline": await self.pipeline()}
            peak = max(run["rps"] for run in details["pipeline"].values())
            details["latency"] = await self.latency(peak)
            # The same at a fifth of the peak: what a decision takes when the machine is not busy.
            details["latency_20"] = await self.latency(peak, 0.2)
            worker_rss = rss_mb(self.stock.pid)
            details["with_analytics"] = await self.with_analytics()
            details["raw_loop"] = await self.raw_loop()
            details["pg_sync_on"] = await self.postgres("on")
            details["pg_sync_off"] = await self.postgres("off")
            details["http"] = await self.http()
            details["recovery"] = await self.recovery()
        finally:
            await self.pipe.stop()
            self.stop_all()
        return summarize(details, started, time.perf_counter() - begin, worker_rss, self.spec)


def _median_run(runs: list[dict]) -> dict:
    """The run of median rate (of an odd number of runs, the middle one)."""
    return sorted(runs, key=lambda run: run["rps"])[len(runs) // 2]


def summarize(details: dict, started: str, seconds: float, worker_rss: float,
              spec: WorkloadSpec) -> dict:
    pipeline = details["pipeline"]
    sync_on, sync_off = details["pg_sync_on"]["256"]["rps"], details["pg_sync_off"]["256"]["rps"]
    best_pg = max(sync_on, sync_off)
    pipeline_rps = pipeline["256"]["rps"]
    loop_rps = details["raw_loop"]["rps"]
    results = {
        "started_at": started,
        "duration_s": round(seconds, 1),
        "pipeline_rps": pipeline_rps,
        "pg_baseline_rps": best_pg,
        "pg_baseline_sync_rps": sync_on,
        "ratio_vs_pg": round(pipeline_rps / best_pg, 3) if best_pg else None,
        "aiokafka_loop_rps": loop_rps,
        "ratio_vs_aiokafka": round(pipeline_rps / loop_rps, 3) if loop_rps else None,
        "p50_ms": details["latency"]["p50_ms"],
        "p99_ms": details["latency"]["p99_ms"],
        "latency_by_load": {
            f"{share}% of peak": {"rps": run["rps"], "p50_ms": run["p50_ms"], "p99_ms": run["p99_ms"]}
            for share, run in (("20", details.get("latency_20")), ("60", details["latency"])) if run},
        "http_rps": details["http"]["rps"],
        "rps_by_clients": {c: run["rps"] for c, run in pipeline.items()},
        # The 256-client phase side by side, the median of three runs each, alternating: with the
        # analytics worker running beside, and without it (bench.with_analytics).
        "pipeline_rps_with_analytics": details.get("with_analytics", {}).get("rps"),
        "pipeline_rps_without_analytics": details.get("with_analytics", {}).get("without_rps"),
        "analytics_rps_ratio": details.get("with_analytics", {}).get("ratio"),
        "worker_rss_mb": worker_rss,
        "recovery_s_100k_skus": details["recovery"]["restart_to_serving_s"],
        # What bounds the rates on this machine: CPU per decision, by process group, at 256 clients.
        "cpu_ms_per_decision": {
            "pipeline": pipeline["256"]["cpu_ms_per_decision"],
            "raw_loop": details["raw_loop"]["cpu_ms_per_decision"],
            "pipeline_with_analytics": details.get("with_analytics", {}).get("cpu_ms_per_decision"),
            "pg_baseline": details["pg_sync_off" if sync_off >= sync_on else "pg_sync_on"]["256"]["cpu_ms_per_decision"],
        },
    }
    results["goals"] = {
        "ratio_vs_pg >= 5": bool(results["ratio_vs_pg"] and results["ratio_vs_pg"] >= 5),
        "ratio_vs_aiokafka >= 0.5": bool(results["ratio_vs_aiokafka"] and results["ratio_vs_aiokafka"] >= 0.5),
        "rate at 512 clients >= 0.9 x rate at 16": pipeline["512"]["rps"] >= 0.9 * pipeline["16"]["rps"],
        "p99 < 50 ms at 60% of peak": details["latency"]["p99_ms"] < 50,
        "recovery of 100k SKUs < 10 s": (details["recovery"]["restart_to_serving_s"] or 1e9) < 10,
    }
    results["workload"] = {"skus": spec.skus, "zipf_s": spec.zipf_s, "units_per_sku": spec.units_per_sku,
                           "mix": "reserve 1 unit, then release it (closed loop per client)"}
    results["durability"] = _durability()
    results["details"] = details
    return results


def _durability() -> dict:
    settings = get_settings()
    return {
        "pipeline": {
            "producer_acks": "all (-1)",
            "broker_flush": "Kafka defaults: no fsync per message (page cache, flushed by the OS)",
            "replication_factor": settings.topic_replication_factor,
            "consumer": "at-least-once; offsets committed after a producer flush, "
                        f"every {settings.commit_interval_s}s; effects deduplicated by command id",
            "producer_linger_s": settings.producer_linger_s,
        },
        "pg_baseline": {"synchronous_commit": ["on", "off"], "fsync": "on",
                        "connections": "32 per load process, 2 processes"},
    }


async def _ensure_loop_topics(settings: Settings) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        for spec in (TopicSpec(LOOP_COMMANDS, settings.topic_partitions),
                     TopicSpec(LOOP_EVENTS, settings.topic_partitions)):
            if spec.name not in existing:
                try:
                    await admin.create_topics([NewTopic(spec.name, spec.partitions, 1)])
                except TopicAlreadyExistsError:
                    pass
    finally:
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--recovery-skus", type=int, default=100_000)
    parser.add_argument("--api-port", type=int, default=18000)
    parser.add_argument("--recovery-timeout-s", type=float, default=240.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[bench] %(message)s")
    bench = Bench(args, get_settings())
    results = asyncio.run(bench.run())
    for path in write_report(results, bench.out):
        log.info("wrote %s", path.relative_to(ROOT))
    print((bench.out / "latest.md").read_text())


if __name__ == "__main__":
    main()
