"""The analytics worker's two agents.

- ``count`` reads ``stock-events`` in batches (``stream.take_events``: up to
  ``analytics_batch_size`` events, or what came within ``analytics_batch_s``), as bytes decoded
  here with the project's Avro codec (a record that does not decode is logged, counted and
  skipped: the ledger dead-letters it already). Each event is folded (``cells.CellBatch``) into
  its SKU's and warehouse's cell of its hour and of its day, by event time; then each cell the
  batch changed is written to its table once, and each cell it touched is published once on
  ``inventory-analytics``. Batching is what keeps the worker cheap beside the reservation path:
  a busy SKU's cells cost two changelog and two output records per batch, not per event
  (bench/README.md, "The analytics worker"). ``ProductCreated`` only records the SKU's unit cost.
  An event a cell has counted already (a redelivery after a crash) changes nothing, but its cell
  is published again: the crash may have come between the table's write and the publication.
- ``persist`` reads ``inventory-analytics`` in batches (``stream.take``) and upserts the cells
  into PostgreSQL (``sink.py``), only forward. A batch PostgreSQL cannot take is retried a few
  times; then the worker exits (code 70, like the stock worker) so that the batch, never acked,
  is redelivered to its successor.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from contextlib import contextmanager
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterator, Sequence

from faust import streams as faust_streams
from faust.types import EventT
from prometheus_client import Counter, Histogram

from common.errors import SchemaError
from schemas import event_codec
from storage.db import create_engine
from streams.analytics.app import (app, daily, hourly, inventory_analytics, retention_ms, settings,
                                   stock_events, unit_costs)
from streams.analytics.cells import (Cell, CellBatch, CellId, cell_from_avro, cell_from_json, cell_key,
                                     cell_to_avro, cell_to_json, output_key, too_late, unit_cost_of,
                                     window_cell_codec, window_start)
from streams.analytics.sink import cell_row, write_cells
from streams.stock.records import Event, ProductCreated, event_from_avro

__all__ = ["count", "persist", "EVENTS", "BATCH_CELLS", "CELLS_PERSISTED", "EXIT_SINK_FAILED",
           "EXIT_COUNT_FAILED"]

log = logging.getLogger(__name__)

EVENTS = Counter(
    "inventory_analytics_events_total",
    "Window countings of stock-events records (one per event and granularity), by outcome (counted; "
    "redelivered: counted before; late: older than the table keeps; undecodable: once per record)",
    ["outcome"])
BATCH_CELLS = Histogram(
    "inventory_analytics_batch_cells", "Cells one batch of stock events touched (each written and "
    "published once)", buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000))
CELLS_PERSISTED = Counter(
    "inventory_analytics_cells_persisted_total", "Window cells the analytics sink upserted")
_COUNTED, _REDELIVERED, _LATE, _UNDECODABLE = (
    EVENTS.labels(o) for o in ("counted", "redelivered", "late", "undecodable"))

EXIT_SINK_FAILED = EXIT_COUNT_FAILED = 70
_SINK_ATTEMPTS = 5
_WINDOWS = {"hour": hourly, "day": daily}


def _decode(value: Any, partition: int, offset: int) -> Event | None:
    try:
        return event_from_avro(event_codec().decode(value))
    except (SchemaError, KeyError, TypeError, ValueError) as exc:
        _UNDECODABLE.inc()
        log.warning("skipped a stock-events record that does not decode",
                    extra={"partition": partition, "offset": offset, "error": f"{type(exc).__name__}: {exc}"})
        return None


def _iso(start_ms: int) -> str:
    return datetime.fromtimestamp(start_ms / 1000, timezone.utc).isoformat()


@contextmanager
def _processing(record: EventT) -> Iterator[None]:
    """Make ``record`` the event faust's tables see as being processed, in this task only.

    A table reads and writes the store and changelog partition of ``faust.streams.current_event()``
    (a ContextVar). In a ``take_events`` batch the stream buffers events in another task, so here
    none is set; a cell is read and written under an event of its own partition (a SKU's events
    are all on one), as when the stream processes that event itself."""
    token = faust_streams._current_event.set(weakref.ref(record))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)


def _window(cell_id: CellId) -> Any:
    granularity, start = cell_id[0], cell_id[1]
    # The window start itself is the timestamp faust windows by: the same window as ours exactly.
    return _WINDOWS[granularity].relative_to(float(start) / 1000)


def _load(cell_id: CellId) -> Cell | None:
    try:
        return cell_from_json(_window(cell_id)[cell_key(cell_id[2], cell_id[3])].current())
    except KeyError:
        return None


def _unit_cost(event: Event, costs: dict[str, Decimal | None]) -> Decimal | None:
    """The SKU's unit cost (read from the table once a batch, into ``costs``); a ``ProductCreated``
    with a cost records it."""
    if (cost := unit_cost_of(event)) is not None:
        unit_costs[event.sku] = str(cost)
        costs[event.sku] = cost
        return cost
    if event.sku not in costs:
        known = unit_costs.get(event.sku)
        costs[event.sku] = None if known is None else Decimal(known)
    return costs[event.sku]


def _fold(batch: CellBatch, costs: dict[str, Decimal | None], event: Event, partition: int, offset: int,
          now_ms: int) -> None:
    cost = _unit_cost(event, costs)
    if isinstance(event.body, ProductCreated):
        return
    for granularity in _WINDOWS:
        start = window_start(event.occurred_at, granularity)
        if too_late(start, retention_ms(granularity), now_ms):
            _LATE.inc()
            continue
        counted = batch.fold((granularity, start, event.sku, event.warehouse), event, partition, offset, cost)
        (_COUNTED if counted else _REDELIVERED).inc()


async def _count_batch(records: Sequence[EventT]) -> None:
    """Fold a batch, then write each cell it changed once and publish each cell it touched once."""
    batch, costs = CellBatch(_load), {}
    now_ms = int(time.time() * 1000)
    for record in records:
        message = record.message
        event = _decode(record.value, message.partition, message.offset)
        if event is None:
            continue
        with _processing(record):
            _fold(batch, costs, event, message.partition, message.offset, now_ms)
    by_partition = {record.message.partition: record for record in records}
    for cell_id, cell in batch.changed():
        with _processing(by_partition[cell.source_partition]):
            _window(cell_id)[cell_key(cell_id[2], cell_id[3])] = cell_to_json(cell)
    for (granularity, start, sku, warehouse), cell in batch.touched():
        record = cell_to_avro(cell, granularity, start, sku, warehouse)
        await inventory_analytics.send(key=output_key(granularity, _iso(start), sku, warehouse).encode(),
                                       value=window_cell_codec().encode(record))
    BATCH_CELLS.observe(len(batch))


@app.agent(stock_events)
async def count(stream: Any) -> None:
    # faust acks a batch's events once this body has written and published all of its cells.
    async for records in stream.take_events(settings.analytics_batch_size, within=settings.analytics_batch_s):
        try:
            await _count_batch(records)
        except Exception:  # a bug, not bad input (that is skipped): never ack a batch not counted
            log.exception("analytics: a batch of stock events could not be counted; exiting so that "
                          "it is redelivered")
            os._exit(EXIT_COUNT_FAILED)  # not raise: take_events() would ack the batch on the way out


def _rows(values: list[Any]) -> list[dict[str, Any]]:
    rows = []
    for value in values:
        try:
            granularity, start, sku, warehouse, cell = cell_from_avro(window_cell_codec().decode(value))
        except (SchemaError, KeyError, TypeError, ValueError) as exc:
            # Only this worker writes the topic: a stray record is logged and left out.
            log.warning("skipped an inventory-analytics record that does not decode", extra={"error": str(exc)})
            continue
        rows.append(cell_row(granularity, start, sku, warehouse, cell))
    return rows


async def _write(engine: Any, rows: list[dict[str, Any]]) -> None:
    for attempt in range(1, _SINK_ATTEMPTS + 1):
        try:
            CELLS_PERSISTED.inc(await write_cells(engine, rows))
            return
        except Exception as exc:  # PostgreSQL away or refusing: the batch must not be acked
            log.warning("analytics sink: a batch did not commit", extra={"attempt": attempt, "error": repr(exc)})
            await asyncio.sleep(min(0.5 * 2 ** attempt, 5))
    log.error("analytics sink: PostgreSQL did not take a batch; exiting so that it is redelivered")
    os._exit(EXIT_SINK_FAILED)  # not raise: faust's take() would ack the batch on the way out


@app.agent(inventory_analytics)
async def persist(stream: Any) -> None:
    engine = create_engine(settings.database_url, pool_size=2)
    try:
        async for values in stream.take(settings.analytics_sink_batch_size,
                                        within=settings.analytics_sink_batch_s):
            await _write(engine, _rows(values))
    finally:
        await engine.dispose()
