"""The analytics worker's two agents.

- ``count`` reads ``stock-events`` (bytes, decoded here with the project's Avro codec; a record
  that does not decode is logged, counted and skipped: the ledger dead-letters it already). Each
  event is folded (``cells.fold``) into its SKU's and warehouse's cell of its hour and of its day,
  by event time, and the cell is published on ``inventory-analytics``. ``ProductCreated`` only
  records the SKU's unit cost. An event the cell has counted already (a redelivery after a
  crash) changes nothing, but its cell is published again: the crash may have come between the
  table's write and the publication.
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
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from faust.types import EventT
from prometheus_client import Counter

from common.errors import SchemaError
from schemas import event_codec
from storage.db import create_engine
from streams.analytics.app import (app, daily, hourly, inventory_analytics, retention_ms, settings,
                                   stock_events, unit_costs)
from streams.analytics.cells import (cell_from_avro, cell_from_json, cell_key, cell_to_avro, cell_to_json,
                                     fold, output_key, too_late, unit_cost_of, window_cell_codec,
                                     window_start)
from streams.analytics.sink import cell_row, write_cells
from streams.stock.records import Event, ProductCreated, event_from_avro

__all__ = ["count", "persist", "EVENTS", "CELLS_PERSISTED", "EXIT_SINK_FAILED"]

log = logging.getLogger(__name__)

EVENTS = Counter(
    "inventory_analytics_events_total",
    "stock-events records the analytics worker read, by outcome (counted; redelivered: counted "
    "before; late: older than the table keeps; undecodable)", ["outcome"])
CELLS_PERSISTED = Counter(
    "inventory_analytics_cells_persisted_total", "Window cells the analytics sink upserted")
_COUNTED, _REDELIVERED, _LATE, _UNDECODABLE = (
    EVENTS.labels(o) for o in ("counted", "redelivered", "late", "undecodable"))

EXIT_SINK_FAILED = 70
_SINK_ATTEMPTS = 5
_WINDOWS = (("hour", hourly), ("day", daily))


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


async def _count_in(granularity: str, wrapper: Any, event: Event, partition: int, offset: int,
                    cost: Decimal | None) -> None:
    start = window_start(event.occurred_at, granularity)
    if too_late(start, retention_ms(granularity), int(time.time() * 1000)):
        _LATE.inc()
        return
    # The window start itself is the timestamp faust windows by: the same window as ours exactly.
    window = wrapper.relative_to(float(start) / 1000)
    key = cell_key(event.sku, event.warehouse)
    try:
        before = cell_from_json(window[key].current())
    except KeyError:
        before = None
    after = fold(before, event, partition, offset, cost)
    if after is before:
        _REDELIVERED.inc()
    else:
        window[key] = cell_to_json(after)
    record = cell_to_avro(after, granularity, start, event.sku, event.warehouse)
    await inventory_analytics.send(
        key=output_key(granularity, _iso(start), event.sku, event.warehouse).encode(),
        value=window_cell_codec().encode(record))


async def _count(record: EventT) -> None:
    message = record.message
    event = _decode(record.value, message.partition, message.offset)
    if event is None:
        return
    if isinstance(event.body, ProductCreated):
        if (cost := unit_cost_of(event)) is not None:
            unit_costs[event.sku] = str(cost)
        return
    known = unit_costs.get(event.sku)
    cost = None if known is None else Decimal(known)
    for granularity, wrapper in _WINDOWS:
        await _count_in(granularity, wrapper, event, message.partition, message.offset, cost)
    _COUNTED.inc()


@app.agent(stock_events)
async def count(stream: Any) -> None:
    async for record in stream.events():
        await _count(record)


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
