"""The stream analytics worker end to end: a scripted scenario, the figures of
GET /analytics/inventory against what the ledger's rows imply (computed here, not with the fold),
the output topic read by a real consumer, and a kill -9 of the worker mid-stream."""
from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from sqlalchemy import text

from streams.analytics.cells import cell_from_avro, window_cell_codec
from streams.admin import consumer_group_lag
from streams.topics import INVENTORY_ANALYTICS, STOCK_COMMANDS, STOCK_EVENTS
from tests.integration.conftest import assert_invariants, new_sku

COST = Decimal("2.5")


async def _expected(engine, skus: list[str], costs: dict[str, Decimal]) -> dict:
    """The totals the ledger rows of ``skus`` imply (all in range)."""
    async with engine.connect() as conn:
        rows = (await conn.execute(text(
            "SELECT sku, warehouse, event_type, on_hand_delta, on_hand_after, reserved_after, payload, "
            "low_stock FROM inventory_transactions WHERE sku = ANY(:s) ORDER BY sku, seq, position"),
            {"s": skus})).mappings().all()
    t = defaultdict(int)
    last, first, alerts = {}, {}, defaultdict(int)
    for r in rows:
        kind, quantity, delta = r["event_type"], r["payload"].get("quantity", 0), r["on_hand_delta"]
        if kind == "ProductCreated":
            continue
        key = (r["sku"], r["warehouse"])
        first.setdefault(key, r["on_hand_after"] - delta)
        last[key] = r
        alerts[r["warehouse"]] += bool(r["low_stock"])
        if kind == "Reserved":
            t["reserved_units"] += quantity
            t["reservations"] += 1
        elif kind in ("ReservationRejected", "AllocationRejected") and r["payload"]["reason"] == "INSUFFICIENT_STOCK":
            t["rejected_units"] += quantity
            t["rejections"] += 1
        elif kind == "Committed":
            t["committed_units"] += quantity
        elif kind in ("Released", "Expired"):
            t["released_units"] += quantity
        elif kind in ("StockAdjusted", "TransferArrived") and delta > 0:
            t["received_units"] += delta
        elif kind in ("StockAdjusted", "TransferredOut") and delta < 0:
            t["removed_units"] += -delta
    t["demand_units"] = t["reserved_units"] + t["rejected_units"]
    average = sum((first[k] + last[k]["on_hand_after"]) / 2 for k in last)
    value = sum(last[(s, w)]["on_hand_after"] * costs[s] for s, w in last if s in costs and w)
    return {"totals": dict(t), "turnover": round(t["committed_units"] / average, 6),
            "stock_value": f"{value:.4f}", "alerts": dict(alerts), "last": last}


async def _figures(client, category: str, since: str) -> dict:
    response = await client.get("/analytics/inventory", params={"category": category, "since": since,
                                                                 "until": _iso(datetime.now(timezone.utc) + timedelta(hours=2))})
    assert response.status_code == 200, response.text
    return response.json()


def _iso(moment: datetime) -> str:
    return moment.isoformat()


async def _wait_for(client, category: str, since: str, expected: dict, timeout_s: float = 90) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        body = await _figures(client, category, since)
        got = {k: body["totals"][k] for k in expected["totals"]}
        if got == expected["totals"] or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.5)


