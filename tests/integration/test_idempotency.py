"""Idempotency-Key on POSTs (api/idempotency.py) against the real API, stream and Redis: a retry
replays the first final answer, a reused key with another request is refused, concurrent
requests with one key are applied once and all answered alike."""
from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import text

from .conftest import assert_invariants, auth_headers, create_stocked_product

REPLAYED = "Idempotent-Replayed"
CONCURRENT = 20


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


async def applied(engine, command_id: str) -> int:
    """Events the command made that moved a level (its hold, its receipt)."""
    async with engine.connect() as conn:
        return (await conn.execute(text(
            "SELECT count(*) FROM inventory_transactions WHERE command_id = :c "
            "AND (on_hand_delta <> 0 OR reserved_delta <> 0)"), {"c": command_id})).scalar_one()


async def events_of(engine, command_id: str) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(text("SELECT count(*) FROM inventory_transactions WHERE command_id = :c"),
                                   {"c": command_id})).scalar_one()


async def holds_of(engine, sku: str) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(text("SELECT count(*) FROM inventory_transactions WHERE sku = :s "
                                        "AND reserved_delta > 0"), {"s": sku})).scalar_one()


async def totals(client, sku: str) -> dict[str, int]:
    return (await client.get(f"/inventory/{sku}")).json()["totals"]


async def test_a_retry_replays_the_first_answer_and_applies_once(client, settings, engine):
    sku = await create_stocked_product(client, 5)
    key = f"idem-{uuid.uuid4()}"
    body = {"product_id": sku, "order_id": "o-1", "quantity": 2}
    first = await client.post("/reservations", json=body, headers=keyed(key))
    again = await client.post("/reservations", json=body, headers=keyed(key))
    assert first.status_code == 201, first.text
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert again.headers[REPLAYED] == "true" and REPLAYED not in first.headers
    assert await events_of(engine, key) == 1
    assert await totals(client, sku) == {"available": 3, "reserved": 2, "total": 5}

    # A refusal is final too: replayed as it was, also once the stock it lacked has arrived.
    short = await create_stocked_product(client, 1)
    refused_key = f"idem-{uuid.uuid4()}"
    body = {"product_id": short, "order_id": "o-2", "quantity": 3}
    refused = await client.post("/reservations", json=body, headers=keyed(refused_key))
    assert refused.status_code == 409, refused.text
    receipt = await client.post(f"/inventory/{short}/update", json={"quantity_change": 5, "reason": "restock"})
    assert receipt.status_code == 200, receipt.text
    retried = await client.post("/reservations", json=body, headers=keyed(refused_key))
    assert (retried.status_code, retried.content) == (409, refused.content)
    assert retried.headers[REPLAYED] == "true"
    assert retried.headers["content-type"] == "application/problem+json"
    assert await events_of(engine, refused_key) == 1 and await applied(engine, refused_key) == 0
    assert await totals(client, short) == {"available": 6, "reserved": 0, "total": 6}
    await assert_invariants(settings, engine, [sku, short])


async def test_a_key_reused_for_another_request_is_refused(client, api, settings, engine):
    sku = await create_stocked_product(client, 10)
    key = f"idem-{uuid.uuid4()}"
    body = {"product_id": sku, "order_id": "o-1", "quantity": 2}
    first = await client.post("/reservations", json=body, headers=keyed(key))
    assert first.status_code == 201, first.text

    other_body = await client.post("/reservations", json={**body, "quantity": 3}, headers=keyed(key))
    headers = {**auth_headers(settings, "operator", subject="someone-else"), **keyed(key)}
    async with httpx.AsyncClient(base_url=api.base_url, timeout=60, headers=headers) as other:
        other_principal = await other.post("/reservations", json=body)
    for refused in (other_body, other_principal):
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        problem = refused.json()
        assert problem["type"].endswith("/idempotency-key-reused"), problem
        assert problem["title"] == "Idempotency key reused" and "different request" in problem["detail"]
        assert REPLAYED not in refused.headers
    assert await events_of(engine, key) == 1
    assert await totals(client, sku) == {"available": 8, "reserved": 2, "total": 10}
    await assert_invariants(settings, engine, [sku])


async def concurrently(client, path: str, body: dict, key: str) -> list[httpx.Response]:
    responses = await asyncio.gather(*(client.post(path, json=body, headers=keyed(key))
                                       for _ in range(CONCURRENT)))
    assert len({(r.status_code, r.content) for r in responses}) == 1, [r.text for r in responses]
    assert sum(r.headers.get(REPLAYED) == "true" for r in responses) == CONCURRENT - 1
    return responses


async def test_concurrent_reservations_with_one_key_are_applied_once(client, settings, engine):
    sku = await create_stocked_product(client, 10)
    key = f"idem-{uuid.uuid4()}"
    responses = await concurrently(client, "/reservations",
                                   {"product_id": sku, "order_id": "o-1", "quantity": 3}, key)
    assert responses[0].status_code == 201, responses[0].text
    assert await applied(engine, key) == 1
    assert await totals(client, sku) == {"available": 7, "reserved": 3, "total": 10}
    await assert_invariants(settings, engine, [sku])


async def test_concurrent_orders_with_one_key_are_placed_once(client, settings, engine):
    sku = await create_stocked_product(client, 10)
    key = f"order-{uuid.uuid4()}"
    responses = await concurrently(client, "/orders",
                                   {"customer": "c-1", "lines": [{"product_id": sku, "quantity": 4}]}, key)
    assert responses[0].status_code == 201, responses[0].text
    assert responses[0].json()["order_id"] == key and responses[0].json()["status"] == "RESERVED"
    assert await holds_of(engine, sku) == 1
    assert await totals(client, sku) == {"available": 6, "reserved": 4, "total": 10}
    await assert_invariants(settings, engine, [sku])


async def test_concurrent_stock_updates_with_one_key_are_applied_once(client, settings, engine):
    sku = await create_stocked_product(client, 10)
    key = f"receipt-{uuid.uuid4()}"
    responses = await concurrently(client, f"/inventory/{sku}/update",
                                   {"quantity_change": 5, "reason": "delivery"}, key)
    assert responses[0].status_code == 200, responses[0].text
    assert await applied(engine, key) == 1
    assert await totals(client, sku) == {"available": 15, "reserved": 0, "total": 15}
    await assert_invariants(settings, engine, [sku])


async def test_requests_without_a_key_are_never_replayed(client, settings, engine):
    sku = await create_stocked_product(client, 10)
    body = {"product_id": sku, "order_id": "o-1", "quantity": 2}
    first = await client.post("/reservations", json=body)
    second = await client.post("/reservations", json=body)
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    assert REPLAYED not in first.headers and REPLAYED not in second.headers
    assert first.json()["reservation_id"] != second.json()["reservation_id"]
    assert await holds_of(engine, sku) == 2
    assert await totals(client, sku) == {"available": 6, "reserved": 4, "total": 10}
    await assert_invariants(settings, engine, [sku])
