"""Owning a partition: its local state, recovered from the changelog, and a fenced producer.

Every area with a single writer per key (the stock of SKUs, the capacity ledgers of warehouses)
owns its command topic's partitions this way; ``area`` names its changelog, producer ids and
local files. The consumer group decides which worker owns a partition, but a worker can keep
writing after it lost a partition without knowing it: a SIGSTOPped or starved process, or one
whose session expired while the broker restarted, still holds decided batches in its producer,
and the producer delivers them when the broker comes back. Those *zombie* writes land after
the new owner recovered the changelog, so the new owner decides on a state that misses them,
and the changelog and ``stock-events`` hold two diverging histories of one SKU (`make chaos`
caught exactly that after a broker restart: reservations vanished, versions went backwards).

So each partition's writes (changelog records, decision events, dead letters, and the commands
a saga sends on to another area: its outbox) go out in one Kafka transaction per batch, from a
producer whose ``transactional.id`` is the partition's own (``<app>-<area>-<partition>``). When a worker takes a partition, starting that producer bumps the
id's epoch: the broker aborts the previous owner's open transaction and refuses everything it
sends from then on (``ProducerFenced``). Every reader of these topics reads committed records
only, so a zombie's writes are never seen. Only then does the new owner read the changelog's
committed tail into its local state (``streams/partition/local.py``) and start deciding.

A fenced worker stops: it has lost the partition, and its local state may run ahead of the
committed changelog for the batch that failed, so it must not decide anything more.

Dedup by command id (each area's ``store.py``) still covers what transactions do not: a redelivery of
commands whose batch committed but whose offsets were not, after a crash.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import aiokafka.producer.sender as aiokafka_sender
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from rocksdict import Rdict

from common.settings import Settings
from streams.partition.local import apply_changelog, changelog_records, open_partition, stored_offset
from streams.topics import STOCK_TABLE, changelog_topic

__all__ = ["PartitionOwner", "Owners", "Output", "Decided"]

log = logging.getLogger(__name__)

Output = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]  # topic, key, value, headers


@dataclass
class Decided:
    """What a partition's batch publishes besides its changelog records, in order: its events,
    alerts, dead letters and the commands it sends to other areas (a saga's next steps)."""

    outputs: list[Output] = field(default_factory=list)
    # The batch's decision metrics (streams/metrics.py ``BatchStats``), recorded once it is final.
    stats: Any = None

    def send(self, topic: str, key: bytes | None, value: bytes | None,
             headers: list[tuple[str, bytes]] | None = None) -> None:
        self.outputs.append((topic, key, value, headers or []))


@dataclass
class PartitionOwner:
    """One owned partition: its recovered local state and its fenced, transactional producer."""

    partition: int
    db: Rdict
    producer: AIOKafkaProducer
    changelog: str
    replayed: int = 0  # changelog records applied when it was taken over

    async def publish(self, writes: Sequence[tuple[str, Any]], decided: Decided) -> None:
        """Commit a batch's changelog records and outputs atomically, then store the records
        locally. Raises (``ProducerFenced`` among others) when the batch did not commit."""
        send = self.producer.send
        records = changelog_records(writes)
        async with self.producer.transaction():
            acks = [await send(self.changelog, value, key=key, partition=self.partition)
                    for key, value in records]
            for topic, key, value, headers in decided.outputs:
                await send(topic, value, key=key, headers=headers)
        apply_changelog(self.db, [(key, value, ack.result().offset)
                                  for (key, value), ack in zip(records, acks)])


class Owners:
    """The partitions this worker owns, taken over one by one as their first batch arrives."""

    def __init__(self, settings: Settings, data_dir: Path, area: str = STOCK_TABLE) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.area = area
        # A transaction started right after the previous one commits waits for the broker to
        # finish writing the commit markers (KAFKA-5477); aiokafka polls for that every 20 ms.
        aiokafka_sender.BACKOFF_OVERRIDE = settings.transaction_retry_backoff_s
        self.changelog = changelog_topic(settings, area)
        self._owned: dict[int, PartitionOwner] = {}
        self._dbs: dict[int, Rdict] = {}  # kept open after a revocation: the offset says where to resume
        self._reader: AIOKafkaConsumer | None = None

    async def acquire(self, partition: int) -> PartitionOwner:
        owner = self._owned.get(partition)
        if owner is None:
            owner = self._owned[partition] = await self._take_over(partition)
        return owner

    async def release(self, partitions: set[int]) -> None:
        """Give up partitions the group moved elsewhere (their batches have all committed)."""
        for partition in sorted(partitions & set(self._owned)):
            owner = self._owned.pop(partition)
            await owner.producer.stop()
            log.info("released a partition", extra={"area": self.area, "partition": partition})

    async def close(self) -> None:
        await self.release(set(self._owned))
        if self._reader is not None:
            await self._reader.stop()
        for db in self._dbs.values():
            db.close()
        self._dbs.clear()

    async def _take_over(self, partition: int) -> PartitionOwner:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            transactional_id=f"{self.settings.app_id}-{self.area}-{partition}",
            acks="all", linger_ms=0, max_batch_size=self.settings.producer_batch_bytes)
        await producer.start()  # fences the previous owner, aborting its open transaction
        try:
            db = self._dbs.get(partition) or open_partition(self.data_dir / f"{self.area}-{partition}.db")
            self._dbs[partition] = db
            applied = await self._recover(partition, db)
        except BaseException:
            await producer.stop()
            raise
        log.info("took over a partition", extra={"area": self.area, "partition": partition, "replayed": applied,
                                                 "offset": stored_offset(db)})
        return PartitionOwner(partition, db, producer, self.changelog, applied)

    async def _recover(self, partition: int, db: Rdict) -> int:
        """Apply the changelog's committed records after the stored offset; returns how many."""
        reader = await self._changelog_reader()
        tp = TopicPartition(self.changelog, partition)
        reader.assign([tp])
        offset = stored_offset(db)
        if offset is None:
            await reader.seek_to_beginning(tp)
        else:
            reader.seek(tp, offset + 1)
        end = (await reader.end_offsets([tp]))[tp]  # the last stable offset: nothing is open now
        applied = 0
        while await reader.position(tp) < end:
            fetched = await reader.getmany(tp, timeout_ms=1000, max_records=20_000)
            records = [(r.key, r.value, r.offset) for r in fetched.get(tp, ())]
            apply_changelog(db, records)
            applied += len(records)
        return applied

    async def _changelog_reader(self) -> AIOKafkaConsumer:
        if self._reader is None:
            self._reader = AIOKafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap_servers, group_id=None,
                enable_auto_commit=False, isolation_level="read_committed",
                max_partition_fetch_bytes=8 * 1024**2)
            await self._reader.start()
        return self._reader
