"""The glue every area's agent shares: decide a batch per partition, commit it, or stop.

An agent takes a batch of command records, and for each partition in it: takes the partition
over (``Owners.acquire``), decides its records in log order against a ``TableBatch`` over the
partition's local state, and commits the batch's changelog records and outputs in one
transaction of the partition's fenced producer. A batch that does not commit stops the worker.
"""
from __future__ import annotations

import asyncio
import logging
import os
from itertools import groupby
from typing import Any, Callable, MutableMapping, NoReturn, Sequence, TypeVar

from common.errors import InventoryError, MalformedRecordError

from streams.partition.batch import TableBatch
from streams.partition.local import PartitionState
from streams.partition.owner import Decided, Owners

__all__ = ["BatchDecider", "keyed_decoder", "decide_records", "run_agent", "decide_and_commit",
           "dead_letter", "stop_uncommitted", "own_partitions"]

log = logging.getLogger(__name__)

# Decides one partition's records (faust events, in log order) against its table.
BatchDecider = Callable[[MutableMapping[str, Any], Sequence[Any]], Decided]
C = TypeVar("C")
F = TypeVar("F")


def keyed_decoder(codec: Any, from_avro: Callable[[Any], C], key_of: Callable[[C], str],
                  what: str) -> Callable[[bytes | None, bytes | None], C]:
    """Decodes a command record, and checks that its key is the command's ``what``: the key
    decides the partition and so the writer, and a mismatch would break single-writer."""
    def decode(key: bytes | None, value: bytes | None) -> C:
        data = codec.decode(value or b"")  # raises SchemaError, a dead letter
        try:
            command = from_avro(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedRecordError(f"command does not map onto the domain: {exc}") from exc
        if key is None or key.decode("utf-8", "replace") != key_of(command):
            raise MalformedRecordError(f"record key {key!r} is not the command's {what} {key_of(command)!r}")
        return command
    return decode


def own_partitions(app: Any, owners: Owners, topic: str) -> None:
    """Give up ``topic``'s partitions the group moves elsewhere, once their batches are done
    (faust calls the handler after stream_wait_empty), and close everything at shutdown."""
    async def release_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        await owners.release({tp.partition for tp in revoked if tp.topic == topic})

    async def close(sender: Any, **kwargs: Any) -> None:
        await owners.close()

    app.on_partitions_revoked.connect(release_revoked)
    app.on_before_shutdown.connect(close)


def decide_records(events: Sequence[Any], decode: Callable[[bytes | None, bytes | None], C],
                   handle: Callable[[C], list[F]], announce: Callable[[Decided, C, list[F]], None],
                   dead_letters: str) -> Decided:
    """Decides one partition's records in log order: ``announce`` adds each decision's outputs;
    a record that cannot be decoded, or whose decision fails, goes to ``dead_letters``."""
    decided = Decided()
    for event in events:
        try:
            command = decode(event.key, event.value)
        except InventoryError as exc:
            dead_letter(decided, dead_letters, event, f"{type(exc).__name__}: {exc}")
            continue
        try:
            facts = handle(command)
        except Exception as exc:  # a bug must not stop the partition; the record is kept
            log.exception("command failed", extra={"command_id": getattr(command, "command_id", "")})
            dead_letter(decided, dead_letters, event, f"{type(exc).__name__}: {exc}")
            continue
        announce(decided, command, facts)
    return decided


async def run_agent(stream: Any, owners: Owners, decide: BatchDecider, batch_size: int,
                    within_s: float) -> None:
    """The agent's loop: batches decided and committed per partition, or the worker stops."""
    async for events in stream.take_events(batch_size, within=within_s):
        try:
            await decide_and_commit(owners, events, decide)
        except Exception:  # leaving the loop would acknowledge the batch: see stop_uncommitted
            stop_uncommitted()


async def decide_and_commit(owners: Owners, events: Sequence[Any], decide: BatchDecider) -> None:
    # A stable sort keeps each partition's records in log order.
    ordered = sorted(events, key=lambda e: e.message.partition)
    commits = []
    for partition, records in groupby(ordered, key=lambda e: e.message.partition):
        owner = await owners.acquire(partition)
        batch = TableBatch(PartitionState(owner.db))
        decided = decide(batch, list(records))
        commits.append(owner.publish(batch.writes(), decided))
    # The partitions' transactions are independent: commit them side by side.
    await asyncio.gather(*commits)


def dead_letter(decided: Decided, topic: str, event: Any, reason: str) -> None:
    """Send a record that cannot be decided to ``topic``, with the reason in its headers."""
    message = event.message
    log.warning("dead-lettering a command record", extra={
        "reason": reason, "topic": message.topic, "offset": message.offset, "partition": message.partition})
    headers = [("error", reason.encode()),
               ("source", f"{message.topic}/{message.partition}/{message.offset}".encode())]
    decided.send(topic, event.key, event.value, headers)


def stop_uncommitted() -> NoReturn:
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
