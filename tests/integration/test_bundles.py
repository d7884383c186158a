"""Bundles: a product made of other products' units, with no stock of its own. Its availability
is computed from its components' at each read; an order for it holds every component or none."""
from __future__ import annotations

import asyncio
import time

from .conftest import assert_invariants, new_sku
from .test_orders import held_by_order, order_when, stocked
from .test_warehouses import receive


async def create_bundle(client, components: dict[str, int]) -> str:
    sku = new_sku("SET")
    response = await client.post("/products/bundles", json={
        "sku": sku, "name": f"bundle {sku}", "category": "gift sets",
        "components": [{"product_id": p, "quantity": q} for p, q in components.items()]})
    assert response.status_code == 201, response.text
    assert response.json() == {"product_id": sku, "sku": sku, "name": f"bundle {sku}", "description": "",
                               "category": "gift sets",
                               "components": [{"product_id": p, "quantity": q} for p, q in components.items()]}
    return sku


async def bundle_of(client, sku: str) -> dict:
    response = await client.get(f"/inventory/{sku}")
    assert response.status_code == 200, response.text
    return response.json()["bundle"]


async def reserved(client, sku: str) -> int:
    return (await client.get(f"/inventory/{sku}")).json()["totals"]["reserved"]


async def reserved_when(client, sku: str, units: int, timeout_s: float = 20) -> int:
    """``sku``'s reserved units once they are ``units`` (a release is the saga's next step)."""
    deadline = time.monotonic() + timeout_s
    while (now := await reserved(client, sku)) != units and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return now


def settled(order: dict) -> bool:
    """Every line answered and, unless the order holds, no hold left."""
    states = {line["state"] for line in order["lines"]}
    return "PENDING" not in states and (order["status"] == "RESERVED" or "ALLOCATED" not in states)


