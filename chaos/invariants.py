"""Invariants over the stock and warehouse tables (as their compacted changelogs hold them) and
PostgreSQL.

Used after every integration scenario (``tests/integration``) and at the end of a chaos run.
``violations`` lists what is wrong in words; an empty list means:

- no level is negative or oversold (0 <= reserved <= on_hand);
- the ledger's deltas sum to the levels;
- PostgreSQL's levels, versions and reservations equal the table's;
- reserved equals the sum of pending reservations;
- no command was applied twice (two ledger rows of one command that change one level for the
  same reservation, or none: a command changes a level once per reservation it makes or ends,
  e.g. a receipt that also serves two backorders).

``warehouse_violations`` does the same for the warehouses' capacity ledgers, once settled:
0 <= stored, 0 <= held, stored + held <= capacity; no space held (every receipt saga ended);
stored equals the on-hand units of the warehouse's SKUs; PostgreSQL equals the warehouse table.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import text

from common.settings import Settings
from streams.topics import STOCK_TABLE, WAREHOUSE_TABLE, changelog_topic

__all__ = ["read_changelog", "pg_view", "table_view", "violations", "wait_until_caught_up",
           "warehouse_pg_view", "warehouse_table_view", "warehouse_checks", "warehouse_violations"]


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    # aiokafka's group-less consumer can raise CancelledError from stop() when its reset task was
    # cancelled before it first ran; the consumer is closed either way.
    with contextlib.suppress(asyncio.CancelledError):
        await consumer.stop()


async def read_changelog(settings: Settings, table: str = STOCK_TABLE) -> dict[str, Any]:
    """An area's table (the stock one unless told) as its compacted changelog holds it: what a
    recovering worker rebuilds."""
    topic = changelog_topic(settings, table)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                enable_auto_commit=False, group_id=None,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        assert topic in await consumer.topics(), f"changelog topic {topic} not found"
        partitions = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        table: dict[str, Any] = {}
        while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
            batches = await consumer.getmany(timeout_ms=1000, max_records=50_000)
            for records in batches.values():
                for record in records:
                    key = json.loads(record.key)
                    if record.value is None:
                        table.pop(key, None)
                    else:
                        table[key] = json.loads(record.value)
        return table
    finally:
        await stop_consumer(consumer)


async def pg_view(engine, skus: list[str]) -> dict[str, Any]:
    async with engine.connect() as conn:
        levels = (await conn.execute(text(
            "SELECT sku, warehouse, on_hand, reserved, version FROM inventory_levels "
            "WHERE sku = ANY(:skus)"), {"skus": skus})).mappings().all()
        ledger = (await conn.execute(text(
            "SELECT sku, warehouse, sum(on_hand_delta) AS on_hand, sum(reserved_delta) AS reserved "
            "FROM inventory_transactions WHERE sku = ANY(:skus) GROUP BY sku, warehouse "
            "HAVING sum(abs(on_hand_delta)) + sum(abs(reserved_delta)) > 0"),
            {"skus": skus})).mappings().all()
        pending = (await conn.execute(text(
            "SELECT sku, warehouse, sum(quantity) AS reserved FROM reservations "
            "WHERE sku = ANY(:skus) AND state = 'PENDING' GROUP BY sku, warehouse"),
            {"skus": skus})).mappings().all()
        reservations = (await conn.execute(text(
            "SELECT reservation_id, sku, state FROM reservations WHERE sku = ANY(:skus)"),
            {"skus": skus})).mappings().all()
        applied_twice = (await conn.execute(text(
            "SELECT command_id, count(*) AS n FROM inventory_transactions WHERE sku = ANY(:skus) "
            "AND (on_hand_delta <> 0 OR reserved_delta <> 0) "
            "GROUP BY command_id, sku, warehouse, coalesce(reservation_id, '') HAVING count(*) > 1"),
            {"skus": skus})).mappings().all()
    versions: dict[str, int] = {}
    for row in levels:
        versions[row["sku"]] = max(versions.get(row["sku"], 0), row["version"])
    return {
        "levels": {(r["sku"], r["warehouse"]): (r["on_hand"], r["reserved"]) for r in levels},
        "versions": versions,
        "ledger": {(r["sku"], r["warehouse"]): (int(r["on_hand"]), int(r["reserved"])) for r in ledger},
        "pending": {(r["sku"], r["warehouse"]): int(r["reserved"]) for r in pending},
        "reservations": {r["reservation_id"]: (r["sku"], r["state"]) for r in reservations},
        "applied_twice": [dict(r) for r in applied_twice],
    }


def table_view(table: dict[str, Any], skus: list[str]) -> dict[str, Any]:
    levels, versions, reservations = {}, {}, {}
    for sku in skus:
        state = table.get(f"s:{sku}")
        if state is None:
            continue
        for warehouse, (on_hand, reserved) in state["levels"].items():
            levels[(sku, warehouse)] = (on_hand, reserved)
        if state["levels"]:
            versions[sku] = state["seq"]
    wanted = set(skus)
    for key, value in table.items():
        if key.startswith("r:") and value["sku"] in wanted:
            reservations[value["id"]] = (value["sku"], value["state"])
    return {"levels": levels, "versions": versions, "reservations": reservations}


async def wait_until_caught_up(settings: Settings, engine, skus: list[str],
                               timeout_s: float = 30) -> tuple[dict, dict, bool]:
    """The table and PostgreSQL views once the sink has caught up with the table (bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        table = table_view(await read_changelog(settings), skus)
        pg = await pg_view(engine, skus)
        caught_up = table["versions"] == pg["versions"]
        if caught_up or time.monotonic() > deadline:
            return table, pg, caught_up
        await asyncio.sleep(0.5)


def violations(table: dict[str, Any], pg: dict[str, Any]) -> list[str]:
    found: list[str] = []
    if table["versions"] != pg["versions"]:
        behind = {s: (v, pg["versions"].get(s)) for s, v in table["versions"].items()
                  if pg["versions"].get(s) != v}
        found.append(f"PostgreSQL versions differ from the table's: {dict(list(behind.items())[:5])}")
    for key, (on_hand, reserved) in {**pg["levels"], **table["levels"]}.items():
        if not 0 <= reserved <= on_hand:
            found.append(f"oversold or negative at {key}: on_hand={on_hand} reserved={reserved}")
    # Levels at (0, 0) compare equal to no level at all (a warehouse emptied by commits).
    nonzero = {k: v for k, v in pg["levels"].items() if v != (0, 0)}
    ledger = {k: v for k, v in pg["ledger"].items() if v != (0, 0)}
    if ledger != nonzero:
        diff = {k for k in set(ledger) | set(nonzero) if ledger.get(k) != nonzero.get(k)}
        found.append("the ledger's deltas do not sum to the levels at "
                     + ", ".join(f"{k}: ledger {ledger.get(k)}, level {nonzero.get(k)}" for k in sorted(diff)[:5]))
    if pg["levels"] != table["levels"]:
        diff = {k for k in set(pg["levels"]) | set(table["levels"])
                if pg["levels"].get(k) != table["levels"].get(k)}
        found.append(f"PostgreSQL levels differ from the stock table at {sorted(diff)[:5]}")
    held = {k: v[1] for k, v in pg["levels"].items() if v[1]}
    if held != pg["pending"]:
        found.append("reserved differs from the sum of pending reservations")
    for rid, value in table["reservations"].items():
        if pg["reservations"].get(rid) != value:
            found.append(f"reservation {rid}: table {value}, PostgreSQL {pg['reservations'].get(rid)}")
    if pg["applied_twice"]:
        found.append(f"commands applied more than once: {pg['applied_twice'][:5]}")
    return found


# ------------------------------------------------------------------------------ warehouses
async def warehouse_pg_view(engine) -> dict[str, dict[str, int]]:
    """Per warehouse row: PostgreSQL's ledger, and ``on_hand``, the units its SKUs' levels hold."""
    async with engine.connect() as conn:
        rows = (await conn.execute(text(
            "SELECT w.warehouse_id, w.capacity, w.stored, w.held, w.version, "
            "coalesce(sum(l.on_hand), 0) AS on_hand FROM warehouses w "
            "LEFT JOIN inventory_levels l ON l.warehouse = w.warehouse_id "
            "GROUP BY w.warehouse_id"))).mappings().all()
    columns = ("capacity", "stored", "held", "version", "on_hand")
    return {r["warehouse_id"]: {c: int(r[c]) for c in columns} for r in rows}


def warehouse_table_view(table: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    """Per existing warehouse: the table's (stored, held, seq). A refused command for an unknown
    warehouse leaves a ledger with capacity -1 there, which PostgreSQL rightly never gets."""
    return {key[2:]: (state["stored"], sum(state["holds"].values()), state["seq"])
            for key, state in table.items() if key.startswith("s:") and state["capacity"] >= 0}


def _row_violations(warehouse_id: str, row: dict[str, int]) -> list[str]:
    stored, held, capacity = row["stored"], row["held"], row["capacity"]
    found = []
    if not (0 <= stored and 0 <= held and stored + held <= capacity):
        found.append(f"warehouse {warehouse_id} negative or over capacity: "
                     f"stored={stored} held={held} capacity={capacity}")
    if held:
        found.append(f"warehouse {warehouse_id}: {held} units of space still held (a receipt unsettled)")
    if stored != row["on_hand"]:
        found.append(f"warehouse {warehouse_id}: the ledger stores {stored} units, its SKUs hold "
                     f"{row['on_hand']}")
    return found


def warehouse_checks(pg: dict[str, dict[str, int]], table: dict[str, tuple[int, int, int]]) -> list[str]:
    """What is wrong with the warehouses, in words, given both views (empty: nothing)."""
    found = [v for wid, row in sorted(pg.items()) for v in _row_violations(wid, row)]
    ledgers = {wid: (row["stored"], row["held"], row["version"]) for wid, row in pg.items()}
    differ = {wid: (table.get(wid), ledgers.get(wid)) for wid in sorted(set(ledgers) | set(table))
              if ledgers.get(wid) != table.get(wid)}
    if differ:
        found.append("PostgreSQL warehouses (stored, held, version) differ from the warehouse "
                     f"table's (table, PostgreSQL): {dict(list(differ.items())[:5])}")
    return found


async def warehouse_violations(settings: Settings, engine, timeout_s: float = 30) -> list[str]:
    """The warehouses' violations once settled, or those left at the deadline.

    Polls until none is left rather than until PostgreSQL merely equals the table with nothing
    held: the stock sink and a pending FreeSpace may still lag a moment behind then, and the
    on-hand check would report that lag as a violation."""
    deadline = time.monotonic() + timeout_s
    while True:
        table = warehouse_table_view(await read_changelog(settings, WAREHOUSE_TABLE))
        found = warehouse_checks(await warehouse_pg_view(engine), table)
        if not found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)
