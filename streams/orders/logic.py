"""An order's saga, as pure functions: no I/O, no clock, no randomness.

An order's lines live on different SKUs, so on different partitions: no stock agent can reserve
a whole order. The order's own single writer (partitioned by order id) runs the saga instead:

- ``PlaceOrder`` records the order (every line PENDING); the saga sends each line's
  ``AllocateLine`` to its SKU's owner, which answers ``LineAllocated`` or ``LineRejected``, or,
  if the order allows backorders and the SKU cannot serve it now, ``LineBackordered`` (the line
  waits in the SKU's queue, and its ``LineAllocated`` comes when stock arrives);
- once no line waits for an answer the order is RESERVED (every line allocated) or BACKORDERED
  (some wait in a queue: it is RESERVED when the last of them is allocated); ``FulfilOrder``
  commits every part of a RESERVED order;
- a line of an order that allows pre-orders may hold units announced as incoming: the order is
  PREORDERED (not RESERVED) while any of them has not arrived; each arrival (``PartArrived``,
  sent by the SKU's owner when a receipt brings them) lowers its part's ``awaiting``, and the
  last one makes the order RESERVED, which can be fulfilled;
- one rejected line rejects a PENDING order, and ``CancelOrder`` cancels a PENDING, BACKORDERED
  or RESERVED one: either way every ALLOCATED line is RELEASED and every BACKORDERED line
  WITHDRAWN (its queue entry cancelled) in the same event (compensation); a line whose
  allocation arrives later is released at once (``PartsReleased``), also one withdrawn that its
  SKU served before the withdrawal arrived, and a line backordered later is withdrawn at once
  (``BackorderWithdrawn``).

So once every line has answered, no line of a REJECTED or CANCELLED order holds stock or waits
in a queue. Every event says which lines it ``released`` or ``committed`` (they were ALLOCATED
before it) and ``withdrawn`` (they were BACKORDERED before it), so the saga's stock commands
follow from the events alone. One command may cause several events (a line's allocation, then
the order's reservation); each advances ``seq`` and has the id of its (command id, index). A
refusal changes nothing and keeps ``seq``. The store remembers command ids (``store.py``), so a
redelivery changes nothing twice.
"""
from __future__ import annotations

from dataclasses import replace
from functools import reduce
from typing import Any, Callable, Iterable

from streams.orders.records import (
    MAX_LINES,
    CancelOrder,
    FulfilOrder,
    LineAllocated,
    LineBackordered,
    LineOutcome,
    PartArrived,
    LineRejected,
    LineState,
    OrderCommand,
    OrderEvent,
    OrderEventKind,
    OrderRefusal,
    OrderState,
    OrderStatus,
    PlaceOrder,
    order_event_id,
)

__all__ = ["decide", "evolve", "fold"]

_OPEN = (OrderStatus.PENDING, OrderStatus.BACKORDERED, OrderStatus.RESERVED,  # what may still be cancelled
         OrderStatus.PREORDERED)
_WAITING = (OrderStatus.PENDING, OrderStatus.BACKORDERED)  # what its lines' answers move on
_ENDED = (OrderStatus.REJECTED, OrderStatus.CANCELLED)  # what compensates a late answer
_LATE = {LineState.ALLOCATED: OrderEventKind.PARTS_RELEASED,  # a late answer's compensation
         LineState.BACKORDERED: OrderEventKind.BACKORDER_WITHDRAWN}


def _snapshot(after: OrderState, command: OrderCommand, index: int, kind: OrderEventKind,
              **facts: Any) -> OrderEvent:
    return OrderEvent(order_event_id(command.command_id, index), command.command_id, after.order_id,
                      after.seq, command.issued_at, command.sender, kind, after.status, after.customer,
                      after.preferred_warehouse, after.allow_backorders, after.strategy, after.lines,
                      priority=after.priority, allow_preorders=after.allow_preorders, **facts)


def _change(state: OrderState, command: OrderCommand, index: int, kind: OrderEventKind,
            released: tuple[int, ...] = (), committed: tuple[int, ...] = (), withdrawn: tuple[int, ...] = (),
            detail: str = "", **changes: Any) -> OrderEvent:
    """The ``index``-th event of ``command``: ``state`` with ``changes``, one ``seq`` later."""
    after = replace(state, seq=state.seq + 1, **changes)
    return _snapshot(after, command, index, kind, released=released, committed=committed, withdrawn=withdrawn,
                     detail=detail)


def _refuse(state: OrderState, command: OrderCommand, reason: OrderRefusal, detail: str) -> list[OrderEvent]:
    return [_snapshot(state, command, 0, OrderEventKind.REFUSED, reason=reason, detail=detail)]


def _with_line(lines: tuple[LineOutcome, ...], number: int, **changes: Any) -> tuple[LineOutcome, ...]:
    return tuple(replace(o, **changes) if o.line == number else o for o in lines)


