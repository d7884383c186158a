"""The ledger worker: every stock, warehouse and order event into PostgreSQL, a batch at a time,
as one consumer group.

A plain aiokafka consumer group, not a faust agent: the sink keeps no table, and faust's
per-record path (its consumer thread, stream, codec and acks) cost about 1 ms of CPU per event.
On two cores that CPU came straight out of the stock worker's decisions (bench/README.md). Here a
batch costs one fetch, a decode per record (with its topic's codec), one PostgreSQL transaction
per area present (stock, warehouse ledger and order events) and one offset commit.

At-least-once: a batch's offsets are committed only after PostgreSQL has all of it, and a
redelivered batch changes nothing (``storage/sink.py`` upserts by event id and version). A record
of any of the three topics that cannot be decoded, breaks the topic's contract (its key is not the
event's SKU, warehouse or order; an empty event id) or that PostgreSQL refuses (a constraint, a
value out of range) goes to ``stock-events-dlq`` with the reason and its source
(topic/partition/offset); the worker carries on and its offsets move past it. Such records come
from stray producers: the agents write these topics keyed by the event's entity.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from collections import Counter as Tally
from typing import Any, Awaitable, Callable, Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from asyncpg.exceptions._base import DataError as ArgumentError  # the client-side one, not SQLSTATE 22000

from common.settings import Settings
from schemas import AvroCodec, event_codec, order_event_codec, warehouse_event_codec
from storage.db import create_engine
from storage.sink import EventSink, ReadCacheInvalidator
from streams.metrics import dead_lettered, serve_metrics, set_lag, sink_batch_done
from streams.stock.records import Event, event_from_avro
from streams.orders.records import OrderEvent, order_event_from_avro
from streams.topics import ORDER_EVENTS, STOCK_EVENTS, STOCK_EVENTS_DLQ, WAREHOUSE_EVENTS
from streams.warehouses.records import WarehouseEvent, warehouse_event_from_avro

__all__ = ["LedgerWorker", "ledger_group", "event_contract_violation", "refused_by_postgres", "run"]

log = logging.getLogger(__name__)


def ledger_group(settings: Settings) -> str:
    return f"{settings.app_id}-ledger"


def _source(record: ConsumerRecord) -> bytes:
    return f"{record.topic}/{record.partition}/{record.offset}".encode()


def event_contract_violation(key: bytes | None, event: Event | WarehouseEvent | OrderEvent) -> str | None:
    """Why a decoded event breaks its topic's contract, or None: its agent keys it by its
    entity, so another key (or an empty event id, the sink's upsert key) is a stray record."""
    if not event.event_id:
        return "the event id is empty"
    entity = event.sku if isinstance(event, Event) else (
        event.warehouse_id if isinstance(event, WarehouseEvent) else event.order_id)
    if key is None or key.decode("utf-8", "replace") != entity:
        return f"record key {key!r} is not the event's {entity!r}"
    return None


def refused_by_postgres(exc: BaseException) -> bool:
    """PostgreSQL (or its driver) refused the data itself: a constraint (SQLSTATE class 23), a
    data exception (class 22: out of range, invalid text), or an argument the driver cannot
    encode. Anything else (a lost connection, a deadlock) is not the record's fault."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:  # the driver's error hides under SQLAlchemy's (``orig``) and their causes
        error = stack.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, ArgumentError) or str(getattr(error, "sqlstate", "") or "")[:2] in ("22", "23"):
            return True
        stack += [getattr(error, "orig", None), error.__cause__, error.__context__]
    return False


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
        self._dead_letters: Tally[tuple[str, int]] = Tally()  # the current batch's, per partition
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
            await self._commit_due()  # an idle worker still commits its last batch's offsets
            return 0
        events, malformed = self._decode(records)
        bad = {id(record) for record, _ in malformed}
        decoded, refused = [], []
        for record, event in zip([r for r in records if id(r) not in bad], events):
            problem = event_contract_violation(record.key, event)
            if problem:
                refused.append((record, problem))
            else:
                decoded.append((record, event))
        for record, reason in malformed + refused:
            await self._dead_letter(record, reason)
        started = time.perf_counter()
        await self._persist(decoded, Event, self.sink.write)
        await self._persist(decoded, WarehouseEvent, self.sink.write_warehouse_events)
        await self._persist(decoded, OrderEvent, self.sink.write_order_events)
        await self._observe(batches, time.perf_counter() - started)
        self._pending.update({tp: rs[-1].offset + 1 for tp, rs in batches.items()})
        await self._commit_due()
        return len(records)

    async def _observe(self, batches: dict[TopicPartition, list[ConsumerRecord]], seconds: float) -> None:
        """The batch's metrics: events persisted per topic, the write's time, each partition's lag."""
        sink_batch_done(batches, self._dead_letters, seconds)
        self._dead_letters.clear()
        for tp in batches:
            try:
                set_lag(tp.topic, tp.partition, self.consumer.highwater(tp), await self.consumer.position(tp))
            except (AssertionError, IllegalStateError):  # revoked meanwhile: its new reader reports it
                pass

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
            except Exception as exc:  # SchemaError, or a record that does not map onto the domain
                malformed.append((record, f"{type(exc).__name__}: {exc}"))
        return events, malformed

    async def _persist(self, decoded: list[tuple[ConsumerRecord, Any]], kind: type,
                       write: Callable[[list[Any]], Awaitable[None]]) -> None:
        """One transaction for the batch's events of ``kind``. If PostgreSQL refuses it, one per
        event, in log order (the same result: the sink upserts by id and version), so that only
        the event it refuses is dead-lettered and the others are not held up behind it."""
        pairs = [(record, event) for record, event in decoded if isinstance(event, kind)]
        try:
            await write([event for _, event in pairs])
            return
        except Exception as exc:
            if not refused_by_postgres(exc):
                raise
            log.warning("PostgreSQL refused a batch; writing its events one by one",
                        extra={"error": str(exc)})
        for record, event in pairs:
            try:
                await write([event])
            except Exception as exc:
                if not refused_by_postgres(exc):
                    raise
                await self._dead_letter(record, f"{type(exc).__name__}: {exc}")

    async def _dead_letter(self, record: ConsumerRecord, reason: str) -> None:
        headers = [("error", reason.encode()), ("source", _source(record))]
        await self.producer.send_and_wait(STOCK_EVENTS_DLQ, record.value, key=record.key, headers=headers)
        self._dead_letters[record.topic, record.partition] += 1
        dead_lettered(STOCK_EVENTS_DLQ)
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
    serve_metrics(settings.metrics_host, settings.ledger_metrics_port, "ledger")
    # The API's read cache is invalidated before each commit (api/cache.py).
    sink = EventSink(create_engine(settings.database_url, pool_size=2),
                     cache=ReadCacheInvalidator.from_settings(settings))
    worker = LedgerWorker(settings, sink)
    await worker.run(stop)
    await sink.cache.redis.aclose()


def run(args: Iterable[str], settings: Settings) -> None:
    """``python -m streams ledger [--loglevel LEVEL]``."""
    options = _parse(args, settings)
    logging.getLogger().setLevel(options.loglevel)
    asyncio.run(_serve(settings))
