"""What the stock events of one SKU, warehouse and window imply: a *cell*, folded one event at a
time by the pure function ``fold``. The analytics worker (``streams/analytics/agents.py``) keeps
the cells in faust windowed tables; nothing here knows about Kafka.

Windows are tumbling, UTC, of an hour or a day, and an event belongs to the window of its
``occurred_at`` (its command's ``issued_at``: time is data), never to the time it is read, so a
replay puts every event where it was the first time. A window is ``[start, start + size)``.

What a cell counts (units are the events' quantities):

- ``reserved_units`` / ``reservations``: ``Reserved`` events, whatever their source (a direct
  reservation, a part of an order line, a pre-order's hold, a backordered line once served).
- ``rejected_units`` / ``rejections``: ``ReservationRejected`` and ``AllocationRejected`` with
  reason ``INSUFFICIENT_STOCK`` (units asked for that were not there). Other refusals (unknown
  product, a bundle, an invalid quantity) are not demand.
- ``demand_units`` = ``reserved_units + rejected_units``. A ``Backordered`` line is not demand
  while it waits: its ``Reserved`` counts once it is served, so it is never counted twice, and an
  ``Allocated`` plan counts only through its parts' ``Reserved`` events.
- ``committed_units``: ``Committed``; ``released_units``: ``Released`` and ``Expired``.
- ``received_units``: the positive ``on_hand_delta`` of ``StockAdjusted`` and ``TransferArrived``;
  ``removed_units``: the negative ``on_hand_delta`` of ``StockAdjusted`` and ``TransferredOut``
  (as a positive number). A commit takes units out too, but it is counted as committed.
- ``on_hand_open``: the level before the cell's first event (``on_hand - on_hand_delta``);
  ``on_hand_close``, ``reserved_close``, ``low_stock_threshold``: after its last event;
  ``low_stock_close``: the threshold is set (> 0) and ``on_hand - reserved`` is below it after the
  last event; ``low_stock_alerts``: events flagged ``low_stock`` (they crossed the threshold).
- ``unit_cost``: the SKU's, from its ``ProductCreated`` (None: unknown);
  ``stock_value_close = on_hand_close x unit_cost`` (None when the cost is unknown).
- ``events``: events folded; ``source_partition`` / ``last_offset``: where the last one is in
  ``stock-events``.

Events without a warehouse (``Allocated``, ``Backordered``, ``AllocationRejected``,
``BackorderCancelled``) go to the cell of warehouse ``""``; their levels are all 0.
``ProductCreated`` is not folded: it only gives the SKU its unit cost.

Exactly-once effects over an at-least-once stream: all of a SKU's events are on one partition of
``stock-events``, in offset order, so a cell remembers the offset of the last event it counted
and ``fold`` returns the cell unchanged for an event at or before it (a redelivery after a crash).
Folding a sequence with any prefix replayed equals folding it once
(``tests/unit/test_analytics_cells.py``).

The worker folds a batch of events at a time (``CellBatch``): each cell the batch touches is read
from the table once and written once, with every event of the batch counted, so a busy SKU costs
one changelog record and one output record per batch instead of one per event.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from decimal import Decimal
from typing import Any, Callable, Iterator, Mapping

from schemas import AvroCodec, load, released_writers
from streams.stock.records import (
    AllocationRejected,
    Committed,
    Event,
    Expired,
    ProductCreated,
    RejectReason,
    Released,
    ReservationRejected,
    Reserved,
    StockAdjusted,
    TransferArrived,
    TransferredOut,
)

__all__ = ["GRANULARITIES", "HOUR_MS", "DAY_MS", "Cell", "CellId", "CellBatch", "fold", "window_start", "cell_key",
           "output_key", "unit_cost_of", "money", "cell_to_avro", "cell_from_avro",
           "cell_to_json", "cell_from_json", "WINDOW_CELL_SCHEMA", "window_cell_codec", "too_late"]

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
#: Window sizes in milliseconds, by the name the API and the table use.
GRANULARITIES: Mapping[str, int] = {"hour": HOUR_MS, "day": DAY_MS}
WINDOW_CELL_SCHEMA = "inventory.analytics.WindowCell"
_COST = Decimal("0.0001")  # products.unit_cost is NUMERIC(18, 4)


@dataclass(frozen=True, slots=True)
class Cell:
    """One SKU's, warehouse's and window's figures (see the module docstring)."""

    source_partition: int
    last_offset: int
    demand_units: int = 0
    reserved_units: int = 0
    reservations: int = 0
    rejected_units: int = 0
    rejections: int = 0
    committed_units: int = 0
    released_units: int = 0
    received_units: int = 0
    removed_units: int = 0
    on_hand_open: int = 0
    on_hand_close: int = 0
    reserved_close: int = 0
    low_stock_threshold: int = 0
    low_stock_close: bool = False
    low_stock_alerts: int = 0
    unit_cost: Decimal | None = None
    stock_value_close: Decimal | None = None
    events: int = 0


