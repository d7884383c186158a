"""Pre-orders at a SKU's owner: holds on incoming units, which receipts turn into ordinary ones."""
from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.orders.logic import decide as decide_order, fold as fold_order
from streams.orders.records import (
    FulfilOrder,
    LineAllocated,
    LineState,
    OrderCommand,
    OrderEventKind,
    OrderLine,
    OrderRefusal,
    OrderState,
    OrderStatus,
    Part,
    PartArrived,
    PlaceOrder,
)
from streams.orders.saga import order_commands_for, stock_commands_for
from streams.stock.logic import decide, fold
from streams.stock.records import (
    AdjustStock,
    AllocateLine,
    Allocated,
    AnnounceIncoming,
    CommandRejected,
    Commit,
    CreateProduct,
    Expire,
    IncomingAnnounced,
    Level,
    PreorderArrived,
    RejectReason,
    Release,
    ReservationRejected,
    ReservationState,
    Reserve,
    Reserved,
    SkuState,
)
from streams.stock.store import StockStore
from tests.unit.test_backorders import SKU, cmd, line, receive, run, stocked

DAY = 86_400_000
SOON = 1_800_000_000_000


def announce(warehouse: str, units: int, expected_at: int = SOON, command_id: str = "") -> object:
    return cmd(command_id or f"announce-{warehouse}-{units}-{expected_at}",
               AnnounceIncoming(warehouse, units, expected_at))


def preorder(rid: str, warehouse: str, units: int, ttl_ms: int = 0, at: int = 1):
    return cmd(f"reserve-{rid}", Reserve(rid, f"order-{rid}", warehouse, units, ttl_ms, preorder=True), at)


def announced(on_hand: int = 0, incoming: int = 10) -> SkuState:
    state, _ = run(stocked(north=on_hand), announce("north", incoming))
    return state


def kinds(events) -> list[str]:
    return [e.type for e in events]


# ------------------------------------------------------------------------------ announcing
def test_an_announcement_adds_incoming_units_expected_by_the_latest_date():
    state, events = run(stocked(north=2), announce("north", 5, SOON), announce("north", 3, SOON + DAY),
                        announce("north", 4, SOON - DAY))
    assert kinds(events) == ["IncomingAnnounced"] * 3
    assert state.level("north") == Level(2, 0, incoming=12, expected_at=SOON + DAY)
    assert events[0].body == IncomingAnnounced(5, SOON) and events[0].incoming == 5
    assert [e.seq for e in events] == [state.seq - 2, state.seq - 1, state.seq]


def test_an_announcement_needs_a_product_a_warehouse_a_quantity_and_a_date():
    refused = [
        (SkuState(SKU), announce("north", 5), RejectReason.UNKNOWN_PRODUCT),
        (stocked(), announce("", 5), RejectReason.OTHER),
        (stocked(), announce("north", 0), RejectReason.INVALID_QUANTITY),
        (stocked(), announce("north", 5, expected_at=0), RejectReason.OTHER),
    ]
    for state, command, reason in refused:
        events = decide(state, command)
        assert isinstance(events[0].body, CommandRejected) and events[0].body.reason is reason
        assert fold(state, events) == state


def test_a_withdrawal_takes_back_only_units_no_pre_order_holds():
    state, _ = run(announced(incoming=5), preorder("r1", "north", 3))
    events = decide(state, announce("north", -3, command_id="w1"))
    assert events[0].body.reason is RejectReason.INSUFFICIENT_STOCK
    assert "2 incoming" in events[0].body.detail
    state, events = run(state, announce("north", -2, command_id="w2"))
    assert state.level("north") == Level(0, 0, incoming=3, preordered=3, expected_at=SOON)


def test_withdrawing_every_incoming_unit_clears_the_expected_date():
    state, _ = run(announced(incoming=5), announce("north", -5, command_id="w"))
    assert state.level("north") == Level()


# ------------------------------------------------------------------------------ holding
def test_a_pre_order_takes_the_units_on_hand_first_then_incoming_ones():
    state, events = run(announced(on_hand=2, incoming=10), preorder("r1", "north", 6))
    assert events[0].body == Reserved("r1", "order-r1", 6, awaiting=4)
    assert state.level("north") == Level(2, 2, incoming=10, preordered=4, expected_at=SOON)
    assert [(a.reservation_id, a.units) for a in state.awaiting] == [("r1", 4)]


