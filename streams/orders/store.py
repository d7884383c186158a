"""How one partition's orders are kept: the layout and exactly-once discipline of
``streams/partition/keyed.py``, keyed by order id (``s:<order>`` is the order: status, lines,
``seq``). A redelivered command answers with its remembered events, so the saga sends the same
stock commands again (``saga.py``), which the SKUs' owners ignore by id.
"""
from __future__ import annotations

from typing import Any, MutableMapping

from streams.orders.logic import decide, fold
from streams.partition.keyed import KeyedStore, Rules
from streams.orders.records import (
    OrderCommand,
    OrderEvent,
    OrderState,
    OrderStatus,
    lines_from_avro,
    lines_to_avro,
    order_event_from_avro,
    order_event_to_avro,
)

__all__ = ["OrderStore"]


def _dump(state: OrderState) -> dict[str, Any]:
    return {"id": state.order_id, "status": None if state.status is None else str(state.status),
            "customer": state.customer, "preferred_warehouse": state.preferred_warehouse,
            "allow_backorders": state.allow_backorders, "strategy": state.strategy,
            "priority": list(state.priority), "lines": lines_to_avro(state.lines), "seq": state.seq,
            "allow_preorders": state.allow_preorders}


def _load(order_id: str, data: dict[str, Any] | None) -> OrderState:
    if data is None:
        return OrderState(order_id)
    status = None if data["status"] is None else OrderStatus(data["status"])
    return OrderState(order_id, status, data["customer"], data["preferred_warehouse"],
                      data["allow_backorders"], data["strategy"], tuple(data["priority"]),
                      lines_from_avro(data["lines"]), data["seq"], data.get("allow_preorders", False))


RULES = Rules(decide, fold, _load, _dump, order_event_to_avro, order_event_from_avro)


class OrderStore:
    """Decides order commands against one partition's table, each command exactly once."""

    def __init__(self, table: MutableMapping[str, Any], window: int = 10_000) -> None:
        self.table = table
        self._store = KeyedStore(table, RULES, window)

    def order(self, order_id: str) -> OrderState:
        return self._store.state(order_id)

    def handle(self, command: OrderCommand) -> list[OrderEvent]:
        """The events of ``command``: decided now, or the remembered ones if it was seen before."""
        return self._store.handle(command.order_id, command.command_id, command)
