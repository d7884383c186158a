"""A warehouse's capacity ledger, as pure functions: no I/O, no clock, no randomness.

Capacity is a hard limit across all SKUs of a warehouse, but SKUs live on different partitions,
so no stock agent can see the whole warehouse. The warehouse's own single writer (partitioned by
warehouse id) keeps the ledger instead, and every unit that comes in must hold space there
first:

- a receipt or an inbound transfer first ``HoldSpace`` (refused when it would not fit);
- the SKU's owner then receives the stock, and tells the ledger: ``ConfirmSpace`` (the held
  units are now stored) or ``ReleaseSpace`` (the receipt was refused; the space is free again);
- units that leave (a commit, a removal, a transfer out) ``FreeSpace`` after the fact.

``stored + held <= capacity`` always holds: space is taken before stock arrives and given back
only after it left, so the ledger may briefly count less space free than there is, never more.
Every command carries the id of the movement it is about, so a redelivery changes nothing twice
(the agent remembers command ids like the stock store does).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Callable, Mapping, Union

__all__ = [
    "WarehouseState", "CreateWarehouse", "HoldSpace", "ConfirmSpace", "ReleaseSpace", "FreeSpace",
    "Refusal", "WarehouseEvent", "decide", "evolve",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class Refusal(StrEnum):
    UNKNOWN_WAREHOUSE = "UNKNOWN_WAREHOUSE"
    WAREHOUSE_EXISTS = "WAREHOUSE_EXISTS"
    CAPACITY_EXCEEDED = "CAPACITY_EXCEEDED"
    UNKNOWN_HOLD = "UNKNOWN_HOLD"
    HOLD_EXISTS = "HOLD_EXISTS"
    INVALID_QUANTITY = "INVALID_QUANTITY"


@dataclass(frozen=True, slots=True)
class WarehouseState:
    warehouse_id: str
    name: str = ""
    location: str = ""
    capacity: int = -1  # -1: the warehouse does not exist
    stored: int = 0  # units in the warehouse, as far as the ledger knows (confirmed minus freed)
    holds: Mapping[str, int] = field(default_factory=lambda: _EMPTY)  # hold id -> units on the way
    seq: int = 0

    @property
    def exists(self) -> bool:
        return self.capacity >= 0

    @property
    def held(self) -> int:
        return sum(self.holds.values())

    @property
    def free(self) -> int:
        return self.capacity - self.stored - self.held


@dataclass(frozen=True, slots=True)
class CreateWarehouse:
    name: str
    location: str
    capacity: int


@dataclass(frozen=True, slots=True)
class HoldSpace:
    hold_id: str  # the receipt or transfer the units come with
    quantity: int


@dataclass(frozen=True, slots=True)
class ConfirmSpace:
    hold_id: str


@dataclass(frozen=True, slots=True)
class ReleaseSpace:
    hold_id: str


@dataclass(frozen=True, slots=True)
class FreeSpace:
    quantity: int  # units that left; the command id names the movement


WarehouseCommand = Union[CreateWarehouse, HoldSpace, ConfirmSpace, ReleaseSpace, FreeSpace]


@dataclass(frozen=True, slots=True)
class WarehouseEvent:
    """A fact about the ledger: ``kind`` is the command's effect, or ``refused`` with a reason."""

    kind: str  # WarehouseCreated, SpaceHeld, SpaceConfirmed, SpaceReleased, SpaceFreed, Refused
    warehouse_id: str
    seq: int
    stored: int  # after the event
    held: int
    capacity: int
    hold_id: str = ""
    quantity: int = 0
    reason: Refusal | None = None
    detail: str = ""
    name: str = ""  # of a WarehouseCreated
    location: str = ""

    @property
    def refused(self) -> bool:
        return self.reason is not None


def _fact(state: WarehouseState, kind: str, after: WarehouseState, hold_id: str = "",
          quantity: int = 0) -> list[WarehouseEvent]:
    created = kind == "WarehouseCreated"
    return [WarehouseEvent(kind, state.warehouse_id, state.seq + 1, after.stored, after.held,
                           after.capacity, hold_id, quantity,
                           name=after.name if created else "", location=after.location if created else "")]


