"""The workers' Prometheus metrics, declared in one place, and the HTTP server that exposes them.

The stock worker (``python -m streams stock``) and the ledger (``python -m streams ledger``) each
serve ``/metrics`` on a port of their own (``worker_metrics_port``, ``ledger_metrics_port``; 0:
off), bound to ``metrics_host``. Several stock workers may share a machine (``make chaos``, a
successor in ``tests/integration/test_crash.py``): a port already taken is logged and the worker
runs on without metrics, since metrics are never worth stopping a single writer for.

The hot path stays cheap: label children are resolved once (a dict lookup per batch or per
decision), and nothing here builds a dict per record.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping, Sequence

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from streams.orders.records import OrderEvent
from streams.stock.records import Event
from streams.topics import ORDER_COMMANDS, STOCK_COMMANDS, WAREHOUSE_COMMANDS
from streams.warehouses.records import WarehouseEvent

__all__ = [
    "COMMANDS_DECIDED", "COMMAND_REJECTS", "DEAD_LETTERS", "DECISION_LATENCY", "BATCH_SIZE",
    "CONSUMER_LAG", "EVENTS_PERSISTED", "SINK_BATCH_LATENCY", "AREAS", "AreaMetrics", "area_metrics",
    "BatchStats", "rejection_reason", "dead_lettered", "set_lag", "forget_lag", "sink_batch_done", "serve_metrics",
    "labelled",
]

log = logging.getLogger(__name__)

# Commands are issued by clients with their own clocks and decided up to a command timeout
# (10 s) later, or much later after a crash: buckets from 1 ms to 2 minutes.
_LATENCY_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120)
_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)

COMMANDS_DECIDED = Counter(
    "inventory_commands_decided_total",
    "Command records decided by their area's single writer, by outcome (rejected: a domain refusal such "
    "as insufficient stock, an event like any other; dead letters are counted apart)",
    ["area", "outcome"])
COMMAND_REJECTS = Counter(
    "inventory_command_rejects_total", "Decisions that refused their command, by area and reason",
    ["area", "reason"])
DEAD_LETTERS = Counter(
    "inventory_dead_letters_total", "Records sent to a dead-letter topic, by that topic", ["topic"])
DECISION_LATENCY = Histogram(
    "inventory_decision_latency_seconds",
    "Time from a command's issued_at (its sender's clock) to its decision", ["area"],
    buckets=_LATENCY_BUCKETS)
BATCH_SIZE = Histogram(
    "inventory_command_batch_size", "Command records decided per partition batch", ["area"],
    buckets=_BATCH_BUCKETS)
CONSUMER_LAG = Gauge(
    "inventory_consumer_lag",
    "Records behind the partition's high watermark at the worker's last batch of it (the stock "
    "worker's figure may count a transaction marker or two)", ["topic", "partition"])
EVENTS_PERSISTED = Counter(
    "inventory_ledger_events_persisted_total", "Events the ledger wrote to PostgreSQL, by topic", ["topic"])
SINK_BATCH_LATENCY = Histogram(
    "inventory_ledger_batch_seconds", "Time the ledger took to write one batch to PostgreSQL",
    buckets=_LATENCY_BUCKETS)

# An area by the command topic its writer reads.
AREAS = {STOCK_COMMANDS: "stock", WAREHOUSE_COMMANDS: "warehouse", ORDER_COMMANDS: "order"}


class AreaMetrics:
    """One area's label children, resolved once."""

    def __init__(self, area: str) -> None:
        self.area = area
        self.accepted = COMMANDS_DECIDED.labels(area, "accepted")
        self.rejected = COMMANDS_DECIDED.labels(area, "rejected")
        self.latency = DECISION_LATENCY.labels(area)
        self.batch_size = BATCH_SIZE.labels(area)

    def reject(self, reason: str) -> None:
        labelled(COMMAND_REJECTS, self.area, reason).inc()  # reasons are enum values: a bounded set


