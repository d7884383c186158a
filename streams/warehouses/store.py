"""How one partition's warehouse ledgers are kept: the layout and exactly-once discipline of
``streams/partition/keyed.py``, keyed by warehouse id (``s:<warehouse>`` is the ledger: capacity,
stored, open holds, ``seq``).
"""
from __future__ import annotations

from typing import Any, MutableMapping

from streams.partition.keyed import KeyedStore, Rules
from streams.warehouses.logic import decide, fold
from streams.warehouses.records import (
    WarehouseCommand,
    WarehouseEvent,
    WarehouseState,
    warehouse_event_from_avro,
    warehouse_event_to_avro,
)

__all__ = ["WarehouseStore"]


def _dump(state: WarehouseState) -> dict[str, Any]:
    return {"id": state.warehouse_id, "name": state.name, "location": state.location,
            "capacity": state.capacity, "stored": state.stored, "holds": dict(state.holds),
            "seq": state.seq}


def _load(warehouse_id: str, data: dict[str, Any] | None) -> WarehouseState:
    if data is None:
        return WarehouseState(warehouse_id)
    return WarehouseState(warehouse_id, data["name"], data["location"], data["capacity"],
                          data["stored"], data["holds"], data["seq"])


RULES = Rules(decide, fold, _load, _dump, warehouse_event_to_avro, warehouse_event_from_avro)


class WarehouseStore:
    """Decides warehouse commands against one partition's table, each command exactly once."""

    def __init__(self, table: MutableMapping[str, Any], window: int = 10_000) -> None:
        self.table = table
        self._store = KeyedStore(table, RULES, window)

    def ledger(self, warehouse_id: str) -> WarehouseState:
        return self._store.state(warehouse_id)

    def handle(self, command: WarehouseCommand) -> list[WarehouseEvent]:
        """The events of ``command``: decided now, or the remembered ones if it was seen before."""
        return self._store.handle(command.warehouse_id, command.command_id, command)