def test_a_pre_order_beyond_on_hand_and_incoming_and_a_plain_one_beyond_on_hand_are_refused():
    state = announced(on_hand=2, incoming=10)
    too_many = decide(state, preorder("r1", "north", 13))[0].body
    plain = decide(state, cmd("r2", Reserve("r2", "o", "north", 3)))[0].body
    assert isinstance(too_many, ReservationRejected) and "and 10 incoming" in too_many.detail
    assert isinstance(plain, ReservationRejected) and plain.reason is RejectReason.INSUFFICIENT_STOCK


def test_a_pre_order_cannot_ship_before_its_units_arrive():
    state, _ = run(announced(), preorder("r1", "north", 3))
    events = decide(state, cmd("c1", Commit("r1")))
    assert events[0].body.reason is RejectReason.PREORDER_NOT_ARRIVED
    assert str(SOON) in events[0].body.detail


def test_releasing_a_pre_order_gives_back_its_arrived_and_its_awaited_units():
    state, _ = run(announced(on_hand=1, incoming=10), preorder("r1", "north", 4),
                   cmd("rel", Release("r1")))
    assert state.level("north") == Level(1, 0, incoming=10, expected_at=SOON)
    assert state.awaiting == ()


def test_a_pre_order_expires_like_any_hold_and_its_units_are_pre_orderable_again():
    state, _ = run(announced(incoming=4), preorder("r1", "north", 4, ttl_ms=1_000, at=10))
    assert decide(state, preorder("r2", "north", 1))[0].type == "ReservationRejected"
    state, events = run(state, cmd("x", Expire("r1"), 1_010))
    assert events[0].type == "Expired" and state.level("north").preorderable == 4


# ------------------------------------------------------------------------------ arriving
def test_a_receipt_turns_the_oldest_pre_orders_into_ordinary_holds():
    state, _ = run(announced(incoming=10), preorder("r1", "north", 3), preorder("r2", "north", 4))
    state, events = run(state, receive("north", 5))
    assert kinds(events) == ["StockAdjusted", "PreorderArrived", "PreorderArrived"]
    assert [e.body for e in events[1:]] == [PreorderArrived("r1", "order-r1", 3, 0),
                                            PreorderArrived("r2", "order-r2", 2, 2)]
    assert state.level("north") == Level(5, 5, incoming=5, preordered=2, expected_at=SOON)
    state, _ = run(state, cmd("c1", Commit("r1")))
    assert state.reservations["r1"].state is ReservationState.COMMITTED
    assert decide(state, cmd("c2", Commit("r2")))[0].body.reason is RejectReason.PREORDER_NOT_ARRIVED


def test_a_receipt_bigger_than_the_incoming_units_leaves_the_rest_available():
    state, _ = run(announced(incoming=4), preorder("r1", "north", 3))
    state, events = run(state, receive("north", 10))
    assert state.level("north") == Level(10, 3)
    assert [e.preordered for e in events] == [3, 0] and [e.incoming for e in events] == [3, 0]


def test_a_receipt_into_another_warehouse_leaves_the_pre_orders_waiting():
    state, _ = run(announced(incoming=4), preorder("r1", "north", 3))
    state, events = run(state, receive("south", 10))
    assert kinds(events) == ["StockAdjusted"]
    assert state.level("north").preordered == 3


def test_a_pre_orderable_order_line_takes_every_available_unit_before_incoming_ones():
    state, _ = run(stocked(north=2, south=1), announce("south", 10))
    state, events = run(state, line("o1", 1, 6, backorder=False, preferred_warehouse="south", preorder=True))
    plan = events[0].body
    assert isinstance(plan, Allocated) and plan.incoming_seen == {"south": 10}
    assert {(p.warehouse, p.quantity, p.awaiting) for p in plan.parts} == {("south", 4, 3), ("north", 2, 0)}
    assert state.level("south") == Level(1, 1, incoming=10, preordered=3, expected_at=SOON)


