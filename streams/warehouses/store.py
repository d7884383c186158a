"""How one partition's warehouse ledgers are laid out in their changelogged table, exactly once.

The same discipline as the stock store (``streams/stock/store.py``), on fewer kinds of keys:

- ``s:<warehouse>``            the ledger: capacity, stored, open holds, ``seq``, ``n`` (commands)
- ``c:<warehouse>:<command>``  a decided command: its events, so a retry gets the same answer
- ``k:<warehouse>:<slot>``     the command id in slot ``n % window``: the window of remembered ids

A command's record is written before the ledger (``TableBatch`` writes ``s:`` keys last), so a
crash between them leaves a record whose ledger write is missing; its redelivery completes it.
"""
from __future__ import annotations

import logging
from typing import Any, MutableMapping

from streams.warehouses.logic import decide, fold
from streams.warehouses.records import (
    WarehouseCommand,
    WarehouseEvent,
    WarehouseState,
    warehouse_event_from_avro,
    warehouse_event_to_avro,
)

__all__ = ["WarehouseStore"]

log = logging.getLogger(__name__)


def _dump(state: WarehouseState, recorded: int) -> dict[str, Any]:
    return {"id": state.warehouse_id, "name": state.name, "location": state.location,
            "capacity": state.capacity, "stored": state.stored, "holds": dict(state.holds),
            "seq": state.seq, "n": recorded}


def _load(warehouse_id: str, data: dict[str, Any] | None) -> tuple[WarehouseState, int]:
    if data is None:
        return WarehouseState(warehouse_id), 0
    return WarehouseState(warehouse_id, data["name"], data["location"], data["capacity"],
                          data["stored"], data["holds"], data["seq"]), data["n"]


class WarehouseStore:
    """Decides warehouse commands against one partition's table, each command exactly once."""

    def __init__(self, table: MutableMapping[str, Any], window: int = 10_000) -> None:
        self.table = table
        self.window = window

    def ledger(self, warehouse_id: str) -> WarehouseState:
        return _load(warehouse_id, self.table.get(f"s:{warehouse_id}"))[0]

    def handle(self, command: WarehouseCommand) -> list[WarehouseEvent]:
        """The events of ``command``: decided now, or the remembered ones if it was seen before."""
        wid = command.warehouse_id
        record_key = f"c:{wid}:{command.command_id}"
        state, recorded = _load(wid, self.table.get(f"s:{wid}"))
        record = self.table.get(record_key)
        if record is not None:
            events = [warehouse_event_from_avro(e) for e in record["events"]]
            if recorded < record["n"]:  # the crash came between the record and the ledger write
                log.warning("completing a partly written command", extra={"command_id": command.command_id})
                self._write(fold(state, events), command.command_id, record)
            elif recorded == record["n"] and record["evict"]:  # its eviction may not have been written
                self.table.pop(f"c:{wid}:{record['evict']}", None)
            return events
        events = decide(state, command)
        number = recorded + 1
        record = {"n": number, "events": [warehouse_event_to_avro(e) for e in events],
                  "evict": self.table.get(f"k:{wid}:{number % self.window}")}
        self.table[record_key] = record
        self._write(fold(state, events), command.command_id, record)
        return events

    def _write(self, after: WarehouseState, command_id: str, record: dict[str, Any]) -> None:
        wid = after.warehouse_id
        self.table[f"k:{wid}:{record['n'] % self.window}"] = command_id
        self.table[f"s:{wid}"] = _dump(after, record["n"])
        if record["evict"]:
            self.table.pop(f"c:{wid}:{record['evict']}", None)