def _settle(lines: tuple[LineOutcome, ...], to: LineState, held: LineState = LineState.ALLOCATED,
            ) -> tuple[tuple[LineOutcome, ...], tuple[int, ...]]:
    """Every ``held`` line (ALLOCATED: moved ``to`` RELEASED or COMMITTED; BACKORDERED: moved
    ``to`` WITHDRAWN), and the numbers of those lines."""
    moved = tuple(o.line for o in lines if o.state is held)
    return tuple(replace(o, state=to) if o.line in moved else o for o in lines), moved


def _compensate(state: OrderState, command: OrderCommand, index: int, kind: OrderEventKind,
                **changes: Any) -> OrderEvent:
    """``kind`` with every ALLOCATED line RELEASED and every BACKORDERED line WITHDRAWN: an order
    that ended may neither hold stock nor wait in a SKU's queue (its units would go to it)."""
    lines, released = _settle(state.lines, LineState.RELEASED)
    lines, withdrawn = _settle(lines, LineState.WITHDRAWN, held=LineState.BACKORDERED)
    return _change(state, command, index, kind, lines=lines, released=released, withdrawn=withdrawn, **changes)


def _moved_on(after: OrderState, command: OrderCommand, line: int) -> list[OrderEvent]:
    """What a line's answer leads to, as the command's second event: in an order that ended, the
    line compensated at once; else the order RESERVED or BACKORDERED once no line waits for an
    answer (REJECTED needs no waiting: a rejected line rejects the order as it arrives)."""
    if after.status in _ENDED:
        return [_compensate(after, command, 1, _LATE[after.line(line).state])]
    if after.status not in _WAITING or any(o.state is LineState.PENDING for o in after.lines):
        return []
    if any(o.state is LineState.BACKORDERED for o in after.lines):
        if after.status is OrderStatus.BACKORDERED:
            return []
        return [_change(after, command, 1, OrderEventKind.ORDER_BACKORDERED, status=OrderStatus.BACKORDERED)]
    return [_held(after, command, 1)]


def _held(after: OrderState, command: OrderCommand, index: int) -> OrderEvent:
    """Every line allocated: RESERVED, or PREORDERED while pre-ordered units have not arrived."""
    if awaiting := _awaiting(after):
        return _change(after, command, index, OrderEventKind.ORDER_PREORDERED, status=OrderStatus.PREORDERED,
                       detail=f"{awaiting} pre-ordered units have not arrived")
    return _change(after, command, index, OrderEventKind.ORDER_RESERVED, status=OrderStatus.RESERVED)


def _awaiting(state: OrderState) -> int:
    """The pre-ordered units of the allocated lines that have not arrived."""
    return sum(part.awaiting for o in state.lines if o.state is LineState.ALLOCATED for part in o.parts)


def _invalid(body: PlaceOrder) -> str:
    """Why ``body`` is not an order that can be placed ("" if it can)."""
    if not body.lines:
        return "an order needs at least one line"
    if len(body.lines) > MAX_LINES:
        return f"{len(body.lines)} lines, at most {MAX_LINES}"
    skus = [line.sku for line in body.lines]
    if any(not sku.strip() for sku in skus):
        return "every line needs a SKU"
    if len(set(skus)) < len(skus):
        return "a SKU appears on two lines"
    if any(line.quantity <= 0 for line in body.lines):
        return "every line's quantity must be positive"
    return ""


def _place(state: OrderState, command: OrderCommand, body: PlaceOrder) -> list[OrderEvent]:
    if state.exists:
        return _refuse(state, command, OrderRefusal.ORDER_EXISTS, f"order {state.order_id} exists")
    if problem := _invalid(body):
        return _refuse(state, command, OrderRefusal.INVALID_ORDER, problem)
    lines = tuple(LineOutcome(n, line.sku, line.quantity, LineState.PENDING)
                  for n, line in enumerate(body.lines, start=1))
    return [_change(state, command, 0, OrderEventKind.ORDER_PLACED, status=OrderStatus.PENDING,
                    customer=body.customer, preferred_warehouse=body.preferred_warehouse,
                    allow_backorders=body.allow_backorders, strategy=body.strategy,
                    priority=body.priority, lines=lines, allow_preorders=body.allow_preorders)]


def _awaited(state: OrderState, command: OrderCommand, number: int,
             waiting: tuple[LineState, ...] = (LineState.PENDING,)) -> list[OrderEvent]:
    """A refusal if line ``number`` is not ``waiting`` for this answer (with the command store's
    dedup this does not happen: a harmless answer to an unknown line or a second answer)."""
    line = state.line(number)
    if line is None:
        return _refuse(state, command, OrderRefusal.OTHER, f"order {state.order_id} has no line {number}")
    if line.state not in waiting:
        return _refuse(state, command, OrderRefusal.OTHER,
                       f"line {number} is {line.state}, not {' or '.join(waiting)}")
    return []


# A queued line is allocated when its SKU serves it; a withdrawn one too, when the SKU served it
# before the withdrawal arrived (its parts are released at once: the order ended).
_ALLOCATABLE = (LineState.PENDING, LineState.BACKORDERED, LineState.WITHDRAWN)


