"""How far the analytics worker is behind ``stock-events``: its consumer group's committed
offsets against the partitions' ends (``bench.with_analytics`` measures it caught up)."""
from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError
from aiokafka.structs import TopicPartition

from common.settings import Settings
from streams.topics import STOCK_EVENTS

__all__ = ["analytics_lag", "analytics_caught_up"]

log = logging.getLogger(__name__)


async def analytics_lag(settings: Settings) -> int:
    """Records of ``stock-events`` past the analytics group's committed offsets (all of them when
    it has committed none). A transaction's commit marker takes an offset too, so a group that has
    counted everything may be one behind per partition."""
    partitions = [TopicPartition(STOCK_EVENTS, p) for p in range(settings.topic_partitions)]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    await consumer.start()
    try:
        try:
            committed = await admin.list_consumer_group_offsets(settings.analytics_app_id)
        except GroupCoordinatorNotAvailableError:  # a broker without any group yet
            committed = {}
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
    finally:
        await consumer.stop()
        await admin.close()
    return sum(ends[tp] - max(starts[tp], committed[tp].offset if tp in committed else 0) for tp in partitions)


async def analytics_caught_up(settings: Settings, timeout_s: float, poll_s: float = 1.0) -> bool:
    """Wait, bounded, until the analytics group is at most a commit marker behind per partition."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lag = await analytics_lag(settings)
        if lag <= settings.topic_partitions:
            return True
        log.info("analytics worker %s records behind", lag)
        await asyncio.sleep(poll_s)
    return False
