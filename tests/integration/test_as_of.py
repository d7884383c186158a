"""As-of reads (GET /inventory/{product_id}?as_of=): a scripted history of a product, its variant
and a bundle of it across two warehouses, read back at three moments between its steps (taken
from the events' times in the ledger, not from the test's clock)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, select

from storage.models import inventory_transactions, products

from .conftest import assert_invariants, new_sku


async def _post(client, path: str, body: dict, expected: int = 200) -> str:
    key = f"asof-{uuid.uuid4().hex}"
    response = await client.post(path, json=body, headers={"Idempotency-Key": key})
    assert response.status_code == expected, response.text
    return key


async def _moment(engine, command_id: str) -> datetime:
    """When the command's events happened (all of a command's events share its time)."""
    async with engine.connect() as conn:
        query = select(func.max(inventory_transactions.c.occurred_at)).where(
            inventory_transactions.c.command_id == command_id)
        moment = (await conn.execute(query)).scalar_one()
    assert moment is not None, f"no event of {command_id} in the ledger"
    return moment


async def _as_of(client, sku: str, moment: datetime, expected: int = 200) -> dict:
    response = await client.get(f"/inventory/{sku}", params={"as_of": moment.isoformat()})
    assert response.status_code == expected, response.text
    if expected == 200:
        assert response.headers["Cache-Status"] == "inventory; fwd=bypass"
    return response.json()


def _levels(answer: dict) -> dict[str, tuple]:
    return {lv["warehouse"]: (lv["on_hand"], lv["reserved"], lv["available"], lv["low_stock_threshold"])
            for lv in answer["warehouses"]}


def _variant_levels(answer: dict) -> dict[str, dict[str, tuple]]:
    return {v["product_id"]: _levels(v) for v in answer["variants"]}


async def test_the_levels_as_of_three_past_moments_are_those_scripted_then(client, settings, engine):
    sku, variant, bundle = new_sku("ASOF"), new_sku("ASOFV"), new_sku("ASOFB")
    other = f"wh-{uuid.uuid4().hex[:10]}"
    await _post(client, "/warehouses", {"warehouse_id": other, "name": "as-of", "capacity": 1000}, 201)
    await _post(client, "/products", {"sku": sku, "name": "as-of product"}, 201)
    await _post(client, "/products/bundles", {"sku": bundle, "name": "two of them",
                                              "components": [{"product_id": sku, "quantity": 2}]}, 201)

    # Step 1: receipts in both warehouses.
    await _post(client, f"/inventory/{sku}/update", {"quantity_change": 10, "reason": "r", "warehouse": "default"})
    step1 = await _post(client, f"/inventory/{sku}/update", {"quantity_change": 5, "reason": "r", "warehouse": other})
    t1 = await _moment(engine, step1)

    # Step 2: a variant appears; a reservation, its commit, a threshold.
    await _post(client, "/products/variants", {"sku": variant, "parent_id": sku, "name": "L",
                                               "attributes": {"size": "L"}}, 201)
    await _post(client, f"/inventory/{variant}/update", {"quantity_change": 4, "reason": "r", "warehouse": other})
    hold = f"hold-{uuid.uuid4().hex[:8]}"
    await _post(client, "/reservations", {"product_id": sku, "order_id": "o-1", "quantity": 3,
                                          "warehouse": "default", "reservation_id": hold}, 201)
    await _post(client, f"/reservations/{hold}/commit", {})
    step2 = await _post(client, f"/inventory/{sku}/low-stock-threshold", {"threshold": 4, "warehouse": other})
    t2 = await _moment(engine, step2)

    # Step 3: an adjustment down, a hold that stays pending, a refused request, the variant moves.
    await _post(client, f"/inventory/{sku}/update", {"quantity_change": -2, "reason": "damaged",
                                                     "warehouse": other})
    await _post(client, "/reservations", {"product_id": sku, "order_id": "o-2", "quantity": 1,
                                          "warehouse": "default"}, 201)
    await _post(client, "/reservations", {"product_id": sku, "order_id": "o-3", "quantity": 500,
                                          "warehouse": "default"}, 409)
    step3 = await _post(client, f"/inventory/{variant}/update", {"quantity_change": -1, "reason": "r",
                                                                 "warehouse": other})
    t3 = await _moment(engine, step3)
    assert t1 < t2 < t3

    at1, at2, at3 = [await _as_of(client, sku, t) for t in (t1, t2, t3)]
    assert _levels(at1) == {"default": (10, 0, 10, 0), other: (5, 0, 5, 0)}
    assert (at1["totals"]["available"], at1["totals"]["total"], at1["variants"]) == (15, 15, [])
    assert _levels(at2) == {"default": (7, 0, 7, 0), other: (5, 0, 5, 4)}
    assert _variant_levels(at2) == {variant: {other: (4, 0, 4, 0)}}
    assert _levels(at3) == {"default": (7, 1, 6, 0), other: (3, 0, 3, 4)}
    assert _variant_levels(at3) == {variant: {other: (3, 0, 3, 0)}}
    assert at3["variant_totals"]["available"] == 3

    # version: the SKU's seq of its last level change then; at t3 it is the current one.
    assert at1["version"] < at2["version"] < at3["version"]
    now = await client.get(f"/inventory/{sku}")
    assert now.status_code == 200, now.text
    assert at3 == now.json(), "the last moment is now: the read model says the same"
    assert await _as_of(client, sku, t3 + timedelta(days=365)) == now.json(), "the future: the current levels"

    # The bundle's availability as of each moment: floor(available of its component / 2).
    assert [(await _as_of(client, bundle, t))["bundle"]["available"] for t in (t1, t2, t3)] == [7, 6, 4]

    # Before the product existed: unknown then.
    async with engine.connect() as conn:
        created = (await conn.execute(select(products.c.created_at).where(products.c.sku == sku))).scalar_one()
    gone = await _as_of(client, sku, created - timedelta(milliseconds=1), 404)
    assert gone["status"] == 404 and sku in gone["detail"]
    assert (await _as_of(client, sku, created))["warehouses"] == []
    assert (await _as_of(client, variant, t1, 404))["status"] == 404, "the variant came later"
    bad = await client.get(f"/inventory/{sku}", params={"as_of": "1700000000"})
    assert bad.status_code == 422, bad.text
    await assert_invariants(settings, engine, [sku, variant])