def _allocated(state: OrderState, command: OrderCommand, body: LineAllocated) -> list[OrderEvent]:
    if refused := _awaited(state, command, body.line, _ALLOCATABLE):
        return refused
    lines = _with_line(state.lines, body.line, state=LineState.ALLOCATED, parts=body.parts)
    first = _change(state, command, 0, OrderEventKind.LINE_ALLOCATED, lines=lines)
    return [first, *_moved_on(evolve(state, first), command, body.line)]


def _backordered(state: OrderState, command: OrderCommand, body: LineBackordered) -> list[OrderEvent]:
    if refused := _awaited(state, command, body.line):
        return refused
    lines = _with_line(state.lines, body.line, state=LineState.BACKORDERED)
    first = _change(state, command, 0, OrderEventKind.LINE_BACKORDERED, lines=lines,
                    detail=f"line {body.line}: position {body.position} in its SKU's backorder queue")
    return [first, *_moved_on(evolve(state, first), command, body.line)]


def _rejected(state: OrderState, command: OrderCommand, body: LineRejected) -> list[OrderEvent]:
    if refused := _awaited(state, command, body.line):
        return refused
    detail = f"line {body.line}: {body.reason}" + (f": {body.detail}" if body.detail else "")
    lines = _with_line(state.lines, body.line, state=LineState.REJECTED)
    first = _change(state, command, 0, OrderEventKind.LINE_REJECTED, lines=lines, detail=detail)
    if state.status is not OrderStatus.PENDING:  # rejected or cancelled already: nothing held
        return [first]
    return [first, _compensate(evolve(state, first), command, 1, OrderEventKind.ORDER_REJECTED,
                               status=OrderStatus.REJECTED, detail=detail)]


def _arrived(state: OrderState, command: OrderCommand, body: PartArrived) -> list[OrderEvent]:
    """Pre-ordered units of a part arrived (also of a line released since: harmless)."""
    line = next((o for o in state.lines if any(p.reservation_id == body.reservation_id for p in o.parts)), None)
    if line is None:
        return _refuse(state, command, OrderRefusal.OTHER, f"no part {body.reservation_id} in order {state.order_id}")
    parts = tuple(replace(p, awaiting=min(p.awaiting, body.awaiting)) if p.reservation_id == body.reservation_id
                  else p for p in line.parts)
    first = _change(state, command, 0, OrderEventKind.PART_ARRIVED, lines=_with_line(state.lines, line.line, parts=parts),
                    detail=f"line {line.line}: {body.awaiting} units of {body.reservation_id} still to arrive")
    after = evolve(state, first)
    if after.status is not OrderStatus.PREORDERED or _awaiting(after):
        return [first]
    return [first, _held(after, command, 1)]


def _cancel(state: OrderState, command: OrderCommand, body: CancelOrder) -> list[OrderEvent]:
    if state.status not in _OPEN:
        return _refuse(state, command, OrderRefusal.NOT_CANCELLABLE, f"order {state.order_id} is {state.status}")
    return [_compensate(state, command, 0, OrderEventKind.ORDER_CANCELLED, status=OrderStatus.CANCELLED,
                        detail=body.reason)]


def _fulfil(state: OrderState, command: OrderCommand, body: FulfilOrder) -> list[OrderEvent]:
    if state.status is not OrderStatus.RESERVED:
        awaiting = _awaiting(state)
        waiting = f": {awaiting} pre-ordered units have not arrived" if awaiting else ""
        return _refuse(state, command, OrderRefusal.NOT_RESERVED, f"order {state.order_id} is {state.status}{waiting}")
    lines, committed = _settle(state.lines, LineState.COMMITTED)  # RESERVED: every line is allocated
    return [_change(state, command, 0, OrderEventKind.ORDER_FULFILLED, status=OrderStatus.FULFILLED,
                    lines=lines, committed=committed)]


_DECIDERS: dict[type, Callable[[OrderState, OrderCommand, Any], list[OrderEvent]]] = {
    PlaceOrder: _place, LineAllocated: _allocated, LineRejected: _rejected, CancelOrder: _cancel,
    FulfilOrder: _fulfil, LineBackordered: _backordered, PartArrived: _arrived,
}


def decide(state: OrderState, command: OrderCommand) -> list[OrderEvent]:
    """The events ``command`` causes on ``state``: one or two effects, or one refusal."""
    if command.order_id != state.order_id:
        raise ValueError(f"command for order {command.order_id} decided on {state.order_id}")
    body = command.body
    if not state.exists and not isinstance(body, PlaceOrder):
        return _refuse(state, command, OrderRefusal.UNKNOWN_ORDER, f"no order {state.order_id}")
    return _DECIDERS[type(body)](state, command, body)


def evolve(state: OrderState, event: OrderEvent) -> OrderState:
    """``state`` after ``event``: an effect's event is a snapshot of the whole order."""
    if event.refused:
        return state
    return replace(state, status=event.status, customer=event.customer,
                   preferred_warehouse=event.preferred_warehouse, allow_backorders=event.allow_backorders,
                   strategy=event.strategy, priority=event.priority, lines=event.lines, seq=event.seq,
                   allow_preorders=event.allow_preorders)


def fold(state: OrderState, events: Iterable[OrderEvent]) -> OrderState:
    return reduce(evolve, events, state)
