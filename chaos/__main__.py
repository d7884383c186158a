"""``make chaos``: the bounded chaos run (see ``chaos/__init__.py`` and README).

    python -m chaos [--commands 100000] [--kills 20] [--broker-restarts 3]

Expects the stack of ``scripts/stack.sh`` (``make chaos`` starts it). Starts a ledger worker and
two stock workers (so partitions move on every kill), seeds the SKUs, runs the clients in their
own process (stock commands, orders, transfers and pre-orders: ``chaos/clients.py``), and meanwhile SIGKILLs
a random stock worker at random moments (restarting it at once) and restarts the broker. Then it
waits for the order sagas to settle and the pipeline to drain, reads the stock log, the stock
commands (the sagas' too) and the order log back, and checks everything.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.pipe import Pipe, event_answer
from bench.procs import ROOT, Child
from bench.seeding import seconds_until_serving
from bench.workload import sku_name
from chaos.clients import WAREHOUSES, Call, execute
from chaos.invariants import (conservation, order_figures, order_snapshots, order_violations, pg_view,
                              read_changelog, read_order_events, read_stock_commands, read_stock_events,
                              table_view, violations, warehouse_violations)
from chaos.model import check
from common.settings import Settings, get_settings
from storage.db import create_engine
from streams.admin import ensure_topics
from streams.stock.records import AdjustStock, CreateProduct
from streams.topics import STOCK_COMMANDS, STOCK_EVENTS
from streams.warehouses.records import CreateWarehouse

__all__ = ["main"]

log = logging.getLogger("chaos")
PY = sys.executable
# Short enough that a killed worker's partitions move soon; Kafka's minimum is 6 s.
# Metrics servers off: several stock workers run on one machine, and would want one port.
WORKER_ENV = {"INVENTORY_BROKER_SESSION_TIMEOUT_S": "6", "INVENTORY_WORKER_METRICS_PORT": "0",
              "INVENTORY_LEDGER_METRICS_PORT": "0"}


def expiring(table: dict, skus: set[str]) -> list[str]:
    """The pending reservations of ``skus`` in the stock table with a deadline (a few seconds
    after the clients' last command at most; the clock ticks every second): the run has not
    drained before they expired. Else one expiring between the reads of the table and of the log
    would be PENDING in the one and EXPIRED in the other."""
    return [key for key, value in table.items() if key.startswith("r:") and value["sku"] in skus
            and value["state"] == "PENDING" and value.get("exp", 0) > 0]


class Chaos:
    def __init__(self, args: argparse.Namespace, settings: Settings) -> None:
        self.args, self.settings = args, settings
        self.out = ROOT / "chaos" / "results"
        self.logdir = self.out / "logs"
        self.workdir = Path(tempfile.mkdtemp(prefix="inventory-chaos-"))
        self.prefix = f"c{int(time.time())}"
        self.history = self.workdir / "history.jsonl"
        self.rng = random.Random(args.seed)
        self.children: list[Child] = []
        self.kills = 0
        self.broker_restarts = 0
        self.exits = 0
        self.generation = 0

    def child(self, name: str, *args: str, data: str | None = None) -> Child:
        env = {"INVENTORY_WORKER_DATA_DIR": str(self.workdir / (data or name)), **WORKER_ENV}
        proc = Child(name, [PY, *args], self.logdir, env).start()
        self.children.append(proc)
        return proc

    def start_stock(self, slot: int) -> Child:
        self.generation += 1
        # A restarted worker keeps its slot's local state, as on a real machine: it resumes the
        # changelog where its RocksDB left off, which is the path a kill -9 must not corrupt.
        return self.child(f"stock{slot}-{self.generation}", "-m", "streams", "stock", "--loglevel", "warn",
                          data=f"stock{slot}")

    # ------------------------------------------------------------------------------ phases
    async def seed(self, pipe: Pipe) -> None:
        """Products and opening stock, through the same client path, so they are in the history."""
        async def one(index: int, body, suffix: str) -> None:
            sku = sku_name(self.prefix, index)
            call = await execute(pipe, Call("command", sku, id=f"{self.prefix}-seed-{index}-{suffix}"),
                                 body, give_up_s=120)
            self.record(call)
        await asyncio.gather(*(one(i, CreateProduct(f"chaos {i}"), "create") for i in range(self.args.skus)))
        for warehouse in WAREHOUSES:  # ample room: capacity refusals are integration tests'
            answer = await pipe.call_ledger(f"{self.prefix}-warehouse-{warehouse}", warehouse,
                                            CreateWarehouse(warehouse, "chaos", 10**9), timeout_s=120)
            if answer is None:  # "Refused" here can only be WAREHOUSE_EXISTS: a reused stack
                raise RuntimeError(f"could not create warehouse {warehouse}: {answer}")
        for warehouse in WAREHOUSES:
            await asyncio.gather(*(one(i, AdjustStock(warehouse, 40, "opening stock"), warehouse)
                                   for i in range(self.args.skus)))

    def record(self, call: Call) -> None:
        from dataclasses import asdict
        with open(self.history, "a") as out:
            out.write(json.dumps(asdict(call), separators=(",", ":")) + "\n")

    def progress(self, clients: Child) -> dict:
        lines = [line for line in clients.tail(5).splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else {"done": 0}

    async def monkey(self, clients: Child, workers: list[Child]) -> None:
        """Kills a random stock worker at random moments, and restarts the broker now and then,
        until the planned kills and restarts are done; the clients then finish undisturbed."""
        restart_at = {round(self.args.kills * (i + 1) / (self.args.broker_restarts + 1))
                      for i in range(self.args.broker_restarts)}
        while self.kills < self.args.kills or self.broker_restarts < self.args.broker_restarts:
            await asyncio.sleep(self._pause(clients))
            slot = self.rng.randrange(len(workers))
            workers[slot].kill()
            self.kills += 1
            workers[slot] = self.start_stock(slot)
            log.info("kill %d (stock worker %d); progress %s", self.kills, slot, self.progress(clients))
            if self.kills in restart_at or (self.kills >= self.args.kills
                                            and self.broker_restarts < self.args.broker_restarts):
                await asyncio.to_thread(self.restart_broker)

    async def supervise(self, workers: list[Child]) -> None:
        """Restart a worker that stopped on its own, as a supervisor would (one started while
        the broker was away, or one that lost a partition to a fence, streams/partition/owner.py)."""
        while True:
            await asyncio.sleep(1.0)
            for slot, worker in enumerate(workers):
                if not worker.alive:
                    self.exits += 1
                    workers[slot] = self.start_stock(slot)
                    log.info("stock worker %d had stopped on its own; restarted", slot)

    def _pause(self, clients: Child) -> float:
        """Spreads the kills over the first part of the clients' run, at random moments."""
        done = self.progress(clients).get("done", 0)
        if not clients.alive or done == 0:
            return self.rng.uniform(2, 4)
        return self.rng.uniform(4.0, 16.0)

    def restart_broker(self) -> None:
        log.info("restarting the broker")
        subprocess.run([str(ROOT / "scripts" / "stack.sh"), "restart-kafka"], check=True,
                       stdout=subprocess.DEVNULL, timeout=300)
        self.broker_restarts += 1
        log.info("broker back (%d restarts)", self.broker_restarts)

    async def drain(self, engine, skus: list[str]) -> tuple[dict, dict, dict]:
        """Waits until the clock has expired every reservation with a deadline and PostgreSQL
        has caught up with the stock table: (the table's view, the table itself, PostgreSQL's
        view). Else the log, read after the table, would hold expiries the table did not have yet."""
        deadline = time.monotonic() + 180
        while True:
            raw = await read_changelog(self.settings)
            table, pg = table_view(raw, skus), await pg_view(engine, skus)
            if (table["versions"] == pg["versions"] and not expiring(raw, set(skus))) or time.monotonic() > deadline:
                return table, raw, pg
            await asyncio.sleep(2)

    def ours(self, order_id: str) -> bool:
        return order_id.startswith(f"{self.prefix}-")

    async def run(self) -> dict:
        begin = time.monotonic()
        await ensure_topics(self.settings)
        self.child("ledger", "-m", "streams", "ledger", "--loglevel", "warn")
        workers = [self.start_stock(0), self.start_stock(1)]
        supervisor = asyncio.create_task(self.supervise(workers))
        pipe = Pipe(self.settings.kafka_bootstrap_servers, STOCK_COMMANDS, STOCK_EVENTS, event_answer(),
                    sender="chaos", ledger=True)
        await pipe.start()
        engine = create_engine(self.settings.database_url, pool_size=2)
        skus = [sku_name(self.prefix, i) for i in range(self.args.skus)]
        try:
            await seconds_until_serving(pipe, time.perf_counter(), timeout_s=180)
            await self.seed(pipe)
            log.info("seeded %d SKUs; starting %d commands", self.args.skus, self.args.commands)
            clients = self.child("clients", "-m", "chaos.clients", "--prefix", self.prefix,
                                 "--commands", str(self.args.commands), "--clients", str(self.args.clients),
                                 "--skus", str(self.args.skus), "--history", str(self.history),
                                 "--seed", str(self.args.seed))
            await self.monkey(clients, workers)
            await asyncio.to_thread(clients.proc.wait)
            log.info("clients done after %.0fs; draining", time.monotonic() - begin)
            await seconds_until_serving(pipe, time.perf_counter(), timeout_s=180)
            # First the sagas settle (their last releases and commits decided), then the sink.
            order_problems = await order_violations(self.settings, engine, skus, self.ours, timeout_s=180)
            table, raw, pg = await self.drain(engine, skus)
            logs = {"events": await read_stock_events(self.settings, skus),
                    "bodies": await read_stock_commands(self.settings, skus),
                    "orders": await read_order_events(self.settings, self.ours)}
            problems = (violations(table, pg) + await warehouse_violations(self.settings, engine, timeout_s=120)
                        + order_problems + conservation(logs["events"], raw, skus))
        finally:
            supervisor.cancel()
            await pipe.stop()
            await engine.dispose()
            for proc in reversed(self.children):
                proc.stop()
        return self.verdict(table, pg, logs, problems, time.monotonic() - begin)

    def verdict(self, table: dict, pg: dict, logs: dict, problems: list[str], seconds: float) -> dict:
        calls = [json.loads(line) for line in self.history.read_text().splitlines()]
        commands = [c for c in calls if c["op"] == "command" and "-seed-" not in c["id"]]
        report = check(calls, logs["events"], table["reservations"], now_ms=int(time.time() * 1000),
                       bodies=logs["bodies"], order_events=logs["orders"])
        outcomes = {k: sum(c["outcome"] == k for c in commands) for k in ("ok", "fail", "unknown")}
        return {
            "commands": len(commands),
            "kills": self.kills,
            "broker_restarts": self.broker_restarts,
            "lost": report.lost,
            "duplicated": report.duplicated + len(pg["applied_twice"]),
            "invariant_violations": len(problems),
            "history_anomalies": report.history_anomalies,
            "duration_s": round(seconds, 1),
            "details": {
                "outcomes": outcomes,
                "client_commands": dict(Counter(c["body"]["type"] for c in commands)),
                "reads": sum(c["op"] == "read" for c in calls),
                "decisions_in_log": len(logs["events"]),
                "model_decided": dict(report.decided),
                **self.saga_figures(logs, report.stats),
                "skus": self.args.skus, "clients": self.args.clients,
                "accepted_unknown": sum(c["accepted"] and c["outcome"] == "unknown" for c in commands),
                "worker_exits": self.exits,
                "violations": problems[:20],
                "anomaly_examples": report.examples,
                "seed": self.args.seed,
            },
        }

    @staticmethod
    def saga_figures(logs: dict, stats: Counter) -> dict:
        """Orders (how many reached each status, and where they ended), transfers, backorders and
        pre-orders (announcements, holds awaiting units, order lines among them, arrivals, commits
        refused before them)."""
        kinds = Counter(e["type"] for e in {e["event_id"]: e for e in logs["events"]}.values())
        ended = Counter(order["status"] for order in order_snapshots(logs["orders"]).values())
        return {
            "orders": {**order_figures(logs["orders"]), "final_status": dict(ended)},
            "transfers": {"out": kinds["TransferredOut"], "arrived": kinds["TransferArrived"]},
            "backorders": {"queued": kinds["Backordered"], "served": stats["backorders_served"],
                           "cancelled": kinds["BackorderCancelled"]},
            "allocations": {"allocated": kinds["Allocated"], "rejected": kinds["AllocationRejected"]},
            "preorders": {"announced": kinds["IncomingAnnounced"], "holds": stats["preorder_holds"],
                          "lines": stats["preorder_lines"], "arrived": kinds["PreorderArrived"],
                          "commits_before_arrival": stats["commits_before_arrival"]},
            # Decisions the model took from the log as they were (a kind it has no rule for yet).
            "unmodelled_decisions": stats["unmodelled"],
        }


def _stop_children_on_sigterm(chaos: Chaos) -> None:
    """A run stopped from outside (``make chaos``'s timeout) stops the workers it started: left
    running, they would join the next run's stack (the same ports and consumer groups)."""
    def stop(_signum: int, _frame: object) -> None:
        for proc in reversed(chaos.children):
            proc.stop(timeout_s=10)
        sys.exit(128 + signal.SIGTERM)
    signal.signal(signal.SIGTERM, stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=96)
    parser.add_argument("--skus", type=int, default=200)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--broker-restarts", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[chaos] %(message)s")
    chaos = Chaos(args, get_settings())
    _stop_children_on_sigterm(chaos)
    results = asyncio.run(chaos.run())
    chaos.out.mkdir(parents=True, exist_ok=True)
    (chaos.out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    summary = {k: v for k, v in results.items() if k != "details"}
    print(json.dumps(summary, indent=2))
    failed = results["lost"] or results["duplicated"] or results["invariant_violations"] \
        or results["history_anomalies"]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
