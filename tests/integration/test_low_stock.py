"""Low stock: a threshold per (SKU, warehouse); crossing it is an alert on inventory-alerts, a
LowStock message on the WebSocket, and a row of GET /inventory/low-stock."""
from __future__ import annotations

import asyncio
import json

import websockets
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas import alert_codec
from streams.topics import INVENTORY_ALERTS

from .conftest import assert_invariants, auth_headers, create_stocked_product, stop_consumer


async def _alerts_for(settings, sku: str) -> list[dict]:
    """Every committed alert of ``sku`` on inventory-alerts, in order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None,
                                enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    try:
        tps = [TopicPartition(INVENTORY_ALERTS, p) for p in range(settings.topic_partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        found = []
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                found += [alert_codec().decode(r.value) for r in records if r.key == sku.encode()]
        return found
    finally:
        await stop_consumer(consumer)


async def _low_stock(client, sku: str) -> list[dict]:
    response = await client.get("/inventory/low-stock", params={"warehouse": "default"})
    assert response.status_code == 200, response.text
    return [row for row in response.json() if row["product_id"] == sku]


async def test_crossing_the_threshold_alerts_once_everywhere_and_recovering_clears_the_list(
        client, api, settings, engine):
    sku = await create_stocked_product(client, 8)
    url = api.base_url.replace("http://", "ws://") + f"/ws/inventory?product_id={sku}"
    async with websockets.connect(url, additional_headers=auth_headers(settings, "viewer")) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "subscribed"
        response = await client.post(f"/inventory/{sku}/low-stock-threshold", json={"threshold": 5})
        assert response.status_code == 200, response.text
        assert response.json()["low_stock_threshold"] == 5

        held = await client.post("/reservations", json={"product_id": sku, "order_id": "o1", "quantity": 3})
        assert held.status_code == 201 and await _low_stock(client, sku) == []  # 5 left: not below
        assert (await client.post("/reservations", json={
            "product_id": sku, "order_id": "o2", "quantity": 1})).status_code == 201  # 4 left

        messages = []
        while not any(m["type"] == "LowStock" for m in messages):
            messages.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
    alert = next(m for m in messages if m["type"] == "LowStock")
    assert (alert["sku"], alert["available"], alert["threshold"]) == (sku, 4, 5)
    crossing = next(m for m in messages if m.get("event_id") == alert["event_id"] and m["type"] != "LowStock")
    assert crossing["type"] == "Reserved" and crossing["low_stock"] is True

    [listed] = await _low_stock(client, sku)
    assert (listed["available"], listed["low_stock_threshold"]) == (4, 5)
    [published] = await _alerts_for(settings, sku)
    assert (published["event_id"], published["available"], published["threshold"]) == (alert["event_id"], 4, 5)

    release = await client.post(f"/reservations/{held.json()['reservation_id']}/release")
    assert release.status_code == 200 and release.json()["level"]["available"] == 7
    assert await _low_stock(client, sku) == []
    inventory = (await client.get(f"/inventory/{sku}")).json()
    assert inventory["warehouses"][0]["low_stock_threshold"] == 5
    assert len(await _alerts_for(settings, sku)) == 1, "recovering raises no alert"
    await assert_invariants(settings, engine, [sku])


async def test_a_threshold_for_an_unknown_product_or_below_zero_is_refused(client):
    assert (await client.post("/inventory/NO-SUCH-SKU-1/low-stock-threshold",
                              json={"threshold": 3})).status_code == 404
    sku = await create_stocked_product(client, 1)
    refused = await client.post(f"/inventory/{sku}/low-stock-threshold", json={"threshold": -1})
    assert refused.status_code == 422 and refused.headers["content-type"].startswith("application/problem+json")
