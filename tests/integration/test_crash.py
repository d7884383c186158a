"""kill -9 of a worker (the stock worker, or the ledger worker) mid-stream, then a restart."""
from __future__ import annotations

import asyncio
import signal
import time
import uuid

import pytest

from .conftest import Process, assert_invariants, create_stocked_product, wait_until_serving

UNITS, REQUESTS, CONCURRENCY = 150, 400, 25


async def _reserve_until_decided(client, gate: asyncio.Semaphore, sku: str, key: str,
                                 outcomes: dict[str, object], retried: list[str], attempts: int) -> None:
    """Reserve one unit under Idempotency-Key ``key`` until it is decided (201 or 409)."""
    async with gate:
        for _ in range(attempts):
            response = await client.post(
                "/reservations", json={"product_id": sku, "order_id": key, "quantity": 1},
                headers={"Idempotency-Key": key})
            if response.status_code in (201, 409):
                outcomes[key] = response
                return
            # 202: in the log but undecided in time (the worker is down): retry, same key.
            assert response.status_code == 202, response.text
            retried.append(key)
    raise AssertionError(f"{key} never decided")


@pytest.mark.parametrize("victim", ["worker", "ledger"])
async def test_worker_killed_mid_stream_loses_and_doubles_nothing(client, settings, engine, worker, api,
                                                                  request, victim):
    killed = request.getfixturevalue(victim)
    sku = await create_stocked_product(client, UNITS)
    outcomes: dict[str, object] = {}
    retried: list[str] = []
    gate = asyncio.Semaphore(CONCURRENCY)

    keys = [f"crash-{uuid.uuid4()}" for _ in range(REQUESTS)]
    tasks = [asyncio.create_task(_reserve_until_decided(client, gate, sku, k, outcomes, retried, attempts=30))
             for k in keys]
    while len(outcomes) < REQUESTS // 5:
        await asyncio.sleep(0.01)
    decided_before_kill = len(outcomes)
    killed.kill(signal.SIGKILL)
    restarted = time.monotonic()
    killed.start()
    await asyncio.gather(*tasks)
    recovery_s = time.monotonic() - restarted
    print(f"\n{victim} killed after {decided_before_kill} outcomes; {len(retried)} retries; "
          f"all decided {recovery_s:.1f}s after the restart")

    assert decided_before_kill < REQUESTS, "the kill did not land mid-stream"
    statuses = [r.status_code for r in outcomes.values()]
    assert statuses.count(201) == UNITS and statuses.count(409) == REQUESTS - UNITS
    acknowledged = {r.json()["reservation_id"] for r in outcomes.values() if r.status_code == 201}
    assert len(acknowledged) == UNITS

    inventory = (await client.get(f"/inventory/{sku}")).json()
    assert inventory["totals"] == {"available": 0, "reserved": UNITS, "total": UNITS}
    pg = await assert_invariants(settings, engine, [sku])
    assert set(pg["reservations"]) == acknowledged, "a reservation was lost or invented"
    assert all(state == "PENDING" for _, state in pg["reservations"].values())
    # And the restarted worker keeps serving.
    await wait_until_serving(api, worker, timeout_s=30)


async def test_a_frozen_worker_that_lost_its_partitions_writes_nothing_when_it_wakes(
        client, settings, engine, worker, api, process_env, logdir, tmp_path):
    """A zombie: the worker is frozen (SIGSTOP) mid-stream, a successor takes its partitions after
    the session timeout, and the frozen one then wakes with decided batches in hand. Its writes
    must not land (streams/partition/owner.py: the successor's producers fence it); before the fence,
    a woken worker's buffered writes made a second history of the same SKUs."""
    stock, requests = 40, 300  # 37 or 38 requests per SKU: every one is served
    skus = [await create_stocked_product(client, stock) for _ in range(8)]
    outcomes: dict[str, object] = {}
    gate = asyncio.Semaphore(40)

    keys = [(f"frozen-{uuid.uuid4()}", skus[i % len(skus)]) for i in range(requests)]
    tasks = [asyncio.create_task(_reserve_until_decided(client, gate, s, k, outcomes, [], attempts=60))
             for k, s in keys]
    successor = Process("worker-successor", worker.args,
                        {**process_env, "INVENTORY_WORKER_DATA_DIR": str(tmp_path / "successor")}, logdir)
    try:
        while len(outcomes) < requests // 5:
            await asyncio.sleep(0.01)
        worker.proc.send_signal(signal.SIGSTOP)
        successor.start()
        await asyncio.gather(*tasks)  # decided by the successor once the session timed out
        worker.proc.send_signal(signal.SIGCONT)
        # The woken worker finds out: fenced (it stops), or it rejoins and shares the partitions.
        await asyncio.sleep(settings.broker_session_timeout_s)
        woke = "stopped (fenced)" if not worker.alive else "rejoined"
        print(f"\nthe woken worker {woke}; exit code {worker.proc.returncode}")

        statuses = [r.status_code for r in outcomes.values()]
        assert statuses.count(201) == requests, statuses
        acknowledged = {r.json()["reservation_id"] for r in outcomes.values()}
        pg = await assert_invariants(settings, engine, skus)
        assert set(pg["reservations"]) == acknowledged, "a reservation was lost or invented"
        for sku in skus:
            levels = (await client.get(f"/inventory/{sku}")).json()["totals"]
            mine = sum(1 for k, s in keys if s == sku)
            assert levels == {"available": stock - mine, "reserved": mine, "total": stock}
    finally:
        if worker.alive:
            worker.proc.send_signal(signal.SIGCONT)
        successor.stop()
        if not worker.alive:
            worker.start()
        await wait_until_serving(api, worker, timeout_s=60)


async def test_a_batch_that_cannot_be_committed_is_never_acknowledged(
        client, settings, engine, worker, api, process_env, logdir, tmp_path):
    """A worker that cannot take its partition over (here: its local state cannot be opened)
    stops with exit code 70 instead of acknowledging the batch; the command waits in the log and
    is decided once a healthy worker owns the partition."""
    from streams.admin import kafka_cluster_id

    sku = await create_stocked_product(client, 3)
    broken_dir = tmp_path / "broken"
    broken_dir.mkdir()
    (broken_dir / "kafka-cluster-id").write_text(await kafka_cluster_id(settings) + "\n")
    for partition in range(settings.topic_partitions):
        (broken_dir / f"stock-{partition}.db").write_text("not a database")  # RocksDB cannot open it
    broken = Process("worker-broken", worker.args,
                     {**process_env, "INVENTORY_WORKER_DATA_DIR": str(broken_dir)}, logdir)
    body, headers = {"product_id": sku, "order_id": "o", "quantity": 2}, {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    worker.stop()
    try:
        broken.start()
        first = await client.post("/reservations", json=body, headers=headers)
        assert first.status_code == 202, first.text  # in the log, undecided
        for _ in range(300):
            if not broken.alive:
                break
            await asyncio.sleep(0.1)
        assert broken.proc.returncode == 70, broken.tail()
        assert "did not commit" in broken.tail(200)
    finally:
        broken.stop()
        worker.start()
        await wait_until_serving(api, worker, timeout_s=120)
    retried = await client.post("/reservations", json=body, headers=headers)
    assert retried.status_code == 201, retried.text
    inventory = (await client.get(f"/inventory/{sku}")).json()
    assert inventory["totals"] == {"available": 1, "reserved": 2, "total": 3}
    await assert_invariants(settings, engine, [sku])
