"""Invariants over the stock and warehouse tables (as their compacted changelogs hold them) and
PostgreSQL.

Used after every integration scenario (``tests/integration``) and at the end of a chaos run.
``violations`` lists what is wrong in words; an empty list means:

- no level is negative or oversold (0 <= reserved <= on_hand), nor pre-sold (0 <= preordered
  <= incoming), in the table or PostgreSQL;
- the ledger's deltas sum to the levels (on hand, reserved);
- PostgreSQL's levels ``(on_hand, reserved, incoming, preordered, expected_at)``, versions and
  reservations equal the table's;
- reserved + preordered equals the sum of pending reservations, and preordered the units they
  still await (PostgreSQL's ``awaiting``; the table's ``aw``);
- no command was applied twice (two ledger rows of one command that change one level for the
  same reservation, or none: a command changes a level once per reservation it makes or ends,
  e.g. a receipt that also serves two backorders).

``warehouse_violations`` does the same for the warehouses' capacity ledgers, once settled:
0 <= stored, 0 <= held, stored + held <= capacity; no space held (every receipt saga ended);
stored equals the on-hand units of the warehouse's SKUs; PostgreSQL equals the warehouse table.

``order_violations`` does it for orders, read from the ``order-events`` log, once their sagas
settled: none PENDING, no line waiting for its SKU's answer; a RESERVED order's lines ALLOCATED,
their parts summing to each line and each a PENDING reservation of its SKU awaiting no unit; a
PREORDERED one's the same, but some part still awaiting units (as many as its reservation
awaits); a FULFILLED one's
COMMITTED; a REJECTED or CANCELLED one holds no PENDING reservation; only BACKORDERED lines wait
in a queue, and a BACKORDERED order's lines are allocated or queued; the order table and
PostgreSQL's ``orders`` equal the log (parts' awaiting units too). ``conservation``: per SKU, the
units on hand plus those in transit equal the log's receipts minus removals minus commits
(incoming units are not stock: an announcement moves nothing).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from sqlalchemy import text

from common.errors import SchemaError
from common.settings import Settings
from schemas import AvroCodec, command_codec, event_codec, order_event_codec
from streams.topics import (ORDER_EVENTS, ORDER_TABLE, STOCK_COMMANDS, STOCK_EVENTS, STOCK_TABLE,
                            WAREHOUSE_TABLE, changelog_topic)

__all__ = ["scan_topic", "read_changelog", "read_log", "read_stock_events", "read_stock_commands",
           "read_order_events", "pg_view", "table_view", "violations", "wait_until_caught_up",
           "warehouse_pg_view", "warehouse_table_view", "warehouse_checks", "warehouse_violations",
           "conservation", "order_snapshots", "order_figures", "Holdings", "holdings", "order_checks",
           "order_violations"]


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    # aiokafka's group-less consumer can raise CancelledError from stop() when its reset task was
    # cancelled before it first ran; the consumer is closed either way.
    with contextlib.suppress(asyncio.CancelledError):
        await consumer.stop()


async def scan_topic(settings: Settings, topic: str, handle: Callable[[ConsumerRecord], None]) -> None:
    """Hands every committed record of ``topic`` to ``handle``, from its beginning to where it
    ends now, in log order per partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                enable_auto_commit=False, group_id=None,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        assert topic in await consumer.topics(), f"topic {topic} not found"
        partitions = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
            for records in (await consumer.getmany(timeout_ms=1000, max_records=50_000)).values():
                for record in records:
                    handle(record)
    finally:
        await stop_consumer(consumer)


async def read_changelog(settings: Settings, table: str = STOCK_TABLE) -> dict[str, Any]:
    """An area's table (the stock one unless told) as its compacted changelog holds it: what a
    recovering worker rebuilds."""
    state: dict[str, Any] = {}

    def keep(record: ConsumerRecord) -> None:
        key = json.loads(record.key)
        if record.value is None:
            state.pop(key, None)
        else:
            state[key] = json.loads(record.value)
    await scan_topic(settings, changelog_topic(settings, table), keep)
    return state


