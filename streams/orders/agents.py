"""The order agent: the single writer of every order's saga on its partitions.

The same glue as the other areas' agents (``streams/partition/agent.py``) around ``OrderStore``:
a batch of ``order-commands`` records is decided per partition in log order, and each
partition's changelog records, order events, dead letters and the stock commands the saga sends
(a line's allocation, releases, commits, withdrawals of queued lines: ``saga.py``) are committed
in one transaction of its fenced producer.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, MutableMapping, Sequence

from schemas import command_codec, order_command_codec, order_event_codec
from streams.app import app, order_commands, settings
from streams.orders.records import OrderCommand, OrderEvent, order_command_from_avro, order_event_to_avro
from streams.orders.saga import stock_commands_for
from streams.orders.store import OrderStore
from streams.partition.agent import decide_records, keyed_decoder, own_partitions, run_agent
from streams.partition.owner import Decided, Owners
from streams.stock.records import command_to_avro
from streams.topics import ORDER_COMMANDS, ORDER_COMMANDS_DLQ, ORDER_EVENTS, ORDER_TABLE, STOCK_COMMANDS

__all__ = ["owners", "process_order_commands", "decode_order_command", "decide_order_batch"]

log = logging.getLogger(__name__)
_commands = order_command_codec()
_events = order_event_codec()
_stock_commands = command_codec()

owners = Owners(settings, Path(settings.worker_data_dir), ORDER_TABLE)


decode_order_command = keyed_decoder(_commands, order_command_from_avro, lambda command: command.order_id,
                                     "order")


def _announce(decided: Decided, command: OrderCommand, facts: list[OrderEvent]) -> None:
    """The order's events, and the stock commands its saga sends on (saga.py)."""
    for fact in facts:
        decided.send(ORDER_EVENTS, fact.order_id.encode(), _events.encode(order_event_to_avro(fact)))
    for step in stock_commands_for(command, facts):
        decided.send(STOCK_COMMANDS, step.sku.encode(), _stock_commands.encode(command_to_avro(step)))


def decide_order_batch(table: MutableMapping[str, Any], events: Sequence) -> Decided:
    store = OrderStore(table, window=settings.dedup_window)
    return decide_records(events, decode_order_command, store.handle, _announce, ORDER_COMMANDS_DLQ)


@app.agent(order_commands)
async def process_order_commands(stream):
    await run_agent(stream, owners, decide_order_batch, settings.command_batch_size,
                    settings.command_batch_seconds)


own_partitions(app, owners, ORDER_COMMANDS)
