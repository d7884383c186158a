"""Pre-orders at the edge, without servers: the sink's rows of the pre-order facts, and the
API's figures of them. PostgreSQL and the routes are exercised by
tests/integration/test_preorders.py."""
from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy.dialects import postgresql

from api.models import IncomingIn, TotalsOut
from api.outcomes import level_of
from storage import sink
from storage.sink import _arrival_rows, _ledger_row, _level_rows, _order_rows, _reservation_rows, notification
from streams.orders.logic import decide as decide_order
from streams.orders.records import OrderCommand, OrderLine, OrderState, PlaceOrder
from streams.stock.logic import decide, fold
from streams.stock.records import (
    AdjustStock, AnnounceIncoming, Command, CreateProduct, Release, Reserve, SkuState,
)

EXPECTED_MS = 1_900_000_000_000


def run(*bodies) -> tuple[SkuState, list]:
    """The SKU's state after ``bodies`` (one command each), and all their events."""
    state, events = SkuState("SKU-1"), []
    for n, body in enumerate(bodies):
        decided = decide(state, Command(f"c{n}", "SKU-1", 1_000 + n, body))
        state, events = fold(state, decided), events + decided
    return state, events


PRE_ORDERED = (CreateProduct("Shirt"), AdjustStock("north", 2, "in", "h1"),
               AnnounceIncoming("north", 10, EXPECTED_MS), Reserve("r1", "o1", "north", 6, preorder=True))


def test_levels_carry_the_incoming_units_the_pre_ordered_ones_and_their_date():
    _, events = run(*PRE_ORDERED)
    [row] = _level_rows(events)
    assert (row["on_hand"], row["reserved"], row["incoming"], row["preordered"]) == (2, 2, 10, 4)
    assert row["expected_at"] == datetime.fromtimestamp(EXPECTED_MS / 1000, tz=timezone.utc)
    [row] = _level_rows(run(CreateProduct("Shirt"), AdjustStock("north", 2, "in", "h1"))[1])
    assert (row["incoming"], row["preordered"], row["expected_at"]) == (0, 0, None), "no date: NULL"


def test_a_pre_order_awaits_its_units_until_a_receipt_brings_them():
    _, events = run(*PRE_ORDERED)
    [held] = _reservation_rows(events)
    assert (held["quantity"], held["awaiting"], held["state"]) == (6, 4, "PENDING")
    assert _arrival_rows(events) == []

    _, events = run(*PRE_ORDERED, AdjustStock("north", 3, "in", "h2"))
    arrived = [e for e in events if e.type == "PreorderArrived"]
    assert [row["b_awaiting"] for row in _arrival_rows(events)] == [1]
    assert _arrival_rows(events)[0]["b_version"] == arrived[0].seq
    ledger = _ledger_row(arrived[0])
    assert (ledger["event_type"], ledger["reservation_id"], ledger["reserved_delta"]) == ("PreorderArrived", "r1", 3)
    assert ledger["payload"] == {"reservation_id": "r1", "order_id": "o1", "quantity": 3, "awaiting": 1}
    # The arrivals update only a row they are newer than, and only its SKU's.
    update = str(sink._UPDATE_ARRIVALS.compile(dialect=postgresql.dialect()))
    assert "reservations.version <" in update and "reservations.sku =" in update


def test_an_ended_pre_order_awaits_nothing_and_its_announcement_is_in_the_ledger():
    _, events = run(*PRE_ORDERED, Release("r1"))
    [row] = _reservation_rows(events)
    assert (row["state"], row["awaiting"]) == ("RELEASED", 0)
    announced = next(e for e in events if e.type == "IncomingAnnounced")
    ledger = _ledger_row(announced)
    assert (ledger["on_hand_delta"], ledger["reserved_delta"], ledger["reason"]) == (0, 0, None)
    assert ledger["payload"] == {"quantity": 10, "expected_at": EXPECTED_MS}


def test_an_orders_row_keeps_whether_it_may_pre_order():
    place = PlaceOrder("c", (OrderLine("SKU-1", 2),), allow_preorders=True)
    [placed] = decide_order(OrderState("o1"), OrderCommand("p", "o1", 1_000, place))
    assert _order_rows([placed])[0]["allow_preorders"] is True


def test_totals_show_incoming_units_only_where_there_are_some():
    assert TotalsOut.of(5, 2).model_dump() == {"available": 3, "reserved": 2, "total": 5}
    assert TotalsOut.of(5, 2, 10, 4).model_dump() == {"available": 3, "reserved": 2, "total": 5,
                                                       "incoming": 10, "preordered": 4, "preorderable": 6}


def test_an_announcements_date_is_utc_unless_told_and_a_levels_figures_come_from_its_event():
    ms = int(datetime(2030, 3, 1, tzinfo=timezone.utc).timestamp() * 1000)
    assert IncomingIn(quantity=1, expected_at=date(2030, 3, 1)).expected_ms() == ms
    assert IncomingIn(quantity=1, expected_at="2030-03-01T00:00:00").expected_ms() == ms
    assert IncomingIn(quantity=1, expected_at="2030-03-01T01:00:00+01:00").expected_ms() == ms
    assert IncomingIn(quantity=-1).expected_ms() == 0

    _, events = run(*PRE_ORDERED)
    level = level_of(notification(events[-1], False))
    assert (level.available, level.incoming, level.preordered, level.preorderable) == (0, 10, 4, 6)
    assert level.expected_at == datetime.fromtimestamp(EXPECTED_MS / 1000, tz=timezone.utc)
