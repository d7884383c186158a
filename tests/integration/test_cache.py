"""The read cache of GET /inventory/{product_id} (api/cache.py) against the real servers: reads
are served from Redis, and a read after an acknowledged write never returns the old value, also
while many clients write and read the same SKUs at once."""
from __future__ import annotations

import asyncio
from collections import Counter

from api.cache import HIT, MISS, MISS_STORED
from api.models import InventoryOut
from .conftest import assert_invariants, create_stocked_product, new_sku

WRITERS, ROUNDS, READERS, SHARED_SKUS = 32, 8, 8, 4


async def read(client, sku: str) -> tuple[dict, str]:
    response = await client.get(f"/inventory/{sku}")
    assert response.status_code == 200, response.text
    return response.json(), response.headers["Cache-Status"]


async def read_until_hit(client, sku: str) -> dict:
    """The answer once served from the cache (the first reads may find the write's lease still
    held: the ledger releases it just after the commit the API answered on)."""
    statuses = []
    for _ in range(20):
        body, status = await read(client, sku)
        statuses.append(status)
        if status == HIT:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"no hit for {sku}: {statuses}")


def level(body: dict, warehouse: str = "default") -> dict:
    return next((lv for lv in body["warehouses"] if lv["warehouse"] == warehouse),
                {"on_hand": 0, "reserved": 0})


async def receive(client, sku: str, units: int) -> dict:
    response = await client.post(f"/inventory/{sku}/update",
                                 json={"quantity_change": units, "reason": "cache test"})
    assert response.status_code == 200, response.text
    return response.json()


async def reserve(client, sku: str, units: int) -> dict:
    response = await client.post("/reservations", json={
        "product_id": sku, "order_id": new_sku("order"), "quantity": units})
    assert response.status_code == 201, response.text
    return response.json()["level"]


async def test_a_second_read_is_a_hit_and_a_read_after_a_write_shows_it(client, settings, engine):
    sku = await create_stocked_product(client, 10)
    first, status = await read(client, sku)
    assert status in (MISS, MISS_STORED)
    cached = await read_until_hit(client, sku)
    assert cached == first and level(cached)["on_hand"] == 10
    assert InventoryOut.model_validate(cached).model_dump(mode="json") == cached  # the API's format

    assert (await receive(client, sku, 5))["on_hand"] == 15
    body, status = await read(client, sku)
    assert (level(body)["on_hand"], status != HIT) == (15, True), status
    assert (await reserve(client, sku, 3))["reserved"] == 3
    body, status = await read(client, sku)
    assert (level(body)["reserved"], body["totals"]["available"], status != HIT) == (3, 12, True), status
    assert await read_until_hit(client, sku) == body
    await assert_invariants(settings, engine, [sku])


async def test_a_variant_invalidates_its_parent_and_a_component_its_bundle(client, settings, engine):
    parent = await create_stocked_product(client, 0)
    assert (await read_until_hit(client, parent))["variants"] == []
    variant = new_sku("V")
    response = await client.post("/products/variants", json={
        "sku": variant, "parent_id": parent, "name": "v", "attributes": {"size": "L"}})
    assert response.status_code == 201, response.text
    body, status = await read(client, parent)  # the new variant moved its parent's generation
    assert [v["product_id"] for v in body["variants"]] == [variant] and status != HIT
    assert (await read_until_hit(client, parent))["variant_totals"]["total"] == 0
    await receive(client, variant, 4)
    body, status = await read(client, parent)
    assert (body["variant_totals"]["total"], status != HIT) == (4, True), status

    a, c = await create_stocked_product(client, 10), await create_stocked_product(client, 10)
    bundle = new_sku("BUNDLE")
    response = await client.post("/products/bundles", json={
        "sku": bundle, "name": "gift", "components": [{"product_id": a, "quantity": 2},
                                                      {"product_id": c, "quantity": 1}]})
    assert response.status_code == 201, response.text
    assert (await read_until_hit(client, bundle))["bundle"]["available"] == 5
    await receive(client, a, 10)
    body, status = await read(client, bundle)
    assert (body["bundle"]["available"], status != HIT) == (10, True), status
    await read_until_hit(client, bundle)
    await reserve(client, c, 4)
    body, status = await read(client, bundle)
    assert (body["bundle"]["available"], status != HIT) == (6, True), status
    await assert_invariants(settings, engine, [parent, variant, a, c])


async def test_no_read_after_an_acknowledged_write_is_stale_under_concurrency(client, settings, engine):
    """Writers receive or reserve one unit of a shared SKU, then read it at once: the level read
    is at least the acknowledged one (levels only grow here). Readers keep the cache warm."""
    skus = [await create_stocked_product(client, 10_000) for _ in range(SHARED_SKUS)]
    statuses: Counter[str] = Counter()
    stale: list[tuple] = []
    writing = True

    async def writer(n: int) -> None:
        for r in range(ROUNDS):
            sku = skus[(n + r) % SHARED_SKUS]
            if n % 2:
                field, acknowledged = "reserved", (await reserve(client, sku, 1))["reserved"]
            else:
                field, acknowledged = "on_hand", (await receive(client, sku, 1))["on_hand"]
            body, status = await read(client, sku)
            statuses[f"writer {status}"] += 1
            if level(body)[field] < acknowledged:
                stale.append((sku, field, acknowledged, level(body)[field], status))

    async def reader(n: int) -> None:
        for i in range(20_000):  # bounded; stops when the writers are done
            if not writing:
                return
            _, status = await read(client, skus[(n + i) % SHARED_SKUS])
            statuses[f"reader {status}"] += 1

    readers = [asyncio.create_task(reader(n)) for n in range(READERS)]
    try:
        await asyncio.gather(*(writer(n) for n in range(WRITERS)))
    finally:
        writing = False
        await asyncio.gather(*readers)
    print(f"cache statuses: {dict(statuses)}")
    assert not stale, stale
    assert statuses[f"reader {HIT}"] > 0, statuses  # else the test proves nothing
    assert sum(n for s, n in statuses.items() if s.startswith("writer")) == WRITERS * ROUNDS

    totals = [(await read(client, sku))[0]["totals"] for sku in skus]
    assert sum(t["total"] for t in totals) == SHARED_SKUS * 10_000 + WRITERS // 2 * ROUNDS
    assert sum(t["reserved"] for t in totals) == WRITERS // 2 * ROUNDS
    await assert_invariants(settings, engine, skus)
