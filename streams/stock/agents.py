"""The stock agent: the single writer of every SKU on its partitions.

Thin glue around ``StockStore``: take a batch of command records, decide them in log order per
partition against a ``TableBatch`` over the partition's table, then send the batch's changelog
records and the decision events straight to the producer. A record that cannot be decoded goes
to the dead-letter topic with the reason in its headers, and the agent carries on.

Why not ``table[key] = value`` per write: faust then builds a future, a buffered message and a
serialisation per write, and a command makes four of them; profiles put most of the worker's
time there (bench/README.md). The records sent here are the ones faust would send, to the same
changelog partition, and faust flushes the producer before it commits the command offsets, so
the crash behaviour ``store.py`` relies on is unchanged.
"""
from __future__ import annotations

import json
import logging
from itertools import groupby
from typing import Any, Sequence

from common.errors import InventoryError, MalformedRecordError
from schemas import command_codec, event_codec
from streams.app import app, settings, stock_commands, stock_commands_dlq
from streams.stock.batch import DELETED, TableBatch
from streams.stock.records import Command, command_from_avro, event_to_avro
from streams.stock.store import StockStore
from streams.topics import STOCK_EVENTS, STOCK_TABLE, changelog_topic

__all__ = ["stock_table", "process_stock_commands", "decode_command", "decide_batch"]

log = logging.getLogger(__name__)
_commands = command_codec()
_events = event_codec()
_changelog = changelog_topic(settings)

stock_table = app.Table(STOCK_TABLE, partitions=settings.topic_partitions, key_type=str)


def decode_command(key: bytes | None, value: bytes | None) -> Command:
    data = _commands.decode(value or b"")
    try:
        command = command_from_avro(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedRecordError(f"command does not map onto the domain: {exc}") from exc
    if key is None or key.decode("utf-8", "replace") != command.sku:
        # The key decides the partition and so the writer: a mismatch would break single-writer.
        raise MalformedRecordError(f"record key {key!r} is not the command's SKU {command.sku!r}")
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


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


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


async def _write(partition: int, batch: TableBatch) -> None:
    """Applies the batch to the local table and sends the same records to its changelog."""
    local, producer = stock_table.data, app.producer
    for key, value in batch.writes():
        if value is DELETED:
            local.pop(key, None)
            await producer.send(_changelog, _json(key), None, partition, None, None)
        else:
            local[key] = value
            await producer.send(_changelog, _json(key), _json(value), partition, None, None)


@app.agent(stock_commands)
async def process_stock_commands(stream):
    async for events in stream.take_events(settings.command_batch_size,
                                           within=settings.command_batch_seconds):
        # A stable sort keeps each partition's records in log order.
        ordered = sorted(events, key=lambda e: e.message.partition)
        for partition, records in groupby(ordered, key=lambda e: e.message.partition):
            batch = TableBatch(stock_table.data)
            decided = await decide_batch(StockStore(batch, window=settings.dedup_window), list(records))
            await _write(partition, batch)
            for key, value in decided:
                await app.producer.send(STOCK_EVENTS, key, value, None, None, None)
