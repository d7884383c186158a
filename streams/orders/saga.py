"""The order saga between the two areas, as pure functions of a decision's command and events.

An order's lines cross single writers: the order's own (keyed by order id) and each line's SKU
owner. Each step is a command the deciding agent sends in the same transaction as its events (an
outbox), with an id derived from what it answers, so a redelivered decision (which re-announces
the remembered events) sends the same commands again and the receiver's command store ignores
them:

- order ``OrderPlaced`` -> stock ``AllocateLine`` per line, id ``allocate:<order>:<line>``;
- stock decision of that ``AllocateLine`` -> order ``LineAllocated`` (its parts) or
  ``LineRejected``, id ``allocated:<order>:<line>``;
- an order event's ``released`` lines -> stock ``Release`` per part, id ``release:<reservation>``;
  its ``committed`` lines -> ``Commit`` per part, id ``commit:<reservation>``.

Every order event is a snapshot that names the lines it released or committed, so the stock
commands follow from the events alone (even their ``issued_at``: the event's ``occurred_at``),
whatever command a redelivery or a reused command id comes with.
"""
from __future__ import annotations

from typing import Iterable

from streams.orders.records import (
    LineAllocated,
    LineRejected,
    OrderCommand,
    OrderEvent,
    OrderEventKind,
    Part,
)
from streams.stock.records import AllocateLine, Allocated, Command, Commit, Event, Release

__all__ = ["stock_commands_for", "order_commands_for", "ORDER_SENDER", "STOCK_SENDER"]

ORDER_SENDER = "order-agent"
STOCK_SENDER = "stock-agent"


def stock_commands_for(command: OrderCommand, events: Iterable[OrderEvent]) -> list[Command]:
    """The stock commands an order decision sends: allocate a placed order's lines, release or
    commit the parts of the lines an event released or committed."""
    out: list[Command] = []
    for event in events:
        if event.kind is OrderEventKind.ORDER_PLACED:
            out.extend(_allocations(event))
        out.extend(_settlements(event, event.released, Release, "release"))
        out.extend(_settlements(event, event.committed, Commit, "commit"))
    return out


def _allocations(event: OrderEvent) -> list[Command]:
    return [Command(f"allocate:{event.order_id}:{line.line}", line.sku, event.occurred_at,
                    AllocateLine(event.order_id, line.line, line.quantity,
                                 preferred_warehouse=event.preferred_warehouse, strategy=event.strategy,
                                 priority=event.priority),
                    ORDER_SENDER)
            for line in event.lines]


def _settlements(event: OrderEvent, numbers: tuple[int, ...], body: type[Release] | type[Commit],
                 prefix: str) -> list[Command]:
    return [Command(f"{prefix}:{part.reservation_id}", line.sku, event.occurred_at,
                    body(part.reservation_id), ORDER_SENDER)
            for line in event.lines if line.line in numbers for part in line.parts]


def order_commands_for(command: Command, events: Iterable[Event]) -> list[OrderCommand]:
    """The order command a stock decision sends: the answer to an ``AllocateLine``."""
    body = command.body
    if not isinstance(body, AllocateLine):
        return []
    return [OrderCommand(f"allocated:{body.order_id}:{body.line}", body.order_id, command.issued_at,
                         _answer(command, body, list(events)), STOCK_SENDER)]


def _answer(command: Command, line: AllocateLine, events: list[Event]) -> LineAllocated | LineRejected:
    """The line's allocation if ``events`` hold it. A command id reused by a client for another
    command of the SKU is answered with that command's remembered events: nothing was held for
    this line then, so it is rejected, and the order does not wait for it forever."""
    for event in events:
        if isinstance(event.body, Allocated) and (event.body.order_id, event.body.line) == (line.order_id, line.line):
            return LineAllocated(line.line, tuple(Part(p.warehouse, p.quantity, p.reservation_id)
                                                  for p in event.body.parts))
        if event.is_rejection:
            return LineRejected(line.line, str(getattr(event.body, "reason", "OTHER")),
                                getattr(event.body, "detail", ""))
    return LineRejected(line.line, "OTHER", f"command {command.command_id} was answered with "
                                            f"{[e.type for e in events]}, not this line's allocation")
