"""Backorders: a line that cannot be served waits in its SKU's FIFO queue; arriving stock serves
the queue first, in order, before any new order, and the waiting orders move on."""
from __future__ import annotations

from sqlalchemy import text

from .conftest import assert_invariants, create_stocked_product
from .test_orders import order_when
from .test_warehouses import receive


async def test_receiving_stock_serves_waiting_backorders_in_fifo_order_before_a_new_order(client, settings, engine):
    sku = await create_stocked_product(client, 2)
    first = await client.post("/backorders", json={"customer": "first", "product_id": sku, "quantity": 3})
    assert first.status_code == 201 and first.json()["status"] == "BACKORDERED", first.text
    # Two units are there, but they are promised to the queue: the second waits behind the first.
    second = await client.post("/backorders", json={"customer": "second", "product_id": sku, "quantity": 2})
    assert second.json()["status"] == "BACKORDERED", second.text
    newcomer = await client.post("/orders", json={"customer": "new", "lines": [{"product_id": sku, "quantity": 1}]})
    assert newcomer.json()["status"] == "REJECTED", "a new order does not jump the queue"

    assert (await receive(client, sku, "default", 3)).status_code == 200
    served = [await order_when(client, o.json()["order_id"], lambda b: b["status"] == "RESERVED")
              for o in (first, second)]
    assert [o["status"] for o in served] == ["RESERVED", "RESERVED"]
    async with engine.connect() as conn:
        allocated = (await conn.execute(text(
            "SELECT payload->>'order_id' FROM inventory_transactions WHERE sku = :s AND event_type = 'Allocated' "
            "ORDER BY seq, event_id"), {"s": sku})).scalars().all()
    assert allocated == [first.json()["order_id"], second.json()["order_id"]], "served in the order they came"
    assert (await client.get(f"/inventory/{sku}")).json()["totals"] == {"available": 0, "reserved": 5, "total": 5}
    await assert_invariants(settings, engine, [sku])


async def test_a_cancelled_backorder_leaves_the_queue_and_holds_nothing(client, settings, engine):
    sku = await create_stocked_product(client, 0)
    waiting = await client.post("/backorders", json={"customer": "c", "product_id": sku, "quantity": 4})
    assert waiting.json()["status"] == "BACKORDERED", waiting.text
    order_id = waiting.json()["order_id"]
    cancelled = await client.post(f"/orders/{order_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED", cancelled.text
    # The withdrawal was sent (in the cancel's transaction) before the receipt: by log order the
    # queue is empty when the receipt is decided, and serving happens in that same decision.
    assert (await receive(client, sku, "default", 4)).status_code == 200
    assert (await client.get(f"/inventory/{sku}")).json()["totals"]["reserved"] == 0
    order = await order_when(client, order_id, lambda o: o["lines"][0]["state"] == "WITHDRAWN")
    assert order["lines"][0]["state"] == "WITHDRAWN"
    later = await client.post("/orders", json={"customer": "d", "lines": [{"product_id": sku, "quantity": 4}]})
    assert later.json()["status"] == "RESERVED", "the queue is empty again"
    await assert_invariants(settings, engine, [sku])
