"""The receipt saga between the two areas, as pure functions of a decision's command and events.

A receipt crosses two single writers: the warehouse's capacity ledger holds space, then the
SKU's owner takes the stock in and tells the ledger how it went; units that leave free their
space after the fact. Each step is a command the deciding agent sends in the same transaction as
its events (an outbox), with an id derived from what it answers, so a redelivered decision
(which re-announces the remembered events) sends the same commands again and the receiver's
command store ignores them:

- ledger ``SpaceHeld`` -> stock ``AdjustStock(+q, hold_id)``, with the receipt's own command id;
- stock decision of that receipt -> ledger ``ConfirmSpace`` (accepted) or ``ReleaseSpace``
  (refused), id ``settle:<hold>``;
- stock ``StockAdjusted(q < 0)`` or ``Committed`` -> ledger ``FreeSpace``, id ``free:<event id>``.
"""
from __future__ import annotations

from typing import Iterable

from streams.stock.records import AdjustStock, Command, Committed, Event, StockAdjusted
from streams.warehouses.records import (
    ConfirmSpace,
    EventKind,
    FreeSpace,
    ReleaseSpace,
    WarehouseCommand,
    WarehouseEvent,
)

__all__ = ["receipts_for", "space_commands_for", "STOCK_SENDER"]

STOCK_SENDER = "stock-agent"


def receipts_for(command: WarehouseCommand, events: Iterable[WarehouseEvent]) -> list[Command]:
    """The stock commands a ledger decision sends: the receipt of units whose space is held."""
    return [Command(command.command_id, event.sku, command.issued_at,
                    AdjustStock(event.warehouse_id, event.quantity, event.receipt_reason, event.hold_id),
                    command.sender)
            for event in events if event.kind is EventKind.SPACE_HELD]


def space_commands_for(command: Command, events: Iterable[Event]) -> list[WarehouseCommand]:
    """The ledger commands a stock decision sends: settle a receipt's hold, free what left."""
    out: list[WarehouseCommand] = []
    body = command.body
    for event in events:
        if isinstance(body, AdjustStock) and body.hold_id and body.quantity > 0:  # a receipt
            settle = ConfirmSpace(body.hold_id) if _received(body, event) else ReleaseSpace(body.hold_id)
            out.append(WarehouseCommand(f"settle:{body.hold_id}", body.warehouse, command.issued_at,
                                        settle, STOCK_SENDER))
            continue
        left = -event.on_hand_delta
        if isinstance(event.body, (StockAdjusted, Committed)) and left > 0:
            out.append(WarehouseCommand(f"free:{event.event_id}", event.warehouse, command.issued_at,
                                        FreeSpace(event.sku, left), STOCK_SENDER))
    return out


def _received(receipt: AdjustStock, event: Event) -> bool:
    """Whether ``event`` took exactly this receipt's units in. A command id reused by a client
    for another command of the SKU is answered with that command's remembered event: its
    units did not come in, so the space must not be confirmed."""
    return (isinstance(event.body, StockAdjusted) and event.warehouse == receipt.warehouse
            and event.on_hand_delta == receipt.quantity)
