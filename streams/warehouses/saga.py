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

A transfer is the same chain with one more step: the destination's ledger holds space first
(``ReceiveStock`` with a ``source``), then sends the SKU's owner ``TransferStock`` (id: the
transfer's); its ``TransferredOut`` frees space at the source and sends the owner itself
``ArriveTransfer`` (id ``arrive:<transfer>``), whose ``TransferArrived`` confirms the space at
the destination; a refused move out releases it. On hand plus in transit never changes.
"""
from __future__ import annotations

from typing import Iterable

from streams.stock.records import (
    AdjustStock,
    ArriveTransfer,
    Command,
    Committed,
    Event,
    StockAdjusted,
    TransferArrived,
    TransferredOut,
    TransferStock,
)
from streams.warehouses.records import (
    ConfirmSpace,
    EventKind,
    FreeSpace,
    ReleaseSpace,
    WarehouseCommand,
    WarehouseEvent,
)

__all__ = ["receipts_for", "arrivals_for", "space_commands_for", "STOCK_SENDER"]

STOCK_SENDER = "stock-agent"


def receipts_for(command: WarehouseCommand, events: Iterable[WarehouseEvent]) -> list[Command]:
    """The stock commands a ledger decision sends: the receipt of units whose space is held, or
    for a transfer, the move out of its source."""
    source = getattr(command.body, "source", "")
    return [Command(command.command_id, event.sku, command.issued_at,
                    TransferStock(source, event.warehouse_id, event.quantity) if source else
                    AdjustStock(event.warehouse_id, event.quantity, event.receipt_reason, event.hold_id),
                    command.sender)
            for event in events if event.kind is EventKind.SPACE_HELD]


def arrivals_for(command: Command, events: Iterable[Event]) -> list[Command]:
    """The stock commands a stock decision sends itself: units that left for another warehouse
    arrive there, id ``arrive:<transfer>``."""
    return [Command(f"arrive:{event.body.transfer_id}", event.sku, command.issued_at,
                    ArriveTransfer(event.body.transfer_id), STOCK_SENDER)
            for event in events if isinstance(event.body, TransferredOut)]


def space_commands_for(command: Command, events: Iterable[Event]) -> list[WarehouseCommand]:
    """The ledger commands a stock decision sends: settle a receipt's or transfer's hold (once
    per decision, which may also serve backorders), and free what left."""
    events = list(events)
    settle = _settlement(command, events)
    out = [settle] if settle is not None else []
    for event in events:
        left = -event.on_hand_delta
        if isinstance(event.body, (StockAdjusted, Committed, TransferredOut)) and left > 0:
            out.append(WarehouseCommand(f"free:{event.event_id}", event.warehouse, command.issued_at,
                                        FreeSpace(event.sku, left), STOCK_SENDER))
    return out


def _settlement(command: Command, events: list[Event]) -> WarehouseCommand | None:
    """The hold the decision settles at the destination, if any: a receipt's (taken in or
    refused), a transfer's refused move out, or a transfer's arrival; id ``settle:<hold>``."""
    body = command.body
    if isinstance(body, AdjustStock) and body.hold_id and body.quantity > 0:
        hold, where = body.hold_id, body.warehouse
        taken_in = any(_received(body, event) for event in events)
        settle = ConfirmSpace(hold) if taken_in else ReleaseSpace(hold)
    elif isinstance(body, TransferStock):
        if any(isinstance(event.body, TransferredOut) for event in events):
            return None  # on its way: the arrival settles it
        hold, where, settle = command.command_id, body.destination, ReleaseSpace(command.command_id)
    elif isinstance(body, ArriveTransfer):
        arrived = [event for event in events if isinstance(event.body, TransferArrived)]
        if not arrived:
            return None
        hold, where, settle = body.transfer_id, arrived[0].warehouse, ConfirmSpace(body.transfer_id)
    else:
        return None
    return WarehouseCommand(f"settle:{hold}", where, command.issued_at, settle, STOCK_SENDER)


def _received(receipt: AdjustStock, event: Event) -> bool:
    """Whether ``event`` took exactly this receipt's units in. A command id reused by a client
    for another command of the SKU is answered with that command's remembered event: its
    units did not come in, so the space must not be confirmed."""
    return (isinstance(event.body, StockAdjusted) and event.warehouse == receipt.warehouse
            and event.on_hand_delta == receipt.quantity)