def window_start(occurred_at_ms: int, granularity: str) -> int:
    """The start (epoch ms, UTC) of the window of ``granularity`` an event at ``occurred_at_ms`` is in."""
    size = GRANULARITIES[granularity]
    return occurred_at_ms - occurred_at_ms % size


def cell_key(sku: str, warehouse: str) -> str:
    """The windowed tables' key. A SKU never contains ``|`` (the API's id pattern)."""
    return f"{sku}|{warehouse}"


def output_key(granularity: str, start_iso: str, sku: str, warehouse: str) -> str:
    """The key of a cell on ``inventory-analytics`` (compacted: the latest cell per key stays)."""
    return f"{granularity}|{start_iso}|{sku}|{warehouse}"


def money(value: Any) -> Decimal | None:
    """A unit cost as NUMERIC(18, 4) holds it (None stays None)."""
    if value is None:
        return None
    return Decimal(value).quantize(_COST)


def unit_cost_of(event: Event) -> Decimal | None:
    """The unit cost a ``ProductCreated`` announces (None: unknown, or another event). Read with
    ``getattr``: events written before the field existed decode without it."""
    if not isinstance(event.body, ProductCreated):
        return None
    return money(getattr(event.body, "unit_cost", None))


def _rejected_units(event: Event) -> int:
    body = event.body
    if isinstance(body, (ReservationRejected, AllocationRejected)) and body.reason == RejectReason.INSUFFICIENT_STOCK:
        return body.quantity
    return 0


def _counts(event: Event) -> dict[str, int]:
    """What the event adds to a cell's counters."""
    body, delta = event.body, event.on_hand_delta
    if isinstance(body, Reserved):
        return {"reserved_units": body.quantity, "reservations": 1, "demand_units": body.quantity}
    if units := _rejected_units(event):
        return {"rejected_units": units, "rejections": 1, "demand_units": units}
    if isinstance(body, Committed):
        return {"committed_units": body.quantity}
    if isinstance(body, (Released, Expired)):
        return {"released_units": body.quantity}
    if isinstance(body, (StockAdjusted, TransferArrived)) and delta > 0:
        return {"received_units": delta}
    if isinstance(body, (StockAdjusted, TransferredOut)) and delta < 0:
        return {"removed_units": -delta}
    return {}


def fold(cell: Cell | None, event: Event, partition: int, offset: int,
         unit_cost: Decimal | None = None) -> Cell:
    """``cell`` with ``event`` (at ``offset`` of ``partition`` in ``stock-events``) counted.

    The same ``cell`` (the same object) when it has counted that offset already: the caller can
    tell a redelivery by identity. ``unit_cost`` is the SKU's, when known."""
    if cell is not None and cell.source_partition == partition and offset <= cell.last_offset:
        return cell
    if cell is None:
        cell = Cell(source_partition=partition, last_offset=offset,
                    on_hand_open=event.on_hand - event.on_hand_delta)
    counts = _counts(event)
    cost = unit_cost if unit_cost is not None else cell.unit_cost
    threshold = event.low_stock_threshold
    return replace(
        cell,
        **{name: getattr(cell, name) + units for name, units in counts.items()},
        source_partition=partition,
        last_offset=offset,
        on_hand_close=event.on_hand,
        reserved_close=event.reserved,
        low_stock_threshold=threshold,
        low_stock_close=threshold > 0 and event.on_hand - event.reserved < threshold,
        low_stock_alerts=cell.low_stock_alerts + (1 if event.low_stock else 0),
        unit_cost=cost,
        stock_value_close=None if cost is None else money(cost * event.on_hand),
        events=cell.events + 1,
    )


