"""Commands, events and state of the stock area, as plain immutable values.

They map one to one onto the Avro schemas in ``schemas/`` (``to_avro`` / ``*_from_avro``); the
pure decision logic works on these values only.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Callable, Mapping, Union, get_args, get_origin, get_type_hints

__all__ = [
    "ReservationState",
    "RejectReason",
    "Level",
    "Product",
    "Reservation",
    "Backorder",
    "Awaiting",
    "SkuState",
    "CreateProduct",
    "AdjustStock",
    "Reserve",
    "Release",
    "Commit",
    "Expire",
    "Tick",
    "SetLowStockThreshold",
    "AllocateLine",
    "TransferStock",
    "ArriveTransfer",
    "CancelBackorder",
    "AnnounceIncoming",
    "TransferredOut",
    "TransferArrived",
    "CLOCK_KEY",
    "CommandBody",
    "Command",
    "ProductCreated",
    "StockAdjusted",
    "Reserved",
    "Released",
    "Committed",
    "Expired",
    "LowStockThresholdSet",
    "ReservationRejected",
    "CommandRejected",
    "AllocationPart",
    "Allocated",
    "AllocationRejected",
    "Backordered",
    "BackorderCancelled",
    "IncomingAnnounced",
    "PreorderArrived",
    "EventBody",
    "Event",
    "event_id_for",
    "command_to_avro",
    "command_from_avro",
    "event_to_avro",
    "event_from_avro",
]


class ReservationState(StrEnum):
    PENDING = "PENDING"
    COMMITTED = "COMMITTED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"


class RejectReason(StrEnum):
    INSUFFICIENT_STOCK = "INSUFFICIENT_STOCK"
    UNKNOWN_PRODUCT = "UNKNOWN_PRODUCT"
    PRODUCT_EXISTS = "PRODUCT_EXISTS"
    UNKNOWN_RESERVATION = "UNKNOWN_RESERVATION"
    RESERVATION_NOT_PENDING = "RESERVATION_NOT_PENDING"
    RESERVATION_EXISTS = "RESERVATION_EXISTS"
    RESERVATION_EXPIRED = "RESERVATION_EXPIRED"
    SPACE_NOT_HELD = "SPACE_NOT_HELD"  # a receipt that did not come through its warehouse's ledger
    INVALID_QUANTITY = "INVALID_QUANTITY"
    OTHER = "OTHER"
    BUNDLE_HOLDS_NO_STOCK = "BUNDLE_HOLDS_NO_STOCK"  # a bundle's units are its components'
    PREORDER_NOT_ARRIVED = "PREORDER_NOT_ARRIVED"  # a pre-order's units must arrive before it ships


# ------------------------------------------------------------------------------------ state
@dataclass(frozen=True, slots=True)
class Level:
    on_hand: int = 0
    reserved: int = 0  # of on_hand
    incoming: int = 0  # announced, not arrived yet
    preordered: int = 0  # of incoming, held by pre-orders
    expected_at: int = 0  # epoch ms the incoming units are expected (the latest date announced)

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    @property
    def preorderable(self) -> int:
        return self.incoming - self.preordered


@dataclass(frozen=True, slots=True)
class Product:
    name: str
    description: str = ""
    category: str = ""
    parent: str = ""  # a variant's product
    attributes: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    components: Mapping[str, int] = field(default_factory=lambda: _EMPTY)  # a bundle's: SKU -> units
    unit_cost: Decimal | None = None  # what one unit costs (4 decimal places); None: not known

    @property
    def is_bundle(self) -> bool:
        return bool(self.components)


@dataclass(frozen=True, slots=True)
class Reservation:
    reservation_id: str
    order_id: str
    sku: str
    warehouse: str
    quantity: int
    state: ReservationState
    expires_at: int = 0  # epoch ms; 0: never


_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Backorder:
    """An order line waiting in its SKU's FIFO queue: what its ``AllocateLine`` asked, so it is
    served later exactly as it would have been then."""

    order_id: str
    line: int
    quantity: int
    preferred_warehouse: str = ""
    strategy: str = "priority"
    priority: tuple[str, ...] = ()
    ttl_ms: int = 0  # every part expires this long after the decision that serves it; 0: never
    preorder: bool = False  # it may be served from incoming units


@dataclass(frozen=True, slots=True)
class Awaiting:
    """The units of a pre-order's hold that have not arrived: receipts into its warehouse turn
    them into ordinary reserved units, oldest hold first."""

    reservation_id: str
    order_id: str
    warehouse: str
    units: int


@dataclass(frozen=True, slots=True)
class SkuState:
    """Everything one SKU's single writer decides on: its product, levels and reservations."""

    sku: str
    product: Product | None = None
    levels: Mapping[str, Level] = field(default_factory=lambda: _EMPTY)
    reservations: Mapping[str, Reservation] = field(default_factory=lambda: _EMPTY)
    seq: int = 0
    thresholds: Mapping[str, int] = field(default_factory=lambda: _EMPTY)  # low stock, per warehouse
    # Transfers on their way: transfer id -> (source, destination, quantity).
    in_transit: Mapping[str, tuple[str, str, int]] = field(default_factory=lambda: _EMPTY)
    # Order lines waiting for stock, served first (head first) when units become available.
    backorders: tuple[Backorder, ...] = ()
    # Pre-orders' units still to arrive, oldest hold first (also per warehouse).
    awaiting: tuple[Awaiting, ...] = ()

    def level(self, warehouse: str) -> Level:
        return self.levels.get(warehouse, Level())

    def threshold(self, warehouse: str) -> int:
        return self.thresholds.get(warehouse, 0)


