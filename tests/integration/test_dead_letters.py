"""Dead letters on every input topic (issue 5): garbage, null and empty values, records of another
schema and commands that break their topic's contract, produced between valid commands on the
same partition. Every valid one is applied, every bad one is on its dead-letter topic with its
error and source, the reader is the same process throughout, and its consumer group's committed
offset moves past the bad records."""
from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from schemas import (
    command_codec,
    event_codec,
    order_command_codec,
    order_event_codec,
    warehouse_command_codec,
    warehouse_event_codec,
)
from streams.ledger.worker import ledger_group
from streams.orders.records import (
    CancelOrder,
    OrderCommand,
    OrderEvent,
    OrderEventKind,
    OrderStatus,
    order_command_to_avro,
    order_event_to_avro,
)
from streams.stock.records import (
    AnnounceIncoming,
    Command,
    Event,
    Reserve,
    StockAdjusted,
    Tick,
    command_to_avro,
    event_to_avro,
)
from streams.topics import (
    ORDER_COMMANDS,
    ORDER_COMMANDS_DLQ,
    ORDER_EVENTS,
    STOCK_COMMANDS,
    STOCK_COMMANDS_DLQ,
    STOCK_EVENTS,
    STOCK_EVENTS_DLQ,
    WAREHOUSE_COMMANDS,
    WAREHOUSE_COMMANDS_DLQ,
    WAREHOUSE_EVENTS,
)
from streams.warehouses.records import (
    EventKind,
    ReceiveStock,
    WarehouseCommand,
    WarehouseEvent,
    warehouse_command_to_avro,
    warehouse_event_to_avro,
)

from .conftest import assert_invariants, create_stocked_product, new_sku, stop_consumer
from .waits import get_when


@dataclass(frozen=True)
class Bad:
    """A record that must be dead-lettered, and what its error must say."""

    what: str
    key: bytes | None
    value: bytes | None
    error: str


def _now_ms() -> int:
    return int(time.time() * 1000)


def _id() -> str:
    return uuid.uuid4().hex


def _unknown_schema() -> bytes:
    """A single-object record whose writer schema nobody registered (8 random fingerprint bytes)."""
    return b"\xc3\x01" + os.urandom(8) + b"\x06abc\x02"


def _garbage(key: bytes | None) -> list[Bad]:
    return [Bad("garbage", key, b"\x00\xffnot avro " + os.urandom(16), "SchemaError"),
            Bad("null value", key, None, "SchemaError"),
            Bad("empty value", key, b"", "SchemaError"),
            Bad("unknown schema", key, _unknown_schema(), "UnknownSchemaError")]


def _stock_command(sku: str, body: Any, command_id: str | None = None) -> bytes:
    return command_codec().encode(command_to_avro(Command(
        _id() if command_id is None else command_id, sku, _now_ms(), body, sender="test")))


def _stock_event(sku: str, event_id: str | None = None, on_hand: int = 1, reserved: int = 0) -> bytes:
    return event_codec().encode(event_to_avro(Event(
        str(uuid.uuid4()) if event_id is None else event_id, _id(), sku, 1, _now_ms(), "default",
        on_hand, reserved, StockAdjusted(quantity=1, reason="stray"), sender="test")))


def _warehouse_command(warehouse: str, command_id: str | None = None) -> bytes:
    return warehouse_command_codec().encode(warehouse_command_to_avro(WarehouseCommand(
        _id() if command_id is None else command_id, warehouse, _now_ms(),
        ReceiveStock(sku=new_sku(), quantity=1, reason="stray"), sender="test")))


def _warehouse_event(warehouse: str, stored: int = 0, capacity: int = 10) -> bytes:
    return warehouse_event_codec().encode(warehouse_event_to_avro(WarehouseEvent(
        str(uuid.uuid4()), _id(), warehouse, 1, _now_ms(), EventKind.WAREHOUSE_CREATED, stored, 0, capacity)))


def _order_command(order: str, command_id: str | None = None) -> bytes:
    return order_command_codec().encode(order_command_to_avro(OrderCommand(
        _id() if command_id is None else command_id, order, _now_ms(), CancelOrder(reason="stray"),
        sender="test")))


