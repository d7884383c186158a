"""How one partition's orders are laid out in their changelogged table, exactly once.

The same discipline as the warehouse store (``streams/warehouses/store.py``):

- ``s:<order>``            the order: its status, lines, ``seq``, ``n`` (commands recorded)
- ``c:<order>:<command>``  a decided command: its events, so a retry gets the same answer
- ``k:<order>:<slot>``     the command id in slot ``n % window``: the window of remembered ids

A command's record is written before the order (``TableBatch`` writes ``s:`` keys last), so a
crash between them leaves a record whose order write is missing; its redelivery completes it.
A redelivered command answers with its remembered events, so the saga sends the same stock
commands again (``saga.py``), which the SKUs' owners ignore by id.
"""
from __future__ import annotations

import logging
from typing import Any, MutableMapping

from streams.orders.logic import decide, fold
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

log = logging.getLogger(__name__)


def _dump(state: OrderState, recorded: int) -> dict[str, Any]:
    return {"id": state.order_id, "status": None if state.status is None else str(state.status),
            "customer": state.customer, "preferred_warehouse": state.preferred_warehouse,
            "allow_backorders": state.allow_backorders, "strategy": state.strategy,
            "priority": list(state.priority), "lines": lines_to_avro(state.lines), "seq": state.seq,
            "n": recorded}


def _load(order_id: str, data: dict[str, Any] | None) -> tuple[OrderState, int]:
    if data is None:
        return OrderState(order_id), 0
    status = None if data["status"] is None else OrderStatus(data["status"])
    return OrderState(order_id, status, data["customer"], data["preferred_warehouse"],
                      data["allow_backorders"], data["strategy"], tuple(data["priority"]),
                      lines_from_avro(data["lines"]), data["seq"]), data["n"]


class OrderStore:
    """Decides order commands against one partition's table, each command exactly once."""

    def __init__(self, table: MutableMapping[str, Any], window: int = 10_000) -> None:
        self.table = table
        self.window = window

    def order(self, order_id: str) -> OrderState:
        return _load(order_id, self.table.get(f"s:{order_id}"))[0]

    def handle(self, command: OrderCommand) -> list[OrderEvent]:
        """The events of ``command``: decided now, or the remembered ones if it was seen before."""
        oid = command.order_id
        record_key = f"c:{oid}:{command.command_id}"
        state, recorded = _load(oid, self.table.get(f"s:{oid}"))
        record = self.table.get(record_key)
        if record is not None:
            events = [order_event_from_avro(e) for e in record["events"]]
            if recorded < record["n"]:  # the crash came between the record and the order write
                log.warning("completing a partly written command", extra={"command_id": command.command_id})
                self._write(fold(state, events), command.command_id, record)
            elif recorded == record["n"] and record["evict"]:  # its eviction may not have been written
                self.table.pop(f"c:{oid}:{record['evict']}", None)
            return events
        events = decide(state, command)
        number = recorded + 1
        record = {"n": number, "events": [order_event_to_avro(e) for e in events],
                  "evict": self.table.get(f"k:{oid}:{number % self.window}")}
        self.table[record_key] = record
        self._write(fold(state, events), command.command_id, record)
        return events

    def _write(self, after: OrderState, command_id: str, record: dict[str, Any]) -> None:
        oid = after.order_id
        self.table[f"k:{oid}:{record['n'] % self.window}"] = command_id
        self.table[f"s:{oid}"] = _dump(after, record["n"])
        if record["evict"]:
            self.table.pop(f"c:{oid}:{record['evict']}", None)
