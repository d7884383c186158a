"""A client of the command log: send a command keyed by SKU, await the record that answers it.

The answer is matched by command id on the output topic, read from its end by a group-less
consumer, so any number of these clients can watch one topic without moving anyone's offsets.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas import command_codec, event_codec
from streams.stock.records import Command, CommandBody, command_to_avro

__all__ = ["Answer", "Pipe", "event_answer", "echo_answer"]

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
    """Reads the raw loop's echo of a command (padded to an event's size) as if it were decided."""
    codec = command_codec()

    def read(value: bytes) -> tuple[str, str]:
        record = codec.decode(value)  # the padding after the record is never read
        return record["command_id"], _ECHO_KINDS[_body_kind(record)]
    return read


class Pipe:
    def __init__(self, bootstrap: str, commands: str, answers: str,
                 read_answer: Callable[[bytes], tuple[str, str]], sender: str = "bench") -> None:
        self.bootstrap, self.commands, self.answers = bootstrap, commands, answers
        self.read_answer = read_answer
        self.sender = sender
        self.codec = command_codec()
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
        partitions = self.consumer.partitions_for_topic(self.answers)
        if not partitions:
            await self.consumer._client.force_metadata_update()
            partitions = self.consumer.partitions_for_topic(self.answers) or set()
        tps = [TopicPartition(self.answers, p) for p in sorted(partitions)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the positions now, before any command is sent
            await self.consumer.position(tp)
        self._reader = asyncio.create_task(self._read())

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
            for records in batches.values():
                for record in records:
                    self._resolve(record.value, now)

    def _resolve(self, value: bytes, now: float) -> None:
        try:
            command_id, kind = self.read_answer(value)
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

    async def call(self, command_id: str, sku: str, body: CommandBody, timeout_s: float = 30.0,
                   sent_at: float | None = None, on_accepted: Callable[[], None] | None = None
                   ) -> Answer | None:
        """The answer to the command, or None if none came within ``timeout_s``.

        With ``on_accepted``, the send is awaited until the broker acknowledges it (acks=all) and
        ``on_accepted`` is called then; a failed send raises ``KafkaError``."""
        future = asyncio.get_running_loop().create_future()
        self.pending[command_id] = (future, sent_at if sent_at is not None else time.perf_counter())
        value = self.encode(command_id, sku, body)
        try:
            delivery = await self.producer.send(self.commands, key=sku.encode(), value=value)
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