async def read_log(settings: Settings, topic: str, codec: AvroCodec, wanted: Callable[[str], bool]) -> list[dict]:
    """The records of ``topic`` whose key is ``wanted``, decoded, in log order per partition (so
    per key). A stock command's or event's body gets its ``type``: the name of its record."""
    records: list[dict] = []

    def keep(record: ConsumerRecord) -> None:
        if record.key is None or not wanted(record.key.decode(errors="replace")):
            return
        try:
            data = codec.decode(record.value)
        except SchemaError:  # dead-lettered by the topic's readers: not part of the history
            return
        if isinstance(data.get("body"), tuple):
            data["type"] = data["body"][0].rsplit(".", 1)[-1]
        records.append(data)
    await scan_topic(settings, topic, keep)
    return records


async def read_stock_events(settings: Settings, skus: Iterable[str]) -> list[dict]:
    return await read_log(settings, STOCK_EVENTS, event_codec(), set(skus).__contains__)


async def read_stock_commands(settings: Settings, skus: Iterable[str]) -> dict[str, dict]:
    """Command id -> body (with its ``type``) of every command of ``skus`` in the stock log: the
    clients', and those the sagas sent (a retry or a re-sent step repeats the same body)."""
    bodies: dict[str, dict] = {}
    for command in await read_log(settings, STOCK_COMMANDS, command_codec(), set(skus).__contains__):
        bodies.setdefault(command["command_id"], {"type": command["type"], **command["body"][1]})
    return bodies


async def read_order_events(settings: Settings, wanted: Callable[[str], bool]) -> list[dict]:
    """The order log of the orders whose id is ``wanted``."""
    return await read_log(settings, ORDER_EVENTS, order_event_codec(), wanted)