# --------------------------------------------------------------------------------- commands
@dataclass(frozen=True, slots=True)
class CreateProduct:
    name: str
    description: str = ""
    category: str = ""
    parent: str = ""  # a variant: its own SKU, a product it belongs to, and its attributes
    attributes: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    # A bundle: units of each component SKU per bundle; it holds no stock of its own.
    components: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    # What one unit costs: at most 4 decimal places and 14 integer digits (Avro decimal(18, 4)).
    unit_cost: Decimal | None = None


@dataclass(frozen=True, slots=True)
class AdjustStock:
    warehouse: str
    quantity: int
    reason: str
    hold_id: str = ""  # a receipt's space in the warehouse (streams/warehouses), set by its ledger


@dataclass(frozen=True, slots=True)
class Reserve:
    reservation_id: str
    order_id: str
    warehouse: str
    quantity: int
    ttl_ms: int = 0  # expires this long after the command's issued_at; 0: never
    preorder: bool = False  # may hold incoming units when those available do not cover it


@dataclass(frozen=True, slots=True)
class Release:
    reservation_id: str


@dataclass(frozen=True, slots=True)
class Commit:
    reservation_id: str


@dataclass(frozen=True, slots=True)
class Expire:
    """Decided by the worker itself for a reservation that is due, from a ``Tick`` in the log."""

    reservation_id: str


@dataclass(frozen=True, slots=True)
class Tick:
    """The clock in the log: what is due at or before the command's ``issued_at`` expires."""


@dataclass(frozen=True, slots=True)
class SetLowStockThreshold:
    warehouse: str
    threshold: int  # 0: no alert


@dataclass(frozen=True, slots=True)
class AllocateLine:
    """Hold one order line's units, from one warehouse or split across several
    (``streams/stock/allocation.py``). Sent by the order agent, id ``allocate:<order>:<line>``."""

    order_id: str
    line: int
    quantity: int
    preferred_warehouse: str = ""  # tried first when it has units available
    strategy: str = "priority"  # "priority" or "most_stock"
    priority: tuple[str, ...] = ()  # the "priority" strategy's order of warehouses
    ttl_ms: int = 0  # every part expires this long after the command's issued_at; 0: never
    backorder: bool = False  # not servable now (or others wait first): queue it, do not reject it
    preorder: bool = False  # may hold incoming units when those available do not cover it


