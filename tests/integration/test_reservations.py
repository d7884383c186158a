"""The walking skeleton end to end: HTTP -> Kafka -> worker -> PostgreSQL -> HTTP / WebSocket."""
from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import websockets
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import text

from streams.topics import (
    STOCK_COMMANDS,
    STOCK_COMMANDS_DLQ,
    STOCK_EVENTS,
    STOCK_EVENTS_DLQ,
    WAREHOUSE_COMMANDS,
    WAREHOUSE_COMMANDS_DLQ,
)

from .conftest import assert_invariants, auth_headers, create_stocked_product, stop_consumer


async def test_200_concurrent_clients_reserve_exactly_the_50_units(client, settings, engine):
    sku = await create_stocked_product(client, 50)

    async def reserve(i: int) -> int:
        response = await client.post("/reservations", json={
            "product_id": sku, "order_id": f"order-{i}", "quantity": 1})
        return response.status_code

    statuses = await asyncio.gather(*(reserve(i) for i in range(200)))
    assert statuses.count(201) == 50, statuses
    assert statuses.count(409) == 150, statuses

    inventory = (await client.get(f"/inventory/{sku}")).json()
    assert inventory["totals"] == {"available": 0, "reserved": 50, "total": 50}
    pg = await assert_invariants(settings, engine, [sku])
    assert sum(1 for s, _ in pg["reservations"].values() if s == sku) == 50


async def test_the_same_command_id_five_times_yields_one_reservation(client, settings, engine):
    sku = await create_stocked_product(client, 10)
    key = f"idem-{uuid.uuid4()}"
    body = {"product_id": sku, "order_id": "order-1", "quantity": 2}

    sequential = [await client.post("/reservations", json=body, headers={"Idempotency-Key": key})
                  for _ in range(2)]
    concurrent = await asyncio.gather(*(
        client.post("/reservations", json=body, headers={"Idempotency-Key": key}) for _ in range(3)))
    responses = sequential + list(concurrent)
    assert [r.status_code for r in responses] == [201] * 5
    assert len({r.json()["reservation_id"] for r in responses}) == 1

    inventory = (await client.get(f"/inventory/{sku}")).json()
    assert inventory["totals"] == {"available": 8, "reserved": 2, "total": 10}
    pg = await assert_invariants(settings, engine, [sku])
    assert len(pg["reservations"]) == 1


async def test_a_reservation_expires_after_its_ttl_and_its_units_are_reservable_again(
        client, settings, engine):
    sku = await create_stocked_product(client, 3)
    short = await client.post("/reservations", json={
        "product_id": sku, "order_id": "o-short", "quantity": 2, "ttl_seconds": 1})
    kept = await client.post("/reservations", json={"product_id": sku, "order_id": "o-kept", "quantity": 1})
    assert short.status_code == kept.status_code == 201, (short.text, kept.text)
    assert short.json()["expires_at"] is not None
    refused = await client.post("/reservations", json={"product_id": sku, "order_id": "o-2", "quantity": 1})
    assert refused.status_code == 409

    short_id = short.json()["reservation_id"]
    for _ in range(100):  # the worker's clock ticks every second
        state = (await client.get(f"/reservations/{short_id}")).json()["state"]
        if state == "EXPIRED":
            break
        await asyncio.sleep(0.1)
    assert state == "EXPIRED"
    late = await client.post(f"/reservations/{short_id}/commit")
    assert late.status_code == 409, late.text

    again = await client.post("/reservations", json={"product_id": sku, "order_id": "o-3", "quantity": 2})
    assert again.status_code == 201, again.text
    assert (await client.get(f"/reservations/{kept.json()['reservation_id']}")).json()["state"] == "PENDING"
    inventory = (await client.get(f"/inventory/{sku}")).json()
    assert inventory["totals"] == {"available": 0, "reserved": 3, "total": 3}
    pg = await assert_invariants(settings, engine, [sku])
    assert pg["reservations"][short_id] == (sku, "EXPIRED")


async def test_release_and_commit_change_levels_and_reads_see_acknowledged_writes(client, settings, engine):
    sku = await create_stocked_product(client, 10)
    first = (await client.post("/reservations", json={"product_id": sku, "order_id": "o1", "quantity": 3})).json()
    second = (await client.post("/reservations", json={"product_id": sku, "order_id": "o2", "quantity": 4})).json()
    assert (await client.get(f"/inventory/{sku}")).json()["totals"] == {"available": 3, "reserved": 7, "total": 10}

    committed = await client.post(f"/reservations/{first['reservation_id']}/commit")
    assert committed.status_code == 200 and committed.json()["state"] == "COMMITTED"
    assert (await client.get(f"/inventory/{sku}")).json()["totals"] == {"available": 3, "reserved": 4, "total": 7}

    released = await client.post(f"/reservations/{second['reservation_id']}/release")
    assert released.status_code == 200 and released.json()["state"] == "RELEASED"
    assert (await client.get(f"/inventory/{sku}")).json()["totals"] == {"available": 7, "reserved": 0, "total": 7}
    state = (await client.get(f"/reservations/{second['reservation_id']}")).json()
    assert state["state"] == "RELEASED"
    await assert_invariants(settings, engine, [sku])


