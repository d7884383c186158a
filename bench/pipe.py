"""A client of the command log: send a command keyed by SKU, await the record that answers it.

The answer is matched by command id on the output topic, read from its end by a group-less
consumer, so any number of these clients can watch one topic without moving anyone's offsets.

With ``ledger=True`` (the real pipeline), a receipt (a positive ``AdjustStock``) goes where it
must: to its warehouse's capacity ledger as a ``ReceiveStock`` with the same command id. It is
answered by the stock event of that id, or by the ledger's refusal (``warehouse-events``).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas import command_codec, event_codec, warehouse_command_codec, warehouse_event_codec
from streams.stock.records import AdjustStock, Command, CommandBody, command_to_avro
from streams.topics import WAREHOUSE_COMMANDS, WAREHOUSE_EVENTS
from streams.warehouses.records import (
    ReceiveStock,
    WarehouseCommand,
    WarehouseCommandBody,
    warehouse_command_to_avro,
)

__all__ = ["Answer", "Pipe", "event_answer", "echo_answer", "ledger_answer"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Answer:
    command_id: str
    kind: str          # the event (or, for the raw loop, the echoed command) body's type
    latency_s: float


def _body_kind(record: dict[str, Any]) -> str:
    return record["body"][0].rsplit(".", 1)[-1]


def event_answer() -> Callable[[bytes], tuple[str, str]]:
    """Reads a stock event: (command id, event type)."""
    codec = event_codec()

    def read(value: bytes) -> tuple[str, str]:
        record = codec.decode(value)
        return record["command_id"], _body_kind(record)
    return read


_ECHO_KINDS = {"Reserve": "Reserved", "Release": "Released", "CreateProduct": "ProductCreated",
               "AdjustStock": "StockAdjusted", "Commit": "Committed"}


def echo_answer() -> Callable[[bytes], tuple[str, str]]:
    """Reads the raw loop's echo of a command (padded to an event's size in a header) as if it were decided."""
    codec = command_codec()

    def read(value: bytes) -> tuple[str, str]:
        record = codec.decode(value)
        return record["command_id"], _ECHO_KINDS[_body_kind(record)]
    return read


def ledger_answer() -> Callable[[bytes], tuple[str, str]]:
    """Reads a warehouse ledger's event: (command id, kind); raises for a SpaceHeld, as a receipt
    whose space was held is answered by its stock event."""
    codec = warehouse_event_codec()

    def read(value: bytes) -> tuple[str, str]:
        record = codec.decode(value)
        if record["kind"] == "SpaceHeld":
            raise LookupError("not an answer")
        return record["command_id"], record["kind"]
    return read


class Pipe:
    def __init__(self, bootstrap: str, commands: str, answers: str,
                 read_answer: Callable[[bytes], tuple[str, str]], sender: str = "bench",
                 ledger: bool = False) -> None:
        self.bootstrap, self.commands, self.answers = bootstrap, commands, answers
        self.readers = {answers: read_answer, **({WAREHOUSE_EVENTS: ledger_answer()} if ledger else {})}
        self.ledger = ledger
        self.sender = sender
        self.codec = command_codec()
        self.ledger_codec = warehouse_command_codec()
        self.pending: dict[str, tuple[asyncio.Future, float]] = {}
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                         enable_idempotence=True, linger_ms=1)
        # Committed decisions only, as every reader of the stock worker's transactions.
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                         enable_auto_commit=False, fetch_max_wait_ms=10,
                                         isolation_level="read_committed")
        self._reader: asyncio.Task | None = None

    async def start(self) -> None:
        await self.producer.start()
        await self.consumer.start()
        tps = [tp for topic in self.readers for tp in await self._partitions(topic)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the positions now, before any command is sent
            await self.consumer.position(tp)
        self._reader = asyncio.create_task(self._read())

    async def _partitions(self, topic: str) -> list[TopicPartition]:
        partitions = self.consumer.partitions_for_topic(topic)
        if not partitions:
            await self.consumer._client.force_metadata_update()
            partitions = self.consumer.partitions_for_topic(topic) or set()
        return [TopicPartition(topic, p) for p in sorted(partitions)]

    async def stop(self) -> None:
        if self._reader:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self.producer.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await self.consumer.stop()

    async def _read(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=50, max_records=20_000)
            now = time.perf_counter()
            for tp, records in batches.items():
                read = self.readers[tp.topic]
                for record in records:
                    self._resolve(read, record.value, now)

    def _resolve(self, read: Callable[[bytes], tuple[str, str]], value: bytes, now: float) -> None:
        try:
            command_id, kind = read(value)
        except Exception:  # not ours to judge here: count nothing, keep reading
            return
        waiting = self.pending.pop(command_id, None)
        if waiting is None:
            return
        future, sent_at = waiting
        if not future.done():
            future.set_result(Answer(command_id, kind, now - sent_at))

    def encode(self, command_id: str, sku: str, body: CommandBody) -> bytes:
        command = Command(command_id=command_id, sku=sku, issued_at=int(time.time() * 1000),
                          body=body, sender=self.sender)
        return self.codec.encode(command_to_avro(command))

    def route(self, command_id: str, sku: str, body: CommandBody) -> tuple[str, str, bytes]:
        """(topic, key, value) of the command: a receipt goes to its warehouse's ledger."""
        if not (self.ledger and isinstance(body, AdjustStock) and body.quantity > 0 and not body.hold_id):
            return self.commands, sku, self.encode(command_id, sku, body)
        receipt = WarehouseCommand(command_id, body.warehouse, int(time.time() * 1000),
                                   ReceiveStock(sku, body.quantity, body.reason), self.sender)
        return WAREHOUSE_COMMANDS, body.warehouse, self.ledger_codec.encode(warehouse_command_to_avro(receipt))

    async def call_ledger(self, command_id: str, warehouse_id: str, body: WarehouseCommandBody,
                          timeout_s: float = 30.0) -> Answer | None:
        """Send a command to a warehouse's capacity ledger (``ledger=True``) and await its answer."""
        future = asyncio.get_running_loop().create_future()
        self.pending[command_id] = (future, time.perf_counter())
        command = WarehouseCommand(command_id, warehouse_id, int(time.time() * 1000), body, self.sender)
        try:
            await self.producer.send_and_wait(WAREHOUSE_COMMANDS, key=warehouse_id.encode(),
                                              value=self.ledger_codec.encode(warehouse_command_to_avro(command)))
            return await asyncio.wait_for(future, timeout_s)
        except asyncio.TimeoutError:
            return None
        finally:
            self.pending.pop(command_id, None)

    async def call(self, command_id: str, sku: str, body: CommandBody, timeout_s: float = 30.0,
                   sent_at: float | None = None, on_accepted: Callable[[], None] | None = None
                   ) -> Answer | None:
        """The answer to the command, or None if none came within ``timeout_s``.

        With ``on_accepted``, the send is awaited until the broker acknowledges it (acks=all) and
        ``on_accepted`` is called then; a failed send raises ``KafkaError``."""
        future = asyncio.get_running_loop().create_future()
        self.pending[command_id] = (future, sent_at if sent_at is not None else time.perf_counter())
        topic, key, value = self.route(command_id, sku, body)
        try:
            delivery = await self.producer.send(topic, key=key.encode(), value=value)
            if on_accepted is not None:
                await delivery
                on_accepted()
        except BaseException:
            self.pending.pop(command_id, None)
            raise
        try:
            return await asyncio.wait_for(future, timeout_s)
        except asyncio.TimeoutError:
            return None
        finally:
            self.pending.pop(command_id, None)