@dataclass(frozen=True, slots=True)
class CancelBackorder:
    """Withdraw a queued order line (sent by the order agent, id ``unqueue:<order>:<line>``)."""

    order_id: str
    line: int


# A tick is a command on this pseudo-SKU (its record key), sent to an explicit partition.
CLOCK_KEY = "__clock__"

@dataclass(frozen=True, slots=True)
class TransferStock:
    """Move units out of ``source`` towards ``destination``, whose space is held already (sent
    by the destination's capacity ledger; the command id is the transfer's id)."""

    source: str
    destination: str
    quantity: int


@dataclass(frozen=True, slots=True)
class ArriveTransfer:
    """The units of a transfer in transit arrive at its destination (sent by the SKU's owner
    itself, id ``arrive:<transfer>``, once they left the source)."""

    transfer_id: str


@dataclass(frozen=True, slots=True)
class AnnounceIncoming:
    """Units expected to arrive at ``warehouse`` by ``expected_at`` (epoch ms): pre-orderable
    until they do. A negative quantity withdraws announced units that no pre-order holds."""

    warehouse: str
    quantity: int
    expected_at: int = 0


CommandBody = Union[CreateProduct, AdjustStock, Reserve, Release, Commit, Expire, Tick,
                    SetLowStockThreshold, AllocateLine, TransferStock, ArriveTransfer, CancelBackorder,
                    AnnounceIncoming]


@dataclass(frozen=True, slots=True)
class Command:
    command_id: str
    sku: str
    issued_at: int
    body: CommandBody
    sender: str = "unknown"


# ----------------------------------------------------------------------------------- events
@dataclass(frozen=True, slots=True)
class ProductCreated:
    name: str
    description: str = ""
    category: str = ""
    parent: str = ""
    attributes: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    components: Mapping[str, int] = field(default_factory=lambda: _EMPTY)  # a bundle's
    unit_cost: Decimal | None = None  # None: not known (and every product created before costs)


@dataclass(frozen=True, slots=True)
class StockAdjusted:
    quantity: int
    reason: str


@dataclass(frozen=True, slots=True)
class Reserved:
    reservation_id: str
    order_id: str
    quantity: int
    state: ReservationState = ReservationState.PENDING
    expires_at: int = 0
    awaiting: int = 0  # of quantity, units held on incoming stock (a pre-order): not arrived yet


@dataclass(frozen=True, slots=True)
class Released:
    reservation_id: str
    order_id: str
    quantity: int
    state: ReservationState = ReservationState.RELEASED


@dataclass(frozen=True, slots=True)
class Committed:
    reservation_id: str
    order_id: str
    quantity: int
    state: ReservationState = ReservationState.COMMITTED


@dataclass(frozen=True, slots=True)
class Expired:
    reservation_id: str
    order_id: str
    quantity: int
    state: ReservationState = ReservationState.EXPIRED


@dataclass(frozen=True, slots=True)
class LowStockThresholdSet:
    threshold: int


@dataclass(frozen=True, slots=True)
class ReservationRejected:
    reservation_id: str
    order_id: str
    quantity: int
    reason: RejectReason
    detail: str = ""
    state: ReservationState = ReservationState.REJECTED


@dataclass(frozen=True, slots=True)
class CommandRejected:
    command_type: str
    reason: RejectReason
    detail: str = ""
    reservation_id: str = ""


@dataclass(frozen=True, slots=True)
class AllocationPart:
    warehouse: str
    quantity: int
    reservation_id: str  # held by the Reserved event of the same command that follows
    awaiting: int = 0  # of quantity, units held on incoming stock