def _order_event(order: str) -> bytes:
    return order_event_codec().encode(order_event_to_avro(OrderEvent(
        str(uuid.uuid4()), _id(), order, 1, _now_ms(), "test", OrderEventKind.ORDER_CANCELLED,
        OrderStatus.CANCELLED, "stray", "", False, "priority", ())))


class Traffic:
    """A producer, and a reader of a dead-letter topic positioned at its end before anything is
    sent; every record is sent to one partition, the one its key's valid commands go to."""

    def __init__(self, settings, dead_letters: str) -> None:
        self.settings, self.dead_letters = settings, dead_letters
        self.sent: dict[bytes, Bad] = {}  # by source, "topic/partition/offset"
        self.partitions: dict[str, int] = {}
        self.last_offset: dict[TopicPartition, int] = {}

    async def __aenter__(self) -> "Traffic":
        bootstrap = self.settings.kafka_bootstrap_servers
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                         isolation_level="read_committed")
        await self.producer.start()
        await self.consumer.start()
        tps = [TopicPartition(self.dead_letters, p) for p in range(self.settings.topic_partitions)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the end positions before anything is sent
            await self.consumer.position(tp)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.producer.stop()
        await stop_consumer(self.consumer)

    async def partition_of(self, topic: str, key: str) -> int:
        """The partition the default partitioner (the API's and the agents') gives ``key``."""
        partitions = sorted(await self.producer.partitions_for(topic))
        return DefaultPartitioner()(key.encode(), partitions, partitions)

    async def send(self, topic: str, key: str, records: list[Bad]) -> None:
        partition = await self.partition_of(topic, key)
        self.partitions[topic] = partition
        for record in records:
            sent = await self.producer.send_and_wait(topic, record.value, key=record.key, partition=partition)
            self.sent[f"{topic}/{partition}/{sent.offset}".encode()] = record
            self.last_offset[TopicPartition(topic, partition)] = sent.offset

    async def send_valid(self, topic: str, key: str, value: bytes) -> None:
        partition = await self.partition_of(topic, key)
        await self.producer.send_and_wait(topic, value, key=key.encode(), partition=partition)

    async def dead_lettered(self, timeout_s: float = 60) -> dict[bytes, Any]:
        """Every dead letter from the partitions written to, by source, once all sent are there."""
        found: dict[bytes, Any] = {}
        mine = tuple(f"{topic}/{p}/".encode() for topic, p in self.partitions.items())
        deadline = time.monotonic() + timeout_s
        while not self.sent.keys() <= found.keys() and time.monotonic() < deadline:
            for records in (await self.consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    source = dict(record.headers).get("source", b"")
                    if source.startswith(mine):
                        found[source] = record
        return found

    def check(self, found: dict[bytes, Any]) -> None:
        missing = [self.sent[s].what for s in self.sent if s not in found]
        assert not missing, f"never dead-lettered: {missing}"
        unexpected = sorted(set(found) - set(self.sent))
        assert not unexpected, f"dead-lettered, but valid: {unexpected}"
        for source, bad in self.sent.items():
            record = found[source]
            headers = dict(record.headers)
            assert bad.error in headers["error"].decode(), (bad.what, headers["error"])
            assert record.value == bad.value and record.key == bad.key, bad.what

    async def committed_past(self, group: str, timeout_s: float = 30) -> dict[TopicPartition, int]:
        """The group's committed offsets, once each is past the last record sent to its partition."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap_servers,
                                    group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                committed = {tp: await consumer.committed(tp) for tp in self.last_offset}
                if all((committed[tp] or 0) > last for tp, last in self.last_offset.items()) \
                        or time.monotonic() > deadline:
                    return committed
                await asyncio.sleep(0.5)
        finally:
            await stop_consumer(consumer)


def _figures(totals: dict) -> tuple[int, int, int, int]:
    return totals["available"], totals["reserved"], totals["total"], totals.get("incoming", 0)


def _assert_committed_past(committed: dict[TopicPartition, int], traffic: Traffic) -> None:
    for tp, last in traffic.last_offset.items():
        assert committed[tp] is not None and committed[tp] > last, (tp, committed[tp], last)


# ------------------------------------------------------------------------------ command topics
def _bad_stock_commands(sku: str) -> list[Bad]:
    key = sku.encode()
    reserve = Reserve(reservation_id=_id(), order_id="stray", warehouse="default", quantity=1)
    return _garbage(key) + [
        Bad("an order command", key, _order_command(sku), "UnknownSchemaError"),
        Bad("a stock event", key, _stock_event(sku), "UnknownSchemaError"),
        Bad("key is another SKU's", key, _stock_command(new_sku(), reserve), "is not the command's SKU"),
        Bad("empty command id", key, _stock_command(sku, reserve, command_id=""), "command id is empty"),
        Bad("empty SKU", b"", _stock_command("", reserve), "SKU is empty"),
        Bad("no key", None, _stock_command(sku, reserve), "None is not the command's SKU"),
        Bad("a tick off the clock", key, _stock_command(sku, Tick()), "only a Tick"),
        # Decodes and is decided, but its level would pass Avro's long: the worker used to stop
        # on it (exit 70) and again on every restart.
        Bad("incoming past 2**63", key, _stock_command(sku, AnnounceIncoming("default", 2**63 - 1, _now_ms())),
            "OverflowError"),
    ]


async def test_bad_stock_commands_between_valid_ones_are_dead_lettered_and_the_worker_keeps_on(
        client, settings, engine, worker):
    pid = worker.proc.pid
    sku = await create_stocked_product(client, 10)
    announced = await client.post(f"/inventory/{sku}/incoming", json={
        "warehouse_id": "default", "quantity": 5, "expected_at": "2030-03-01"})
    assert announced.status_code == 201, announced.text
    async with Traffic(settings, STOCK_COMMANDS_DLQ) as traffic:
        await traffic.send(STOCK_COMMANDS, sku, _bad_stock_commands(sku))
        first = await client.post("/reservations", json={"product_id": sku, "order_id": "o-1", "quantity": 3})
        assert first.status_code == 201, first.text
        # A domain refusal is an event (the API answers it), never a dead letter.
        short = await client.post("/reservations", json={"product_id": sku, "order_id": "o-2", "quantity": 100})
        assert short.status_code == 409, short.text
        await traffic.send(STOCK_COMMANDS, sku, _bad_stock_commands(sku))
        direct = _id()  # a valid command produced by an upstream system, between bad ones
        await traffic.send_valid(STOCK_COMMANDS, sku, _stock_command(sku, Reserve(
            reservation_id=direct, order_id="o-3", warehouse="default", quantity=1)))
        await traffic.send(STOCK_COMMANDS, sku, _garbage(sku.encode()))
        last = await client.post("/reservations", json={"product_id": sku, "order_id": "o-4", "quantity": 2})
        assert last.status_code == 201, last.text

        traffic.check(await traffic.dead_lettered())
        _assert_committed_past(await traffic.committed_past(settings.app_id), traffic)

    assert (await get_when(client, f"/reservations/{direct}", lambda r: r["state"] == "PENDING"))["state"] == "PENDING"
    totals = (await client.get(f"/inventory/{sku}")).json()["totals"]
    # The overflowing announcements left nothing behind: 5 incoming units, as announced.
    assert _figures(totals) == (4, 6, 10, 5), totals
    assert worker.alive and worker.proc.pid == pid, "the worker restarted"
    await assert_invariants(settings, engine, [sku])


def _new_warehouse_id() -> str:
    return f"wh-{uuid.uuid4().hex[:10]}"


def _bad_warehouse_commands(warehouse: str) -> list[Bad]:
    key = warehouse.encode()
    return _garbage(key) + [
        Bad("a stock command", key, _stock_command(warehouse, Tick()), "UnknownSchemaError"),
        Bad("a warehouse event", key, _warehouse_event(warehouse), "UnknownSchemaError"),
        Bad("key is another warehouse's", key, _warehouse_command(_new_warehouse_id()),
            "is not the command's warehouse"),
        Bad("empty command id", key, _warehouse_command(warehouse, command_id=""), "command id is empty"),
        Bad("empty warehouse", b"", _warehouse_command(""), "warehouse is empty"),
    ]


async def test_bad_warehouse_commands_between_receipts_are_dead_lettered_and_the_worker_keeps_on(
        client, settings, engine, worker):
    pid = worker.proc.pid
    warehouse = _new_warehouse_id()
    created = await client.post("/warehouses", json={
        "warehouse_id": warehouse, "name": "dead letters", "location": "here", "capacity": 100})
    assert created.status_code == 201, created.text
    async with Traffic(settings, WAREHOUSE_COMMANDS_DLQ) as traffic:
        await traffic.send(WAREHOUSE_COMMANDS, warehouse, _bad_warehouse_commands(warehouse))
        sku = await create_stocked_product(client, 4, warehouse)  # a receipt through the ledger
        await traffic.send(WAREHOUSE_COMMANDS, warehouse, _bad_warehouse_commands(warehouse))
        more = await client.post(f"/inventory/{sku}/update", json={
            "quantity_change": 3, "reason": "receipt", "warehouse": warehouse})
        assert more.status_code == 200, more.text
        await traffic.send(WAREHOUSE_COMMANDS, warehouse, _garbage(warehouse.encode()))
        too_much = await client.post(f"/inventory/{sku}/update", json={
            "quantity_change": 1000, "reason": "receipt", "warehouse": warehouse})
        assert too_much.status_code == 409, too_much.text  # refused by the ledger: an event

        traffic.check(await traffic.dead_lettered())
        _assert_committed_past(await traffic.committed_past(settings.app_id), traffic)

    ledger = await get_when(client, f"/warehouses/{warehouse}", lambda b: b["stored"] == 7 and b["held"] == 0)
    assert (ledger["stored"], ledger["held"]) == (7, 0)
    assert worker.alive and worker.proc.pid == pid, "the worker restarted"
    await assert_invariants(settings, engine, [sku])


def _bad_order_commands(order: str) -> list[Bad]:
    key = order.encode()
    return _garbage(key) + [
        Bad("a stock event", key, _stock_event(order), "UnknownSchemaError"),
        Bad("a stock command", key, _stock_command(order, Tick()), "UnknownSchemaError"),
        Bad("key is another order's", key, _order_command(f"order-{_id()}"), "is not the command's order"),
        # Applied, it would cancel the order.
        Bad("empty command id", key, _order_command(order, command_id=""), "command id is empty"),
        Bad("empty order id", b"", _order_command(""), "order is empty"),
    ]


async def test_bad_order_commands_between_an_orders_steps_are_dead_lettered_and_the_worker_keeps_on(
        client, settings, engine, worker):
    pid = worker.proc.pid
    sku = await create_stocked_product(client, 5)
    order = f"order-{_id()}"
    async with Traffic(settings, ORDER_COMMANDS_DLQ) as traffic:
        await traffic.send(ORDER_COMMANDS, order, _bad_order_commands(order))
        placed = await client.post("/orders", json={
            "order_id": order, "customer": "c", "lines": [{"product_id": sku, "quantity": 2}]})
        assert placed.status_code == 201 and placed.json()["status"] == "RESERVED", placed.text
        await traffic.send(ORDER_COMMANDS, order, _bad_order_commands(order))
        fulfilled = await client.post(f"/orders/{order}/fulfil")
        assert fulfilled.status_code == 200 and fulfilled.json()["status"] == "FULFILLED", fulfilled.text
        await traffic.send(ORDER_COMMANDS, order, _garbage(order.encode()))
        # Valid, and refused by the order (it shipped): an event, not a dead letter.
        await traffic.send_valid(ORDER_COMMANDS, order, _order_command(order))
        await traffic.send(ORDER_COMMANDS, order, _garbage(order.encode()))

        traffic.check(await traffic.dead_lettered())
        _assert_committed_past(await traffic.committed_past(settings.app_id), traffic)

    assert (await client.get(f"/orders/{order}")).json()["status"] == "FULFILLED"
    totals = (await client.get(f"/inventory/{sku}")).json()["totals"]
    assert _figures(totals) == (3, 0, 3, 0), totals
    assert worker.alive and worker.proc.pid == pid, "the worker restarted"
    await assert_invariants(settings, engine, [sku])


# ------------------------------------------------------------------------ events, to the ledger
def _bad_stock_events(sku: str) -> list[Bad]:
    key = sku.encode()
    ghost = new_sku("ghost")
    return _garbage(key) + [
        Bad("a stock command", key, _stock_command(sku, Tick()), "UnknownSchemaError"),
        Bad("an order event", key, _order_event(sku), "UnknownSchemaError"),
        Bad("key is another SKU's", key, _stock_event(new_sku()), "is not the event's"),
        Bad("empty event id", key, _stock_event(sku, event_id=""), "event id is empty"),
        # Well formed and keyed right, but PostgreSQL refuses them: an event id that is no
        # UUID, a level with more reserved than on hand. Either used to stop the ledger for good.
        Bad("event id not a UUID", ghost.encode(), _stock_event(ghost, event_id="not-a-uuid"), "invalid UUID"),
        Bad("oversold level", ghost.encode(), _stock_event(ghost, on_hand=0, reserved=5),
            "levels_never_oversold"),
    ]


def _bad_warehouse_events(warehouse: str) -> list[Bad]:
    key = warehouse.encode()
    ghost = _new_warehouse_id()
    return _garbage(key) + [
        Bad("a stock event", key, _stock_event(warehouse), "UnknownSchemaError"),
        Bad("key is another warehouse's", key, _warehouse_event(_new_warehouse_id()), "is not the event's"),
        Bad("stored over capacity", ghost.encode(), _warehouse_event(ghost, stored=50, capacity=10),
            "warehouses_within_capacity"),
    ]


def _bad_order_events(order: str) -> list[Bad]:
    # Without a key, on the order's partition: the invariants read every keyed order event and
    # would stop at an undecodable one (chaos/invariants.py read_log). So no tombstone here
    # either: Kafka takes none without a key.
    return [bad for bad in _garbage(None) if bad.value is not None] + [
        Bad("a warehouse command", None, _warehouse_command(order), "UnknownSchemaError"),
        Bad("key is another order's", order.encode(), _order_event(f"order-{_id()}"), "is not the event's"),
    ]


async def test_bad_event_records_between_real_traffic_are_dead_lettered_and_the_ledger_keeps_on(
        client, settings, engine, ledger):
    pid = ledger.proc.pid
    sku = await create_stocked_product(client, 10)
    warehouse = _new_warehouse_id()
    created = await client.post("/warehouses", json={
        "warehouse_id": warehouse, "name": "dead letters", "location": "here", "capacity": 100})
    assert created.status_code == 201, created.text
    order = f"order-{_id()}"
    async with Traffic(settings, STOCK_EVENTS_DLQ) as traffic:
        await traffic.send(STOCK_EVENTS, sku, _bad_stock_events(sku))
        await traffic.send(WAREHOUSE_EVENTS, warehouse, _bad_warehouse_events(warehouse))
        await traffic.send(ORDER_EVENTS, order, _bad_order_events(order))
        # The API answers once the ledger persisted the outcome: each is a valid event after bad ones.
        reserved = await client.post("/reservations", json={"product_id": sku, "order_id": "o-1", "quantity": 3})
        assert reserved.status_code == 201, reserved.text
        stored = await create_stocked_product(client, 4, warehouse)
        placed = await client.post("/orders", json={
            "order_id": order, "customer": "c", "lines": [{"product_id": sku, "quantity": 2}]})
        assert placed.status_code == 201 and placed.json()["status"] == "RESERVED", placed.text

        await traffic.send(STOCK_EVENTS, sku, _bad_stock_events(sku))
        await traffic.send(WAREHOUSE_EVENTS, warehouse, _bad_warehouse_events(warehouse))
        await traffic.send(ORDER_EVENTS, order, _bad_order_events(order))
        fulfilled = await client.post(f"/orders/{order}/fulfil")
        assert fulfilled.status_code == 200 and fulfilled.json()["status"] == "FULFILLED", fulfilled.text
        more = await client.post(f"/inventory/{stored}/update", json={
            "quantity_change": 3, "reason": "receipt", "warehouse": warehouse})
        assert more.status_code == 200, more.text

        traffic.check(await traffic.dead_lettered())
        _assert_committed_past(await traffic.committed_past(ledger_group(settings)), traffic)

    assert (await client.get(f"/orders/{order}")).json()["status"] == "FULFILLED"
    totals = (await client.get(f"/inventory/{sku}")).json()["totals"]
    assert _figures(totals) == (5, 3, 8, 0), totals
    ledger_now = await get_when(client, f"/warehouses/{warehouse}", lambda b: b["stored"] == 7)
    assert (ledger_now["stored"], ledger_now["held"]) == (7, 0)
    assert ledger.alive and ledger.proc.pid == pid, "the ledger worker restarted"
    await assert_invariants(settings, engine, [sku, stored])
