"""The gRPC service (schemas/inventory.proto, api/grpc/) against the real API process: its reads
equal REST's, its watch streams what REST changed, filtered, and resumes from an offset with
exactly the events missed, as the ledger has them."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import grpc
import pytest
from sqlalchemy import func, select

from api.grpc.generated import inventory_pb2 as pb
from api.grpc.generated import inventory_pb2_grpc as pb_grpc
from storage.models import inventory_transactions as tx

from .conftest import assert_invariants, auth_headers, create_stocked_product

READ_TIMEOUT_S = 15


@pytest.fixture
async def stub(api):
    async with grpc.aio.insecure_channel(api.grpc_target) as channel:
        yield pb_grpc.InventoryStub(channel)


def _viewer(settings) -> tuple[tuple[str, str], ...]:
    return (("authorization", auth_headers(settings, "viewer")["Authorization"]),)


async def _warehouse(client) -> str:
    warehouse = f"grpc-{uuid.uuid4().hex[:8]}"
    response = await client.post("/warehouses", json={"warehouse_id": warehouse, "name": "gRPC tests",
                                                      "capacity": 1_000_000})
    assert response.status_code == 201, response.text
    return warehouse


async def _change(client, sku: str, units: int, warehouse: str = "default") -> dict:
    response = await client.post(f"/inventory/{sku}/update", json={
        "quantity_change": units, "reason": "grpc test", "warehouse": warehouse})
    assert response.status_code == 200, response.text
    return response.json()


async def _last_position(engine, sku: str) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(select(func.max(tx.c.position)).where(tx.c.sku == sku))).scalar_one()


async def _ledger_after(engine, sku: str, after: int, warehouse: str | None = None) -> list[tuple[int, str]]:
    """(position, event id) of the ledger's rows of the filter after ``after``, in order."""
    query = select(tx.c.position, tx.c.event_id).where(tx.c.sku == sku, tx.c.position > after)
    if warehouse is not None:
        query = query.where(tx.c.warehouse == warehouse)
    async with engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(query.order_by(tx.c.position))).all()]


async def _events(call, count: int) -> list[pb.InventoryEvent]:
    """The next ``count`` events of a watch (alerts skipped), each within READ_TIMEOUT_S."""
    events = []
    while len(events) < count:
        update = await asyncio.wait_for(call.read(), READ_TIMEOUT_S)
        assert update is not grpc.aio.EOF, "the watch ended"
        if update.WhichOneof("kind") == "event":
            events.append(update.event)
    return events


async def _status(awaitable) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(awaitable, READ_TIMEOUT_S)
    return caught.value.code()


async def test_get_inventory_equals_the_rest_read_in_two_warehouses(client, stub, settings, engine):
    warehouse = await _warehouse(client)
    sku = await create_stocked_product(client, 10)
    await _change(client, sku, 6, warehouse)
    held = await client.post("/reservations", json={"product_id": sku, "order_id": "o-grpc", "quantity": 3})
    assert held.status_code == 201, held.text
    announced = await client.post(f"/inventory/{sku}/incoming", json={
        "quantity": 4, "expected_at": "2031-05-01T12:00:00Z", "warehouse_id": warehouse})
    assert announced.status_code == 201, announced.text

    rest = (await client.get(f"/inventory/{sku}")).json()
    levels = await stub.GetInventory(pb.GetInventoryRequest(product_id=sku), metadata=_viewer(settings))
    assert (levels.product_id, levels.version, levels.in_transit) == (sku, rest["version"], rest["in_transit"])
    assert len(levels.warehouses) == len(rest["warehouses"]) == 2
    for level, expected in zip(levels.warehouses, rest["warehouses"], strict=True):
        for name in ("warehouse", "on_hand", "reserved", "available", "low_stock_threshold", "incoming",
                     "preordered", "preorderable"):
            assert getattr(level, name) == expected[name], name
        expected_at = expected["expected_at"] and datetime.fromisoformat(expected["expected_at"])
        assert (level.expected_at.ToDatetime(tzinfo=expected_at.tzinfo) if level.HasField("expected_at")
                else None) == expected_at
    totals = rest["totals"]
    assert (levels.totals.available, levels.totals.reserved, levels.totals.total) == (13, 3, 16) == \
        (totals["available"], totals["reserved"], totals["total"])
    assert (levels.totals.incoming, levels.totals.preorderable) == (totals["incoming"], totals["preorderable"]) == (4, 4)

    assert await _status(stub.GetInventory(pb.GetInventoryRequest(product_id="NO-SUCH-SKU-grpc"),
                                           metadata=_viewer(settings))) is grpc.StatusCode.NOT_FOUND
    for bad in ("", "bad id", "x" * 200, "../etc"):
        assert await _status(stub.GetInventory(pb.GetInventoryRequest(product_id=bad),
                                               metadata=_viewer(settings))) is grpc.StatusCode.INVALID_ARGUMENT
    await assert_invariants(settings, engine, [sku])


async def test_list_low_stock_equals_the_rest_list(client, stub, settings, engine):
    warehouse = await _warehouse(client)
    low, fine = await create_stocked_product(client, 0), await create_stocked_product(client, 0)
    for sku, units in ((low, 4), (fine, 9)):
        await _change(client, sku, units, warehouse)
        response = await client.post(f"/inventory/{sku}/low-stock-threshold",
                                     json={"threshold": 5, "warehouse": warehouse})
        assert response.status_code == 200, response.text

    listed = await stub.ListLowStock(pb.ListLowStockRequest(warehouse=warehouse), metadata=_viewer(settings))
    rest = (await client.get("/inventory/low-stock", params={"warehouse": warehouse})).json()
    assert [(r.product_id, r.warehouse, r.available, r.low_stock_threshold) for r in listed.levels] == \
        [(r["product_id"], r["warehouse"], r["available"], r["low_stock_threshold"]) for r in rest] == \
        [(low, warehouse, 4, 5)]
    assert listed.levels[0].updated_at.ToDatetime().isoformat()[:19] == rest[0]["updated_at"][:19]
    for limit in (-1, 5001):
        assert await _status(stub.ListLowStock(pb.ListLowStockRequest(limit=limit), metadata=_viewer(settings))) \
            is grpc.StatusCode.INVALID_ARGUMENT
    await assert_invariants(settings, engine, [low, fine])