@dataclass(frozen=True, slots=True)
class Allocated:
    """An order line's plan: the first event of its AllocateLine, then one Reserved per part.
    It changes no level (its ``warehouse`` is ""), nor ``seq``, and is not a rejection."""

    order_id: str
    line: int
    quantity: int
    strategy: str
    levels_seen: Mapping[str, int] = field(default_factory=lambda: _EMPTY)  # available, per warehouse
    parts: tuple[AllocationPart, ...] = ()
    # A pre-order's plan: incoming units not pre-ordered yet, per warehouse; empty: none used.
    incoming_seen: Mapping[str, int] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class AllocationRejected:
    """An order line that could not be held: nothing is."""

    order_id: str
    line: int
    quantity: int
    reason: RejectReason
    detail: str = ""
    strategy: str = "priority"
    levels_seen: Mapping[str, int] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class TransferredOut:
    """Units left the source (the event's warehouse): in transit from now on."""

    transfer_id: str
    destination: str
    quantity: int


@dataclass(frozen=True, slots=True)
class TransferArrived:
    """A transfer's units arrived at its destination (the event's warehouse)."""

    transfer_id: str
    source: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Backordered:
    """An order line queued until it can be served: nothing is held yet. Like ``Allocated``, it
    changes no level (its ``warehouse`` is "") nor ``seq``. It carries the whole line, so the
    queue is the fold of the events."""

    order_id: str
    line: int
    quantity: int
    position: int  # 1-based place in the queue
    preferred_warehouse: str = ""
    strategy: str = "priority"
    priority: tuple[str, ...] = ()
    ttl_ms: int = 0
    preorder: bool = False


@dataclass(frozen=True, slots=True)
class BackorderCancelled:
    """A queued order line withdrawn before it was served; no level, nor ``seq``, changes."""

    order_id: str
    line: int
    quantity: int


@dataclass(frozen=True, slots=True)
class IncomingAnnounced:
    """Units announced to arrive at the event's warehouse (withdrawn: a negative quantity)."""

    quantity: int
    expected_at: int = 0


@dataclass(frozen=True, slots=True)
class PreorderArrived:
    """Units of a pre-order's hold arrived with a receipt (the ``StockAdjusted`` of the same
    command before it): they are ordinary reserved units now."""

    reservation_id: str
    order_id: str
    quantity: int
    awaiting: int  # units of the hold still to arrive


EventBody = Union[
    ProductCreated, StockAdjusted, Reserved, Released, Committed, Expired, ReservationRejected,
    CommandRejected, LowStockThresholdSet, Allocated, AllocationRejected, TransferredOut,
    TransferArrived, Backordered, BackorderCancelled, IncomingAnnounced, PreorderArrived,
]


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    command_id: str
    sku: str
    seq: int
    occurred_at: int
    warehouse: str
    on_hand: int
    reserved: int
    body: EventBody
    on_hand_delta: int = 0
    reserved_delta: int = 0
    sender: str = "unknown"
    low_stock_threshold: int = 0  # the warehouse's, after the event
    low_stock: bool = False  # the event took the available units below the threshold
    incoming: int = 0  # the warehouse's level after the event, like on_hand and reserved
    preordered: int = 0
    expected_at: int = 0

    @property
    def type(self) -> str:
        return type(self.body).__name__

    @property
    def level(self) -> Level:
        """The warehouse's level after the event."""
        return Level(self.on_hand, self.reserved, self.incoming, self.preordered, self.expected_at)

    @property
    def is_rejection(self) -> bool:
        return isinstance(self.body, (ReservationRejected, CommandRejected, AllocationRejected))


_EVENT_NAMESPACE = uuid.UUID("6f1c7a8e-3b0e-4d7c-9f51-2a8d0c4b9e11")


