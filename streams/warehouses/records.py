"""Commands, events and state of the warehouse area, as plain immutable values.

They map one to one onto the Avro schemas ``inventory.warehouses.*`` (``*_to_avro`` /
``*_from_avro``); the pure capacity ledger (``logic.py``) works on these values only.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Mapping, Union

__all__ = [
    "Refusal", "EventKind", "WarehouseState", "CreateWarehouse", "ReceiveStock", "ConfirmSpace",
    "ReleaseSpace", "FreeSpace", "WarehouseCommandBody", "WarehouseCommand", "WarehouseEvent",
    "warehouse_event_id", "warehouse_command_to_avro", "warehouse_command_from_avro",
    "warehouse_event_to_avro", "warehouse_event_from_avro",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class Refusal(StrEnum):
    UNKNOWN_WAREHOUSE = "UNKNOWN_WAREHOUSE"
    WAREHOUSE_EXISTS = "WAREHOUSE_EXISTS"
    CAPACITY_EXCEEDED = "CAPACITY_EXCEEDED"
    UNKNOWN_HOLD = "UNKNOWN_HOLD"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    OTHER = "OTHER"


class EventKind(StrEnum):
    WAREHOUSE_CREATED = "WarehouseCreated"
    SPACE_HELD = "SpaceHeld"  # a receipt's units have room; the SKU's owner receives them next
    SPACE_CONFIRMED = "SpaceConfirmed"  # they arrived: stored from now on
    SPACE_RELEASED = "SpaceReleased"  # the receipt was refused downstream: the room is free again
    SPACE_FREED = "SpaceFreed"  # units left the warehouse
    REFUSED = "Refused"


@dataclass(frozen=True, slots=True)
class WarehouseState:
    warehouse_id: str
    name: str = ""
    location: str = ""
    capacity: int = -1  # -1: the warehouse does not exist
    stored: int = 0  # units in the warehouse as far as the ledger knows (confirmed minus freed)
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


# --------------------------------------------------------------------------------- commands
@dataclass(frozen=True, slots=True)
class CreateWarehouse:
    name: str
    location: str
    capacity: int


@dataclass(frozen=True, slots=True)
class ReceiveStock:
    """Units of ``sku`` arriving (from outside, or transferred from ``source``); the command id
    is the hold's id and the receipt's (or the transfer's)."""

    sku: str
    quantity: int
    reason: str
    source: str = ""  # a transfer's source warehouse; "" for units from outside


@dataclass(frozen=True, slots=True)
class ConfirmSpace:
    hold_id: str


@dataclass(frozen=True, slots=True)
class ReleaseSpace:
    hold_id: str


@dataclass(frozen=True, slots=True)
class FreeSpace:
    sku: str
    quantity: int  # units that left; the command id names the movement


WarehouseCommandBody = Union[CreateWarehouse, ReceiveStock, ConfirmSpace, ReleaseSpace, FreeSpace]


@dataclass(frozen=True, slots=True)
class WarehouseCommand:
    command_id: str
    warehouse_id: str
    issued_at: int
    body: WarehouseCommandBody
    sender: str = "unknown"


# ----------------------------------------------------------------------------------- events
@dataclass(frozen=True, slots=True)
class WarehouseEvent:
    """A fact about the ledger: ``kind`` is the command's effect, or ``REFUSED`` with a reason.

    ``stored``, ``held`` and ``capacity`` are the ledger's after the event."""

    event_id: str
    command_id: str
    warehouse_id: str
    seq: int
    occurred_at: int
    kind: EventKind
    stored: int
    held: int
    capacity: int
    sender: str = "unknown"
    hold_id: str = ""
    sku: str = ""
    quantity: int = 0
    reason: Refusal | None = None
    detail: str = ""
    name: str = ""  # of a WarehouseCreated
    location: str = ""
    receipt_reason: str = ""  # of a SpaceHeld: why the units arrive (the stock event's reason)

    @property
    def refused(self) -> bool:
        return self.kind is EventKind.REFUSED


_NAMESPACE = uuid.UUID("0b7c5a62-1d3e-4f0a-8e39-5c2b7d9a4f10")


def warehouse_event_id(command_id: str) -> str:
    """Deterministic, and never the id of the stock event of a receipt with the same command id."""
    return str(uuid.uuid5(_NAMESPACE, command_id))


# ------------------------------------------------------------------------------ Avro mapping
_NS = "inventory.warehouses."
_BODIES = {cls.__name__: cls for cls in (CreateWarehouse, ReceiveStock, ConfirmSpace, ReleaseSpace,
                                          FreeSpace)}


def _plain(value: Any) -> dict[str, Any]:
    return {f.name: getattr(value, f.name) for f in fields(value)}


def warehouse_command_to_avro(command: WarehouseCommand) -> dict[str, Any]:
    out = _plain(command)
    out["body"] = (_NS + type(command.body).__name__, _plain(command.body))
    return out


def warehouse_command_from_avro(data: Mapping[str, Any]) -> WarehouseCommand:
    name, body = data["body"]
    cls = _BODIES[name.removeprefix(_NS)]
    return WarehouseCommand(data["command_id"], data["warehouse_id"], data["issued_at"],
                            cls(**{f.name: body[f.name] for f in fields(cls)}),
                            data.get("sender", "unknown"))


def warehouse_event_to_avro(event: WarehouseEvent) -> dict[str, Any]:
    out = _plain(event)
    out["kind"] = str(event.kind)
    out["reason"] = None if event.reason is None else str(event.reason)
    return out


def warehouse_event_from_avro(data: Mapping[str, Any]) -> WarehouseEvent:
    values = {f.name: data[f.name] for f in fields(WarehouseEvent) if f.name in data}
    values["kind"] = EventKind(values["kind"])
    values["reason"] = None if values.get("reason") is None else Refusal(values["reason"])
    return WarehouseEvent(**values)
