"""The stock agent: the single writer of every SKU on its partitions.

Thin glue around ``StockStore``: take a batch of command records, decide them in log order per
partition against a ``TableBatch`` over the partition's local state, and commit each partition's
changelog records, decision events, dead letters and the commands it sends on (to warehouse
ledgers: a receipt's settlement, space freed, ``streams/warehouses/saga.py``; to orders: a line's
allocation, ``streams/orders/saga.py``) in one transaction of the
partition's own, fenced producer (``streams/partition/owner.py``); once committed, the records go
to the local state.
A record that cannot be decoded goes to the dead-letter topic with the reason in its headers, and
the agent carries on.

faust runs the consumer group and the batching; the table is not a faust Table: faust would
write each value locally before the changelog has it, cannot fence a previous owner, and its
per-record recovery took two minutes for 100,000 SKUs (bench/README.md).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, MutableMapping, Sequence

from common.errors import MalformedRecordError
from schemas import alert_codec, command_codec, event_codec, order_command_codec, warehouse_command_codec
from streams.app import app, settings, stock_commands
from streams.partition.agent import decide_records, keyed_decoder, own_partitions, run_agent
from streams.partition.owner import Decided, Owners
from streams.orders.records import order_command_to_avro
from streams.orders.saga import order_commands_for
from streams.stock.records import (
    CLOCK_KEY,
    Command,
    Event,
    Tick,
    command_from_avro,
    command_to_avro,
    event_to_avro,
)
from streams.stock.store import StockStore
from streams.topics import (
    INVENTORY_ALERTS,
    ORDER_COMMANDS,
    STOCK_COMMANDS,
    STOCK_COMMANDS_DLQ,
    STOCK_EVENTS,
    STOCK_TABLE,
    WAREHOUSE_COMMANDS,
)
from streams.warehouses.records import warehouse_command_to_avro
from streams.warehouses.saga import arrivals_for, space_commands_for

__all__ = ["owners", "process_stock_commands", "decode_command", "decide_batch"]

log = logging.getLogger(__name__)
_commands = command_codec()
_events = event_codec()
_alerts = alert_codec()
_warehouse_commands = warehouse_command_codec()
_order_commands = order_command_codec()

owners = Owners(settings, Path(settings.worker_data_dir), STOCK_TABLE)


_decode = keyed_decoder(_commands, command_from_avro, lambda command: command.sku, "SKU")


def decode_command(key: bytes | None, value: bytes | None) -> Command:
    command = _decode(key, value)
    if (command.sku == CLOCK_KEY) != isinstance(command.body, Tick):
        raise MalformedRecordError(f"only a Tick goes to {CLOCK_KEY}, and only there")
    return command


def _alert(fact: Event) -> bytes:
    return _alerts.encode({
        "event_id": fact.event_id, "sku": fact.sku, "warehouse": fact.warehouse,
        "available": fact.on_hand - fact.reserved, "threshold": fact.low_stock_threshold,
        "occurred_at": fact.occurred_at})


def _announce(decided: Decided, command: Command, facts: list[Event]) -> None:
    """The decision's events and alerts, and the commands it sends on: to warehouse ledgers
    (streams/warehouses/saga.py) and to orders, a line's allocation (streams/orders/saga.py)."""
    for fact in facts:
        decided.send(STOCK_EVENTS, fact.sku.encode(), _events.encode(event_to_avro(fact)))
        if fact.low_stock:
            decided.send(INVENTORY_ALERTS, fact.sku.encode(), _alert(fact))
    for step in space_commands_for(command, facts):
        decided.send(WAREHOUSE_COMMANDS, step.warehouse_id.encode(),
                     _warehouse_commands.encode(warehouse_command_to_avro(step)))
    for arrival in arrivals_for(command, facts):
        decided.send(STOCK_COMMANDS, arrival.sku.encode(), _commands.encode(command_to_avro(arrival)))
    for answer in order_commands_for(command, facts):
        decided.send(ORDER_COMMANDS, answer.order_id.encode(), _order_commands.encode(order_command_to_avro(answer)))


def decide_batch(table: MutableMapping[str, Any], events: Sequence) -> Decided:
    """Decides one partition's records in order: the events to publish, the low-stock alerts
    they raise, the commands they send on, and the records to dead-letter."""
    store = StockStore(table, window=settings.dedup_window)
    return decide_records(events, decode_command, store.handle, _announce, STOCK_COMMANDS_DLQ)


@app.agent(stock_commands)
async def process_stock_commands(stream):
    await run_agent(stream, owners, decide_batch, settings.command_batch_size,
                    settings.command_batch_seconds)


own_partitions(app, owners, STOCK_COMMANDS)