def event_id_for(command_id: str, index: int = 0) -> str:
    """The same command always yields the same event ids, so sinks can upsert by id."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{command_id}/{index}"))


# ------------------------------------------------------------------------------ Avro mapping
_COMMAND_NS = "inventory.commands."
_EVENT_NS = "inventory.events."
# Expire is not among them: only the worker decides it, from a Tick.
_COMMAND_BODIES = {cls.__name__: cls for cls in (CreateProduct, AdjustStock, Reserve, Release, Commit, Tick,
                                                   SetLowStockThreshold, AllocateLine, TransferStock,
                                                   ArriveTransfer, CancelBackorder, AnnounceIncoming)}
_EVENT_BODIES = {
    cls.__name__: cls
    for cls in (
        ProductCreated, StockAdjusted, Reserved, Released, Committed, Expired, ReservationRejected,
        CommandRejected, LowStockThresholdSet, Allocated, AllocationRejected, TransferredOut,
        TransferArrived, Backordered, BackorderCancelled, IncomingAnnounced, PreorderArrived,
    )
}


_SCALARS = (str, int, bool)


def _avro_value(value: Any) -> Any:
    # Mappings (a variant's attributes, levels seen) as plain dicts, tuples as lists, nested
    # records (an allocation's parts) as dicts, enums as their names: what Avro and JSON take.
    if type(value) in _SCALARS:
        return value
    if isinstance(value, StrEnum):
        return str(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple):
        return [_avro_value(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return _plain(value)
    return value


def _plain(value: Any, skip: str = "") -> dict[str, Any]:
    return {f.name: _avro_value(getattr(value, f.name)) for f in fields(value) if f.name != skip}


def _converter(kind: Any) -> Callable[[Any], Any] | None:
    """How a decoded Avro value becomes a dataclass field of type ``kind`` (None: as it is)."""
    if isinstance(kind, type) and issubclass(kind, StrEnum):
        return kind
    if kind == Decimal | None:  # Avro gives a Decimal; a JSON copy of a record (the store's) text
        return _decimal_or_none
    if get_origin(kind) is tuple:  # tuple[X, ...]: a frozen record holds tuples, Avro lists
        item = _converter(get_args(kind)[0])
        return tuple if item is None else (lambda values: tuple(item(v) for v in values))
    if isinstance(kind, type) and hasattr(kind, "__dataclass_fields__"):
        return lambda data: _body_from(kind, data)
    return None


def _decimal_or_none(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


@lru_cache(maxsize=None)
def _converters(cls: type) -> dict[str, Callable[[Any], Any] | None]:
    return {name: _converter(kind) for name, kind in get_type_hints(cls).items()}


def _body_from(cls: type, data: Mapping[str, Any]) -> Any:
    convert = _converters(cls)
    return cls(**{k: v if (c := convert[k]) is None else c(v) for k, v in data.items() if k in convert})


def _union_name(body: tuple[str, Mapping[str, Any]] | Any, namespace: str) -> tuple[str, Mapping]:
    name, data = body
    return name.removeprefix(namespace), data


def command_to_avro(command: Command) -> dict[str, Any]:
    out = _plain(command, skip="body")
    out["body"] = (_COMMAND_NS + type(command.body).__name__, _plain(command.body))
    return out


def command_from_avro(data: Mapping[str, Any]) -> Command:
    name, body = _union_name(data["body"], _COMMAND_NS)
    return Command(
        command_id=data["command_id"],
        sku=data["sku"],
        issued_at=data["issued_at"],
        sender=data.get("sender", "unknown"),
        body=_body_from(_COMMAND_BODIES[name], body),
    )


def event_to_avro(event: Event) -> dict[str, Any]:
    out = _plain(event, skip="body")
    out["body"] = (_EVENT_NS + event.type, _plain(event.body))
    return out


def event_from_avro(data: Mapping[str, Any]) -> Event:
    name, body = _union_name(data["body"], _EVENT_NS)
    values = {f.name: data[f.name] for f in fields(Event) if f.name != "body" and f.name in data}
    return Event(body=_body_from(_EVENT_BODIES[name], body), **values)