async def pg_view(engine, skus: list[str]) -> dict[str, Any]:
    """PostgreSQL's levels, ledger sums, reservations, as one snapshot (else the sink may commit
    between two reads: a level before an expiry, the ledger and reservations after it)."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        levels = (await conn.execute(text(
            "SELECT sku, warehouse, on_hand, reserved, incoming, preordered, version, "
            "coalesce((extract(epoch FROM expected_at) * 1000)::bigint, 0) AS expected_at "
            "FROM inventory_levels WHERE sku = ANY(:skus)"), {"skus": skus})).mappings().all()
        ledger = (await conn.execute(text(
            "SELECT sku, warehouse, sum(on_hand_delta) AS on_hand, sum(reserved_delta) AS reserved "
            "FROM inventory_transactions WHERE sku = ANY(:skus) GROUP BY sku, warehouse "
            "HAVING sum(abs(on_hand_delta)) + sum(abs(reserved_delta)) > 0"),
            {"skus": skus})).mappings().all()
        pending = (await conn.execute(text(
            "SELECT sku, warehouse, sum(quantity) AS held, sum(awaiting) AS awaiting FROM reservations "
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
        "levels": {(r["sku"], r["warehouse"]): tuple(int(r[c]) for c in LEVEL) for r in levels},
        "versions": versions,
        "ledger": {(r["sku"], r["warehouse"]): (int(r["on_hand"]), int(r["reserved"])) for r in ledger},
        "pending": {(r["sku"], r["warehouse"]): int(r["held"]) for r in pending},
        "awaiting": {(r["sku"], r["warehouse"]): int(r["awaiting"]) for r in pending if r["awaiting"]},
        "reservations": {r["reservation_id"]: (r["sku"], r["state"]) for r in reservations},
        "applied_twice": [dict(r) for r in applied_twice],
    }


# A level as both views hold it: PostgreSQL's columns, the table's list (``_dump_level``).
LEVEL = ("on_hand", "reserved", "incoming", "preordered", "expected_at")


def table_view(table: dict[str, Any], skus: list[str]) -> dict[str, Any]:
    """The stock table's levels (padded to the five of ``LEVEL``: the table stores ``[on_hand,
    reserved]`` while the other three are 0), versions, reservations, and per level the units
    its pre-orders await (``aw``)."""
    levels, versions, reservations, awaiting = {}, {}, {}, Counter()
    for sku in skus:
        state = table.get(f"s:{sku}")
        if state is None:
            continue
        for warehouse, level in state["levels"].items():
            levels[(sku, warehouse)] = (*level, 0, 0, 0)[:len(LEVEL)]
        for _, _, warehouse, units in state.get("aw", ()):  # [reservation, order, warehouse, units]
            awaiting[(sku, warehouse)] += units
        if state["levels"]:
            versions[sku] = state["seq"]
    wanted = set(skus)
    for key, value in table.items():
        if key.startswith("r:") and value["sku"] in wanted:
            reservations[value["id"]] = (value["sku"], value["state"])
    return {"levels": levels, "versions": versions, "reservations": reservations,
            "awaiting": {k: v for k, v in awaiting.items() if v}}


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
    for where, view in (("PostgreSQL", pg), ("the table", table)):
        found += _level_violations(where, view["levels"])
    # Levels at (0, 0) compare equal to no level at all (a warehouse emptied by commits, or one
    # with incoming units only).
    nonzero = {k: v[:2] for k, v in pg["levels"].items() if v[:2] != (0, 0)}
    ledger = {k: v for k, v in pg["ledger"].items() if v != (0, 0)}
    if ledger != nonzero:
        diff = {k for k in set(ledger) | set(nonzero) if ledger.get(k) != nonzero.get(k)}
        found.append("the ledger's deltas do not sum to the levels at "
                     + ", ".join(f"{k}: ledger {ledger.get(k)}, level {nonzero.get(k)}" for k in sorted(diff)[:5]))
    if pg["levels"] != table["levels"]:
        diff = {k for k in set(pg["levels"]) | set(table["levels"])
                if pg["levels"].get(k) != table["levels"].get(k)}
        found.append(f"PostgreSQL levels differ from the stock table at {sorted(diff)[:5]}")
    found += _pending_violations(table, pg)
    for rid, value in table["reservations"].items():
        if pg["reservations"].get(rid) != value:
            found.append(f"reservation {rid}: table {value}, PostgreSQL {pg['reservations'].get(rid)}")
    if pg["applied_twice"]:
        found.append(f"commands applied more than once: {pg['applied_twice'][:5]}")
    return found


def _level_violations(where: str, levels: dict[tuple[str, str], tuple]) -> list[str]:
    found = []
    for key, (on_hand, reserved, incoming, preordered, _) in sorted(levels.items()):
        if not 0 <= reserved <= on_hand:
            found.append(f"oversold or negative in {where} at {key}: on_hand={on_hand} reserved={reserved}")
        if not 0 <= preordered <= incoming:
            found.append(f"pre-sold or negative in {where} at {key}: incoming={incoming} preordered={preordered}")
    return found


def _pending_violations(table: dict[str, Any], pg: dict[str, Any]) -> list[str]:
    """Per level: its pending reservations hold reserved + preordered units, and await preordered."""
    held = {k: v[1] + v[3] for k, v in pg["levels"].items() if v[1] + v[3]}
    preordered = {k: v[3] for k, v in pg["levels"].items() if v[3]}
    found = []
    for what, have, want in (("reserved + preordered", held, pg["pending"]),
                             ("preordered (PostgreSQL)", preordered, pg["awaiting"]),
                             ("preordered (the table)", {k: v[3] for k, v in table["levels"].items() if v[3]},
                              table["awaiting"])):
        if have != want:
            diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))[:5]
            found.append(f"{what} differs from the pending reservations' units at "
                         + ", ".join(f"{k}: {have.get(k, 0)} vs {want.get(k, 0)}" for k in diff))
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


# ------------------------------------------------------------------------------ conservation
def conservation(events: Iterable[dict], table: dict[str, Any], skus: Iterable[str]) -> list[str]:
    """Per SKU: the units on hand in every warehouse plus those in transit equal the receipts
    minus the removals (``StockAdjusted``) minus the commits of the stock log (``events``; an
    event announced twice counts once). A transfer moves units, it never makes or loses any."""
    moved: Counter = Counter()
    for event in {e["event_id"]: e for e in events}.values():
        if event["type"] == "StockAdjusted":
            moved[event["sku"]] += event["body"][1]["quantity"]
        elif event["type"] == "Committed":
            moved[event["sku"]] -= event["body"][1]["quantity"]
    found = []
    for sku in skus:
        state = table.get(f"s:{sku}") or {}
        on_hand = sum(level[0] for level in state.get("levels", {}).values())
        in_transit = sum(moving[2] for moving in state.get("tr", {}).values())  # [from, to, units]
        if on_hand + in_transit != moved[sku]:
            found.append(f"{sku}: {on_hand} on hand + {in_transit} in transit, but the log received "
                         f"minus removed minus committed {moved[sku]}")
    return found


# ------------------------------------------------------------------------------ orders
def order_snapshots(events: Iterable[dict]) -> dict[str, dict]:
    """Each order as its log has it now: its latest event that is not a refusal (every order
    event is a snapshot of the whole order)."""
    latest: dict[str, dict] = {}
    for event in events:
        if event["kind"] != "Refused" and event["seq"] >= latest.get(event["order_id"], {}).get("seq", 0):
            latest[event["order_id"]] = event
    return latest


def order_figures(events: Iterable[dict]) -> dict[str, int]:
    """How many orders were placed, and reached each status at some point (from the log)."""
    kinds = Counter(e["kind"] for e in {e["event_id"]: e for e in events}.values())
    names = {"OrderPlaced": "placed", "OrderReserved": "reserved", "OrderRejected": "rejected",
             "OrderBackordered": "backordered", "OrderCancelled": "cancelled", "OrderFulfilled": "fulfilled",
             "PartsReleased": "late_allocations_released", "BackorderWithdrawn": "late_backorders_withdrawn",
             "OrderPreordered": "preordered", "PartArrived": "parts_arrived"}
    return {name: kinds[kind] for kind, name in names.items()}


@dataclass
class Holdings:
    """What the stock area holds for orders, once settled: reservations by (SKU, id) and the
    lines waiting in the SKUs' queues, (order, line)."""

    reservations: dict[tuple[str, str], dict] = field(default_factory=dict)
    queued: set[tuple[str, int]] = field(default_factory=set)
    skus: set[str] = field(default_factory=set)

    def pending_of(self, order_id: str) -> list[str]:
        return sorted(rid for (_, rid), held in self.reservations.items()
                      if held["order"] == order_id and held["state"] == "PENDING")


