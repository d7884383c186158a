"""Creates the declared topics (idempotently) before workers or the API start, and the default
warehouse."""
from __future__ import annotations

import asyncio
import logging

import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import GroupCoordinatorNotAvailableError, KafkaConnectionError, TopicAlreadyExistsError
from aiokafka.structs import TopicPartition

from common.settings import Settings, get_settings
from schemas import warehouse_command_codec
from streams.topics import WAREHOUSE_COMMANDS, topic_specs
from streams.warehouses.records import CreateWarehouse, WarehouseCommand, warehouse_command_to_avro

__all__ = ["ensure_topics", "ensure_topics_when_up", "kafka_cluster_id", "create_default_warehouse",
           "consumer_group_lag"]

log = logging.getLogger(__name__)


async def ensure_topics(settings: Settings) -> list[str]:
    """Create every missing topic; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(spec.name, spec.partitions, settings.topic_replication_factor, topic_configs=spec.config)
            for spec in topic_specs(settings)
            if spec.name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process created them first
        created = [t.name for t in missing]
        log.info("topics ready", extra={"topics_created": created})
        return created
    finally:
        await admin.close()


async def ensure_topics_when_up(settings: Settings, wait_s: float) -> list[str]:
    """``ensure_topics``, waiting up to ``wait_s`` for the broker: a worker (re)started while the
    broker restarts waits for it instead of exiting."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        try:
            return await ensure_topics(settings)
        except KafkaConnectionError:
            if asyncio.get_running_loop().time() >= deadline:
                raise
            log.warning("Kafka is not reachable yet; retrying",
                        extra={"bootstrap_servers": settings.kafka_bootstrap_servers})
            await asyncio.sleep(1.0)


async def kafka_cluster_id(settings: Settings) -> str:
    """The id the broker's cluster was formatted with (KRaft), which changes when it is re-created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        return str((await admin.describe_cluster())["cluster_id"])
    finally:
        await admin.close()


async def consumer_group_lag(settings: Settings, group_id: str, topic: str) -> dict[int, int]:
    """Per partition of ``topic``: offsets past ``group_id``'s committed one (all of them when it
    has committed none). A transaction's commit marker takes an offset too, so a group that has
    consumed everything of a transactional topic may be one behind per partition."""
    partitions = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    await consumer.start()
    try:
        try:
            committed = await admin.list_consumer_group_offsets(group_id)
        except GroupCoordinatorNotAvailableError:  # a broker without any group yet
            committed = {}
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
    finally:
        await consumer.stop()
        await admin.close()
    return {tp.partition: ends[tp] - max(starts[tp], committed[tp].offset if tp in committed else 0)
            for tp in partitions}


async def create_default_warehouse(settings: Settings) -> None:
    """Ask for the default warehouse. Always the same command id: its ledger remembers it, and
    once the id is out of its window a repeat is refused as WAREHOUSE_EXISTS, changing nothing."""
    name = settings.default_warehouse
    command = WarehouseCommand(f"bootstrap:warehouse:{name}", name, int(time.time() * 1000),
                               CreateWarehouse(name, "", settings.default_warehouse_capacity), "bootstrap")
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(WAREHOUSE_COMMANDS, warehouse_command_codec().encode(
            warehouse_command_to_avro(command)), key=name.encode())
    finally:
        await producer.stop()


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    print("created:", asyncio.run(ensure_topics(get_settings())))


if __name__ == "__main__":
    main()
