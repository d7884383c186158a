"""The analytics cells (streams/analytics/cells.py): each event kind folded, redeliveries change
nothing (hypothesis), windows by event time, and the cell's wire and table forms."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from faust.windows import TumblingWindow
from hypothesis import given
from hypothesis import strategies as st

from streams.analytics.cells import (
    DAY_MS,
    HOUR_MS,
    Cell,
    CellBatch,
    cell_from_avro,
    cell_from_json,
    cell_to_avro,
    cell_to_json,
    fold,
    too_late,
    unit_cost_of,
    window_cell_codec,
    window_start,
)
from streams.analytics.sink import cell_row, latest_rows
from streams.stock.records import (
    AllocationRejected,
    Allocated,
    Backordered,
    Committed,
    CommandRejected,
    Event,
    Expired,
    LowStockThresholdSet,
    ProductCreated,
    RejectReason,
    Released,
    ReservationRejected,
    Reserved,
    StockAdjusted,
    TransferArrived,
    TransferredOut,
)


def ev(body, on_hand: int = 0, reserved: int = 0, on_hand_delta: int = 0, warehouse: str = "north",
       threshold: int = 0, low: bool = False, at: int = 1_000) -> Event:
    return Event("e", "c", "SKU-1", 1, at, warehouse, on_hand, reserved, body, on_hand_delta=on_hand_delta,
                 low_stock_threshold=threshold, low_stock=low)


def one(event: Event, cost: Decimal | None = None) -> Cell:
    return fold(None, event, 0, 7, cost)


def test_a_receipt_is_received_units_and_sets_open_and_close():
    cell = one(ev(StockAdjusted(10, "received"), on_hand=15, on_hand_delta=10))
    assert (cell.received_units, cell.removed_units, cell.on_hand_open, cell.on_hand_close) == (10, 0, 5, 15)
    assert (cell.events, cell.source_partition, cell.last_offset, cell.demand_units) == (1, 0, 7, 0)


def test_a_removal_and_a_transfer_out_are_removed_units_and_an_arrival_is_received():
    assert one(ev(StockAdjusted(-3, "damaged"), on_hand=7, on_hand_delta=-3)).removed_units == 3
    assert one(ev(TransferredOut("t", "south", 4), on_hand=3, on_hand_delta=-4)).removed_units == 4
    assert one(ev(TransferArrived("t", "north", 4), on_hand=4, on_hand_delta=4)).received_units == 4


def test_a_reservation_is_demand_and_reserved():
    cell = one(ev(Reserved("r", "o", 3), on_hand=10, reserved=3))
    assert (cell.demand_units, cell.reserved_units, cell.reservations, cell.reserved_close) == (3, 3, 1, 3)


def test_refusals_for_lack_of_stock_are_demand_others_are_not():
    short = one(ev(ReservationRejected("r", "o", 5, RejectReason.INSUFFICIENT_STOCK)))
    assert (short.demand_units, short.rejected_units, short.rejections) == (5, 5, 1)
    line = one(ev(AllocationRejected("o", 0, 6, RejectReason.INSUFFICIENT_STOCK), warehouse=""))
    assert (line.demand_units, line.rejected_units, line.rejections) == (6, 6, 1)
    for body in (ReservationRejected("r", "o", 5, RejectReason.INVALID_QUANTITY),
                 CommandRejected("Reserve", RejectReason.UNKNOWN_PRODUCT)):
        cell = one(ev(body))
        assert (cell.demand_units, cell.rejections, cell.events) == (0, 0, 1)


def test_commit_release_and_expiry():
    assert one(ev(Committed("r", "o", 2), on_hand=8, on_hand_delta=-2)).committed_units == 2
    assert one(ev(Committed("r", "o", 2), on_hand=8, on_hand_delta=-2)).removed_units == 0
    assert one(ev(Released("r", "o", 2))).released_units == 2
    assert one(ev(Expired("r", "o", 4))).released_units == 4


def test_a_backordered_line_and_an_allocation_plan_are_not_demand():
    for body in (Backordered("o", 0, 5, 1), Allocated("o", 0, 5, "priority")):
        assert one(ev(body, warehouse="")).demand_units == 0


def test_low_stock_close_and_alerts_follow_the_last_event():
    cell = one(ev(LowStockThresholdSet(5), on_hand=10, reserved=0, threshold=5))
    assert not cell.low_stock_close
    cell = fold(cell, ev(Reserved("r", "o", 7), on_hand=10, reserved=7, threshold=5, low=True), 0, 8)
    assert (cell.low_stock_close, cell.low_stock_alerts, cell.low_stock_threshold) == (True, 1, 5)
    cell = fold(cell, ev(StockAdjusted(10, "in"), on_hand=20, reserved=7, on_hand_delta=10, threshold=5), 0, 9)
    assert (cell.low_stock_close, cell.low_stock_alerts, cell.on_hand_open) == (False, 1, 10)


def test_stock_value_is_on_hand_times_the_unit_cost_and_unknown_without_one():
    assert one(ev(StockAdjusted(4, "in"), on_hand=4, on_hand_delta=4)).stock_value_close is None
    cell = one(ev(StockAdjusted(4, "in"), on_hand=4, on_hand_delta=4), Decimal("2.5"))
    assert cell.stock_value_close == Decimal("10.0000")
    cell = fold(cell, ev(StockAdjusted(-1, "x"), on_hand=3, on_hand_delta=-1), 0, 8)  # cost kept
    assert (cell.unit_cost, cell.stock_value_close) == (Decimal("2.5"), Decimal("7.5000"))


def test_the_unit_cost_comes_from_product_created_when_it_has_one():
    assert unit_cost_of(ev(ProductCreated("shirt"), warehouse="")) is None
    assert unit_cost_of(ev(StockAdjusted(1, "in"))) is None


# ---------------------------------------------------------------- redeliveries: a property
_BODIES = st.one_of(
    st.builds(StockAdjusted, st.integers(-5, 9).filter(bool), st.just("x")),
    st.builds(Reserved, st.just("r"), st.just("o"), st.integers(1, 9)),
    st.builds(ReservationRejected, st.just("r"), st.just("o"), st.integers(1, 9),
              st.sampled_from([RejectReason.INSUFFICIENT_STOCK, RejectReason.OTHER])),
    st.builds(Committed, st.just("r"), st.just("o"), st.integers(1, 9)),
    st.builds(Released, st.just("r"), st.just("o"), st.integers(1, 9)),
    st.builds(Expired, st.just("r"), st.just("o"), st.integers(1, 9)),
)
_EVENTS = st.lists(st.tuples(_BODIES, st.integers(0, 50), st.integers(0, 10), st.booleans()), max_size=30)


def _fold_all(cell: Cell | None, events: list[tuple[int, Event]]) -> Cell | None:
    for offset, event in events:
        cell = fold(cell, event, 3, offset, Decimal("1.25"))
    return cell


@given(_EVENTS, st.data())
def test_a_redelivered_prefix_changes_nothing(raw, data):
    events = [(offset * 2 + 5, ev(body, on_hand=on_hand, reserved=min(reserved, on_hand), low=low,
                                  on_hand_delta=body.quantity if isinstance(body, StockAdjusted) else 0))
              for offset, (body, on_hand, reserved, low) in enumerate(raw)]
    once = _fold_all(None, events)
    crash = data.draw(st.integers(0, len(events)))  # processed up to here, committed up to resume
    resume = data.draw(st.integers(0, crash))
    assert _fold_all(None, events[:crash] + events[resume:]) == once
    if once is not None:
        assert _fold_all(once, events) is once  # all of it again: the very same cell


# ----------------------------------------------------------------------------- batches
def _cell_events(raw: list) -> list[tuple[tuple, int, Event]]:
    """(cell id, offset, event) over three cells of one partition, offsets increasing."""
    out = []
    for offset, (body, on_hand, reserved, low, which) in enumerate(raw):
        warehouse = ("north", "south", "east")[which]
        event = ev(body, on_hand=on_hand, reserved=min(reserved, on_hand), low=low, warehouse=warehouse,
                   on_hand_delta=body.quantity if isinstance(body, StockAdjusted) else 0)
        out.append((("hour", 0, "SKU-1", warehouse), offset * 3 + 2, event))
    return out


def _run_batches(table: dict, events: list, cuts: list[int]) -> list[CellBatch]:
    """Fold ``events`` in batches ending at ``cuts``, writing each batch's changed cells to ``table``
    the way the worker does; returns the batches."""
    batches, begin = [], 0
    for end in [*sorted(cuts), len(events)]:
        loads: list = []
        batch = CellBatch(lambda cell_id: loads.append(cell_id) or table.get(cell_id))
        for cell_id, offset, event in events[begin:end]:
            batch.fold(cell_id, event, 3, offset, Decimal("1.25"))
        assert sorted(loads) == sorted(set(loads))  # each cell read once per batch
        table.update(batch.changed())
        batches.append(batch)
        begin = end
    return batches


_CELL_EVENTS = st.lists(st.tuples(_BODIES, st.integers(0, 50), st.integers(0, 10), st.booleans(),
                                  st.integers(0, 2)), max_size=40)


@given(_CELL_EVENTS, st.data())
def test_folding_in_batches_equals_folding_each_event_even_with_a_redelivery(raw, data):
    events = _cell_events(raw)
    one_by_one: dict = {}
    for cell_id, offset, event in events:
        one_by_one[cell_id] = fold(one_by_one.get(cell_id), event, 3, offset, Decimal("1.25"))
    cuts = data.draw(st.lists(st.integers(0, len(events)), max_size=5))
    table: dict = {}
    _run_batches(table, events, cuts)
    assert table == one_by_one
    # A crash after the table's write, before the offsets' commit: the stream resumes earlier.
    resume = data.draw(st.integers(0, len(events)))
    again = _run_batches(table, events[resume:], data.draw(st.lists(st.integers(0, len(events) - resume))))
    assert table == one_by_one
    assert not any(list(batch.changed()) for batch in again)
    # ... and every cell a redelivered event belongs to is published again.
    published = {cell_id for batch in again for cell_id, _ in batch.touched()}
    assert published == {cell_id for cell_id, _, _ in events[resume:]}


def test_a_batch_writes_a_cell_once_with_all_its_events_and_reports_redeliveries():
    table = {("day", 0, "SKU-1", "north"): one(ev(Reserved("r", "o", 2), on_hand=10, reserved=2))}  # offset 7
    batch = CellBatch(table.get)
    assert batch.fold(("day", 0, "SKU-1", "north"), ev(Reserved("r", "o", 2)), 0, 7) is False
    assert batch.fold(("day", 0, "SKU-1", "north"), ev(Reserved("r", "o", 3), on_hand=10, reserved=5), 0, 8)
    assert batch.fold(("day", 0, "SKU-1", "south"), ev(Committed("r", "o", 1), warehouse="south"), 0, 9)
    changed = dict(batch.changed())
    assert (changed[("day", 0, "SKU-1", "north")].reserved_units, changed[("day", 0, "SKU-1", "north")].events) == (5, 2)
    assert changed[("day", 0, "SKU-1", "south")].committed_units == 1
    assert len(batch) == 2 and dict(batch.touched()) == changed
    unchanged = CellBatch(table.get)
    unchanged.fold(("day", 0, "SKU-1", "north"), ev(Reserved("r", "o", 2)), 0, 7)
    assert not list(unchanged.changed()) and list(unchanged.touched()) == [(("day", 0, "SKU-1", "north"),
                                                                            table[("day", 0, "SKU-1", "north")])]


# ---------------------------------------------------------------------------- windows
def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_an_event_belongs_to_the_window_of_its_event_time():
    assert window_start(_ms("2026-03-04T10:59:59.999+00:00"), "hour") == _ms("2026-03-04T10:00:00+00:00")
    assert window_start(_ms("2026-03-04T11:00:00+00:00"), "hour") == _ms("2026-03-04T11:00:00+00:00")
    assert window_start(_ms("2026-03-04T23:59:59.999+00:00"), "day") == _ms("2026-03-04T00:00:00+00:00")
    assert window_start(_ms("2026-03-05T00:00:00+00:00"), "day") == _ms("2026-03-05T00:00:00+00:00")


@given(st.integers(0, 4_000_000_000_000), st.sampled_from([("hour", HOUR_MS), ("day", DAY_MS)]))
def test_faust_windows_a_window_start_into_that_very_window(at, granularity):
    name, size = granularity
    start = window_start(at, name)
    assert start <= at < start + size
    faust_window = TumblingWindow(size / 1000, expires=3600)
    assert faust_window.current(start / 1000)[0] * 1000 == start


def test_a_window_older_than_the_retention_is_too_late():
    now = _ms("2026-03-10T12:30:00+00:00")
    assert too_late(_ms("2026-03-03T12:00:00+00:00"), 7 * DAY_MS, now)
    assert not too_late(_ms("2026-03-03T13:00:00+00:00"), 7 * DAY_MS, now)


# ------------------------------------------------------------------------ forms
def test_a_cell_round_trips_through_avro_and_json():
    cell = one(ev(StockAdjusted(4, "in"), on_hand=4, on_hand_delta=4), Decimal("2.5"))
    record = cell_to_avro(cell, "hour", 3_600_000, "SKU-1", "north")
    assert cell_from_avro(window_cell_codec().decode(window_cell_codec().encode(record))) == (
        "hour", 3_600_000, "SKU-1", "north", cell)
    assert cell_from_json(cell_to_json(cell)) == cell
    unknown = one(ev(Reserved("r", "o", 1), warehouse=""))
    assert cell_from_avro(window_cell_codec().decode(window_cell_codec().encode(
        cell_to_avro(unknown, "day", 0, "SKU-1", ""))))[4] == unknown


def test_the_sink_keeps_one_row_per_key_the_furthest():
    cells = [fold(None, ev(Reserved("r", "o", q)), 0, offset) for q, offset in ((1, 9), (2, 11), (3, 10))]
    rows = latest_rows(cell_row("hour", 0, "SKU-1", "north", c) for c in cells)
    assert len(rows) == 1 and rows[0]["last_offset"] == 11 and rows[0]["reserved_units"] == 2
    assert rows[0]["window_start"] == datetime(1970, 1, 1, tzinfo=timezone.utc)
