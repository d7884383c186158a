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
from typing import Any, Callable, MutableMapping, NoReturn, Sequence

from streams.partition.batch import TableBatch
from streams.partition.local import PartitionState
from streams.partition.owner import Decided, Owners

__all__ = ["BatchDecider", "decide_and_commit", "dead_letter", "stop_uncommitted"]

log = logging.getLogger(__name__)

# Decides one partition's records (faust events, in log order) against its table.
BatchDecider = Callable[[MutableMapping[str, Any], Sequence[Any]], Decided]


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