def _refuse(state: WarehouseState, reason: Refusal, detail: str, hold_id: str = "",
            quantity: int = 0) -> list[WarehouseEvent]:
    return [WarehouseEvent("Refused", state.warehouse_id, state.seq, state.stored, state.held,
                           state.capacity, hold_id, quantity, reason, detail)]


def _create(state: WarehouseState, body: CreateWarehouse) -> list[WarehouseEvent]:
    if state.exists:
        return _refuse(state, Refusal.WAREHOUSE_EXISTS, f"warehouse {state.warehouse_id} exists")
    if body.capacity < 0:
        return _refuse(state, Refusal.INVALID_QUANTITY, "capacity must not be negative")
    after = replace(state, name=body.name, location=body.location, capacity=body.capacity)
    return _fact(state, "WarehouseCreated", after)


def _hold(state: WarehouseState, body: HoldSpace) -> list[WarehouseEvent]:
    if body.quantity <= 0:
        return _refuse(state, Refusal.INVALID_QUANTITY, "quantity must be positive", body.hold_id, body.quantity)
    if body.hold_id in state.holds:
        return _refuse(state, Refusal.HOLD_EXISTS, f"hold {body.hold_id} exists", body.hold_id, body.quantity)
    if body.quantity > state.free:
        return _refuse(state, Refusal.CAPACITY_EXCEEDED,
                       f"{state.free} units of space free, {body.quantity} needed", body.hold_id, body.quantity)
    after = replace(state, holds={**state.holds, body.hold_id: body.quantity})
    return _fact(state, "SpaceHeld", after, body.hold_id, body.quantity)


def _settle(state: WarehouseState, body: ConfirmSpace | ReleaseSpace) -> list[WarehouseEvent]:
    quantity = state.holds.get(body.hold_id)
    if quantity is None:
        return _refuse(state, Refusal.UNKNOWN_HOLD, f"no hold {body.hold_id}", body.hold_id)
    holds = {k: v for k, v in state.holds.items() if k != body.hold_id}
    if isinstance(body, ConfirmSpace):  # the units arrived: stored from now on
        after = replace(state, holds=holds, stored=state.stored + quantity)
        return _fact(state, "SpaceConfirmed", after, body.hold_id, quantity)
    after = replace(state, holds=holds)  # the receipt was refused: the space is free again
    return _fact(state, "SpaceReleased", after, body.hold_id, quantity)


def _free(state: WarehouseState, body: FreeSpace) -> list[WarehouseEvent]:
    if body.quantity <= 0:
        return _refuse(state, Refusal.INVALID_QUANTITY, "quantity must be positive", quantity=body.quantity)
    # Never below zero: a unit stored before the ledger existed leaves without having been held.
    after = replace(state, stored=max(0, state.stored - body.quantity))
    return _fact(state, "SpaceFreed", after, quantity=body.quantity)


_DECIDERS: dict[type, Callable[[WarehouseState, Any], list[WarehouseEvent]]] = {
    CreateWarehouse: _create, HoldSpace: _hold, ConfirmSpace: _settle, ReleaseSpace: _settle,
    FreeSpace: _free,
}


def decide(state: WarehouseState, body: WarehouseCommand) -> list[WarehouseEvent]:
    """The events ``body`` causes on ``state`` (always one: its effect, or a refusal)."""
    if not state.exists and not isinstance(body, CreateWarehouse):
        return _refuse(state, Refusal.UNKNOWN_WAREHOUSE, f"no warehouse {state.warehouse_id}")
    return _DECIDERS[type(body)](state, body)


def evolve(state: WarehouseState, event: WarehouseEvent) -> WarehouseState:
    """``state`` after ``event``: the ledger is the fold of its events."""
    if event.refused:
        return state
    holds = dict(state.holds)
    if event.kind == "SpaceHeld":
        holds[event.hold_id] = event.quantity
    elif event.kind in ("SpaceConfirmed", "SpaceReleased"):
        holds.pop(event.hold_id, None)
    if event.kind == "WarehouseCreated":
        state = replace(state, name=event.name, location=event.location)
    return replace(state, capacity=event.capacity, stored=event.stored, holds=holds, seq=event.seq)