_AREAS = {topic: AreaMetrics(area) for topic, area in AREAS.items()}
_OTHER = AreaMetrics("other")


def area_metrics(topic: str) -> AreaMetrics:
    """The metrics of the area that reads ``topic`` (a command topic)."""
    return _AREAS.get(topic, _OTHER)


def rejection_reason(facts: Sequence[Any]) -> str | None:
    """The reason of the decision's refusal, or None when it accepted its command."""
    for fact in facts:
        if isinstance(fact, Event):
            if fact.is_rejection:
                return str(fact.body.reason)
        elif isinstance(fact, (WarehouseEvent, OrderEvent)) and fact.refused:
            return str(fact.reason)
    return None


class BatchStats:
    """One partition batch's decisions, counted as they are made and recorded once the batch is
    final: a batch with a poison record is decided again without it (streams/partition/agent.py),
    and only its last round counts."""

    __slots__ = ("metrics", "dead_letter_topic", "accepted", "latencies", "reasons", "dead_letters")

    def __init__(self, metrics: AreaMetrics, dead_letter_topic: str) -> None:
        self.metrics, self.dead_letter_topic = metrics, dead_letter_topic
        self.accepted = self.dead_letters = 0
        self.latencies: list[float] = []
        self.reasons: list[str] = []

    def decided(self, waited_s: float, reason: str | None) -> None:
        self.latencies.append(waited_s)
        if reason is None:
            self.accepted += 1
        else:
            self.reasons.append(reason)

    def record(self, size: int) -> None:
        metrics = self.metrics
        metrics.batch_size.observe(size)
        if self.accepted:
            metrics.accepted.inc(self.accepted)
        if self.reasons:
            metrics.rejected.inc(len(self.reasons))
            for reason in self.reasons:
                metrics.reject(reason)
        for waited in self.latencies:
            metrics.latency.observe(waited)
        if self.dead_letters:
            labelled(DEAD_LETTERS, self.dead_letter_topic).inc(self.dead_letters)


_children: dict[tuple[Any, ...], Any] = {}


def labelled(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, resolved once per label set (topics: a bounded set)."""
    child = _children.get((metric, *labels))
    if child is None:
        child = _children[(metric, *labels)] = metric.labels(*labels)
    return child


def dead_lettered(topic: str, count: int = 1) -> None:
    labelled(DEAD_LETTERS, topic).inc(count)


def set_lag(topic: str, partition: int, highwater: int | None, position: int) -> None:
    """Record ``highwater - position`` (unknown before the partition's first fetch: skipped)."""
    if highwater is not None:
        CONSUMER_LAG.labels(topic, str(partition)).set(max(0, highwater - position))


def forget_lag(topic: str, partitions: Iterable[int]) -> None:
    """Drop the gauges of partitions this worker no longer reads (another worker reports them)."""
    for partition in partitions:
        try:
            CONSUMER_LAG.remove(topic, str(partition))
        except KeyError:
            pass


def sink_batch_done(records: Mapping[Any, Sequence[Any]], dead_letters: Mapping[tuple[str, int], int],
                    seconds: float) -> None:
    """A ledger batch written: its events per topic (without those dead-lettered, counted per
    (topic, partition) in ``dead_letters``), and the time PostgreSQL took."""
    SINK_BATCH_LATENCY.observe(seconds)
    for tp, rs in records.items():
        if (persisted := len(rs) - dead_letters.get((tp.topic, tp.partition), 0)) > 0:
            labelled(EVENTS_PERSISTED, tp.topic).inc(persisted)


def serve_metrics(host: str, port: int, role: str) -> bool:
    """Serve the metrics on ``host:port`` in a thread of their own; False when off or taken."""
    if not port:
        return False
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        log.warning("metrics port unavailable; running without metrics",
                    extra={"role": role, "host": host, "port": port, "error": repr(exc)})
        return False
    log.info("serving metrics", extra={"role": role, "host": host, "port": port})
    return True
