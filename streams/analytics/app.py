"""The analytics worker's own faust app: its consumer group, windowed tables and topics.

A process of its own (``python -m streams analytics``), apart from the stock worker: nothing it
does may slow a reservation, and it may fall behind, or be down, without any decision waiting
for it. Its own app id, hence its own consumer group and changelog topics, and its own data
directory (the tables' RocksDB).

Processing guarantee: faust's ``at_least_once``, like the rest. The effects are exactly-once by
design: a cell remembers the offset of the last event it counted (``cells.py``), faust flushes
the tables' changelog before it commits the offsets of the events that changed them, and the
sink only moves a row forward.

The tables:

- ``hourly`` / ``daily``: tumbling windows by *event time* (the window start is computed from the
  event's ``occurred_at`` and passed in, see ``agents.py``), keyed by ``"<sku>|<warehouse>"``, the
  value a cell as JSON. Each is kept ``analytics_*_retention_days`` after its window (faust's
  ``expires``, which it enforces by wall clock).
- ``unit_costs``: a plain table, SKU -> its unit cost (a decimal string), from ``ProductCreated``.

All are co-partitioned with ``stock-events`` (faust writes a table change to the changelog
partition of the event being processed), which is keyed by SKU.
"""
from __future__ import annotations

import functools
from datetime import timedelta

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from common.settings import get_settings
from streams.topics import INVENTORY_ANALYTICS, STOCK_EVENTS
from streams.tuning import app_options, commit_across_offset_gaps, limit_fetch_wait

__all__ = ["app", "settings", "stock_events", "inventory_analytics", "hourly", "daily", "unit_costs",
           "retention_ms"]

settings = get_settings()
# Fewer, fuller fetches: the figures may be late, and each fetch costs this worker and the broker
# CPU that the reservation path shares.
limit_fetch_wait(settings.analytics_fetch_max_wait_ms, settings.analytics_fetch_min_bytes)
commit_across_offset_gaps()


def _read_committed() -> None:
    """Make faust's worker consumer read committed records only.

    faust reads ``read_uncommitted`` unless it runs ``exactly_once`` itself. The stock agents
    write ``stock-events`` in transactions, and a fenced previous owner's batch is aborted
    (``streams/partition/owner.py``): counted, it would be counted twice. The ledger reads
    ``read_committed`` for the same reason."""
    thread_cls = faust_aiokafka.AIOKafkaConsumerThread
    create = thread_cls._create_worker_consumer

    @functools.wraps(create)
    def create_worker_consumer(self, transport):
        consumer = create(self, transport)
        consumer._isolation_level = "read_committed"  # read by aiokafka when it builds its fetcher
        return consumer

    thread_cls._create_worker_consumer = create_worker_consumer


_read_committed()


app = faust.App(
    settings.analytics_app_id,
    **app_options(settings),
    consumer_auto_offset_reset="earliest",  # a new group counts the whole history
    datadir=settings.analytics_data_dir,
    store="rocksdb://",
)

# Both read as bytes and decoded in the agents, so a record that does not decode is counted and
# skipped rather than crashing the stream.
stock_events = app.topic(STOCK_EVENTS, key_type=bytes, value_type=bytes,
                         key_serializer="raw", value_serializer="raw")
inventory_analytics = app.topic(INVENTORY_ANALYTICS, key_type=bytes, value_type=bytes,
                                key_serializer="raw", value_serializer="raw")


def retention_ms(granularity: str) -> int:
    days = (settings.analytics_hour_retention_days if granularity == "hour"
            else settings.analytics_day_retention_days)
    return int(days * 86_400_000)


def _windowed(name: str, size: timedelta, granularity: str) -> faust.tables.wrappers.WindowWrapper:
    # No key or value type: faust then serialises both as JSON (a windowed key is a tuple).
    table = app.Table(name, default=None, partitions=settings.topic_partitions)
    return table.tumbling(size, expires=timedelta(milliseconds=retention_ms(granularity)))


hourly = _windowed("analytics-hourly", timedelta(hours=1), "hour")
daily = _windowed("analytics-daily", timedelta(days=1), "day")
unit_costs = app.Table("analytics-unit-costs", default=None, partitions=settings.topic_partitions)
