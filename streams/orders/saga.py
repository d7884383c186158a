"""The order saga between the two areas, as pure functions of a decision's command and events.

An order's lines cross single writers: the order's own (keyed by order id) and each line's SKU
owner. Each step is a command the deciding agent sends in the same transaction as its events (an
outbox), with an id derived from what it answers, so a redelivered decision (which re-announces
the remembered events) sends the same commands again and the receiver's command store ignores
them:

- order ``OrderPlaced`` -> stock ``AllocateLine`` per line (``backorder`` if the order allows
  backorders, ``preorder`` if it allows pre-orders), id ``allocate:<order>:<line>``;
- any stock decision's ``Allocated`` events -> order ``LineAllocated`` (its parts), id
  ``allocated:<order>:<line>``, and its ``Backordered`` events -> ``LineBackordered``, id
  ``backordered:<order>:<line>``: a queued line is served by whatever decision brings its stock
  (a receipt, a release, an expiry...), so one decision may answer several orders; and the
  rejection of an ``AllocateLine`` -> ``LineRejected``, id ``allocated:<order>:<line>``; a
  receipt's ``PreorderArrived`` of an order's part -> ``PartArrived``, id
  ``arrived:<reservation>:<units still awaited>`` (each arrival awaits fewer: a new id);
- an order event's ``released`` lines -> stock ``Release`` per part, id ``release:<reservation>``;
  its ``committed`` lines -> ``Commit`` per part, id ``commit:<reservation>``; its ``withdrawn``
  lines -> ``CancelBackorder``, id ``unqueue:<order>:<line>`` (rejected by the SKU if it served
  the line already: the order then releases the allocation when it arrives).

Every order event is a snapshot that names the lines it released, committed or withdrew, so the
stock commands follow from the events alone (even their ``issued_at``: the event's
``occurred_at``), whatever command a redelivery or a reused command id comes with.
"""
from __future__ import annotations

from typing import Iterable

from streams.orders.records import (
    LineAllocated,
    LineBackordered,
    LineRejected,
    OrderCommand,
    OrderEvent,
    OrderEventKind,
    Part,
    PartArrived,
)
from streams.stock.allocation import reservation_id_for
from streams.stock.records import (
    AllocateLine,
    Allocated,
    Backordered,
    CancelBackorder,
    Command,
    Commit,
    Event,
    PreorderArrived,
    Release,
)

__all__ = ["stock_commands_for", "order_commands_for", "ORDER_SENDER", "STOCK_SENDER"]

ORDER_SENDER = "order-agent"
STOCK_SENDER = "stock-agent"


def stock_commands_for(command: OrderCommand, events: Iterable[OrderEvent]) -> list[Command]:
    """The stock commands an order decision sends: allocate a placed order's lines, release or
    commit the parts of the lines an event released or committed, take the lines it withdrew out
    of their SKUs' queues."""
    out: list[Command] = []
    for event in events:
        if event.kind is OrderEventKind.ORDER_PLACED:
            out.extend(_allocations(event))
        out.extend(_settlements(event, event.released, Release, "release"))
        out.extend(_settlements(event, event.committed, Commit, "commit"))
        out.extend(_withdrawals(event))
    return out


def _allocations(event: OrderEvent) -> list[Command]:
    return [Command(f"allocate:{event.order_id}:{line.line}", line.sku, event.occurred_at,
                    AllocateLine(event.order_id, line.line, line.quantity,
                                 preferred_warehouse=event.preferred_warehouse, strategy=event.strategy,
                                 priority=event.priority, backorder=event.allow_backorders,
                                 preorder=event.allow_preorders),
                    ORDER_SENDER)
            for line in event.lines]


def _withdrawals(event: OrderEvent) -> list[Command]:
    return [Command(f"unqueue:{event.order_id}:{line.line}", line.sku, event.occurred_at,
                    CancelBackorder(event.order_id, line.line), ORDER_SENDER)
            for line in event.lines if line.line in event.withdrawn]


def _settlements(event: OrderEvent, numbers: tuple[int, ...], body: type[Release] | type[Commit],
                 prefix: str) -> list[Command]:
    return [Command(f"{prefix}:{part.reservation_id}", line.sku, event.occurred_at,
                    body(part.reservation_id), ORDER_SENDER)
            for line in event.lines if line.line in numbers for part in line.parts]


def order_commands_for(command: Command, events: Iterable[Event]) -> list[OrderCommand]:
    """The order commands a stock decision sends: an answer for each line its events allocated or
    queued, whatever the command (a receipt may serve the queued lines of several orders), and
    the rejection of an ``AllocateLine`` they did neither, and the arrival of pre-ordered units of
    an order's part."""
    events = list(events)
    out = [_answer(command, event) for event in events if isinstance(event.body, (Allocated, Backordered))]
    out.extend(_arrival(command, event) for event in events if _is_order_part(event))
    if isinstance(command.body, AllocateLine) and not _answered(command.body, events):
        out.append(_rejection(command, command.body, events))
    return out


def _answer(command: Command, event: Event) -> OrderCommand:
    """The order's ``LineAllocated`` (its parts) or ``LineBackordered`` for one stock event."""
    body = event.body
    if isinstance(body, Allocated):
        parts = tuple(Part(p.warehouse, p.quantity, p.reservation_id, p.awaiting) for p in body.parts)
        return OrderCommand(f"allocated:{body.order_id}:{body.line}", body.order_id, command.issued_at,
                            LineAllocated(body.line, parts), STOCK_SENDER)
    return OrderCommand(f"backordered:{body.order_id}:{body.line}", body.order_id, command.issued_at,
                        LineBackordered(body.line, body.position), STOCK_SENDER)


def _is_order_part(event: Event) -> bool:
    """Whether ``event`` is an arrival for a part of an order's line (``<order>:<line>:<warehouse>``);
    a reservation made directly (``POST /reservations``) has no order to tell."""
    body = event.body
    if not isinstance(body, PreorderArrived):
        return False
    middle = body.reservation_id.removeprefix(f"{body.order_id}:").removesuffix(f":{event.warehouse}")
    return middle.isdigit() and body.reservation_id == reservation_id_for(body.order_id, int(middle),
                                                                          event.warehouse)


def _arrival(command: Command, event: Event) -> OrderCommand:
    body = event.body
    return OrderCommand(f"arrived:{body.reservation_id}:{body.awaiting}", body.order_id, command.issued_at,
                        PartArrived(body.reservation_id, body.awaiting), STOCK_SENDER)


def _answered(line: AllocateLine, events: list[Event]) -> bool:
    return any(isinstance(e.body, (Allocated, Backordered))
               and (e.body.order_id, e.body.line) == (line.order_id, line.line) for e in events)


def _rejection(command: Command, line: AllocateLine, events: list[Event]) -> OrderCommand:
    """The line rejected, with the reason of the decision's rejection. A command id reused by a
    client for another command of the SKU is answered with that command's remembered events:
    nothing was held or queued for this line then, so it is rejected too, and the order does not
    wait for it forever."""
    refusal = next((e.body for e in events if e.is_rejection), None)
    if refusal is None:
        body = LineRejected(line.line, "OTHER", f"command {command.command_id} was answered with "
                                                f"{[e.type for e in events]}, not this line's allocation")
    else:
        body = LineRejected(line.line, str(getattr(refusal, "reason", "OTHER")), getattr(refusal, "detail", ""))
    return OrderCommand(f"allocated:{line.order_id}:{line.line}", line.order_id, command.issued_at, body,
                        STOCK_SENDER)
