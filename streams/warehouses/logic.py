"""A warehouse's capacity ledger, as pure functions: no I/O, no clock, no randomness.

Capacity is a hard limit across all SKUs of a warehouse, but SKUs live on different partitions,
so no stock agent can see the whole warehouse. The warehouse's own single writer (partitioned by
warehouse id) keeps the ledger instead, and every unit that comes in must hold space there
first:

- a receipt (``ReceiveStock``) holds space, or is refused when it would not fit;
- the SKU's owner then receives the stock, and tells the ledger: ``ConfirmSpace`` (the held
  units are now stored) or ``ReleaseSpace`` (it refused the receipt; the space is free again);
- units that leave (a commit, a removal) ``FreeSpace`` after the fact.

``stored + held <= capacity`` always holds: space is taken before stock arrives and given back
only after it left, so the ledger may briefly count less space free than there is, never more.
Every command carries the id of the movement it is about, and the store remembers command ids
(``store.py``), so a redelivery changes nothing twice.
"""
from __future__ import annotations

from dataclasses import replace
from functools import reduce
from typing import Any, Callable, Iterable

from streams.warehouses.records import (
    ConfirmSpace,
    CreateWarehouse,
    EventKind,
    FreeSpace,
    ReceiveStock,
    Refusal,
    ReleaseSpace,
    WarehouseCommand,
    WarehouseEvent,
    WarehouseState,
    warehouse_event_id,
)

__all__ = ["decide", "evolve", "fold"]


def _event(state: WarehouseState, command: WarehouseCommand, kind: EventKind,
           after: WarehouseState, **facts: Any) -> list[WarehouseEvent]:
    seq = state.seq if kind is EventKind.REFUSED else state.seq + 1
    return [WarehouseEvent(warehouse_event_id(command.command_id), command.command_id,
                           state.warehouse_id, seq, command.issued_at, kind, after.stored, after.held,
                           after.capacity, command.sender, **facts)]


def _refuse(state: WarehouseState, command: WarehouseCommand, reason: Refusal, detail: str,
            **facts: Any) -> list[WarehouseEvent]:
    return _event(state, command, EventKind.REFUSED, state, reason=reason, detail=detail, **facts)


def _create(state: WarehouseState, command: WarehouseCommand, body: CreateWarehouse) -> list[WarehouseEvent]:
    if state.exists:
        return _refuse(state, command, Refusal.WAREHOUSE_EXISTS, f"warehouse {state.warehouse_id} exists")
    if body.capacity < 0:
        return _refuse(state, command, Refusal.INVALID_QUANTITY, "capacity must not be negative")
    if not body.name.strip():
        return _refuse(state, command, Refusal.OTHER, "name must not be empty")
    after = replace(state, name=body.name, location=body.location, capacity=body.capacity)
    return _event(state, command, EventKind.WAREHOUSE_CREATED, after, name=body.name,
                  location=body.location)


def _receive(state: WarehouseState, command: WarehouseCommand, body: ReceiveStock) -> list[WarehouseEvent]:
    hold_id = command.command_id
    facts = {"hold_id": hold_id, "sku": body.sku, "quantity": body.quantity}
    if body.quantity <= 0:
        return _refuse(state, command, Refusal.INVALID_QUANTITY, "quantity must be positive", **facts)
    if hold_id in state.holds:  # the command store answers retries; this is another sender's id
        return _refuse(state, command, Refusal.OTHER, f"hold {hold_id} is open", **facts)
    if body.quantity > state.free:
        return _refuse(state, command, Refusal.CAPACITY_EXCEEDED,
                       f"{state.free} units of space free in {state.warehouse_id}, "
                       f"{body.quantity} needed", **facts)
    after = replace(state, holds={**state.holds, hold_id: body.quantity})
    return _event(state, command, EventKind.SPACE_HELD, after, receipt_reason=body.reason, **facts)


def _settle(state: WarehouseState, command: WarehouseCommand,
            body: ConfirmSpace | ReleaseSpace) -> list[WarehouseEvent]:
    quantity = state.holds.get(body.hold_id)
    if quantity is None:
        return _refuse(state, command, Refusal.UNKNOWN_HOLD, f"no open hold {body.hold_id}",
                       hold_id=body.hold_id)
    holds = {k: v for k, v in state.holds.items() if k != body.hold_id}
    facts = {"hold_id": body.hold_id, "quantity": quantity}
    if isinstance(body, ConfirmSpace):  # the units arrived: stored from now on
        after = replace(state, holds=holds, stored=state.stored + quantity)
        return _event(state, command, EventKind.SPACE_CONFIRMED, after, **facts)
    after = replace(state, holds=holds)  # the receipt was refused: the space is free again
    return _event(state, command, EventKind.SPACE_RELEASED, after, **facts)


def _free(state: WarehouseState, command: WarehouseCommand, body: FreeSpace) -> list[WarehouseEvent]:
    if body.quantity <= 0:
        return _refuse(state, command, Refusal.INVALID_QUANTITY, "quantity must be positive",
                       sku=body.sku, quantity=body.quantity)
    # Never below zero: a unit the ledger never counted (stored before it existed) may leave.
    after = replace(state, stored=max(0, state.stored - body.quantity))
    return _event(state, command, EventKind.SPACE_FREED, after, sku=body.sku, quantity=body.quantity)


_DECIDERS: dict[type, Callable[[WarehouseState, WarehouseCommand, Any], list[WarehouseEvent]]] = {
    CreateWarehouse: _create, ReceiveStock: _receive, ConfirmSpace: _settle,
    ReleaseSpace: _settle, FreeSpace: _free,
}


def decide(state: WarehouseState, command: WarehouseCommand) -> list[WarehouseEvent]:
    """The events ``command`` causes on ``state`` (always one: its effect, or a refusal)."""
    if command.warehouse_id != state.warehouse_id:
        raise ValueError(f"command for {command.warehouse_id} decided on {state.warehouse_id}")
    body = command.body
    if not state.exists and not isinstance(body, CreateWarehouse):
        sku = getattr(body, "sku", "")
        return _refuse(state, command, Refusal.UNKNOWN_WAREHOUSE, f"no warehouse {state.warehouse_id}",
                       sku=sku, quantity=getattr(body, "quantity", 0))
    return _DECIDERS[type(body)](state, command, body)


def evolve(state: WarehouseState, event: WarehouseEvent) -> WarehouseState:
    """``state`` after ``event``: the ledger is the fold of its events."""
    if event.refused:
        return state
    holds = dict(state.holds)
    if event.kind is EventKind.SPACE_HELD:
        holds[event.hold_id] = event.quantity
    elif event.kind in (EventKind.SPACE_CONFIRMED, EventKind.SPACE_RELEASED):
        holds.pop(event.hold_id, None)
    if event.kind is EventKind.WAREHOUSE_CREATED:
        state = replace(state, name=event.name, location=event.location)
    return replace(state, capacity=event.capacity, stored=event.stored, holds=holds, seq=event.seq)


def fold(state: WarehouseState, events: Iterable[WarehouseEvent]) -> WarehouseState:
    return reduce(evolve, events, state)
