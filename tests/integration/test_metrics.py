"""Observability end to end: the API's, the stock worker's and the ledger's Prometheus metrics move
with real traffic, and a request's id goes from the API's log onto its Kafka records (and the
saga's next commands) into the worker's log."""
from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from common.logs import REQUEST_ID_HEADER
from streams.topics import STOCK_COMMANDS, STOCK_COMMANDS_DLQ, STOCK_EVENTS

from .conftest import assert_invariants, stop_consumer

UNITS, RESERVATIONS = 5, 8  # 5 reservations of one unit are accepted, 3 rejected

Samples = dict[tuple[str, frozenset], float]


async def _scrape(client: httpx.AsyncClient, url: str) -> Samples:
    response = await client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def _get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return _get(after, name, **labels) - _get(before, name, **labels)


async def _scrape_until(client: httpx.AsyncClient, url: str, done, tries: int = 100) -> Samples:
    """Scrape until ``done(samples)``: a worker counts a batch as it commits, the ledger once
    PostgreSQL has it; both may trail the API's answer by a moment."""
    for _ in range(tries):
        samples = await _scrape(client, url)
        if done(samples):
            break
        await asyncio.sleep(0.1)
    return samples


def _log_lines(path: Path) -> list[dict]:
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass  # a line interleaved with another process's output
    return lines


async def _log_line_with(path: Path, request_id: str, tries: int = 100) -> dict | None:
    for _ in range(tries):
        found = next((line for line in _log_lines(path) if line.get("request_id") == request_id), None)
        if found:
            return found
        await asyncio.sleep(0.1)
    return None