async def test_websocket_subscriber_receives_the_events_of_its_reservation(client, api, settings, engine):
    sku = await create_stocked_product(client, 5)
    other = await create_stocked_product(client, 5)
    url = api.base_url.replace("http://", "ws://") + f"/ws/inventory?product_id={sku}"
    async with websockets.connect(url, additional_headers=auth_headers(settings, "viewer")) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert hello["type"] == "subscribed"
        await client.post("/reservations", json={"product_id": other, "order_id": "x", "quantity": 1})
        made = (await client.post("/reservations", json={"product_id": sku, "order_id": "o", "quantity": 2})).json()
        await client.post(f"/reservations/{made['reservation_id']}/commit")
        received = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(2)]
    assert [m["type"] for m in received] == ["Reserved", "Committed"]
    assert all(m["sku"] == sku and m["body"]["reservation_id"] == made["reservation_id"] for m in received)
    assert received[0]["available"] == 3 and received[1]["on_hand"] == 3
    await assert_invariants(settings, engine, [sku, other])


async def _ledger_count(engine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(text("SELECT count(*) FROM inventory_transactions"))).scalar_one()


async def test_bad_input_gets_a_clear_4xx_and_writes_nothing(client, settings, engine):
    sku = await create_stocked_product(client, 5)
    made = (await client.post("/reservations", json={"product_id": sku, "order_id": "o", "quantity": 1})).json()
    assert (await client.post(f"/reservations/{made['reservation_id']}/commit")).status_code == 200
    await assert_invariants(settings, engine, [sku])
    before_rows = await _ledger_count(engine)
    before = (await client.get(f"/inventory/{sku}")).json()

    cases = [
        (client.post(f"/inventory/{sku}/update", content=b'{"quantity_change": 5,',
                     headers={"content-type": "application/json"}), 400, "malformed-json"),
        (client.post("/reservations", json={"product_id": sku, "order_id": "o", "quantity": -2}), 422, "invalid-request"),
        (client.post("/reservations", json={"product_id": sku, "order_id": "o", "quantity": 0}), 422, "invalid-request"),
        (client.post(f"/inventory/{sku}/update", json={"quantity_change": 0, "reason": "x"}), 422, "invalid-quantity"),
        (client.post("/reservations", json={"product_id": "NO-SUCH-SKU", "order_id": "o", "quantity": 1}), 404, "unknown-product"),
        (client.post("/inventory/NO-SUCH-SKU/update", json={"quantity_change": 1, "reason": "x"}), 404, "unknown-product"),
        (client.get("/inventory/NO-SUCH-SKU"), 404, "unknown-product"),
        (client.post("/reservations/no-such-reservation/release"), 404, "unknown-reservation"),
        (client.post(f"/reservations/{made['reservation_id']}/release"), 409, "reservation-not-pending"),
        (client.post("/products", json={"sku": "bad sku with spaces", "name": "x"}), 422, "invalid-request"),
    ]
    for request, status, kind in cases:
        response = await request
        assert response.status_code == status, (kind, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["status"] == status and problem["type"].endswith(kind), problem
        assert problem["title"]

    assert await _ledger_count(engine) == before_rows
    assert (await client.get(f"/inventory/{sku}")).json() == before
    await assert_invariants(settings, engine, [sku])


async def _dead_lettered(settings, topic: str, dead_letters: str, key: bytes, value: bytes):
    """Produce ``value`` onto ``topic`` and return it once it appears on ``dead_letters``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None,
                                isolation_level="read_committed")
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        assert dead_letters in await consumer.topics()
        partitions = [TopicPartition(dead_letters, p) for p in range(settings.topic_partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:  # resolve the end positions before the record is sent
            await consumer.position(tp)
        await producer.send_and_wait(topic, key=key, value=value)
        for _ in range(60):
            batches = await consumer.getmany(timeout_ms=500)
            found = next((r for rs in batches.values() for r in rs if r.value == value), None)
            if found:
                return found
        raise AssertionError(f"the malformed record never reached {dead_letters}")
    finally:
        await producer.stop()
        await stop_consumer(consumer)


@pytest.mark.parametrize("topic, dead_letters, reader", [
    (STOCK_COMMANDS, STOCK_COMMANDS_DLQ, "worker"),  # an upstream producer's garbage command
    (STOCK_EVENTS, STOCK_EVENTS_DLQ, "ledger"),      # a stray producer on the events topic
    (WAREHOUSE_COMMANDS, WAREHOUSE_COMMANDS_DLQ, "worker"),  # garbage for a warehouse's ledger
], ids=["command-to-stock-worker", "event-to-ledger", "command-to-warehouse-ledger"])
async def test_malformed_record_goes_to_the_dead_letter_topic_and_its_reader_keeps_running(
        client, settings, engine, worker, request, topic, dead_letters, reader):
    sku = await create_stocked_product(client, 3)
    marker = f"garbage-{uuid.uuid4()}".encode()
    found = await _dead_lettered(settings, topic, dead_letters, sku.encode(), marker)
    headers = dict(found.headers)
    assert b"SchemaError" in headers["error"]
    assert headers["source"].startswith(topic.encode())

    assert request.getfixturevalue(reader).alive
    # The API answers only once the decision is made and the ledger has persisted it.
    response = await client.post("/reservations", json={"product_id": sku, "order_id": "o", "quantity": 2})
    assert response.status_code == 201, response.text
    await assert_invariants(settings, engine, [sku])
