"""The ledger worker: every stock, warehouse and order event into PostgreSQL, a batch at a time,
as one consumer group.

A plain aiokafka consumer group, not a faust agent: the sink keeps no table, and faust's
per-record path (its consumer thread, stream, codec and acks) cost about 1 ms of CPU per event.
On two cores that CPU came straight out of the stock worker's decisions (bench/README.md). Here a
batch costs one fetch, a decode per record (with its topic's codec), one PostgreSQL transaction
per area present (stock, warehouse ledger and order events) and one offset commit.

At-least-once: a batch's offsets are committed only after PostgreSQL has all of it, and a
redelivered batch changes nothing (``storage/sink.py`` upserts by event id and version). A record
that cannot be decoded, of either topic, goes to ``stock-events-dlq`` with the reason and its
source (topic/partition/offset), and the worker carries on.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from typing import Any, Callable, Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from common.errors import SchemaError
from common.settings import Settings
from schemas import AvroCodec, event_codec, order_event_codec, warehouse_event_codec
from storage.db import create_engine
from storage.sink import EventSink
from streams.stock.records import Event, event_from_avro
from streams.orders.records import OrderEvent, order_event_from_avro
from streams.topics import ORDER_EVENTS, STOCK_EVENTS, STOCK_EVENTS_DLQ, WAREHOUSE_EVENTS
from streams.warehouses.records import WarehouseEvent, warehouse_event_from_avro

__all__ = ["LedgerWorker", "ledger_group", "run"]

log = logging.getLogger(__name__)


def ledger_group(settings: Settings) -> str:
    return f"{settings.app_id}-ledger"


def _source(record: ConsumerRecord) -> bytes:
    return f"{record.topic}/{record.partition}/{record.offset}".encode()


def _decoders() -> dict[str, tuple[AvroCodec, Callable[[Any], Event | WarehouseEvent | OrderEvent]]]:
    """Per topic read: its codec and the mapping onto its domain's event."""
    return {STOCK_EVENTS: (event_codec(), event_from_avro),
            WAREHOUSE_EVENTS: (warehouse_event_codec(), warehouse_event_from_avro),
            ORDER_EVENTS: (order_event_codec(), order_event_from_avro)}


class LedgerWorker:
    """Fetch a batch, persist it, commit its offsets; until told to stop."""

    def __init__(self, settings: Settings, sink: EventSink) -> None:
        self.settings, self.sink = settings, sink
        self._decoders = _decoders()
        self.consumer = AIOKafkaConsumer(
            *self._decoders,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=ledger_group(settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # The agents commit their events in transactions; an aborted one
            # (a fenced previous owner's, streams/partition/owner.py) must never reach the ledger.
            isolation_level="read_committed",
            max_poll_records=settings.sink_batch_size,
            # The same trap as the stock worker's (streams/tuning.py): a long-held fetch on quiet
            # partitions would delay the busy ones.
            fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
            session_timeout_ms=int(settings.broker_session_timeout_s * 1000),
            heartbeat_interval_ms=int(min(3.0, settings.broker_session_timeout_s / 3) * 1000),
        )
        self._pending: dict[TopicPartition, int] = {}
        self._committed_at = time.monotonic()
        self.producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")

    async def run(self, stop: asyncio.Event) -> None:
        await self.producer.start()
        await self.consumer.start()
        log.info("ledger worker started", extra={"group": ledger_group(self.settings)})
        try:
            while not stop.is_set():
                await self.step()
            await self._commit_due(force=True)
        finally:
            await self.consumer.stop()
            await self.producer.stop()
            await self.sink.engine.dispose()

    async def step(self) -> int:
        """One batch: up to ``sink_batch_size`` records, gathered for at most ``sink_batch_seconds``."""
        batches = await self._gather()
        records = [r for rs in batches.values() for r in rs]
        if not records:
            return 0
        events, malformed = self._decode(records)
        for record, reason in malformed:
            await self._dead_letter(record, reason)
        await self.sink.write([e for e in events if isinstance(e, Event)])
        await self.sink.write_warehouse_events([e for e in events if isinstance(e, WarehouseEvent)])
        await self.sink.write_order_events([e for e in events if isinstance(e, OrderEvent)])
        self._pending.update({tp: rs[-1].offset + 1 for tp, rs in batches.items()})
        await self._commit_due()
        return len(records)

    async def _gather(self) -> dict[TopicPartition, list[ConsumerRecord]]:
        # A PostgreSQL transaction costs about the same for 5 events as for 100: waiting a few
        # milliseconds for a fuller batch cut the ledger's CPU per event (bench/README.md).
        limit, window = self.settings.sink_batch_size, self.settings.sink_batch_seconds
        batches = await self.consumer.getmany(timeout_ms=200, max_records=limit)
        count, deadline = sum(map(len, batches.values())), time.monotonic() + window
        while count and count < limit and (left := deadline - time.monotonic()) > 0:
            more = await self.consumer.getmany(timeout_ms=int(left * 1000) + 1, max_records=limit - count)
            for tp, records in more.items():
                batches.setdefault(tp, []).extend(records)
                count += len(records)
        return batches

    def _decode(self, records: list[ConsumerRecord]
                ) -> tuple[list[Event | WarehouseEvent], list[tuple[ConsumerRecord, str]]]:
        events, malformed = [], []
        for record in records:
            codec, from_avro = self._decoders[record.topic]
            try:
                events.append(from_avro(codec.decode(record.value)))
            except (SchemaError, KeyError, TypeError, ValueError) as exc:
                malformed.append((record, f"{type(exc).__name__}: {exc}"))
        return events, malformed

    async def _dead_letter(self, record: ConsumerRecord, reason: str) -> None:
        headers = [("error", reason.encode()), ("source", _source(record))]
        await self.producer.send_and_wait(STOCK_EVENTS_DLQ, record.value, key=record.key, headers=headers)
        log.warning("dead-lettered an event record",
                    extra={"reason": reason, "topic": record.topic, "partition": record.partition,
                           "offset": record.offset})

    async def _commit_due(self, force: bool = False) -> None:
        """Commit what PostgreSQL has, at most every ``commit_interval_s``.

        An offset commit per batch (hundreds a second) kept the broker at a full core; the price
        of committing less often is only a longer (harmless) redelivery after a crash."""
        now = time.monotonic()
        if not self._pending or (not force and now - self._committed_at < self.settings.commit_interval_s):
            return
        offsets, self._pending, self._committed_at = self._pending, {}, now
        try:
            await self.consumer.commit(offsets)
        except KafkaError as exc:
            # A rebalance or a broker restart: the batch is in PostgreSQL already, and whoever
            # reads these partitions next re-persists it harmlessly.
            log.warning("offset commit failed; the batch may be redelivered", extra={"error": repr(exc)})


def _level(name: str) -> str:
    name = name.upper()
    return "WARNING" if name == "WARN" else name


def _parse(args: Iterable[str], settings: Settings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m streams ledger")
    parser.add_argument("--loglevel", "-l", default=settings.log_level, type=_level,
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser.parse_args(list(args))


async def _serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = LedgerWorker(settings, EventSink(create_engine(settings.database_url, pool_size=2)))
    await worker.run(stop)


def run(args: Iterable[str], settings: Settings) -> None:
    """``python -m streams ledger [--loglevel LEVEL]``."""
    options = _parse(args, settings)
    logging.getLogger().setLevel(options.loglevel)
    asyncio.run(_serve(settings))