def holdings(table: dict[str, Any], skus: Iterable[str],
             pg: dict[tuple[str, str], dict] | None = None) -> Holdings:
    """The stock table's reservations and queues of ``skus``; PostgreSQL's reservations (``pg``)
    stand in for the ended ones the table forgot (a command that left its SKU's dedup window
    takes the reservation it ended with it)."""
    wanted = set(skus)
    held = dict(pg or {})
    queued: set[tuple[str, int]] = set()
    for key, value in table.items():
        if key.startswith("r:") and value["sku"] in wanted:
            held[(value["sku"], value["id"])] = {"order": value["order"], "warehouse": value["wh"],
                                                 "quantity": value["qty"], "state": value["state"],
                                                 "awaiting": 0}
        elif key.startswith("s:") and value.get("sku") in wanted:
            queued.update((waiting[0], waiting[1]) for waiting in value.get("bo", ()))  # [order, line, ...]
    for key, value in table.items():  # a pre-order's units not arrived: [reservation, order, warehouse, units]
        if key.startswith("s:") and value.get("sku") in wanted:
            for reservation_id, _, _, units in value.get("aw", ()):
                if (value["sku"], reservation_id) in held:
                    held[(value["sku"], reservation_id)]["awaiting"] = units
    return Holdings(held, queued, wanted)


async def pg_holdings(engine, skus: list[str]) -> dict[tuple[str, str], dict]:
    async with engine.connect() as conn:
        rows = (await conn.execute(text(
            "SELECT reservation_id, order_id, sku, warehouse, quantity, state, awaiting FROM reservations "
            "WHERE sku = ANY(:skus)"), {"skus": skus})).mappings().all()
    return {(r["sku"], r["reservation_id"]): {"order": r["order_id"], "warehouse": r["warehouse"],
                                              "quantity": int(r["quantity"]), "state": r["state"],
                                              "awaiting": int(r["awaiting"])} for r in rows}


