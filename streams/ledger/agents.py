"""The PostgreSQL sink agent: batches of stock events, one idempotent transaction each."""
from __future__ import annotations

import logging

from storage.db import create_engine
from storage.sink import EventSink
from streams.app import app, settings, stock_events
from streams.stock.records import event_from_avro

__all__ = ["persist_stock_events"]

log = logging.getLogger(__name__)
_sink: EventSink | None = None


def _get_sink() -> EventSink:
    global _sink
    if _sink is None:
        _sink = EventSink(create_engine(settings.database_url, pool_size=2))
    return _sink


@app.agent(stock_events)
async def persist_stock_events(stream):
    async for batch in stream.take(settings.sink_batch_size, within=settings.sink_batch_seconds):
        # Decoded by the faust Avro codec; stock-events has one writer, the stock agent.
        await _get_sink().write([event_from_avro(value) for value in batch])