def test_a_line_that_does_not_allow_pre_orders_ignores_incoming_units():
    state, events = run(announced(incoming=10), line("o1", 1, 3, backorder=False))
    assert events[0].type == "AllocationRejected" and "incoming" not in events[0].body.detail


def test_an_announcement_serves_a_queued_pre_orderable_line():
    state, _ = run(stocked(), line("o1", 1, 3, preorder=True), line("o2", 1, 1))
    assert [b.order_id for b in state.backorders] == ["o1", "o2"]
    state, events = run(state, announce("north", 3))
    assert kinds(events) == ["IncomingAnnounced", "Allocated", "Reserved"]
    assert events[2].body.awaiting == 3
    assert [b.order_id for b in state.backorders] == ["o2"], "the plain line waits for units on hand"


# ------------------------------------------------------------------------------ the store
def test_the_incoming_levels_and_the_awaiting_holds_survive_the_stores_round_trip():
    table: dict = {}
    store = StockStore(table)
    for command in (cmd("p", CreateProduct("S")),
                    receive("north", 1), announce("north", 5), preorder("r1", "north", 4),
                    line("o1", 1, 2, preorder=True)):
        store.handle(command)
    state = store.sku(SKU)
    assert state.level("north") == Level(1, 1, incoming=5, preordered=5, expected_at=SOON)
    assert state.backorders == ()
    assert [(a.reservation_id, a.units) for a in state.awaiting] == [("r1", 3), ("o1:1:north", 2)]
    assert table[f"s:{SKU}"]["levels"]["north"] == [1, 1, 5, 5, SOON]


def test_a_level_written_before_pre_orders_loads_with_nothing_incoming():
    table: dict = {}
    store = StockStore(table)
    store.handle(cmd("p", CreateProduct("S")))
    store.handle(receive("north", 3))
    assert table[f"s:{SKU}"]["levels"]["north"] == [3, 0]
    assert store.sku(SKU).level("north") == Level(3, 0)


# ------------------------------------------------------------------------------ the order
def order_cmd(command_id: str, body, order_id: str = "o1") -> OrderCommand:
    return OrderCommand(command_id, order_id, 1, body, "test")


def decided(state: OrderState, *commands: OrderCommand) -> tuple[OrderState, list]:
    events: list = []
    for command in commands:
        new = decide_order(state, command)
        events.extend(new)
        state = fold_order(state, new)
    return state, events


def test_an_order_with_pre_ordered_units_is_preordered_until_the_last_arrives():
    place = PlaceOrder("c", (OrderLine("A", 3), OrderLine("B", 1)), allow_preorders=True)
    state, _ = decided(OrderState("o1"), order_cmd("place", place))
    state, events = decided(state, order_cmd("a1", LineAllocated(1, (Part("n", 3, "o1:1:n", awaiting=2),))),
                            order_cmd("a2", LineAllocated(2, (Part("n", 1, "o1:2:n"),))))
    assert state.status is OrderStatus.PREORDERED and events[-1].kind is OrderEventKind.ORDER_PREORDERED
    refusal = decide_order(state, order_cmd("f", FulfilOrder()))[0]
    assert refusal.reason is OrderRefusal.NOT_RESERVED and "2 pre-ordered units" in refusal.detail
    state, events = decided(state, order_cmd("arr1", PartArrived("o1:1:n", 1)))
    assert state.status is OrderStatus.PREORDERED and state.line(1).parts[0].awaiting == 1
    state, events = decided(state, order_cmd("arr2", PartArrived("o1:1:n", 0)))
    assert [e.kind for e in events] == [OrderEventKind.PART_ARRIVED, OrderEventKind.ORDER_RESERVED]
    state, _ = decided(state, order_cmd("f", FulfilOrder()))
    assert state.status is OrderStatus.FULFILLED
    assert all(o.state is LineState.COMMITTED for o in state.lines)


def test_a_placed_order_allowing_pre_orders_allocates_its_lines_as_pre_orders():
    place = PlaceOrder("c", (OrderLine("A", 3),), allow_preorders=True)
    events = decide_order(OrderState("o1"), order_cmd("place", place))
    (allocate,) = stock_commands_for(order_cmd("place", place), events)
    assert isinstance(allocate.body, AllocateLine) and allocate.body.preorder