async def _records_with_request_ids(settings, since: dict[TopicPartition, int]) -> dict[str, bytes]:
    """The request ids on the records after ``since`` (offsets per partition), each with its record's key."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(since))
        end = await consumer.end_offsets(list(since))
        for tp, offset in since.items():
            consumer.seek(tp, offset)
        found: dict[str, bytes] = {}
        for _ in range(100):
            positions = [await consumer.position(tp) for tp in since]
            if all(position >= end[tp] for position, tp in zip(positions, since)):
                break
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    for name, value in record.headers or ():
                        if name == REQUEST_ID_HEADER:
                            found[value.decode()] = record.key
        return found
    finally:
        await stop_consumer(consumer)


async def _end_offsets(settings, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        return await consumer.end_offsets(partitions)
    finally:
        await stop_consumer(consumer)


async def test_metrics_move_with_traffic_and_a_request_id_is_followed_into_the_worker(
        client, api, worker, ledger, settings, engine, process_env):
    worker_url = f"http://127.0.0.1:{process_env['INVENTORY_WORKER_METRICS_PORT']}/metrics"
    ledger_url = f"http://127.0.0.1:{process_env['INVENTORY_LEDGER_METRICS_PORT']}/metrics"
    run = uuid.uuid4().hex[:8]
    api_before, worker_before, ledger_before = (await _scrape(client, "/metrics"),
                                                await _scrape(client, worker_url), await _scrape(client, ledger_url))
    since = await _end_offsets(settings, STOCK_COMMANDS)

    sku = f"metrics-{run}"
    response = await client.post("/products", json={"sku": sku, "name": "metrics"})
    assert response.status_code == 201, response.text
    receipt_id = f"receipt-{run}"
    response = await client.post(f"/inventory/{sku}/update", headers={"X-Request-ID": receipt_id}, json={
        "quantity_change": UNITS, "reason": "initial receipt", "warehouse": "default"})
    assert response.status_code == 200 and response.headers["x-request-id"] == receipt_id, response.text
    ids = [f"reserve-{run}-{i}" for i in range(RESERVATIONS)]
    statuses = []
    for i, request_id in enumerate(ids):  # one at a time: the first UNITS are the accepted ones
        response = await client.post("/reservations", headers={"X-Request-ID": request_id}, json={
            "product_id": sku, "order_id": f"order-{i}", "quantity": 1})
        assert response.headers["x-request-id"] == request_id
        statuses.append(response.status_code)
    assert statuses == [201] * UNITS + [409] * (RESERVATIONS - UNITS), statuses
    rejected_id = ids[-1]

    # The API: requests by route template and status, commands sent and answered.
    api_after = await _scrape(client, "/metrics")
    reservations = {"method": "POST", "route": "/reservations"}
    assert _moved(api_before, api_after, "inventory_api_requests_total", **reservations, status="201") == UNITS
    assert _moved(api_before, api_after, "inventory_api_requests_total", **reservations,
                  status="409") == RESERVATIONS - UNITS
    assert _moved(api_before, api_after, "inventory_api_request_duration_seconds_count", **reservations,
                  status="201") == UNITS
    receipts = {"method": "POST", "route": "/inventory/{product_id}/update", "status": "200"}
    assert _moved(api_before, api_after, "inventory_api_requests_total", **receipts) >= 1
    assert not any(name == "inventory_api_requests_total" and sku in dict(labels).get("route", "")
                   for name, labels in api_after), "a raw path became a label"
    assert _moved(api_before, api_after, "inventory_api_commands_sent_total", topic=STOCK_COMMANDS) >= 1 + RESERVATIONS
    assert _moved(api_before, api_after, "inventory_api_commands_answered_total", topic=STOCK_COMMANDS,
                  outcome="decided") >= 1 + RESERVATIONS

    # The stock worker: decisions by outcome, rejects by reason, latency, batch sizes, lag.
    accepted = {"area": "stock", "outcome": "accepted"}
    worker_after = await _scrape_until(client, worker_url, lambda s: _moved(
        worker_before, s, "inventory_commands_decided_total", **accepted) >= 2 + UNITS)
    assert _moved(worker_before, worker_after, "inventory_commands_decided_total", **accepted) >= 2 + UNITS
    assert _moved(worker_before, worker_after, "inventory_commands_decided_total", area="stock",
                  outcome="rejected") >= RESERVATIONS - UNITS
    assert _moved(worker_before, worker_after, "inventory_command_rejects_total", area="stock",
                  reason="INSUFFICIENT_STOCK") >= RESERVATIONS - UNITS
    assert _moved(worker_before, worker_after, "inventory_commands_decided_total", area="warehouse",
                  outcome="accepted") >= 1  # the receipt's space, held by the warehouse's ledger
    assert _moved(worker_before, worker_after, "inventory_decision_latency_seconds_count",
                  area="stock") >= 2 + RESERVATIONS
    assert _moved(worker_before, worker_after, "inventory_command_batch_size_count", area="stock") >= 1
    lag = [value for (name, labels), value in worker_after.items()
           if name == "inventory_consumer_lag" and dict(labels)["topic"] == STOCK_COMMANDS]
    assert lag and all(value >= 0 for value in lag), "no lag gauge for stock-commands"

    # The ledger: events persisted per topic, its batches' time, its lag.
    events = 2 + RESERVATIONS  # ProductCreated, StockAdjusted, every reservation's outcome
    ledger_after = await _scrape_until(client, ledger_url, lambda s: _moved(
        ledger_before, s, "inventory_ledger_events_persisted_total", topic=STOCK_EVENTS) >= events)
    assert _moved(ledger_before, ledger_after, "inventory_ledger_events_persisted_total",
                  topic=STOCK_EVENTS) >= events
    assert _moved(ledger_before, ledger_after, "inventory_ledger_batch_seconds_count") >= 1
    assert any(name == "inventory_consumer_lag" and dict(labels)["topic"] == STOCK_EVENTS
               for name, labels in ledger_after), "no lag gauge for stock-events"

    # The request id: in the API's access log, on the command's record, and on the receipt's
    # AdjustStock the warehouse's ledger sent on to the SKU's owner (the saga carries it).
    line = await _log_line_with(api.log_path, rejected_id)
    assert line and (line["logger"], line["route"], line["status"]) == ("api.access", "/reservations", 409), line
    carried = await _records_with_request_ids(settings, since)
    assert carried.get(rejected_id) == sku.encode(), f"{rejected_id} on no stock command: {carried}"
    assert carried.get(receipt_id) == sku.encode(), "the receipt's saga step lost its request id"

    # Into the worker's log: a dead-lettered command record with a request id (the test worker
    # logs warnings; rejections are logged at INFO, accepted decisions at DEBUG).
    dead_id = f"dead-{run}"
    dead_before = _get(worker_after, "inventory_dead_letters_total", topic=STOCK_COMMANDS_DLQ)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(STOCK_COMMANDS, key=sku.encode(), value=b"not a command",
                                     headers=[(REQUEST_ID_HEADER, dead_id.encode())])
    finally:
        await producer.stop()
    line = await _log_line_with(worker.log_path, dead_id)
    assert line and line["level"] == "WARNING" and "dead-letter" in line["msg"], line
    worker_last = await _scrape_until(client, worker_url, lambda s: _get(
        s, "inventory_dead_letters_total", topic=STOCK_COMMANDS_DLQ) > dead_before)
    assert _get(worker_last, "inventory_dead_letters_total", topic=STOCK_COMMANDS_DLQ) >= dead_before + 1

    await assert_invariants(settings, engine, [sku])
