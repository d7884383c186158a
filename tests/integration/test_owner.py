"""Partition ownership on the real broker (streams/partition/owner.py): a successor fences the previous
owner, recovers what it committed, and nothing the fenced one sends afterwards is ever read."""
from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from streams.admin import ensure_topics
from streams.partition.local import PartitionState
from streams.partition.owner import Decided, Owners
from streams.topics import changelog_topic

from .conftest import stop_consumer


@pytest.fixture
async def isolated(settings):
    """Settings of an app of its own: its own changelog and transactional ids, so the test never
    fences the suite's worker."""
    mine = settings.model_copy(update={"app_id": f"owner-test-{uuid.uuid4().hex[:8]}"})
    await ensure_topics(mine)
    return mine


async def _committed_changelog(settings, partition: int) -> list[tuple[bytes, bytes]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None,
                                enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    try:
        tp = TopicPartition(changelog_topic(settings), partition)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        records = []
        while await consumer.position(tp) < end:
            fetched = await consumer.getmany(tp, timeout_ms=1000)
            records += [(r.key, r.value) for r in fetched.get(tp, ())]
        return records
    finally:
        await stop_consumer(consumer)


async def test_a_successor_fences_the_previous_owner_and_recovers_what_it_committed(isolated, tmp_path):
    first, successor, later = (Owners(isolated, tmp_path / name) for name in ("a", "b", "c"))
    try:
        old = await first.acquire(0)
        await old.publish([("s:sku", {"v": 1})], Decided())

        new = await successor.acquire(0)
        assert new.replayed == 1
        assert PartitionState(new.db)["s:sku"] == {"v": 1}, "the successor recovers committed writes"

        with pytest.raises(KafkaError):  # ProducerFenced, on send or on commit
            await old.publish([("s:sku", {"v": "zombie"})], Decided())
        assert PartitionState(old.db)["s:sku"] == {"v": 1}, "nothing uncommitted reaches local state"

        await new.publish([("s:sku", {"v": 2})], Decided())
        assert await _committed_changelog(isolated, 0) == [(b'"s:sku"', b'{"v":1}'),
                                                           (b'"s:sku"', b'{"v":2}')]
        third = await later.acquire(0)
        assert PartitionState(third.db)["s:sku"] == {"v": 2}
    finally:
        for owners in (first, successor, later):
            try:
                await owners.close()
            except KafkaError:
                pass  # the fenced producer cannot close cleanly


async def test_a_worker_that_gets_a_partition_back_replays_only_the_tail(isolated, tmp_path):
    mine, other = Owners(isolated, tmp_path / "mine"), Owners(isolated, tmp_path / "other")
    try:
        owner = await mine.acquire(1)
        await owner.publish([(f"s:{i}", {"v": i}) for i in range(50)], Decided())
        await mine.release({1})

        theirs = await other.acquire(1)
        await theirs.publish([("s:late", {"v": "from the other worker"})], Decided())
        await other.release({1})

        back = await mine.acquire(1)  # same local database, resumed after its stored offset
        assert back.replayed == 1
        state = PartitionState(back.db)
        assert state["s:late"] == {"v": "from the other worker"} and state["s:49"] == {"v": 49}
    finally:
        await mine.close()
        await other.close()
