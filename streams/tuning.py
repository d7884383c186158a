"""What both faust apps (the stock worker's, ``streams/app.py``, and the analytics worker's,
``streams/analytics/app.py``) share: ``app_options`` and two corrections to faust's worker
consumer, applied by each app before it creates one.

``limit_fetch_wait``: how long the worker's consumer lets the broker hold a fetch.

faust's aiokafka driver creates the worker consumer with ``fetch_max_wait_ms=1500`` hard-coded.
aiokafka keeps one fetch in flight per broker and leaves partitions that still have buffered
records out of it, so under load the in-flight fetch often names only quiet partitions, and the
broker holds it for the full 1.5 s while new commands wait on the busy ones. On one broker that
turned 256 closed-loop clients into ~1.6 s rounds (about 160 decisions/s, the worker mostly idle;
see bench/README.md). A short wait costs a few idle fetches per second and removes the stall.

``commit_across_offset_gaps``: committing past a gap in a partition's offsets. A topic written in
transactions has a gap after each one (the commit marker takes an offset no consumer receives):
``stock-events`` (read by the analytics worker) and ``stock-commands`` (the order and warehouse
agents send stock commands in their transactions). faust records such a gap as the offsets from
the one after the last record read *up to and including* the next record's, so that record's offset
is in its list of acknowledged offsets twice; the list is only committed up to its first run of
consecutive numbers, and the duplicate ends every run there. The committed offset then moves one
transaction per commit: the analytics worker counted 20,000 events in seconds and had committed
about 100 offsets a second (bench/README.md, "The analytics worker"), and a restart would have
replayed all the rest. The gap is recorded without the next record's offset instead, and, as
gaps come in offset order, appended without faust's merge of the whole tree each time (that merge
was 40% of the analytics worker's CPU at 540 events a second).
"""
from __future__ import annotations

import functools
import logging
from typing import Any

from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from common.logs import faust_logging_config
from common.settings import Settings

__all__ = ["app_options", "limit_fetch_wait", "commit_across_offset_gaps"]

log = logging.getLogger(__name__)


def app_options(settings: Settings) -> dict[str, Any]:
    """The ``faust.App`` options both apps use: broker, topics, guarantees, group timing, logs."""
    return dict(
        broker=";".join(f"kafka://{s.strip()}" for s in settings.kafka_bootstrap_servers.split(",") if s.strip()),
        # No scanning: faust's discovery also scans ``origin`` and imports every module with
        # agents; ``python -m streams <role>`` imports its agents itself.
        autodiscover=False,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        topic_allow_declare=True,
        processing_guarantee="at_least_once",
        producer_acks=-1,
        broker_commit_interval=settings.commit_interval_s,
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.broker_session_timeout_s / 3),
        stream_wait_empty=True,
        web_enabled=False,
        table_standby_replicas=0,
        # JSON lines with their extra fields (request ids among them), like every other process.
        logging_config=faust_logging_config(),
    )


def limit_fetch_wait(fetch_max_wait_ms: int, fetch_min_bytes: int = 1) -> None:
    """Make every worker consumer faust creates from now on wait at most ``fetch_max_wait_ms``
    (and, for a worker that prefers fewer, fuller fetches to fresh ones, until the broker has
    ``fetch_min_bytes`` for it)."""
    thread_cls = faust_aiokafka.AIOKafkaConsumerThread
    original = getattr(thread_cls._create_worker_consumer, "__wrapped__",
                       thread_cls._create_worker_consumer)

    @functools.wraps(original)
    def create_worker_consumer(self, transport):
        consumer = original(self, transport)
        # Read by aiokafka when the consumer starts and builds its fetcher.
        consumer._fetch_max_wait_ms = fetch_max_wait_ms
        consumer._fetch_min_bytes = fetch_min_bytes
        return consumer

    thread_cls._create_worker_consumer = create_worker_consumer
    log.debug("worker fetch wait limited", extra={"fetch_max_wait_ms": fetch_max_wait_ms,
                                                  "fetch_min_bytes": fetch_min_bytes})


def commit_across_offset_gaps() -> None:
    """Make faust record a gap in a partition's offsets without the offset of the record after it
    (see the module docstring)."""
    consumer_cls = faust_consumer.Consumer
    original = getattr(consumer_cls._add_gap, "__wrapped__", consumer_cls._add_gap)

    @functools.wraps(original)
    async def add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        # faust passes the next record's offset as ``offset_to`` and records [from, to] inclusive.
        gaps, committed = self._gap[tp], self._committed_offset[tp]
        start = offset_from if committed is None else max(offset_from, committed + 1)
        if start >= offset_to:
            return
        if gaps and gaps.end() > start:  # the partition is read again (a seek back): merge, as faust does
            await original(self, tp, start, offset_to - 1)
            return
        # In order after every gap so far: nothing to merge. faust merges the whole tree on every
        # gap, and gaps wait for a commit of offsets past them, so that was quadratic in the gaps
        # between two commits (a batch's worth of transactions).
        gaps.addi(start, offset_to)

    consumer_cls._add_gap = add_gap
