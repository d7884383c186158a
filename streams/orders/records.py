"""Commands, events and state of the order area, as plain immutable values.

They map one to one onto the Avro schemas ``inventory.orders.*`` (``*_to_avro`` /
``*_from_avro``); the pure saga logic (``logic.py``) works on these values only.

An order is small, so every ``OrderEvent`` is a snapshot of the whole order after it (status and
every line's outcome): a read model upserts the order from any one event, and the order's state
is simply the last snapshot. Lines are numbered from 1, in the order ``PlaceOrder`` lists them.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, fields, is_dataclass
from enum import StrEnum
from typing import Any, Iterable, Mapping, Union

__all__ = [
    "OrderStatus", "LineState", "OrderEventKind", "OrderRefusal", "OrderLine", "Part",
    "LineOutcome", "OrderState", "PlaceOrder", "CancelOrder", "FulfilOrder", "LineAllocated",
    "LineRejected", "LineBackordered", "PartArrived", "OrderCommandBody", "OrderCommand", "OrderEvent", "MAX_LINES",
    "order_event_id", "order_command_to_avro", "order_command_from_avro", "order_event_to_avro",
    "order_event_from_avro", "lines_to_avro", "lines_from_avro",
]

MAX_LINES = 100


class OrderStatus(StrEnum):
    PENDING = "PENDING"  # placed: its lines are being allocated
    RESERVED = "RESERVED"  # every line is allocated
    REJECTED = "REJECTED"  # a line could not be allocated: the others were released
    BACKORDERED = "BACKORDERED"  # every line answered, none rejected, some wait in their SKUs' queues
    CANCELLED = "CANCELLED"
    FULFILLED = "FULFILLED"  # shipped: every reservation committed
    PREORDERED = "PREORDERED"  # every line is allocated, but pre-ordered units have not all arrived


class LineState(StrEnum):
    PENDING = "PENDING"  # its AllocateLine is on the way to the SKU's owner
    ALLOCATED = "ALLOCATED"  # stock is reserved for it (its parts)
    REJECTED = "REJECTED"  # the SKU's owner could not allocate it: nothing is held
    RELEASED = "RELEASED"  # it was allocated, and its parts are being released
    COMMITTED = "COMMITTED"  # it was allocated, and its parts are being committed
    BACKORDERED = "BACKORDERED"  # queued at its SKU (nothing held): allocated when stock arrives
    WITHDRAWN = "WITHDRAWN"  # it was backordered, and its queue entry is being cancelled


class OrderEventKind(StrEnum):
    ORDER_PLACED = "OrderPlaced"
    LINE_ALLOCATED = "LineAllocated"
    LINE_REJECTED = "LineRejected"
    ORDER_RESERVED = "OrderReserved"
    ORDER_REJECTED = "OrderRejected"
    ORDER_CANCELLED = "OrderCancelled"
    ORDER_FULFILLED = "OrderFulfilled"
    PARTS_RELEASED = "PartsReleased"  # a line allocated after its order was rejected or cancelled
    REFUSED = "Refused"
    LINE_BACKORDERED = "LineBackordered"
    ORDER_BACKORDERED = "OrderBackordered"
    BACKORDER_WITHDRAWN = "BackorderWithdrawn"  # a line backordered after its order was rejected or cancelled
    ORDER_PREORDERED = "OrderPreordered"
    PART_ARRIVED = "PartArrived"  # pre-ordered units of a part arrived


class OrderRefusal(StrEnum):
    UNKNOWN_ORDER = "UNKNOWN_ORDER"
    ORDER_EXISTS = "ORDER_EXISTS"
    INVALID_ORDER = "INVALID_ORDER"
    NOT_CANCELLABLE = "NOT_CANCELLABLE"
    NOT_RESERVED = "NOT_RESERVED"
    OTHER = "OTHER"


@dataclass(frozen=True, slots=True)
class OrderLine:
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Part:
    """Units of a line reserved in one warehouse (the stock area's reservation)."""

    warehouse: str
    quantity: int
    reservation_id: str
    awaiting: int = 0  # of quantity, pre-ordered units that have not arrived


@dataclass(frozen=True, slots=True)
class LineOutcome:
    """One line of the order and where it stands; a released or committed line keeps its parts
    (they name the reservations that were released or committed)."""

    line: int
    sku: str
    quantity: int
    state: LineState
    parts: tuple[Part, ...] = ()


# ------------------------------------------------------------------------------------ state
@dataclass(frozen=True, slots=True)
class OrderState:
    order_id: str
    status: OrderStatus | None = None  # None: the order does not exist
    customer: str = ""
    preferred_warehouse: str = ""
    allow_backorders: bool = False
    strategy: str = "priority"
    priority: tuple[str, ...] = ()
    lines: tuple[LineOutcome, ...] = ()
    seq: int = 0
    allow_preorders: bool = False

    @property
    def exists(self) -> bool:
        return self.status is not None

    def line(self, number: int) -> LineOutcome | None:
        return next((outcome for outcome in self.lines if outcome.line == number), None)


# --------------------------------------------------------------------------------- commands
@dataclass(frozen=True, slots=True)
class PlaceOrder:
    customer: str
    lines: tuple[OrderLine, ...]
    preferred_warehouse: str = ""
    allow_backorders: bool = False
    strategy: str = "priority"  # the stock area's allocation strategy: "priority" or "most_stock"
    priority: tuple[str, ...] = ()  # warehouses in the order to take from, for "priority"
    allow_preorders: bool = False  # lines may hold incoming units when those on hand do not cover them


@dataclass(frozen=True, slots=True)
class CancelOrder:
    reason: str


@dataclass(frozen=True, slots=True)
class FulfilOrder:
    """The order shipped: its reservations are committed."""


@dataclass(frozen=True, slots=True)
class LineAllocated:
    """The SKU's owner reserved the line (sent by the stock agent, id ``allocated:<order>:<line>``)."""

    line: int
    parts: tuple[Part, ...]


@dataclass(frozen=True, slots=True)
class LineRejected:
    """The SKU's owner could not allocate the line; nothing of it is held."""

    line: int
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class LineBackordered:
    """The SKU's owner queued the line (nothing held yet): a ``LineAllocated`` follows when its
    stock arrives (sent by the stock agent, id ``backordered:<order>:<line>``)."""

    line: int
    position: int  # 1-based place in the SKU's queue when it was queued


@dataclass(frozen=True, slots=True)
class PartArrived:
    """Pre-ordered units of a part arrived at its warehouse (sent by the stock agent, id
    ``arrived:<reservation>:<awaiting>``)."""

    reservation_id: str
    awaiting: int  # units of the part still to arrive


OrderCommandBody = Union[PlaceOrder, CancelOrder, FulfilOrder, LineAllocated, LineRejected, LineBackordered,
                         PartArrived]


@dataclass(frozen=True, slots=True)
class OrderCommand:
    command_id: str
    order_id: str
    issued_at: int
    body: OrderCommandBody
    sender: str = "unknown"


# ----------------------------------------------------------------------------------- events
@dataclass(frozen=True, slots=True)
class OrderEvent:
    """A fact about an order, and the whole order after it (``status`` ... ``lines``, ``priority``).

    ``released`` and ``committed`` are the numbers of the lines this event released or
    committed (they were ALLOCATED before it): the saga sends a ``Release`` or ``Commit`` for
    each of their parts from the event alone; ``withdrawn`` the lines it withdrew (they were
    BACKORDERED before it): the saga cancels their queue entries. A ``Refused`` event repeats the
    unchanged order (its status is None when the order does not exist) and keeps its ``seq``."""

    event_id: str
    command_id: str
    order_id: str
    seq: int
    occurred_at: int
    sender: str
    kind: OrderEventKind
    status: OrderStatus | None
    customer: str
    preferred_warehouse: str
    allow_backorders: bool
    strategy: str
    lines: tuple[LineOutcome, ...]
    reason: OrderRefusal | None = None
    detail: str = ""
    priority: tuple[str, ...] = ()
    released: tuple[int, ...] = ()
    committed: tuple[int, ...] = ()
    withdrawn: tuple[int, ...] = ()
    allow_preorders: bool = False

    @property
    def refused(self) -> bool:
        return self.kind is OrderEventKind.REFUSED


_NAMESPACE = uuid.UUID("3e9d2c71-8a4b-4f65-b0d7-91c6e2a5f3b8")


def order_event_id(command_id: str, index: int = 0) -> str:
    """Deterministic per (command id, index), and never the id of a stock or warehouse event of
    the same command id (their areas use other namespaces)."""
    return str(uuid.uuid5(_NAMESPACE, f"{command_id}/{index}"))


# ------------------------------------------------------------------------------ Avro mapping
_NS = "inventory.orders."


def _avro(value: Any) -> Any:
    """Records as dicts, tuples as lists and enums as their symbols: what Avro (and JSON) take."""
    if is_dataclass(value):
        return {f.name: _avro(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple):
        return [_avro(v) for v in value]
    if isinstance(value, StrEnum):
        return str(value)
    return value


def _parts(data: Iterable[Mapping[str, Any]]) -> tuple[Part, ...]:
    return tuple(Part(p["warehouse"], p["quantity"], p["reservation_id"], p.get("awaiting", 0)) for p in data)


def lines_to_avro(lines: Iterable[LineOutcome]) -> list[dict[str, Any]]:
    return [_avro(outcome) for outcome in lines]


def lines_from_avro(data: Iterable[Mapping[str, Any]]) -> tuple[LineOutcome, ...]:
    return tuple(LineOutcome(o["line"], o["sku"], o["quantity"], LineState(o["state"]), _parts(o["parts"]))
                 for o in data)


def _place_order(data: Mapping[str, Any]) -> PlaceOrder:
    return PlaceOrder(data["customer"], tuple(OrderLine(x["sku"], x["quantity"]) for x in data["lines"]),
                      data["preferred_warehouse"], data["allow_backorders"], data["strategy"],
                      tuple(data["priority"]), data.get("allow_preorders", False))


_BODY_READERS = {
    "PlaceOrder": _place_order,
    "CancelOrder": lambda data: CancelOrder(data["reason"]),
    "FulfilOrder": lambda data: FulfilOrder(),
    "LineAllocated": lambda data: LineAllocated(data["line"], _parts(data["parts"])),
    "LineRejected": lambda data: LineRejected(data["line"], data["reason"], data["detail"]),
    "LineBackordered": lambda data: LineBackordered(data["line"], data["position"]),
    "PartArrived": lambda data: PartArrived(data["reservation_id"], data["awaiting"]),
}


def order_command_to_avro(command: OrderCommand) -> dict[str, Any]:
    out = _avro(command)
    out["body"] = (_NS + type(command.body).__name__, _avro(command.body))
    return out


def order_command_from_avro(data: Mapping[str, Any]) -> OrderCommand:
    name, body = data["body"]
    return OrderCommand(data["command_id"], data["order_id"], data["issued_at"],
                        _BODY_READERS[name.removeprefix(_NS)](body), data.get("sender", "unknown"))


def order_event_to_avro(event: OrderEvent) -> dict[str, Any]:
    return _avro(event)


def order_event_from_avro(data: Mapping[str, Any]) -> OrderEvent:
    values = {f.name: data[f.name] for f in fields(OrderEvent) if f.name in data}
    values["kind"] = OrderEventKind(values["kind"])
    values["status"] = None if values.get("status") is None else OrderStatus(values["status"])
    values["reason"] = None if values.get("reason") is None else OrderRefusal(values["reason"])
    values["lines"] = lines_from_avro(values["lines"])
    for name in ("priority", "released", "committed", "withdrawn"):
        values[name] = tuple(values.get(name, ()))
    return OrderEvent(**values)
