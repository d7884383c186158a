"""Pre-orders: units announced as incoming may be held before they arrive; the receipts that
bring them turn those holds into ordinary ones, oldest first (streams/stock/logic.py)."""
from __future__ import annotations

import asyncio
import random
import time
import uuid

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import CheckConstraint, inspect, text

from storage.models import metadata

from .conftest import assert_invariants, create_stocked_product
from .test_bundles import create_bundle
from .test_orders import order_when
from .test_warehouses import create_warehouse, receive
from .waits import get_when

EXPECTED = "2030-03-01"


async def announce(client, sku: str, quantity: int, warehouse: str = "default", **extra):
    body = {"warehouse_id": warehouse, "quantity": quantity, **extra}
    if quantity > 0:
        body.setdefault("expected_at", EXPECTED)
    return await client.post(f"/inventory/{sku}/incoming", json=body)


async def level(client, sku: str, warehouse: str = "default") -> dict:
    inventory = (await client.get(f"/inventory/{sku}")).json()
    return next(lv for lv in inventory["warehouses"] if lv["warehouse"] == warehouse)


def figures(lv: dict) -> tuple[int, int, int, int, int]:
    """(on_hand, reserved, incoming, preordered, preorderable) of a level."""
    return lv["on_hand"], lv["reserved"], lv["incoming"], lv["preordered"], lv["preorderable"]


async def figures_when(client, sku: str, want: tuple, warehouse: str = "default", timeout_s: float = 20) -> tuple:
    """The level's figures once they are ``want`` (a receipt is answered by its first event, the
    arrivals it brings follow; a saga's commit is its next step), or at the deadline."""
    deadline = time.monotonic() + timeout_s
    while (now := figures(await level(client, sku, warehouse))) != want and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return now


async def pre_order(client, sku: str, quantity: int, **extra):
    return await client.post("/reservations", json={
        "product_id": sku, "order_id": f"po-{uuid.uuid4().hex[:8]}", "quantity": quantity, "preorder": True,
        **extra})


async def reservation_when(client, reservation_id: str, settled, timeout_s: float = 20) -> dict:
    return await get_when(client, f"/reservations/{reservation_id}", settled, timeout_s)


