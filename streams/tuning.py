"""One tuning faust does not expose: how long the worker's consumer lets the broker hold a fetch.

faust's aiokafka driver creates the worker consumer with ``fetch_max_wait_ms=1500`` hard-coded.
aiokafka keeps one fetch in flight per broker and leaves partitions that still have buffered
records out of it, so under load the in-flight fetch often names only quiet partitions, and the
broker holds it for the full 1.5 s while new commands wait on the busy ones. On one broker that
turned 256 closed-loop clients into ~1.6 s rounds (about 160 decisions/s, the worker mostly idle;
see bench/README.md). A short wait costs a few idle fetches per second and removes the stall.
"""
from __future__ import annotations

import functools
import logging

from faust.transport.drivers import aiokafka as faust_aiokafka

__all__ = ["limit_fetch_wait"]

log = logging.getLogger(__name__)


def limit_fetch_wait(fetch_max_wait_ms: int) -> None:
    """Make every worker consumer faust creates from now on wait at most ``fetch_max_wait_ms``."""
    thread_cls = faust_aiokafka.AIOKafkaConsumerThread
    original = getattr(thread_cls._create_worker_consumer, "__wrapped__",
                       thread_cls._create_worker_consumer)

    @functools.wraps(original)
    def create_worker_consumer(self, transport):
        consumer = original(self, transport)
        # Read by aiokafka when the consumer starts and builds its fetcher.
        consumer._fetch_max_wait_ms = fetch_max_wait_ms
        return consumer

    thread_cls._create_worker_consumer = create_worker_consumer
    log.debug("worker fetch wait limited", extra={"fetch_max_wait_ms": fetch_max_wait_ms})
