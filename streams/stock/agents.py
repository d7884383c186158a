"""The stock agent: the single writer of every SKU on its partitions.

Thin glue around ``StockStore``: take a batch of command records, decide them in log order per
partition against a ``TableBatch`` over the partition's local state, send the batch's changelog
records and the decision events straight to the producer, and once the broker has acknowledged
the changelog records, write them to the local state (``streams/stock/local.py``). A record that
cannot be decoded goes to the dead-letter topic with the reason in its headers, and the agent
carries on.

Why not ``table[key] = value`` per write: faust then builds a future, a buffered message and a
serialisation per write, and a command makes four of them; profiles put most of the worker's
time there (bench/README.md). It would also write the local database before the changelog has
the record. The records sent here are the ones faust would send, to the same changelog
partition, and faust flushes the producer before it commits the command offsets, so the crash
behaviour ``store.py`` relies on is unchanged.
"""
from __future__ import annotations

import asyncio
import logging
from itertools import groupby
from typing import Awaitable, Sequence

from common.errors import InventoryError, MalformedRecordError
from schemas import command_codec, event_codec
from streams.app import app, settings, stock_commands, stock_commands_dlq
from streams.stock.batch import DELETED, TableBatch
from streams.stock.local import PartitionState, encode, write_acknowledged
from streams.stock.records import CLOCK_KEY, Command, Tick, command_from_avro, event_to_avro
from streams.stock.store import StockStore
from streams.topics import STOCK_EVENTS, STOCK_TABLE, changelog_topic

__all__ = ["stock_table", "process_stock_commands", "decode_command", "decide_batch"]

log = logging.getLogger(__name__)
_commands = command_codec()
_events = event_codec()
_changelog = changelog_topic(settings)

# On disk, one RocksDB per partition (streams/stock/local.py), with modest caches: the state is
# small per SKU, and several workers may share a machine.
stock_table = app.Table(STOCK_TABLE, partitions=settings.topic_partitions, key_type=str,
                        options={"driver": "rocksdict", "block_cache_size": 64 * 1024**2,
                                 "write_buffer_size": 16 * 1024**2, "max_write_buffer_number": 2})


def decode_command(key: bytes | None, value: bytes | None) -> Command:
    data = _commands.decode(value or b"")
    try:
        command = command_from_avro(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedRecordError(f"command does not map onto the domain: {exc}") from exc
    if key is None or key.decode("utf-8", "replace") != command.sku:
        # The key decides the partition and so the writer: a mismatch would break single-writer.
        raise MalformedRecordError(f"record key {key!r} is not the command's SKU {command.sku!r}")
    if (command.sku == CLOCK_KEY) != isinstance(command.body, Tick):
        raise MalformedRecordError(f"only a Tick goes to {CLOCK_KEY}, and only there")
    return command


async def _dead_letter(event, reason: str) -> None:
    message = event.message
    headers = [
        ("error", reason.encode()),
        ("source", f"{message.topic}/{message.partition}/{message.offset}".encode()),
    ]
    await stock_commands_dlq.send(key=event.key, value=event.value, headers=headers)
    log.warning("dead-lettered a command record", extra={"reason": reason, "offset": message.offset,
                                                         "partition": message.partition})


async def decide_batch(store: StockStore, events: Sequence) -> list[tuple[bytes, bytes]]:
    """Decides one partition's records in order; returns the (key, value) events to publish."""
    out: list[tuple[bytes, bytes]] = []
    for event in events:
        try:
            command = decode_command(event.key, event.value)
        except InventoryError as exc:
            await _dead_letter(event, f"{type(exc).__name__}: {exc}")
            continue
        try:
            facts = store.handle(command)
        except Exception as exc:  # a bug must not stop the partition; the record is kept
            log.exception("command failed", extra={"command_id": command.command_id})
            await _dead_letter(event, f"{type(exc).__name__}: {exc}")
            continue
        out.extend((fact.sku.encode(), _events.encode(event_to_avro(fact))) for fact in facts)
    return out


async def _send_changelog(partition: int, batch: TableBatch) -> list[Awaitable]:
    """Sends the batch's records to the partition's changelog; returns their acknowledgements."""
    send = app.producer.send
    acks = []
    for key, value in batch.writes():
        payload = None if value is DELETED else encode(value)
        acks.append(await send(_changelog, encode(key), payload, partition, None, None))
    return acks


def _partition_db(partition: int):
    # faust's RocksDB store opens (and on rebalance closes) one database per partition.
    return stock_table.data._db_for_partition(partition)


@app.agent(stock_commands)
async def process_stock_commands(stream):
    async for events in stream.take_events(settings.command_batch_size,
                                           within=settings.command_batch_seconds):
        # A stable sort keeps each partition's records in log order.
        ordered = sorted(events, key=lambda e: e.message.partition)
        sent = []
        for partition, records in groupby(ordered, key=lambda e: e.message.partition):
            db = _partition_db(partition)
            batch = TableBatch(PartitionState(db))
            decided = await decide_batch(StockStore(batch, window=settings.dedup_window), list(records))
            acks = await _send_changelog(partition, batch)
            for key, value in decided:
                await app.producer.send(STOCK_EVENTS, key, value, None, None, None)
            sent.append((db, batch.writes(), acks))
        # Written locally only once the broker has the records (streams/stock/local.py).
        for db, writes, acks in sent:
            offsets = [metadata.offset for metadata in await asyncio.gather(*acks)]
            write_acknowledged(db, stock_table.data.offset_key, writes, offsets)
