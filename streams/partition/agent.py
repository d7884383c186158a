"""The glue every area's agent shares: decide a batch per partition, commit it, or stop.

An agent takes a batch of command records, and for each partition in it: takes the partition
over (``Owners.acquire``), decides its records in log order against a ``TableBatch`` over the
partition's local state, and commits the batch's changelog records and outputs in one
transaction of the partition's fenced producer. A batch that does not commit stops the worker.

A record that cannot be decided never stops the worker: one that does not decode or breaks its
topic's contract, and one whose decision fails (a bug, or values its outputs cannot hold), goes to
the area's dead-letter topic with the reason and its source, and its offset is acknowledged with
the batch's. A failed decision may have written part of its changes into the batch, so the
partition's batch is decided again without that record (``decide_without_poison``).
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from itertools import groupby
from typing import Any, Callable, Mapping, MutableMapping, NoReturn, Sequence, TypeVar

from common.errors import InventoryError, MalformedRecordError
from common.logs import REQUEST_ID_HEADER, request_id_from_headers

from streams.partition.batch import TableBatch
from streams.partition.local import PartitionState
from streams.partition.owner import Decided, Owners
from streams.metrics import BatchStats, area_metrics, forget_lag, rejection_reason, set_lag

__all__ = ["BatchDecider", "PoisonRecord", "keyed_decoder", "contract_violation", "decide_records",
           "decide_without_poison", "run_agent", "decide_and_commit", "dead_letter",
           "stop_uncommitted", "own_partitions"]

log = logging.getLogger(__name__)

# Decides one partition's records (faust events, in log order) against its table.
BatchDecider = Callable[[MutableMapping[str, Any], Sequence[Any]], Decided]
C = TypeVar("C")
F = TypeVar("F")


class PoisonRecord(Exception):
    """A record whose decision failed: the batch holds whatever it wrote before failing, so the
    partition's batch must be decided again without it, and the record dead-lettered."""

    def __init__(self, event: Any, dead_letters: str, reason: str) -> None:
        super().__init__(reason)
        self.event, self.dead_letters, self.reason = event, dead_letters, reason


def contract_violation(key: bytes | None, command_id: str, entity_id: str, what: str) -> str | None:
    """Why a decoded command breaks its topic's contract, or None. The key decides the partition
    and so the writer: a mismatch would break single-writer. An empty command id would make
    every such command a redelivery of the first (dedup is by id), and an empty ``what`` names
    nothing a reader could ever look up."""
    if not command_id:
        return "the command id is empty"
    if not entity_id:
        return f"the command's {what} is empty"
    if key is None or key.decode("utf-8", "replace") != entity_id:
        return f"record key {key!r} is not the command's {what} {entity_id!r}"
    return None


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
        problem = contract_violation(key, getattr(command, "command_id", ""), key_of(command), what)
        if problem:
            raise MalformedRecordError(problem)
        return command
    return decode


def own_partitions(app: Any, owners: Owners, topic: str) -> None:
    """Give up ``topic``'s partitions the group moves elsewhere, once their batches are done
    (faust calls the handler after stream_wait_empty), and close everything at shutdown."""
    async def release_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        partitions = {tp.partition for tp in revoked if tp.topic == topic}
        forget_lag(topic, partitions)
        await owners.release(partitions)

    async def close(sender: Any, **kwargs: Any) -> None:
        await owners.close()

    app.on_partitions_revoked.connect(release_revoked)
    app.on_before_shutdown.connect(close)


def decide_records(events: Sequence[Any], decode: Callable[[bytes | None, bytes | None], C],
                   handle: Callable[[C], list[F]], announce: Callable[[Decided, C, list[F]], None],
                   dead_letters: str) -> Decided:
    """Decides one partition's records in log order: ``announce`` adds each decision's outputs;
    a record that cannot be decoded goes to ``dead_letters``. One whose decision or outputs fail
    raises ``PoisonRecord``: its partial writes are in the table (``decide_without_poison``)."""
    metrics = area_metrics(events[0].message.topic if events else "")
    decided = Decided(stats=BatchStats(metrics, dead_letters))
    now_ms, debug = time.time() * 1000, log.isEnabledFor(logging.DEBUG)
    for event in events:
        try:
            command = decode(event.key, event.value)
        except InventoryError as exc:
            dead_letter(decided, dead_letters, event, f"{type(exc).__name__}: {exc}")
            continue
        sent = len(decided.outputs)
        try:
            facts = handle(command)
            announce(decided, command, facts)
        except Exception as exc:  # a bug, or e.g. a level past Avro's long: not a reason to stop
            log.exception("command failed", extra={"command_id": getattr(command, "command_id", ""),
                                                   "request_id": _request_id(event)})
            raise PoisonRecord(event, dead_letters, f"{type(exc).__name__}: {exc}") from exc
        _observe(decided, event, command, facts, sent, now_ms, debug)
    return decided