#: A cell's identity: (granularity, window start in epoch ms, SKU, warehouse).
CellId = tuple[str, int, str, str]


class CellBatch:
    """The cells a batch of events touches, each loaded once (``load``: None when the table has
    none) and folded with all of the batch's events, in order. Folding a batch equals folding its
    events one at a time (``tests/unit/test_analytics_cells.py``)."""

    def __init__(self, load: Callable[[CellId], Cell | None]) -> None:
        self._load = load
        self._loaded: dict[CellId, Cell | None] = {}  # as the table had it
        self._cells: dict[CellId, Cell] = {}  # with the batch's events counted

    def fold(self, cell_id: CellId, event: Event, partition: int, offset: int,
             unit_cost: Decimal | None = None) -> bool:
        """Count ``event`` in its cell; False when the cell had counted it already (a redelivery)."""
        if cell_id not in self._loaded:
            self._loaded[cell_id] = self._load(cell_id)
        current = self._cells.get(cell_id, self._loaded[cell_id])
        self._cells[cell_id] = fold(current, event, partition, offset, unit_cost)
        return self._cells[cell_id] is not current

    def changed(self) -> Iterator[tuple[CellId, Cell]]:
        """The cells the batch changed (to write to the table), in the order first touched."""
        return ((cell_id, cell) for cell_id, cell in self._cells.items() if cell is not self._loaded[cell_id])

    def touched(self) -> Iterator[tuple[CellId, Cell]]:
        """Every cell an event of the batch belongs to, changed or not (to publish: a crash may
        have come between a cell's write and its publication, and the redelivery must publish it)."""
        return iter(self._cells.items())

    def __len__(self) -> int:
        return len(self._cells)


# ---------------------------------------------------------------------------- serialisation
_DECIMALS = ("unit_cost", "stock_value_close")
_NAMES = tuple(f.name for f in fields(Cell))


def cell_to_json(cell: Cell) -> dict[str, Any]:
    """The cell as the windowed tables store it (JSON: decimals as strings)."""
    out = asdict(cell)
    for name in _DECIMALS:
        if out[name] is not None:
            out[name] = str(out[name])
    return out


def cell_from_json(data: Mapping[str, Any] | None) -> Cell | None:
    if not data:
        return None
    values = {k: v for k, v in data.items() if k in _NAMES}
    for name in _DECIMALS:
        if values.get(name) is not None:
            values[name] = Decimal(values[name])
    return Cell(**values)


def cell_to_avro(cell: Cell, granularity: str, start_ms: int, sku: str, warehouse: str) -> dict[str, Any]:
    """The record of ``inventory.analytics.WindowCell``."""
    out = asdict(cell)
    out.update(granularity=granularity, window_start=start_ms, sku=sku, warehouse=warehouse)
    return out


def cell_from_avro(data: Mapping[str, Any]) -> tuple[str, int, str, str, Cell]:
    """(granularity, window start in epoch ms, SKU, warehouse, cell) of a ``WindowCell`` record."""
    values = {k: v for k, v in data.items() if k in _NAMES}
    for name in _DECIMALS:
        if values.get(name) is not None:
            values[name] = Decimal(values[name])
    return data["granularity"], int(data["window_start"]), data["sku"], data["warehouse"], Cell(**values)


_codec: AvroCodec | None = None


def window_cell_codec() -> AvroCodec:
    """The codec of ``inventory-analytics`` (schemas/inventory.analytics.WindowCell.avsc)."""
    global _codec
    if _codec is None:
        _codec = AvroCodec(load(WINDOW_CELL_SCHEMA), released_writers(WINDOW_CELL_SCHEMA))
    return _codec


def too_late(start_ms: int, retention_ms: int, now_ms: int) -> bool:
    """Whether a window starting at ``start_ms`` is older than the table keeps cells for. faust
    drops a cell once its window *ended* ``retention`` before now (rounded down to a window);
    refusing from its *start* on is stricter by one window, so a late event never meets a dropped
    cell and starts a partial one in its place."""
    return start_ms <= now_ms - retention_ms