async def pg_orders(engine, order_ids: list[str]) -> dict[str, dict]:
    async with engine.connect() as conn:
        rows = (await conn.execute(text(
            "SELECT order_id, status, lines, version FROM orders WHERE order_id = ANY(:ids)"),
            {"ids": order_ids})).mappings().all()
    return {r["order_id"]: {"status": r["status"], "lines": r["lines"], "seq": int(r["version"])} for r in rows}


def _parts(order_id: str, line: dict, state: str, holds: Holdings) -> list[str]:
    """Each part of ``line`` is a reservation of its warehouse and units, in ``state``, awaiting
    the units the part says (none once it ended)."""
    found = []
    for part in line["parts"]:
        held = holds.reservations.get((line["sku"], part["reservation_id"]))
        want = {"order": order_id, "warehouse": part["warehouse"], "quantity": part["quantity"], "state": state,
                "awaiting": part.get("awaiting", 0) if state == "PENDING" else 0}
        if held != want:
            found.append(f"order {order_id} line {line['line']}: part {part['reservation_id']} is {held}, "
                         f"not {want}")
    return found


def _awaiting(lines: list[dict]) -> int:
    return sum(part.get("awaiting", 0) for line in lines for part in line["parts"])


def _reserved(order: dict, lines: list[dict], holds: Holdings) -> list[str]:
    """Every line allocated to the unit, each part held; every unit arrived (of every line: those
    of other SKUs too)."""
    found = _allocated(order, lines, holds)
    if _awaiting(order["lines"]):
        found.append(f"RESERVED order {order['order_id']} awaits {_awaiting(order['lines'])} pre-ordered units")
    return found


def _preordered(order: dict, lines: list[dict], holds: Holdings) -> list[str]:
    """Every line allocated to the unit, each part held, some units still to arrive."""
    found = _allocated(order, lines, holds)
    if not _awaiting(order["lines"]):
        found.append(f"PREORDERED order {order['order_id']} awaits no unit")
    return found


def _allocated(order: dict, lines: list[dict], holds: Holdings) -> list[str]:
    """Every line allocated to the unit, each part a PENDING reservation (awaiting what it says)."""
    found = []
    for line in lines:
        units = sum(part["quantity"] for part in line["parts"])
        if line["state"] != "ALLOCATED" or units != line["quantity"]:
            found.append(f"{order['status']} order {order['order_id']} line {line['line']} is {line['state']} "
                         f"with {units} of {line['quantity']} units allocated")
        found += _parts(order["order_id"], line, "PENDING", holds)
    return found


def _ended(order: dict, lines: list[dict], holds: Holdings) -> list[str]:
    """A rejected or cancelled order holds nothing once settled (nor waits: ``_one_order``)."""
    return [f"{order['status']} order {order['order_id']} holds reservation {rid}"
            for rid in holds.pending_of(order["order_id"])]


def _fulfilled(order: dict, lines: list[dict], holds: Holdings) -> list[str]:
    """Every line and each of its parts committed (the units left)."""
    found = [f"FULFILLED order {order['order_id']} line {line['line']} is {line['state']}"
             for line in lines if line["state"] != "COMMITTED"]
    return found + [p for line in lines for p in _parts(order["order_id"], line, "COMMITTED", holds)]


def _backordered(order: dict, lines: list[dict], holds: Holdings) -> list[str]:
    """Every line is allocated, or waits in its SKU's queue (or was just served from it)."""
    found = []
    for line in lines:
        if line["state"] == "ALLOCATED":
            found += _parts(order["order_id"], line, "PENDING", holds)
            continue
        prefix = f"{order['order_id']}:{line['line']}:"
        served = [rid for rid in holds.pending_of(order["order_id"]) if rid.startswith(prefix)]
        if line["state"] != "BACKORDERED" or not ((order["order_id"], line["line"]) in holds.queued or served):
            found.append(f"BACKORDERED order {order['order_id']} line {line['line']} is {line['state']}, "
                         f"neither allocated nor in the queue of {line['sku']}")
    return found


