"""The stock agent: the single writer of every SKU on its partitions.

Thin glue around ``StockStore``: take a batch of command records, decide them in log order per
partition against a ``TableBatch`` over the partition's local state, and commit each partition's
changelog records, decision events and dead letters in one transaction of the partition's own,
fenced producer (``streams/stock/owner.py``); once committed, the records go to the local state.
A record that cannot be decoded goes to the dead-letter topic with the reason in its headers, and
the agent carries on.

faust runs the consumer group and the batching; the table is not a faust Table: faust would
write each value locally before the changelog has it, cannot fence a previous owner, and its
per-record recovery took two minutes for 100,000 SKUs (bench/README.md).
"""
from __future__ import annotations

import asyncio
import logging
import os
from itertools import groupby
from pathlib import Path
from typing import NoReturn, Sequence

from common.errors import InventoryError, MalformedRecordError
from schemas import alert_codec, command_codec, event_codec
from streams.app import app, settings, stock_commands
from streams.stock.batch import TableBatch
from streams.stock.local import PartitionState
from streams.stock.owner import Decided, DeadLetter, Owners
from streams.stock.records import CLOCK_KEY, Command, Event, Tick, command_from_avro, event_to_avro
from streams.stock.store import StockStore
from streams.topics import STOCK_COMMANDS

__all__ = ["owners", "process_stock_commands", "decode_command", "decide_batch"]

log = logging.getLogger(__name__)
_commands = command_codec()
_events = event_codec()
_alerts = alert_codec()

owners = Owners(settings, Path(settings.worker_data_dir))


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


def _dead_letter(event, reason: str) -> DeadLetter:
    message = event.message
    log.warning("dead-lettering a command record", extra={"reason": reason, "offset": message.offset,
                                                         "partition": message.partition})
    headers = [("error", reason.encode()),
               ("source", f"{message.topic}/{message.partition}/{message.offset}".encode())]
    return event.key, event.value, headers


def _alert(fact: Event) -> tuple[bytes, bytes]:
    return fact.sku.encode(), _alerts.encode({
        "event_id": fact.event_id, "sku": fact.sku, "warehouse": fact.warehouse,
        "available": fact.on_hand - fact.reserved, "threshold": fact.low_stock_threshold,
        "occurred_at": fact.occurred_at})


def decide_batch(store: StockStore, events: Sequence) -> Decided:
    """Decides one partition's records in order: the events to publish, the low-stock alerts
    they raise, and the records to dead-letter."""
    decided = Decided()
    for event in events:
        try:
            command = decode_command(event.key, event.value)
        except InventoryError as exc:
            decided.dead_letters.append(_dead_letter(event, f"{type(exc).__name__}: {exc}"))
            continue
        try:
            facts = store.handle(command)
        except Exception as exc:  # a bug must not stop the partition; the record is kept
            log.exception("command failed", extra={"command_id": command.command_id})
            decided.dead_letters.append(_dead_letter(event, f"{type(exc).__name__}: {exc}"))
            continue
        decided.events.extend((fact.sku.encode(), _events.encode(event_to_avro(fact))) for fact in facts)
        decided.alerts.extend(_alert(fact) for fact in facts if fact.low_stock)
    return decided


@app.agent(stock_commands)
async def process_stock_commands(stream):
    async for events in stream.take_events(settings.command_batch_size,
                                           within=settings.command_batch_seconds):
        try:
            await _decide_and_commit(events)
        except Exception:  # leaving the loop would acknowledge the batch: see _stop_uncommitted
            _stop_uncommitted()


async def _decide_and_commit(events: Sequence) -> None:
    # A stable sort keeps each partition's records in log order.
    ordered = sorted(events, key=lambda e: e.message.partition)
    commits = []
    for partition, records in groupby(ordered, key=lambda e: e.message.partition):
        owner = await owners.acquire(partition)
        batch = TableBatch(PartitionState(owner.db))
        decided = decide_batch(StockStore(batch, window=settings.dedup_window), list(records))
        commits.append(owner.publish(batch.writes(), decided))
    # The partitions' transactions are independent: commit them side by side.
    await asyncio.gather(*commits)


def _stop_uncommitted() -> NoReturn:
    """A batch did not commit: fenced (another worker owns the partition now), refused by the
    broker, or its partition could not be taken over (the local state could not be opened, the
    broker was away). Leaving the loop would acknowledge its records and let faust commit their
    offsets, so the commands would never be decided: stop at once instead, as a kill -9 would,
    and let the supervisor restart the worker; its successor (or this worker, restarted) redoes
    the batch."""
    log.critical("a batch did not commit; stopping so that its commands are redelivered",
                 exc_info=True)
    logging.shutdown()
    os._exit(70)


@app.on_partitions_revoked.connect
async def _release_revoked(sender, revoked, **kwargs) -> None:
    """faust calls this once the revoked partitions' batches are done (stream_wait_empty)."""
    await owners.release({tp.partition for tp in revoked if tp.topic == STOCK_COMMANDS})


@app.on_before_shutdown.connect
async def _close_owners(sender, **kwargs) -> None:
    await owners.close()