async def test_a_bundles_availability_is_the_least_its_components_make_and_kept_current(client, settings, engine):
    a, b = await stocked(client, {"default": 5}), await stocked(client, {"default": 7})
    gift = await create_bundle(client, {a: 1, b: 2})

    inventory = (await client.get(f"/inventory/{gift}")).json()
    assert inventory["warehouses"] == [] and inventory["totals"] == {"available": 0, "reserved": 0, "total": 0}
    assert inventory["bundle"]["available"] == min(5 // 1, 7 // 2) == 3
    assert sorted(inventory["bundle"]["components"], key=lambda c: c["product_id"] != a) == [
        {"product_id": a, "quantity": 1, "available": 5}, {"product_id": b, "quantity": 2, "available": 7}]
    assert (await client.get(f"/inventory/{a}")).json()["bundle"] is None, "a component is no bundle"

    assert (await receive(client, b, "default", 3)).status_code == 200
    assert (await bundle_of(client, gift))["available"] == min(5, 10 // 2) == 5, "a receipt counts at once"
    held = await client.post("/reservations", json={"product_id": a, "order_id": "o-a", "quantity": 2})
    assert held.status_code == 201, held.text
    assert (await bundle_of(client, gift))["available"] == min(3, 5) == 3, "so does a hold"
    await assert_invariants(settings, engine, [a, b, gift])


async def test_a_bundle_holds_no_stock_and_is_made_of_products_only(client, settings, engine):
    a, b = await stocked(client, {"default": 4}), await stocked(client, {"default": 4})
    gift = await create_bundle(client, {a: 1, b: 1})

    reserve = await client.post("/reservations", json={"product_id": gift, "order_id": "o-1", "quantity": 1})
    assert (reserve.status_code, reserve.json()["reason"]) == (422, "BUNDLE_HOLDS_NO_STOCK"), reserve.text
    receipt = await receive(client, gift, "default", 2)
    assert (receipt.status_code, receipt.json()["reason"]) == (422, "BUNDLE_HOLDS_NO_STOCK"), receipt.text
    assert (await client.get(f"/inventory/{gift}")).json()["totals"]["total"] == 0

    def bundle(components: list[dict], sku: str | None = None) -> dict:
        return {"sku": sku or new_sku("SET"), "name": "set", "components": components}

    unknown = await client.post("/products/bundles", json=bundle([{"product_id": "NO-SUCH-PRODUCT", "quantity": 1}]))
    assert unknown.status_code == 404, unknown.text
    nested = await client.post("/products/bundles", json=bundle([{"product_id": gift, "quantity": 1}]))
    assert nested.status_code == 422 and gift in nested.json()["detail"], nested.text
    for invalid in (bundle([]), bundle([{"product_id": a, "quantity": 0}]),
                    bundle([{"product_id": a, "quantity": 1}, {"product_id": a, "quantity": 2}]),
                    bundle([{"product_id": "SELF", "quantity": 1}], sku="SELF")):
        assert (await client.post("/products/bundles", json=invalid)).status_code == 422, invalid
    exists = await client.post("/products/bundles", json=bundle([{"product_id": a, "quantity": 1}], sku=gift))
    assert exists.status_code == 409, exists.text
    await assert_invariants(settings, engine, [a, b, gift])


async def test_an_order_for_bundles_holds_every_component(client, settings, engine):
    a, b, c = (await stocked(client, {"default": 10}), await stocked(client, {"default": 10}),
               await stocked(client, {"default": 10}))
    gift = await create_bundle(client, {a: 1, b: 2})

    placed = await client.post("/orders", json={"customer": "c-1", "lines": [
        {"product_id": gift, "quantity": 3}, {"product_id": b, "quantity": 1}, {"product_id": c, "quantity": 2}]})
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["status"] == "RESERVED", order
    lines = {line["product_id"]: (line["quantity"], line["state"]) for line in order["lines"]}
    assert lines == {a: (3, "ALLOCATED"), b: (3 * 2 + 1, "ALLOCATED"), c: (2, "ALLOCATED")}, \
        "the order's lines are the components, a SKU's units summed over the lines"
    assert [await reserved(client, sku) for sku in (a, b, c)] == [3, 7, 2]
    assert await held_by_order(engine, order["order_id"]) == 12
    assert (await bundle_of(client, gift))["available"] == min(10 - 3, (10 - 7) // 2) == 1
    await assert_invariants(settings, engine, [a, b, c, gift])


async def test_a_bundle_order_whose_second_component_runs_out_mid_saga_releases_the_first_components_hold(
        client, settings, engine):
    """Two orders race for a bundle (1 x A + 2 x B) whose B makes one bundle only: both take
    their A, one of them finds B gone, is REJECTED, and its A is released. Then, with B short,
    one more order: REJECTED too, and A's reserved back to what it was."""
    a, b = await stocked(client, {"default": 10}), await stocked(client, {"default": 3})
    gift = await create_bundle(client, {a: 1, b: 2})
    held = await client.post("/reservations", json={"product_id": a, "order_id": "elsewhere", "quantity": 1})
    assert held.status_code == 201, held.text
    assert (await bundle_of(client, gift))["available"] == 1

    answers = await asyncio.gather(*(client.post("/orders", json={
        "customer": f"c-{i}", "lines": [{"product_id": gift, "quantity": 1}]}) for i in range(2)))
    assert [r.status_code for r in answers] == [201, 201], [r.text for r in answers]
    assert sorted(o.json()["status"] for o in answers) == ["REJECTED", "RESERVED"]
    winner, loser = sorted((o.json() for o in answers), key=lambda o: o["status"] != "RESERVED")
    loser = await order_when(client, loser["order_id"], settled)
    states = {line["product_id"]: line["state"] for line in loser["lines"]}
    assert states == {a: "RELEASED", b: "REJECTED"}, f"A was held, then released: {loser}"
    assert await reserved_when(client, a, 1 + 1) == 2, "only the winner's A (and the other hold) remain"
    assert await held_by_order(engine, loser["order_id"]) == 0
    assert [line["state"] for line in winner["lines"]] == ["ALLOCATED", "ALLOCATED"]

    before = await reserved(client, a)
    assert (await bundle_of(client, gift))["available"] == 0
    placed = await client.post("/orders", json={"customer": "c-3", "lines": [{"product_id": gift, "quantity": 1}]})
    assert placed.status_code == 201 and placed.json()["status"] == "REJECTED", placed.text
    final = await order_when(client, placed.json()["order_id"], settled)
    assert "ALLOCATED" not in {line["state"] for line in final["lines"]}, final
    assert {line["product_id"]: line["state"] for line in final["lines"]}[b] == "REJECTED"
    assert await reserved_when(client, a, before) == before, "A's hold is released"
    assert await held_by_order(engine, final["order_id"]) == 0
    await assert_invariants(settings, engine, [a, b, gift])
    assert await reserved(client, a) == before and await reserved(client, b) == 2