def problem(response, status: int, reason: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    if reason is not None:
        assert response.json()["reason"] == reason, response.text
    return response.json()


def awaiting_of(order: dict) -> list[int]:
    return [part["awaiting"] for line in order["lines"] for part in line["allocation"]]


async def test_an_order_pre_orders_incoming_units_and_is_reserved_once_they_arrive(client, settings, engine):
    sku = await create_stocked_product(client, 2)
    announced = await announce(client, sku, 10)
    assert announced.status_code == 201, announced.text
    assert figures(announced.json()) == (2, 0, 10, 0, 10)
    assert announced.json()["expected_at"].startswith(EXPECTED)

    placed = await client.post("/orders", json={
        "customer": "early", "allow_preorders": True, "lines": [{"product_id": sku, "quantity": 6}]})
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert (order["status"], order["allow_preorders"]) == ("PREORDERED", True)
    [part] = order["lines"][0]["allocation"]
    assert (part["quantity"], part["awaiting"]) == (6, 4), "the 2 on hand first, 4 awaiting"
    inventory = (await client.get(f"/inventory/{sku}")).json()
    assert figures(inventory["warehouses"][0]) == (2, 2, 10, 4, 6)
    assert inventory["totals"] == {"available": 0, "reserved": 2, "total": 2,
                                   "incoming": 10, "preordered": 4, "preorderable": 6}
    assert (await client.get(f"/reservations/{part['reservation_id']}")).json()["awaiting"] == 4

    early = problem(await client.post(f"/orders/{order['order_id']}/fulfil"), 409, "NOT_RESERVED")
    assert "not arrived" in early["detail"]
    plain = await client.post("/orders", json={"customer": "late", "lines": [{"product_id": sku, "quantity": 8}]})
    assert plain.json()["status"] == "REJECTED", "without allow_preorders incoming units are not held"

    assert (await receive(client, sku, "default", 3)).status_code == 200
    order = await order_when(client, order["order_id"], lambda o: awaiting_of(o) == [1])
    assert (order["status"], awaiting_of(order)) == ("PREORDERED", [1])
    assert await figures_when(client, sku, (5, 5, 7, 1, 6)) == (5, 5, 7, 1, 6)

    assert (await receive(client, sku, "default", 5)).status_code == 200
    order = await order_when(client, order["order_id"], lambda o: o["status"] == "RESERVED")
    assert (order["status"], awaiting_of(order)) == ("RESERVED", [0])
    assert await figures_when(client, sku, (10, 6, 2, 0, 2)) == (10, 6, 2, 0, 2)
    assert (await client.get(f"/reservations/{part['reservation_id']}")).json()["awaiting"] == 0

    fulfilled = await client.post(f"/orders/{order['order_id']}/fulfil")
    assert fulfilled.status_code == 200 and fulfilled.json()["status"] == "FULFILLED", fulfilled.text
    # Received 2 + 3 + 5, shipped 6: no unit made or lost by the pre-order.
    assert await figures_when(client, sku, (4, 0, 2, 0, 2)) == (4, 0, 2, 0, 2)
    await assert_invariants(settings, engine, [sku])


async def test_40_concurrent_pre_orders_hold_at_most_the_20_incoming_units_then_arrive(client, settings, engine):
    sku = await create_stocked_product(client, 0)
    assert (await announce(client, sku, 20)).status_code == 201
    rng = random.Random(4)
    asked = [rng.randint(1, 3) for _ in range(40)]
    answers = await asyncio.gather(*(pre_order(client, sku, units) for units in asked))
    assert {a.status_code for a in answers} <= {201, 409}, [a.text for a in answers if a.status_code not in (201, 409)]
    accepted = [a.json() for a in answers if a.status_code == 201]
    held = sum(r["quantity"] for r in accepted)
    assert 0 < held <= 20 and all(r["awaiting"] == r["quantity"] for r in accepted), accepted
    # The units left only ever shrank: each refusal asked more than are left even now.
    refused = [units for units, a in zip(asked, answers) if a.status_code == 409]
    assert all(a.json()["reason"] == "INSUFFICIENT_STOCK" for a in answers if a.status_code == 409)
    assert all(units > 20 - held for units in refused), (held, refused)
    assert figures(await level(client, sku)) == (0, 0, 20, held, 20 - held)
    async with engine.connect() as conn:
        pending = (await conn.execute(text(
            "SELECT count(*), sum(quantity), sum(awaiting) FROM reservations WHERE sku = :s AND state = 'PENDING'"),
            {"s": sku})).one()
    assert tuple(pending) == (len(accepted), held, held), "exactly the accepted pre-orders hold, all awaiting"
    problem(await client.post(f"/reservations/{accepted[0]['reservation_id']}/commit"), 409, "PREORDER_NOT_ARRIVED")

    assert (await receive(client, sku, "default", 20)).status_code == 200
    for r in accepted:
        state = await reservation_when(client, r["reservation_id"], lambda s: s["awaiting"] == 0)
        assert (state["state"], state["awaiting"]) == ("PENDING", 0), state
    assert await figures_when(client, sku, (20, held, 0, 0, 0)) == (20, held, 0, 0, 0)
    commits = await asyncio.gather(*(client.post(f"/reservations/{r['reservation_id']}/commit") for r in accepted))
    assert [c.status_code for c in commits] == [200] * len(accepted), [c.text for c in commits if c.status_code != 200]
    assert figures(await level(client, sku)) == (20 - held, 0, 0, 0, 0)
    await assert_invariants(settings, engine, [sku])


async def test_only_units_no_pre_order_holds_can_be_withdrawn(client, settings, engine):
    sku = await create_stocked_product(client, 0)
    assert (await announce(client, sku, 5)).status_code == 201
    held = await pre_order(client, sku, 3)
    assert held.status_code == 201 and held.json()["awaiting"] == 3, held.text

    refused = problem(await announce(client, sku, -3), 409, "INSUFFICIENT_STOCK")
    assert "at most 2" in refused["detail"]
    withdrawn = await announce(client, sku, -2)
    assert withdrawn.status_code == 201 and figures(withdrawn.json()) == (0, 0, 3, 3, 0), withdrawn.text

    released = await client.post(f"/reservations/{held.json()['reservation_id']}/release")
    assert released.status_code == 200 and released.json()["level"]["preorderable"] == 3, released.text
    assert figures(await level(client, sku)) == (0, 0, 3, 0, 3)
    state = (await client.get(f"/reservations/{held.json()['reservation_id']}")).json()
    assert (state["state"], state["awaiting"]) == ("RELEASED", 0)
    await assert_invariants(settings, engine, [sku])


async def test_an_expired_pre_order_gives_its_units_back_to_the_incoming_ones(client, settings, engine):
    sku = await create_stocked_product(client, 1)
    assert (await announce(client, sku, 4)).status_code == 201
    short = await pre_order(client, sku, 3, ttl_seconds=1)
    assert short.status_code == 201 and short.json()["awaiting"] == 2, short.text
    assert problem(await pre_order(client, sku, 3), 409, "INSUFFICIENT_STOCK")

    state = await reservation_when(client, short.json()["reservation_id"], lambda s: s["state"] == "EXPIRED")
    assert state["state"] == "EXPIRED", state
    assert figures(await level(client, sku)) == (1, 0, 4, 0, 4)
    again = await pre_order(client, sku, 5)
    assert again.status_code == 201 and again.json()["awaiting"] == 4, again.text
    await client.post(f"/reservations/{again.json()['reservation_id']}/release")
    await assert_invariants(settings, engine, [sku])


async def test_a_backordered_line_is_pre_ordered_when_stock_is_announced_then_reserved(client, settings, engine):
    warehouse = await create_warehouse(client, 100)
    sku = await create_stocked_product(client, 0)
    placed = await client.post("/backorders", json={
        "customer": "patient", "allow_preorders": True, "product_id": sku, "quantity": 3})
    assert placed.json()["status"] == "BACKORDERED", placed.text
    order_id = placed.json()["order_id"]

    assert (await announce(client, sku, 5, warehouse)).status_code == 201
    order = await order_when(client, order_id, lambda o: o["status"] == "PREORDERED")
    assert order["status"] == "PREORDERED" and awaiting_of(order) == [3], order
    assert await figures_when(client, sku, (0, 0, 5, 3, 2), warehouse) == (0, 0, 5, 3, 2)

    assert (await receive(client, sku, warehouse, 4)).status_code == 200
    order = await order_when(client, order_id, lambda o: o["status"] == "RESERVED")
    assert order["status"] == "RESERVED" and awaiting_of(order) == [0], order
    assert await figures_when(client, sku, (4, 3, 1, 0, 1), warehouse) == (4, 3, 1, 0, 1)
    await assert_invariants(settings, engine, [sku])


async def test_announcements_are_checked_and_idempotent(client, settings, engine):
    sku = await create_stocked_product(client, 0)
    problem(await announce(client, sku, 0), 422)
    problem(await client.post(f"/inventory/{sku}/incoming", json={"quantity": 3}), 422)
    problem(await client.post(f"/inventory/{sku}/incoming", json={"quantity": 3, "expected_at": "soon"}), 422)
    problem(await announce(client, "NO-SUCH", 3), 404)
    problem(await announce(client, sku, 3, "no-such-warehouse"), 404, "UNKNOWN_WAREHOUSE")
    gift = await create_bundle(client, {sku: 2})
    problem(await announce(client, gift, 3), 422, "BUNDLE_HOLDS_NO_STOCK")
    problem(await pre_order(client, sku, 1), 409, "INSUFFICIENT_STOCK")

    key = {"Idempotency-Key": f"announce-{uuid.uuid4()}"}
    body = {"quantity": 7, "expected_at": "2030-03-01T09:30:00+01:00"}
    answers = [await client.post(f"/inventory/{sku}/incoming", json=body, headers=key) for _ in range(3)]
    assert [a.status_code for a in answers] == [201] * 3, [a.text for a in answers]
    assert answers[0].json()["expected_at"].startswith("2030-03-01T08:30:00")
    assert figures(await level(client, sku)) == (0, 0, 7, 0, 7), "announced once"
    warehouse = (await client.get("/warehouses/default")).json()
    assert warehouse["totals"]["incoming"] >= 7
    await assert_invariants(settings, engine, [sku])


async def test_the_migrated_read_model_matches_storage_models(engine):
    # Alembic compares tables, columns and indexes; the CHECKs (what PostgreSQL refuses) by name.
    def differences(connection) -> tuple[list, set, set]:
        checks = {(table.name, c.name) for table in metadata.sorted_tables for c in table.constraints
                  if isinstance(c, CheckConstraint)}
        inspector = inspect(connection)
        found = {(table, c["name"]) for table in metadata.tables for c in inspector.get_check_constraints(table)}
        return compare_metadata(MigrationContext.configure(connection), metadata), checks, found

    async with engine.connect() as conn:
        diff, checks, found = await conn.run_sync(differences)
    assert diff == []
    assert checks == found and ("inventory_levels", "levels_preorders_within_incoming") in found
