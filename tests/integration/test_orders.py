"""Orders: a saga per order, run by the order's single writer; every line is reserved at its SKU's
owner (split over warehouses by the allocation strategy), or the order holds nothing."""
from __future__ import annotations

import asyncio
import random
import time
import uuid

from aiokafka import AIOKafkaProducer
from sqlalchemy import text

from schemas import order_command_codec
from streams.orders.records import CancelOrder, OrderCommand, OrderLine, PlaceOrder, order_command_to_avro
from streams.topics import ORDER_COMMANDS

from .conftest import assert_invariants, create_stocked_product
from .test_warehouses import create_warehouse, receive
from .waits import get_when


async def stocked(client, levels: dict[str, int]) -> str:
    """A product with ``levels`` units in each of the given warehouses."""
    sku = await create_stocked_product(client, 0)
    for warehouse, units in levels.items():
        assert (await receive(client, sku, warehouse, units)).status_code == 200
    return sku


async def order_when(client, order_id: str, settled, timeout_s: float = 20) -> dict:
    return await get_when(client, f"/orders/{order_id}", settled, timeout_s)


async def held_by_order(engine, order_id: str) -> int:
    """Units the order's reservations hold now (PENDING), from the read model."""
    async with engine.connect() as conn:
        return int((await conn.execute(text(
            "SELECT coalesce(sum(quantity), 0) FROM reservations WHERE order_id = :o AND state = 'PENDING'"),
            {"o": order_id})).scalar())


async def test_a_line_is_split_over_warehouses_preferred_first_and_fulfilled(client, settings, engine):
    north, south = await create_warehouse(client, 1000), await create_warehouse(client, 1000)
    shirts = await stocked(client, {north: 3, south: 10})
    socks = await stocked(client, {south: 5})

    placed = await client.post("/orders", json={
        "customer": "c-1", "preferred_warehouse": north, "strategy": "most_stock",
        "lines": [{"product_id": shirts, "quantity": 8}, {"product_id": socks, "quantity": 2}]})
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["status"] == "RESERVED" and [line["state"] for line in order["lines"]] == ["ALLOCATED"] * 2
    split = {part["warehouse"]: part["quantity"] for part in order["lines"][0]["allocation"]}
    assert split == {north: 3, south: 5}, "the preferred warehouse first, the rest from the next"
    assert (await client.get(f"/orders/{order['order_id']}")).json()["status"] == "RESERVED"
    async with engine.connect() as conn:
        allocated = (await conn.execute(text(
            "SELECT payload FROM inventory_transactions WHERE sku = :s AND event_type = 'Allocated'"),
            {"s": shirts})).scalar_one()
    assert allocated["strategy"] == "most_stock" and allocated["levels_seen"] == {north: 3, south: 10}

    # The order's saga ends its holds: not a request on one of them.
    part = order["lines"][0]["allocation"][0]["reservation_id"]
    for action in ("release", "commit"):
        refused = await client.post(f"/reservations/{part}/{action}")
        assert (refused.status_code, refused.json()["reason"]) == (409, "MANAGED_BY_ORDER"), refused.text
    assert (await client.get(f"/reservations/{part}")).json()["state"] == "PENDING"

    fulfilled = await client.post(f"/orders/{order['order_id']}/fulfil")
    assert fulfilled.status_code == 200 and fulfilled.json()["status"] == "FULFILLED", fulfilled.text
    await order_when(client, order["order_id"], lambda o: all(line["state"] == "COMMITTED" for line in o["lines"]))
    for _ in range(100):  # the commits are the saga's next step
        if (await client.get(f"/inventory/{shirts}")).json()["totals"]["total"] == 5:
            break
        await asyncio.sleep(0.1)
    assert (await client.get(f"/inventory/{shirts}")).json()["totals"] == {"available": 5, "reserved": 0, "total": 5}
    again = await client.post(f"/orders/{order['order_id']}/cancel")
    assert (again.status_code, again.json()["reason"]) == (409, "NOT_CANCELLABLE")
    await assert_invariants(settings, engine, [shirts, socks])


