"""The row-lock baseline: the classic relational answer, on the same PostgreSQL, same workload.

One transaction per reservation (and per release):

    UPDATE bench_levels SET reserved = reserved + q
     WHERE sku = $1 AND on_hand - reserved >= q RETURNING on_hand, reserved
    INSERT INTO bench_ledger (...)          -- the audit row, as the pipeline's sink writes

Concurrent writers of one SKU queue on its row lock: that is the contention the pipeline's single
writer per SKU avoids. Clients share a pool of at most ``--connections`` (a real service pools
its connections; on 2 cores more backends only add context switches).

    python -m bench.pg_baseline --clients 256 --synchronous-commit off --prefix b1
"""
from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid

import asyncpg

from bench.stats import Window
from bench.workload import WorkloadSpec, Zipf, add_load_arguments, emit
from common.settings import get_settings

__all__ = ["SCHEMA_SQL", "asyncpg_dsn", "prepare", "main"]

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS bench_levels (
    sku text PRIMARY KEY,
    on_hand bigint NOT NULL,
    reserved bigint NOT NULL,
    CHECK (reserved >= 0 AND reserved <= on_hand)
);
CREATE TABLE IF NOT EXISTS bench_ledger (
    event_id uuid PRIMARY KEY,
    sku text NOT NULL,
    reservation_id uuid NOT NULL,
    event_type text NOT NULL,
    reserved_delta bigint NOT NULL,
    on_hand bigint NOT NULL,
    reserved bigint NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now()
);
"""
_RESERVE = ("UPDATE bench_levels SET reserved = reserved + $2 "
            "WHERE sku = $1 AND on_hand - reserved >= $2 RETURNING on_hand, reserved")
_RELEASE = "UPDATE bench_levels SET reserved = reserved - $2 WHERE sku = $1 RETURNING on_hand, reserved"
_LEDGER = ("INSERT INTO bench_ledger (event_id, sku, reservation_id, event_type, reserved_delta, "
           "on_hand, reserved) VALUES ($1, $2, $3, $4, $5, $6, $7)")


def asyncpg_dsn(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def prepare(dsn: str, spec: WorkloadSpec) -> None:
    """Fresh tables holding the same stock as the pipeline's SKUs."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_levels, bench_ledger")
        await conn.execute(SCHEMA_SQL)
        await conn.copy_records_to_table(
            "bench_levels", records=[(sku, spec.units_per_sku, 0) for sku in spec.all_skus()],
            columns=["sku", "on_hand", "reserved"])
    finally:
        await conn.close()


async def _change(pool: asyncpg.Pool, sql: str, sku: str, reservation: uuid.UUID, delta: int,
                  kind: str) -> str:
    async with pool.acquire() as conn:
        async with conn.transaction():
            row = await conn.fetchrow(sql, sku, abs(delta))
            if row is None:
                return "ReservationRejected"
            await conn.execute(_LEDGER, uuid.uuid4(), sku, reservation, kind, delta,
                               row["on_hand"], row["reserved"])
    return kind


async def run(args: argparse.Namespace) -> dict:
    spec = WorkloadSpec(prefix=args.prefix, skus=args.skus, zipf_s=args.zipf)
    zipf = Zipf(spec.skus, spec.zipf_s)
    size = max(1, min(args.clients, args.connections))
    pool = await asyncpg.create_pool(asyncpg_dsn(get_settings().database_url), min_size=size,
                                     max_size=size,
                                     server_settings={"synchronous_commit": args.synchronous_commit})
    now = time.perf_counter()
    window = Window(now + args.warmup, now + args.warmup + args.seconds)

    async def timed(sql: str, sku: str, reservation: uuid.UUID, delta: int, kind: str) -> str:
        started = time.perf_counter()
        outcome = await _change(pool, sql, sku, reservation, delta, kind)
        window.record(outcome, time.perf_counter() - started)
        return outcome

    async def client(rng: random.Random) -> None:
        while time.perf_counter() < window.end:
            sku, reservation = spec.sku(zipf.sample(rng)), uuid.uuid4()
            if await timed(_RESERVE, sku, reservation, 1, "Reserved") == "Reserved":
                await timed(_RELEASE, sku, reservation, -1, "Released")

    try:
        await asyncio.gather(*(client(random.Random(args.seed * 100_003 + i))
                               for i in range(args.clients)))
    finally:
        await pool.close()
    return {"mode": "pg", "clients": args.clients, "connections": size,
            "synchronous_commit": args.synchronous_commit, **window.summary()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--synchronous-commit", choices=["on", "off"], default="on")
    add_load_arguments(parser)
    args = parser.parse_args()
    emit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
