"""Variants: a SKU of its own that belongs to a product, with attributes; stock is per variant."""
from __future__ import annotations

from sqlalchemy import text

from .conftest import assert_invariants, new_sku


async def test_a_variant_keeps_its_own_stock_and_records_its_product_and_attributes(client, settings, engine):
    parent = new_sku("SHIRT")
    assert (await client.post("/products", json={"sku": parent, "name": "Shirt", "category": "apparel"})
            ).status_code == 201
    variant = new_sku("SHIRT-L")
    response = await client.post("/products/variants", json={
        "sku": variant, "parent_id": parent, "name": "Shirt, L", "attributes": {"size": "L", "colour": "red"}})
    assert response.status_code == 201, response.text
    assert response.json() == {"product_id": variant, "sku": variant, "parent_id": parent,
                               "name": "Shirt, L", "attributes": {"size": "L", "colour": "red"},
                               "unit_cost": None}

    received = await client.post(f"/inventory/{variant}/update", json={"quantity_change": 4, "reason": "receipt"})
    assert received.status_code == 200, received.text
    assert (await client.get(f"/inventory/{variant}")).json()["totals"]["total"] == 4
    product = (await client.get(f"/inventory/{parent}")).json()
    assert product["totals"]["total"] == 0, "the product's own stock is its own"
    [listed] = product["variants"]
    assert (listed["product_id"], listed["attributes"], listed["totals"]) == (
        variant, {"size": "L", "colour": "red"}, {"available": 4, "reserved": 0, "total": 4})
    assert product["variant_totals"] == {"available": 4, "reserved": 0, "total": 4}
    assert (await client.get(f"/inventory/{variant}")).json()["variants"] == []
    async with engine.connect() as conn:
        row = (await conn.execute(text("SELECT parent_sku, attributes, category FROM products WHERE sku = :s"),
                                  {"s": variant})).one()
    assert (row.parent_sku, row.attributes, row.category) == (parent, {"size": "L", "colour": "red"}, "apparel")
    await assert_invariants(settings, engine, [parent, variant])


async def test_a_variant_of_nothing_or_of_a_variant_is_refused(client):
    unknown = await client.post("/products/variants", json={
        "sku": new_sku("V"), "parent_id": "NO-SUCH-PRODUCT", "name": "v"})
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")
    parent = new_sku("P")
    await client.post("/products", json={"sku": parent, "name": "p"})
    child = new_sku("C")
    assert (await client.post("/products/variants", json={"sku": child, "parent_id": parent, "name": "c"})
            ).status_code == 201
    nested = await client.post("/products/variants", json={"sku": new_sku("G"), "parent_id": child, "name": "g"})
    assert nested.status_code == 422, nested.text
    bad = await client.post("/products/variants", json={
        "sku": new_sku("B"), "parent_id": parent, "name": "b", "attributes": {"": "x"}})
    assert bad.status_code == 422
