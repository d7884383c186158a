"""The warehouse agent: the single writer of every warehouse's capacity ledger on its partitions.

The same glue as the stock agent (``streams/partition/agent.py``) around ``WarehouseStore``: a
batch of ``warehouse-commands`` records is decided per partition in log order, and each
partition's changelog records, ledger events, dead letters and the receipts it sends on to the
SKUs' owners (``saga.py``) are committed in one transaction of its fenced producer.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, MutableMapping, Sequence

from schemas import command_codec, warehouse_command_codec, warehouse_event_codec
from streams.app import app, settings, warehouse_commands
from streams.partition.agent import decide_records, keyed_decoder, own_partitions, run_agent
from streams.partition.owner import Decided, Owners
from streams.stock.records import command_to_avro
from streams.topics import (
    STOCK_COMMANDS,
    WAREHOUSE_COMMANDS,
    WAREHOUSE_COMMANDS_DLQ,
    WAREHOUSE_EVENTS,
    WAREHOUSE_TABLE,
)
from streams.warehouses.records import (
    WarehouseCommand,
    WarehouseEvent,
    warehouse_command_from_avro,
    warehouse_event_to_avro,
)
from streams.warehouses.saga import receipts_for
from streams.warehouses.store import WarehouseStore

__all__ = ["owners", "process_warehouse_commands", "decode_warehouse_command", "decide_warehouse_batch"]

log = logging.getLogger(__name__)
_commands = warehouse_command_codec()
_events = warehouse_event_codec()
_stock_commands = command_codec()

owners = Owners(settings, Path(settings.worker_data_dir), WAREHOUSE_TABLE)


decode_warehouse_command = keyed_decoder(_commands, warehouse_command_from_avro,
                                         lambda command: command.warehouse_id, "warehouse")


def _announce(decided: Decided, command: WarehouseCommand, facts: list[WarehouseEvent]) -> None:
    """The ledger's events, and the receipts they send on to the SKUs' owners (saga.py)."""
    for fact in facts:
        decided.send(WAREHOUSE_EVENTS, fact.warehouse_id.encode(),
                     _events.encode(warehouse_event_to_avro(fact)))
    for receipt in receipts_for(command, facts):
        decided.send(STOCK_COMMANDS, receipt.sku.encode(), _stock_commands.encode(command_to_avro(receipt)))


def decide_warehouse_batch(table: MutableMapping[str, Any], events: Sequence) -> Decided:
    """Decides one partition's records in order: the ledger events, the receipts they send to
    the SKUs' owners, and the records to dead-letter."""
    store = WarehouseStore(table, window=settings.dedup_window)
    return decide_records(events, decode_warehouse_command, store.handle, _announce, WAREHOUSE_COMMANDS_DLQ)


@app.agent(warehouse_commands)
async def process_warehouse_commands(stream):
    await run_agent(stream, owners, decide_warehouse_batch, settings.command_batch_size,
                    settings.command_batch_seconds)


own_partitions(app, owners, WAREHOUSE_COMMANDS)
