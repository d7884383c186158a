"""The PostgreSQL sink agent: batches of stock events, one idempotent transaction each."""
from __future__ import annotations

import logging

from common.errors import SchemaError
from schemas import event_codec
from storage.db import create_engine
from storage.sink import EventSink
from streams.app import app, settings, stock_events
from streams.stock.records import event_from_avro

__all__ = ["persist_stock_events"]

log = logging.getLogger(__name__)
_events = event_codec()
_sink: EventSink | None = None


def _get_sink() -> EventSink:
    global _sink
    if _sink is None:
        _sink = EventSink(create_engine(settings.database_url, pool_size=2))
    return _sink


@app.agent(stock_events)
async def persist_stock_events(stream):
    async for batch in stream.take(settings.sink_batch_size, within=settings.sink_batch_seconds):
        events = []
        for value in batch:
            try:
                events.append(event_from_avro(_events.decode(value)))
            except SchemaError:
                # stock-events has one writer (the stock agent); this would be a bug, not input.
                log.exception("undecodable stock event skipped")
        if events:
            await _get_sink().write(events)
