"""Resumable WebSocket subscriptions: every message has its ledger offset; a client that
reconnects with ``?after=<last offset>`` gets exactly the events it missed (the ledger's rows past
it, for its filter), in order, then the live ones; a replayed message equals the live one."""
from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any, Callable

import pytest
import websockets
from sqlalchemy import select
from websockets.exceptions import InvalidStatus

from api.security import Role, issue_token
from storage.models import inventory_transactions

from .conftest import assert_invariants, auth_headers, create_stocked_product

_TIMEOUT_S = 20


def _url(api, settings, **params: Any) -> str:
    """The WebSocket's address, the viewer's token as ``access_token`` (as a browser sends it)."""
    params["access_token"] = issue_token(settings, "resume-tests", Role.VIEWER)
    query = "&".join(f"{k}={v}" for k, v in params.items() if v is not None)
    return api.base_url.replace("http://", "ws://") + f"/ws/inventory?{query}"


async def _subscribe(api, settings, **params: Any):
    ws = await websockets.connect(_url(api, settings, **params))
    hello = json.loads(await asyncio.wait_for(ws.recv(), _TIMEOUT_S))
    assert hello["type"] == "subscribed" and isinstance(hello["after"], int), hello
    return ws, hello


async def _until(ws, done: Callable[[dict], bool]) -> list[dict]:
    """The messages up to the first that ``done`` accepts (bounded by a timeout per message)."""
    got = []
    while True:
        got.append(json.loads(await asyncio.wait_for(ws.recv(), _TIMEOUT_S)))
        if done(got[-1]):
            return got


def _of_command(command_id: str) -> Callable[[dict], bool]:
    return lambda m: m.get("command_id") == command_id and m["type"] != "LowStock"


def _key(message: dict) -> tuple[int, int]:
    return message["offset"], int(message["type"] == "LowStock")


def _assert_in_order_once(messages: list[dict]) -> None:
    keys = [_key(m) for m in messages]
    assert keys == sorted(set(keys)), f"not strictly increasing: {keys}"


async def _ledger(engine, after: int, until: int, **filters: str) -> list[tuple[str, int, bool]]:
    """The ledger's events past ``after`` up to ``until`` for the filter: (id, offset, low stock)."""
    tx = inventory_transactions.c
    query = (select(tx.event_id, tx.position, tx.low_stock)
             .where(tx.position > after, tx.position <= until, *(tx[k] == v for k, v in filters.items()))
             .order_by(tx.position))
    async with engine.connect() as conn:
        return [(str(e), p, bool(low)) for e, p, low in (await conn.execute(query)).all()]


def _expected(ledger: list[tuple[str, int, bool]]) -> list[tuple[str, int, str]]:
    """What a subscriber gets for those rows: each event, and its alert after a low-stock one."""
    out = []
    for event_id, position, low in ledger:
        out.append((event_id, position, "event"))
        if low:
            out.append((event_id, position, "LowStock"))
    return out


def _seen(messages: list[dict]) -> list[tuple[str, int, str]]:
    return [(m["event_id"], m["offset"], "LowStock" if m["type"] == "LowStock" else "event") for m in messages]


async def _post(client, path: str, body: dict, expected: int = 200) -> str:
    key = f"resume-{uuid.uuid4().hex}"
    response = await client.post(path, json=body, headers={"Idempotency-Key": key})
    assert response.status_code == expected, response.text
    return key


async def _warehouse(client) -> str:
    warehouse = f"wh-{uuid.uuid4().hex[:10]}"
    response = await client.post("/warehouses", json={"warehouse_id": warehouse, "name": "resume",
                                                      "capacity": 100_000})
    assert response.status_code == 201, response.text
    return warehouse