def _observe(decided: Decided, event: Any, command: Any, facts: list[Any], sent: int, now_ms: float,
             debug: bool) -> None:
    """Count the decision, log it (rejections at INFO, the rest at DEBUG) with the request id
    of the command's record, and pass that id on to what the decision sends (a saga's next
    commands, its events), so a request can be followed through every area it reaches."""
    reason = rejection_reason(facts)
    decided.stats.decided(max(0.0, (now_ms - command.issued_at) / 1000), reason)
    request_id = _request_id(event)
    if request_id is not None:
        header = (REQUEST_ID_HEADER, request_id.encode())
        for output in decided.outputs[sent:]:
            output[3].append(header)
    if reason is not None:
        log.info("command rejected", extra={"command_id": command.command_id, "reason": reason,
                                            "area": decided.stats.metrics.area, "request_id": request_id})
    elif debug:
        log.debug("command decided", extra={"command_id": command.command_id,
                                            "area": decided.stats.metrics.area, "request_id": request_id})


def decide_without_poison(base: Mapping[str, Any], records: Sequence[Any],
                          decide: BatchDecider) -> tuple[TableBatch, Decided]:
    """Decide a partition's ``records`` against ``base``; each record whose decision fails is
    set aside and the batch decided again from ``base`` without it (so nothing it wrote stays),
    then dead-lettered. Bounded: every round sets aside one more record."""
    poisoned: list[PoisonRecord] = []
    while True:
        batch = TableBatch(base)
        kept = [r for r in records if all(r is not p.event for p in poisoned)]
        try:
            decided = decide(batch, kept)
        except PoisonRecord as exc:
            if all(exc.event is not r for r in kept):
                raise  # not one of this batch's records: nothing to set aside
            poisoned.append(exc)
            continue
        for poison in poisoned:
            dead_letter(decided, poison.dead_letters, poison.event, poison.reason)
        return batch, decided


async def run_agent(stream: Any, owners: Owners, decide: BatchDecider, batch_size: int,
                    within_s: float) -> None:
    """The agent's loop: batches decided and committed per partition, or the worker stops."""
    async for events in stream.take_events(batch_size, within=within_s):
        try:
            await decide_and_commit(owners, events, decide, stream.app.consumer)
        except Exception:  # leaving the loop would acknowledge the batch: see stop_uncommitted
            stop_uncommitted()


async def decide_and_commit(owners: Owners, events: Sequence[Any], decide: BatchDecider,
                            consumer: Any = None) -> None:
    # A stable sort keeps each partition's records in log order.
    ordered = sorted(events, key=lambda e: e.message.partition)
    commits = []
    for partition, records in groupby(ordered, key=lambda e: e.message.partition):
        owner = await owners.acquire(partition)
        records = list(records)
        batch, decided = decide_without_poison(PartitionState(owner.db), records, decide)
        _record(decided, records, consumer)
        commits.append(owner.publish(batch.writes(), decided))
    # The partitions' transactions are independent: commit them side by side.
    await asyncio.gather(*commits)


def _request_id(event: Any) -> str | None:
    """The id of the API request the record's command came from (its ``request-id`` header)."""
    return request_id_from_headers(getattr(event.message, "headers", None))


def _record(decided: Decided, records: Sequence[Any], consumer: Any) -> None:
    """The partition batch's metrics, once it is final, and its lag behind the high watermark
    (faust's consumer, when there is one: the tests decide batches without it)."""
    if decided.stats is not None:
        decided.stats.record(len(records))
    if consumer is None or not records:
        return
    last = records[-1].message
    try:
        highwater = consumer.highwater(last.tp)
    except Exception:  # revoked meanwhile (an assertion in aiokafka): its new owner reports it
        return
    set_lag(last.topic, last.partition, highwater, last.offset + 1)


def dead_letter(decided: Decided, topic: str, event: Any, reason: str) -> None:
    """Send a record that cannot be decided to ``topic``, with the reason in its headers."""
    message = event.message
    log.warning("dead-lettering a command record", extra={
        "reason": reason, "topic": message.topic, "offset": message.offset, "partition": message.partition,
        "request_id": _request_id(event)})
    if decided.stats is not None:
        decided.stats.dead_letters += 1
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