async def test_a_watch_streams_rest_changes_of_its_product_and_only_its_warehouse(client, stub, settings, engine):
    warehouse = await _warehouse(client)
    sku = await create_stocked_product(client, 10)
    await _change(client, sku, 5, warehouse)
    # From the ledger's last offset, so nothing is missed whenever the server subscribes.
    after = await _last_position(engine, sku)
    every = stub.WatchInventory(pb.WatchRequest(product_id=sku, after_offset=after), metadata=_viewer(settings))
    one = stub.WatchInventory(pb.WatchRequest(product_id=sku, warehouse=warehouse, after_offset=after),
                              metadata=_viewer(settings))
    try:
        removed = await _change(client, sku, -2)
        [first] = await _events(every, 1)
        assert (first.type, first.sku, first.warehouse, first.on_hand_delta) == ("StockAdjusted", sku, "default", -2)
        assert (first.on_hand, first.reserved, first.available) == \
            (removed["on_hand"], removed["reserved"], removed["available"]) == (8, 0, 8)
        assert first.offset > after and first.sender == "user:tests"
        assert '"reason": "grpc test"' in first.body_json

        # The watch is live now: this one comes from the hub, not from a replay.
        await _change(client, sku, -1, warehouse)
        [second] = await _events(every, 1)
        [only] = await _events(one, 1)
        assert second == only and (only.warehouse, only.on_hand, only.available) == (warehouse, 4, 4)
        assert [(e.offset, e.event_id) for e in (first, second)] == \
            [(p, str(e)) for p, e in await _ledger_after(engine, sku, after)]
    finally:
        every.cancel(), one.cancel()
    await assert_invariants(settings, engine, [sku])


async def test_a_resumed_watch_gets_exactly_the_events_missed_in_order(client, stub, settings, engine):
    sku = await create_stocked_product(client, 50)
    start = await _last_position(engine, sku)
    call = stub.WatchInventory(pb.WatchRequest(product_id=sku, after_offset=start), metadata=_viewer(settings))
    for _ in range(3):
        await _change(client, sku, -1)
    seen = await _events(call, 3)
    call.cancel()
    last = seen[-1].offset
    assert [e.offset for e in seen] == sorted({e.offset for e in seen})

    # Missed while away: adjustments and reservations (a reservation is one event of its SKU).
    for units in (-2, 7, -1):
        await _change(client, sku, units)
    for order in ("o-a", "o-b"):
        held = await client.post("/reservations", json={"product_id": sku, "order_id": order, "quantity": 2})
        assert held.status_code == 201, held.text
    missed = await _ledger_after(engine, sku, last)
    assert len(missed) == 5

    resumed = stub.WatchInventory(pb.WatchRequest(product_id=sku, after_offset=last), metadata=_viewer(settings))
    try:
        replayed = await _events(resumed, len(missed))
        assert [(e.offset, e.event_id) for e in replayed] == [(p, str(e)) for p, e in missed]
        assert [e.type for e in replayed] == ["StockAdjusted"] * 3 + ["Reserved"] * 2
        assert replayed[-1].on_hand - replayed[-1].reserved == 47 - 2 + 7 - 1 - 4
        # Then live, with nothing repeated in between.
        await _change(client, sku, -3)
        [live] = await _events(resumed, 1)
        assert [(live.offset, live.event_id)] == [(p, str(e)) for p, e in await _ledger_after(
            engine, sku, replayed[-1].offset)]
    finally:
        resumed.cancel()
    assert await _status(stub.WatchInventory(pb.WatchRequest(after_offset=-1), metadata=_viewer(settings)).read()) \
        is grpc.StatusCode.INVALID_ARGUMENT
    assert await _status(stub.WatchInventory(pb.WatchRequest(warehouse="no good"), metadata=_viewer(settings)).read()) \
        is grpc.StatusCode.INVALID_ARGUMENT
    await assert_invariants(settings, engine, [sku])


async def test_every_call_needs_a_viewers_valid_credentials(client, stub, settings, engine):
    sku = await create_stocked_product(client, 3)
    request = pb.GetInventoryRequest(product_id=sku)
    assert await _status(stub.GetInventory(request)) is grpc.StatusCode.UNAUTHENTICATED
    assert await _status(stub.ListLowStock(pb.ListLowStockRequest())) is grpc.StatusCode.UNAUTHENTICATED
    assert await _status(stub.WatchInventory(pb.WatchRequest(product_id=sku)).read()) \
        is grpc.StatusCode.UNAUTHENTICATED
    for metadata in ((("authorization", "Bearer not-a-token"),), (("authorization", "Basic dGVzdHM6eA=="),),
                     (("x-api-key", "ik_unknown_key"),)):
        assert await _status(stub.GetInventory(request, metadata=metadata)) is grpc.StatusCode.UNAUTHENTICATED

    made = await client.post("/auth/keys", json={"name": "grpc-reader", "role": "viewer"})
    assert made.status_code == 201, made.text
    levels = await stub.GetInventory(request, metadata=(("x-api-key", made.json()["api_key"]),))
    assert (levels.product_id, levels.totals.available) == (sku, 3)
    await assert_invariants(settings, engine, [sku])