async def test_an_order_that_cannot_be_served_holds_nothing(client, settings, engine):
    plenty, scarce = await stocked(client, {"default": 10}), await stocked(client, {"default": 1})
    placed = await client.post("/orders", json={
        "customer": "c-2", "lines": [{"product_id": plenty, "quantity": 4}, {"product_id": scarce, "quantity": 2}]})
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["status"] == "REJECTED"
    settled = await order_when(client, order["order_id"],
                               lambda o: not {"ALLOCATED", "PENDING"} & {line["state"] for line in o["lines"]})
    assert {line["state"] for line in settled["lines"]} <= {"REJECTED", "RELEASED"}
    await assert_invariants(settings, engine, [plenty, scarce])
    assert await held_by_order(engine, order["order_id"]) == 0
    assert (await client.get(f"/inventory/{plenty}")).json()["totals"]["available"] == 10

    unknown = await client.post("/orders", json={"customer": "c", "lines": [{"product_id": "NO-SUCH", "quantity": 1}]})
    assert unknown.status_code == 404
    twice = await client.post("/orders", json={"customer": "c", "lines": [
        {"product_id": plenty, "quantity": 1}, {"product_id": plenty, "quantity": 1}]})
    assert twice.status_code == 422
    assert (await client.get("/orders/no-such-order")).status_code == 404


async def test_an_order_cancelled_while_its_saga_runs_ends_with_nothing_held(client, settings, engine):
    skus = [await stocked(client, {"default": 5}) for _ in range(3)]
    order_id = f"order-{uuid.uuid4().hex[:10]}"
    codec = order_command_codec()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:  # back to back on the order's partition: the cancel is decided before any line answers
        for command_id, body in ((f"{order_id}-place", PlaceOrder("c-3", tuple(OrderLine(s, 2) for s in skus))),
                                 (f"{order_id}-cancel", CancelOrder("changed my mind"))):
            command = OrderCommand(command_id, order_id, int(time.time() * 1000), body, "test")
            await producer.send(ORDER_COMMANDS, codec.encode(order_command_to_avro(command)), key=order_id.encode())
        await producer.flush()
    finally:
        await producer.stop()
    order = await order_when(client, order_id, lambda o: o["status"] == "CANCELLED"
                             and all(line["state"] in ("RELEASED", "REJECTED") for line in o["lines"]))
    assert order["status"] == "CANCELLED", order
    assert all(line["state"] == "RELEASED" for line in order["lines"]), order
    await assert_invariants(settings, engine, skus)
    assert await held_by_order(engine, order_id) == 0
    for sku in skus:
        assert (await client.get(f"/inventory/{sku}")).json()["totals"] == {"available": 5, "reserved": 0, "total": 5}


async def test_100_concurrent_multi_line_orders_over_5_skus_and_3_warehouses(client, settings, engine):
    warehouses = [await create_warehouse(client, 10_000) for _ in range(3)]
    rng = random.Random(11)
    skus = [await stocked(client, {w: rng.randint(2, 8) for w in warehouses}) for _ in range(5)]
    stock = {sku: (await client.get(f"/inventory/{sku}")).json()["totals"]["total"] for sku in skus}

    def order(i: int) -> dict:
        lines = rng.sample(skus, rng.randint(1, 3))
        return {"order_id": f"bulk-{uuid.uuid4().hex[:8]}-{i}", "customer": f"c{i % 7}",
                "preferred_warehouse": rng.choice(warehouses), "strategy": rng.choice(["priority", "most_stock"]),
                "lines": [{"product_id": s, "quantity": rng.randint(1, 4)} for s in lines]}

    orders = [order(i) for i in range(100)]
    answers = await asyncio.gather(*(client.post("/orders", json=o) for o in orders))
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers if a.status_code != 201][:3]
    statuses = [a.json()["status"] for a in answers]
    assert set(statuses) <= {"RESERVED", "REJECTED"} and "RESERVED" in statuses and "REJECTED" in statuses

    held: dict[str, int] = {sku: 0 for sku in skus}
    for placed, answer in zip(orders, answers):
        final = await order_when(client, placed["order_id"], lambda o: "PENDING" not in {l["state"] for l in o["lines"]}
                                 and (o["status"] == "RESERVED" or "ALLOCATED" not in {l["state"] for l in o["lines"]}))
        wanted = {line["product_id"]: line["quantity"] for line in placed["lines"]}
        if final["status"] == "RESERVED":  # fully held: every line, to the unit
            for line in final["lines"]:
                assert line["state"] == "ALLOCATED"
                assert sum(p["quantity"] for p in line["allocation"]) == wanted[line["product_id"]]
                held[line["product_id"]] += wanted[line["product_id"]]
        else:  # holds nothing
            assert {line["state"] for line in final["lines"]} <= {"REJECTED", "RELEASED"}, final
    for sku in skus:
        totals = (await client.get(f"/inventory/{sku}")).json()["totals"]
        assert totals["total"] == stock[sku], "on hand is conserved"
        assert totals["reserved"] == held[sku] <= stock[sku], "no oversell, and only RESERVED orders hold"
    await assert_invariants(settings, engine, skus)
