"""A product's unit cost: from POST /products through the log (CreateProduct, ProductCreated on
stock-events) to the read model (products.unit_cost); a cost the read model cannot hold is 422."""
from __future__ import annotations

from decimal import Decimal

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy import text

from schemas import event_codec
from streams.stock.records import ProductCreated, event_from_avro
from streams.topics import STOCK_EVENTS

from .conftest import assert_invariants, new_sku, stop_consumer


async def _created_on_the_log(settings, sku: str) -> list[ProductCreated]:
    """The committed ProductCreated bodies of ``sku`` on stock-events (its key's partition only)."""
    partitions = settings.topic_partitions
    tp = TopicPartition(STOCK_EVENTS, DefaultPartitioner()(sku.encode(), list(range(partitions)),
                                                           list(range(partitions))))
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None,
                                enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        found = []
        while await consumer.position(tp) < end:
            for records in (await consumer.getmany(tp, timeout_ms=1000)).values():
                events = [event_from_avro(event_codec().decode(r.value)) for r in records if r.key == sku.encode()]
                found += [e.body for e in events if isinstance(e.body, ProductCreated)]
        return found
    finally:
        await stop_consumer(consumer)


async def _stored_cost(engine, sku: str) -> Decimal | None:
    async with engine.connect() as conn:
        return (await conn.execute(text("SELECT unit_cost FROM products WHERE sku = :s"), {"s": sku})).scalar_one()


async def test_a_unit_cost_goes_through_the_log_to_the_read_model(client, settings, engine):
    product, variant, unknown = new_sku("COST"), new_sku("COST-V"), new_sku("NOCOST")
    created = await client.post("/products", json={"sku": product, "name": "Shirt", "unit_cost": "12.5"})
    assert created.status_code == 201, created.text
    assert created.json()["unit_cost"] == "12.5000"
    # A variant has its own cost, here a JSON number; a product without one: null.
    own = await client.post("/products/variants", json={"sku": variant, "parent_id": product, "name": "Shirt, L",
                                                        "unit_cost": 13.75})
    assert own.status_code == 201, own.text
    assert own.json()["unit_cost"] == "13.7500"
    plain = await client.post("/products", json={"sku": unknown, "name": "Socks"})
    assert plain.status_code == 201 and plain.json()["unit_cost"] is None

    assert [body.unit_cost for body in await _created_on_the_log(settings, product)] == [Decimal("12.5")]
    assert [body.unit_cost for body in await _created_on_the_log(settings, unknown)] == [None]
    await assert_invariants(settings, engine, [product, variant, unknown])  # waits for the sink
    assert await _stored_cost(engine, product) == Decimal("12.5000")
    assert await _stored_cost(engine, variant) == Decimal("13.7500")
    assert await _stored_cost(engine, unknown) is None


async def test_the_largest_and_most_precise_cost_is_kept_exactly(client, settings, engine):
    sku = new_sku("COST-MAX")
    created = await client.post("/products", json={"sku": sku, "name": "Press", "unit_cost": "99999999999999.9999"})
    assert created.status_code == 201, created.text
    assert created.json()["unit_cost"] == "99999999999999.9999"
    await assert_invariants(settings, engine, [sku])
    assert await _stored_cost(engine, sku) == Decimal("99999999999999.9999")


@pytest.mark.parametrize("cost", [-1, "-0.5", "12.34567", 0.00001, "123456789012345", "1e3", "NaN", True,
                                  {"amount": 1}])
async def test_a_bad_unit_cost_is_422_naming_the_field(client, settings, engine, cost):
    sku = new_sku("BAD-COST")
    response = await client.post("/products", json={"sku": sku, "name": "x", "unit_cost": cost})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "unit_cost" in response.text
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM products WHERE sku = :s"), {"s": sku})).scalar() == 0
    await assert_invariants(settings, engine, [sku])


async def test_a_bundle_takes_no_unit_cost(client, settings, engine):
    component = new_sku("PART")
    assert (await client.post("/products", json={"sku": component, "name": "part", "unit_cost": 2})).status_code == 201
    bundle = new_sku("SET")
    response = await client.post("/products/bundles", json={
        "sku": bundle, "name": "set", "components": [{"product_id": component, "quantity": 2}], "unit_cost": 5})
    assert response.status_code == 422, response.text
    assert "unit_cost" in response.text
    await assert_invariants(settings, engine, [component, bundle])