async def _last_cell_on_topic(settings, key: str):
    consumer = AIOKafkaConsumer(INVENTORY_ANALYTICS, bootstrap_servers=settings.kafka_bootstrap_servers,
                                group_id=None, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.assignment()
        for _ in range(50):
            partitions = consumer.assignment()
            if partitions:
                break
            await asyncio.sleep(0.1)
        ends = await consumer.end_offsets(list(partitions))
        found = None
        for _ in range(600):  # bounded: the topic holds a few hundred cells here
            if all([await consumer.position(tp) >= end for tp, end in ends.items()]):
                break
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    if record.key == key.encode():
                        found = cell_from_avro(window_cell_codec().decode(record.value))
        return found
    finally:
        await consumer.stop()


async def _rewind(settings) -> None:
    """Move the killed worker's committed offsets on stock-events back to 0: the worst crash,
    every event is delivered again. Refused while the broker still counts the dead member in the
    group (until its session times out): retried, bounded."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                group_id=settings.analytics_app_id, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(STOCK_EVENTS, p) for p in range(settings.topic_partitions)]
        consumer.assign(partitions)
        for _ in range(60):
            try:
                await consumer.commit({tp: 0 for tp in partitions})
                assert [await consumer.committed(tp) for tp in partitions] == [0] * len(partitions)
                return
            except KafkaError:
                await asyncio.sleep(1)
        raise AssertionError("could not rewind the analytics group's offsets")
    finally:
        await consumer.stop()


async def _committed_to_the_end(settings, group: str, topic: str, timeout_s: float = 60) -> None:
    """Wait, bounded, until ``group`` has committed ``topic`` to its end: at most a transaction's
    commit marker behind per partition (faust alone committed one transaction per commit)."""
    deadline = time.monotonic() + timeout_s
    while (lag := await consumer_group_lag(settings, group, topic)) and any(b > 1 for b in lag.values()):
        assert time.monotonic() < deadline, f"{group} stays behind on {topic}: {lag}"
        await asyncio.sleep(0.5)


async def test_the_analytics_match_the_ledger_also_across_a_kill(client, settings, engine, analytics):
    category = f"cat-{uuid.uuid4().hex[:10]}"
    north = f"an-{uuid.uuid4().hex[:8]}"
    started = datetime.now(timezone.utc) - timedelta(minutes=1)
    since = _iso(started - timedelta(hours=1))
    assert (await client.post("/warehouses", json={"warehouse_id": north, "name": "north", "location": "Leeds",
                                                   "capacity": 10_000})).status_code == 201
    costed, plain = new_sku("AN"), new_sku("AN")
    assert (await client.post("/products", json={"sku": costed, "name": "costed", "category": category,
                                                 "unit_cost": str(COST)})).status_code == 201
    assert (await client.post("/products", json={"sku": plain, "name": "plain", "category": category})).status_code == 201
    for sku, warehouse, units in ((costed, "default", 10), (costed, north, 5), (plain, "default", 3)):
        response = await client.post(f"/inventory/{sku}/update", json={
            "quantity_change": units, "reason": "receipt", "warehouse": warehouse})
        assert response.status_code == 200, response.text
    assert (await client.post(f"/inventory/{costed}/low-stock-threshold",
                              json={"threshold": 4, "warehouse": "default"})).status_code in (200, 201)

    async def reserve(sku: str, quantity: int, warehouse: str = "default") -> dict:
        response = await client.post("/reservations", json={"product_id": sku, "order_id": f"o-{uuid.uuid4().hex[:6]}",
                                                            "quantity": quantity, "warehouse": warehouse})
        return response

    first = await reserve(costed, 3)
    assert first.status_code == 201, first.text
    assert (await reserve(costed, 50)).status_code == 409  # short: demand, refused
    held_plain = await reserve(plain, 2)
    assert held_plain.status_code == 201
    assert (await reserve(costed, 2, north)).status_code == 201

    # Counted and persisted so far; then kill -9, and every event is delivered again: none may
    # be counted twice (the worker's tables keep what it counted, changelogged).
    halfway = await _expected(engine, [costed, plain], {costed: COST})
    body = await _wait_for(client, category, since, halfway)
    assert {k: body["totals"][k] for k in halfway["totals"]} == halfway["totals"], analytics.tail()
    analytics.kill()
    await _rewind(settings)
    analytics.start()

    order = await client.post("/orders", json={"customer": "c", "preferred_warehouse": "default",
                                               "lines": [{"product_id": costed, "quantity": 2}]})
    assert order.status_code == 201, order.text
    assert (await client.post(f"/reservations/{first.json()['reservation_id']}/commit")).status_code == 200
    assert (await client.post(f"/reservations/{held_plain.json()['reservation_id']}/release")).status_code == 200
    assert (await reserve(costed, 3)).status_code == 201  # 7 on hand, 5 held: 2 available < 4, low
    assert (await client.post(f"/inventory/{costed}/update", json={
        "quantity_change": -1, "reason": "damaged", "warehouse": north})).status_code == 200

    expected = await _expected(engine, [costed, plain], {costed: COST})
    body = await _wait_for(client, category, since, expected)
    assert {k: body["totals"][k] for k in expected["totals"]} == expected["totals"], analytics.tail()
    totals = body["totals"]
    assert totals["demand_units"] == 3 + 50 + 2 + 2 + 2 + 3
    assert totals["rejected_units"] == 50 and totals["committed_units"] == 3 and totals["released_units"] == 2
    assert totals["reservation_rate"] == round(totals["reserved_units"] / totals["demand_units"], 6)
    assert totals["stockout_rate"] == round(50 / totals["demand_units"], 6)
    assert totals["turnover"] == expected["turnover"]
    assert totals["stock_value"] == expected["stock_value"] == f"{(7 + 4) * COST:.4f}"
    assert totals["skus_without_cost"] == 1
    assert sum(w["demand_units"] for w in body["series"]) == totals["demand_units"]
    assert body["top_demand"][0]["product_id"] == costed
    assert body["top_demand"][0]["demand_units"] == totals["demand_units"] - 2
    low = {row["warehouse"]: row for row in body["low_stock"]}
    assert low["default"] == {"warehouse": "default", "skus_low": 1, "alerts": expected["alerts"]["default"]}
    assert expected["alerts"]["default"] == 1
    assert (await _figures(client, f"{category}-none", since))["totals"]["demand_units"] == 0

    # The output topic: the latest cell of a key is the row PostgreSQL holds.
    async with engine.connect() as conn:
        row = (await conn.execute(text(
            "SELECT * FROM analytics_windows WHERE granularity = 'day' AND sku = :s AND warehouse = 'default'"),
            {"s": costed})).mappings().one()
    key = f"day|{row['window_start'].astimezone(timezone.utc).isoformat()}|{costed}|default"
    granularity, _, sku, warehouse, cell = await _last_cell_on_topic(settings, key)
    assert (granularity, sku, warehouse) == ("day", costed, "default")
    assert (cell.last_offset, cell.reserved_units, cell.committed_units, cell.on_hand_close) == (
        row["last_offset"], row["reserved_units"], row["committed_units"], row["on_hand_close"])
    assert cell.on_hand_close == expected["last"][(costed, "default")]["on_hand_after"] == 7

    # A bad range is refused.
    response = await client.get("/analytics/inventory", params={"since": "2030-01-02T00:00:00Z",
                                                                "until": "2030-01-01T00:00:00Z"})
    assert response.status_code == 422

    # Both topics are written in transactions (stock-commands by the order agent): each worker
    # commits past their markers to the end, the analytics worker from its rewind to 0 on.
    await _committed_to_the_end(settings, settings.analytics_app_id, STOCK_EVENTS)
    await _committed_to_the_end(settings, settings.app_id, STOCK_COMMANDS)
    await assert_invariants(settings, engine, [costed, plain])


async def test_the_analytics_worker_yields_the_cpu_to_the_reservation_path(settings, analytics, worker):
    """It runs at a lower CPU priority than the stock worker, so on a shared machine it only takes
    what the reservation path leaves (bench/README.md measures the pipeline with it running)."""
    assert analytics.alive, analytics.tail()
    assert settings.analytics_nice > 0
    ours = os.getpriority(os.PRIO_PROCESS, worker.proc.pid)
    assert os.getpriority(os.PRIO_PROCESS, analytics.proc.pid) == min(19, ours + settings.analytics_nice)