def test_an_arrival_of_a_part_the_order_does_not_have_is_refused():
    place = PlaceOrder("c", (OrderLine("A", 3),), allow_preorders=True)
    state, _ = decided(OrderState("o1"), order_cmd("place", place))
    assert decide_order(state, order_cmd("x", PartArrived("o1:9:n", 0)))[0].refused


def test_a_receipt_tells_each_order_its_parts_arrived_but_not_a_direct_reservation():
    state, _ = run(announced(incoming=10), line("o1", 1, 3, backorder=False, preorder=True),
                   preorder("r1", "north", 2))
    command = receive("north", 10)
    events = decide(state, command)
    arrivals = [c for c in order_commands_for(command, events) if isinstance(c.body, PartArrived)]
    assert [(c.command_id, c.order_id, c.body) for c in arrivals] == [
        ("arrived:o1:1:north:0", "o1", PartArrived("o1:1:north", 0))]


# ------------------------------------------------------------------------------ properties
preorder_bodies = st.one_of(
    st.builds(AnnounceIncoming, st.sampled_from(["north", "south"]), st.integers(-6, 12), st.just(SOON)),
    st.builds(AdjustStock, st.sampled_from(["north", "south"]), st.integers(-4, 8), st.just("r")),
    st.builds(lambda n, wh, q, pre: Reserve(f"r{n}", "o", wh, q, preorder=pre),
              st.integers(0, 9), st.sampled_from(["north", "south"]), st.integers(1, 6), st.booleans()),
    st.builds(lambda n: Release(f"r{n}"), st.integers(0, 9)),
    st.builds(lambda n: Commit(f"r{n}"), st.integers(0, 9)),
    st.builds(lambda n, q, pre: AllocateLine(f"o{n}", 1, q, backorder=n % 2 == 0, preorder=pre),
              st.integers(0, 5), st.integers(1, 8), st.booleans()),
)


def _as_command(index: int, body) -> object:
    if isinstance(body, AdjustStock) and body.quantity > 0:
        return receive(body.warehouse, body.quantity, f"c{index}")
    return cmd(f"c{index}", body)


@settings(max_examples=300, deadline=None)
@given(st.lists(preorder_bodies, max_size=40))
def test_levels_and_holds_stay_consistent_whatever_the_commands(bodies):
    """After every event: nothing oversold, pre-ordered within incoming, and every pending
    hold's units are its warehouse's reserved plus preordered ones."""
    state, _ = run(SkuState(SKU), cmd("p", CreateProduct("S")))
    for index, body in enumerate(bodies):
        for event in decide(state, _as_command(index, body)):
            state = fold(state, [event])
            level = state.level(event.warehouse)
            assert 0 <= level.reserved <= level.on_hand and 0 <= level.preordered <= level.incoming
            assert level.expected_at == (SOON if level.incoming else 0)
        held: dict[str, int] = defaultdict(int)
        for r in state.reservations.values():
            held[r.warehouse] += r.quantity if r.state is ReservationState.PENDING else 0
        awaiting: dict[str, int] = defaultdict(int)
        for a in state.awaiting:
            awaiting[a.warehouse] += a.units
        for warehouse, level in state.levels.items():
            assert held[warehouse] == level.reserved + level.preordered
            assert awaiting[warehouse] == level.preordered


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=8), st.lists(st.integers(1, 6), max_size=6))
def test_receipts_convert_pre_orders_oldest_first_and_never_more_than_they_bring(holds, receipts):
    state, _ = run(announced(incoming=sum(holds)),
                   *[preorder(f"r{i}", "north", units) for i, units in enumerate(holds)])
    completed: list[str] = []
    for n, units in enumerate(receipts):
        awaited = sum(a.units for a in state.awaiting)
        state, events = run(state, receive("north", units, f"in{n}"))
        arrivals = [e.body for e in events if isinstance(e.body, PreorderArrived)]
        assert sum(a.quantity for a in arrivals) == min(units, awaited)
        completed += [a.reservation_id for a in arrivals if a.awaiting == 0]
    assert completed == [f"r{i}" for i in range(len(completed))], "the oldest holds arrive first"
    assert sum(a.units for a in state.awaiting) == max(0, sum(holds) - sum(receipts))