async def test_a_client_that_reconnects_after_its_last_offset_gets_exactly_what_it_missed_then_live_ones(
        client, api, settings, engine):
    other = await _warehouse(client)
    a = await create_stocked_product(client, 20)
    b = await create_stocked_product(client, 8)
    await _post(client, f"/inventory/{a}/low-stock-threshold", {"threshold": 5, "warehouse": "default"})

    # One client for every event, one for product a's; a third stays connected throughout.
    watcher, _ = await _subscribe(api, settings)
    resumer, _ = await _subscribe(api, settings)
    filtered, _ = await _subscribe(api, settings, product_id=a)
    first = await _post(client, f"/inventory/{a}/update", {"quantity_change": 2, "reason": "r", "warehouse": "default"})
    last_all = (await _until(resumer, _of_command(first)))[-1]["offset"]
    last_a = (await _until(filtered, _of_command(first)))[-1]["offset"]
    await resumer.close()
    await filtered.close()

    # Missed: several SKUs, two warehouses, a reservation and a low-stock crossing.
    await _post(client, f"/inventory/{a}/update", {"quantity_change": 7, "reason": "r", "warehouse": other})
    await _post(client, f"/inventory/{b}/update", {"quantity_change": 3, "reason": "r", "warehouse": other})
    await _post(client, "/reservations", {"product_id": a, "order_id": "o-1", "quantity": 4,
                                          "warehouse": "default"}, 201)
    crossing = await _post(client, f"/inventory/{a}/update", {"quantity_change": -15, "reason": "damaged",
                                                              "warehouse": "default"})
    await _post(client, "/reservations", {"product_id": b, "order_id": "o-2", "quantity": 1000}, 409)
    end = await _post(client, f"/inventory/{b}/update", {"quantity_change": -1, "reason": "r",
                                                         "warehouse": "default"})
    live = await _until(watcher, _of_command(end))

    resumed, hello = await _subscribe(api, settings, after=last_all)
    assert hello["after"] == last_all
    replayed = await _until(resumed, _of_command(end))
    ledger = await _ledger(engine, last_all, replayed[-1]["offset"])
    assert _seen(replayed) == _expected(ledger), "exactly the ledger's events past the last offset seen"
    _assert_in_order_once(replayed)
    assert any(m["type"] == "LowStock" and m["sku"] == a for m in replayed), "the crossing's alert is replayed"
    assert any(m["command_id"] == crossing and m["low_stock"] for m in replayed)

    # A replayed message is the very message the live subscriber got for the same event.
    by_key = {(m["event_id"], m["type"]): m for m in live}
    for message in replayed:
        assert by_key.get((message["event_id"], message["type"])) == message

    resumed_a, _ = await _subscribe(api, settings, product_id=a, after=last_a)
    replayed_a = await _until(resumed_a, lambda m: m["type"] == "LowStock")
    assert _seen(replayed_a) == _expected(await _ledger(engine, last_a, replayed_a[-1]["offset"], sku=a))
    assert {m["sku"] for m in replayed_a} == {a}

    # Live ones follow, on both.
    after_replay = await _post(client, f"/inventory/{a}/update", {"quantity_change": 1, "reason": "r",
                                                                  "warehouse": other})
    more = await _until(resumed, _of_command(after_replay))
    more_a = await _until(resumed_a, _of_command(after_replay))
    _assert_in_order_once(replayed + more)
    _assert_in_order_once(replayed_a + more_a)
    assert _seen(replayed + more) == _expected(await _ledger(engine, last_all, more[-1]["offset"]))
    for ws in (watcher, resumed, resumed_a):
        await ws.close()
    await assert_invariants(settings, engine, [a, b])


async def _written(keys: list[str], count: int, writer: asyncio.Task) -> None:
    """Until the writer acknowledged ``count`` changes (or ended)."""
    while len(keys) < count and not writer.done():
        await asyncio.sleep(0.01)


async def test_a_client_reconnecting_while_changes_keep_flowing_misses_nothing_and_gets_nothing_twice(
        client, api, settings, engine):
    other = await _warehouse(client)
    skus = [await create_stocked_product(client, 0) for _ in range(2)]
    writes = 40
    keys: list[str] = []

    async def writer() -> None:
        for i in range(writes):
            keys.append(await _post(client, f"/inventory/{skus[i % 2]}/update",
                                    {"quantity_change": 1 + i % 3, "reason": "flow", "warehouse": other}))
            await asyncio.sleep(0.01)

    ws, hello = await _subscribe(api, settings, warehouse=other)
    start, seen = hello["after"], []
    flowing = asyncio.create_task(writer())
    for _ in range(4):  # read a little, drop the connection, come back after the last offset
        seen += await _until(ws, lambda m: True)
        seen += await _until(ws, lambda m: True)
        await ws.close()
        await asyncio.wait_for(_written(keys, len(keys) + 2, flowing), _TIMEOUT_S)  # missed, surely
        ws, hello = await _subscribe(api, settings, warehouse=other, after=seen[-1]["offset"])
        assert hello["after"] == seen[-1]["offset"]
    await flowing
    if seen[-1].get("command_id") != keys[-1]:
        seen += await _until(ws, _of_command(keys[-1]))
    await ws.close()

    _assert_in_order_once(seen)
    assert _seen(seen) == _expected(await _ledger(engine, start, seen[-1]["offset"], warehouse=other))
    assert len(seen) == writes
    await assert_invariants(settings, engine, skus)


async def test_an_offset_that_is_no_offset_is_refused_and_offset_zero_replays_from_the_start(
        client, api, settings):
    with pytest.raises(InvalidStatus):  # validated before the handshake completes
        async with websockets.connect(_url(api, settings, after=-1)) as ws:
            await asyncio.wait_for(ws.recv(), _TIMEOUT_S)
    sku = await create_stocked_product(client, 1)
    headers = auth_headers(settings, "viewer")  # the header works as well as access_token
    url = api.base_url.replace("http://", "ws://") + f"/ws/inventory?after=0&product_id={sku}"
    async with websockets.connect(url, additional_headers=headers) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), _TIMEOUT_S))["after"] == 0
        replayed = [json.loads(await asyncio.wait_for(ws.recv(), _TIMEOUT_S)) for _ in range(2)]
    assert [m["type"] for m in replayed] == ["ProductCreated", "StockAdjusted"]