# One check per status; an order in a status the checks do not know yet is only compared.
_BY_STATUS: dict[str, Callable[[dict, list[dict], Holdings], list[str]]] = {
    "PENDING": lambda order, lines, holds: [f"order {order['order_id']} is still PENDING"],
    "RESERVED": _reserved,
    "PREORDERED": _preordered,
    "REJECTED": _ended,
    "CANCELLED": _ended,
    "FULFILLED": _fulfilled,
    "BACKORDERED": _backordered,
}


def _summary(order: dict) -> tuple:
    """What the log, the order table and PostgreSQL must agree on (fields the schema may add
    later are left out)."""
    lines = tuple((line["line"], line["sku"], line["quantity"], line["state"],
                   tuple((p["warehouse"], p["quantity"], p["reservation_id"], p.get("awaiting", 0))
                         for p in line["parts"]))
                  for line in order["lines"])
    return order["status"], order["seq"], lines


def _one_order(order: dict, holds: Holdings) -> list[str]:
    lines = [line for line in order["lines"] if line["sku"] in holds.skus]
    found = [f"order {order['order_id']} line {line['line']} still waits for its SKU's answer"
             for line in lines if line["state"] == "PENDING"]
    check = _BY_STATUS.get(order["status"])
    found += check(order, lines, holds) if check else []
    # Only a BACKORDERED line waits (an ended order's were withdrawn: WITHDRAWN).
    return found + [f"{order['status']} order {order['order_id']} line {line['line']} is {line['state']} "
                    f"but waits in the queue of {line['sku']}" for line in lines
                    if line["state"] != "BACKORDERED" and (order["order_id"], line["line"]) in holds.queued]


def order_checks(orders: dict[str, dict], holds: Holdings, pg: dict[str, dict],
                 table: dict[str, Any] | None = None) -> list[str]:
    """What is wrong with settled ``orders`` (order id -> its latest snapshot in the log), given
    what the stock area holds, PostgreSQL's ``orders`` rows and the order table (its changelog;
    None: not compared). Empty: every order settled (none PENDING, no line waiting for its answer);
    a RESERVED one holds each line's units exactly, in PENDING reservations; a FULFILLED one
    committed them; a REJECTED or CANCELLED one holds nothing and waits in no queue; a
    BACKORDERED one's lines are allocated or queued; the table and PostgreSQL equal the log."""
    found = []
    for order_id, order in sorted(orders.items()):
        found += _one_order(order, holds) + _differs(order, "PostgreSQL", pg.get(order_id))
        if table is not None:
            found += _differs(order, "the order table", table.get(f"s:{order_id}"))
    return found


def _differs(order: dict, where: str, kept: dict | None) -> list[str]:
    """``kept`` (status, seq and lines, as ``where`` keeps the order) differs from the log's."""
    theirs = None if kept is None else _summary({**order, **kept})
    if theirs == _summary(order):
        return []
    return [f"order {order['order_id']}: {where} has {theirs and theirs[:2]}, the log {_summary(order)[:2]} "
            f"(or their lines differ)"]


async def order_violations(settings: Settings, engine, skus: list[str],
                           wanted: Callable[[str], bool] | None = None, timeout_s: float = 30) -> list[str]:
    """The orders' violations once their sagas settled, or those left at the deadline: of the
    orders whose id is ``wanted``, or without it, of every order with a line of ``skus``. Only
    their lines of ``skus`` are checked against the stock area's holdings."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = await _order_problems(settings, engine, skus, wanted or (lambda _: True))
        if not found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


async def _order_problems(settings: Settings, engine, skus: list[str],
                          wanted: Callable[[str], bool]) -> list[str]:
    wanted_skus = set(skus)
    snapshots = order_snapshots(await read_order_events(settings, wanted))
    orders = {order_id: order for order_id, order in snapshots.items()
              if any(line["sku"] in wanted_skus for line in order["lines"])}
    if not orders:
        return []
    holds = holdings(await read_changelog(settings), skus, await pg_holdings(engine, skus))
    return order_checks(orders, holds, await pg_orders(engine, list(orders)),
                        await read_changelog(settings, ORDER_TABLE))
