"""Transfers: out of the source, in transit, into the destination, whose capacity is checked;
on hand plus in transit never changes, and a kill -9 half way neither loses nor repeats one."""
from __future__ import annotations

import asyncio
import signal
import time
import uuid

from sqlalchemy import text

from .conftest import assert_invariants, create_stocked_product, wait_until_serving
from .test_warehouses import create_warehouse, ledger_when, receive


async def levels(client, sku: str) -> tuple[dict[str, int], int]:
    body = (await client.get(f"/inventory/{sku}")).json()
    return {lv["warehouse"]: lv["on_hand"] for lv in body["warehouses"]}, body["in_transit"]


async def arrived(client, sku: str, timeout_s: float = 30) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    while True:
        on_hand, in_transit = await levels(client, sku)
        if in_transit == 0 or time.monotonic() > deadline:
            assert in_transit == 0, f"{in_transit} units still in transit"
            return on_hand
        await asyncio.sleep(0.1)


async def transfer(client, sku: str, source: str, destination: str, units: int, key: str | None = None):
    return await client.post(f"/warehouses/{source}/transfer", headers={"Idempotency-Key": key} if key else {},
                             json={"product_id": sku, "quantity": units, "destination": destination})


async def test_a_transfer_moves_units_and_the_destinations_capacity_is_checked(client, settings, engine):
    north, south = await create_warehouse(client, 100), await create_warehouse(client, 10)
    sku = await create_stocked_product(client, 20, north)

    full = await transfer(client, sku, north, south, 12)
    assert (full.status_code, full.json()["reason"]) == (409, "CAPACITY_EXCEEDED")
    short = await transfer(client, sku, south, north, 1)
    assert (short.status_code, short.json()["reason"]) == (409, "INSUFFICIENT_STOCK")
    moved = await transfer(client, sku, north, south, 4)
    assert moved.status_code == 201, moved.text
    assert (moved.json()["state"], moved.json()["source_level"]["on_hand"]) == ("IN_TRANSIT", 16)
    assert await arrived(client, sku) == {north: 16, south: 4}
    settled = await ledger_when(client, south, lambda b: b["held"] == 0 and b["stored"] == 4)
    assert (settled["stored"], settled["free"]) == (4, 6)
    assert (await ledger_when(client, north, lambda b: b["stored"] == 16))["stored"] == 16
    async with engine.connect() as conn:
        state = (await conn.execute(text("SELECT state FROM transfers WHERE transfer_id = :t"),
                                    {"t": moved.json()["transfer_id"]})).scalar_one()
    assert state == "ARRIVED"
    await assert_invariants(settings, engine, [sku])


async def test_transfers_with_the_worker_killed_half_way_complete_exactly_once(client, settings, engine, worker, api):
    north, south = await create_warehouse(client, 1000), await create_warehouse(client, 1000)
    sku = await create_stocked_product(client, 0)
    for warehouse in (north, south):
        assert (await receive(client, sku, warehouse, 30)).status_code == 200
    plan = [(f"move-{uuid.uuid4().hex[:8]}", north, south) if i % 3 else (f"move-{uuid.uuid4().hex[:8]}", south, north)
            for i in range(30)]
    answers: dict[str, int] = {}

    async def until_decided(key: str, source: str, destination: str) -> None:
        for _ in range(40):  # the same key: a retry of one transfer, never a second one
            try:
                response = await transfer(client, sku, source, destination, 1, key)
            except Exception:  # the API waits on a worker that is down: retry
                await asyncio.sleep(0.5)
                continue
            if response.status_code in (201, 409):
                answers[key] = response.status_code
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"transfer {key} never decided")

    tasks = [asyncio.create_task(until_decided(*step)) for step in plan]
    while len(answers) < 5:
        await asyncio.sleep(0.01)
    decided_before_kill = len(answers)
    worker.kill(signal.SIGKILL)  # transfers are in every step of their way now
    worker.start()
    await asyncio.gather(*tasks)
    await wait_until_serving(api, worker, timeout_s=60)

    assert decided_before_kill < len(plan), "the kill did not land half way"
    assert list(answers.values()).count(201) == len(plan), answers
    on_hand = await arrived(client, sku)
    to_south = sum(1 for _, source, _ in plan if source == north)
    assert on_hand == {north: 30 - to_south + (len(plan) - to_south), south: 30 + to_south - (len(plan) - to_south)}
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT transfer_id, state FROM transfers WHERE sku = :s"), {"s": sku})).all()
    assert sorted(r.transfer_id for r in rows) == sorted(key for key, _, _ in plan), "each transfer once"
    assert {r.state for r in rows} == {"ARRIVED"}
    for warehouse in (north, south):
        assert (await ledger_when(client, warehouse, lambda b: b["held"] == 0
                                  and b["stored"] == on_hand[warehouse]))["stored"] == on_hand[warehouse]
    await assert_invariants(settings, engine, [sku])
