"""Backorders at a SKU's owner: a FIFO queue of order lines, served first by any decision."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.stock.allocation import plan
from streams.stock.logic import decide, fold
from streams.stock.records import (
    CLOCK_KEY,
    AdjustStock,
    AllocateLine,
    Allocated,
    AllocationRejected,
    ArriveTransfer,
    Backorder,
    BackorderCancelled,
    Backordered,
    CancelBackorder,
    Command,
    CommandRejected,
    Commit,
    CreateProduct,
    Expire,
    Level,
    RejectReason,
    Release,
    ReservationRejected,
    ReservationState,
    Reserve,
    Reserved,
    SkuState,
    Tick,
    TransferStock,
    event_id_for,
)
from streams.stock.store import StockStore

from tests.unit.test_logic import SKU, WAREHOUSES, cmd, run


def receive(warehouse: str, units: int, command_id: str = "", at: int = 1) -> Command:
    command_id = command_id or f"in-{warehouse}-{units}-{at}"
    return cmd(command_id, AdjustStock(warehouse, units, "received", hold_id=command_id), at)


def stocked(north: int = 0, south: int = 0) -> SkuState:
    state, _ = run(SkuState(SKU), cmd("p", CreateProduct("Shirt")),
                   *[receive(wh, units) for wh, units in (("north", north), ("south", south)) if units])
    return state


def line(order: str, number: int, quantity: int, backorder: bool = True, **options) -> Command:
    body = AllocateLine(order, number, quantity, backorder=backorder, **options)
    return cmd(f"allocate:{order}:{number}", body)


def queue_of(state: SkuState) -> list[tuple[str, int]]:
    return [(b.order_id, b.line) for b in state.backorders]


def served(events) -> list[tuple[str, int]]:
    return [(e.body.order_id, e.body.line) for e in events if isinstance(e.body, Allocated)]


# ------------------------------------------------------------------------------- examples
def test_a_line_that_cannot_be_served_is_queued_holding_nothing_and_changing_no_version():
    state = stocked(north=2)
    after, [first] = run(state, line("o1", 0, 5))
    assert first.body == Backordered("o1", 0, 5, 1)
    assert (first.warehouse, first.seq, first.on_hand_delta, first.reserved_delta) == ("", state.seq, 0, 0)
    assert not first.is_rejection
    after, [second] = run(after, line("o2", 0, 1, preferred_warehouse="north", ttl_ms=50))
    assert second.body == Backordered("o2", 0, 1, 2, "north", "priority", (), 50)
    assert after.backorders == (Backorder("o1", 0, 5), Backorder("o2", 0, 1, "north", "priority", (), 50))
    assert after.levels == state.levels and after.seq == state.seq and not after.reservations


def test_without_backorder_a_line_that_cannot_be_served_is_rejected_as_before():
    after, [rejected] = run(stocked(north=2), line("o1", 0, 5, backorder=False))
    assert isinstance(rejected.body, AllocationRejected)
    assert rejected.body.reason is RejectReason.INSUFFICIENT_STOCK and after.backorders == ()


def test_a_receipt_serves_the_queue_in_order_after_its_own_event():
    state, _ = run(stocked(), line("o1", 0, 3, ttl_ms=100), line("o2", 0, 2), line("o3", 0, 9))
    after, events = run(state, receive("north", 6, "in-6", at=1_000))
    assert [e.type for e in events] == ["StockAdjusted", "Allocated", "Reserved", "Allocated", "Reserved"]
    assert served(events) == [("o1", 0), ("o2", 0)]
    assert [e.event_id for e in events] == [event_id_for("in-6", i) for i in range(5)]
    assert all(e.command_id == "in-6" for e in events)
    assert events[1].body.levels_seen == {"north": 6} and events[3].body.levels_seen == {"north": 3}
    assert events[2].body == Reserved("o1:0:north", "o1", 3, expires_at=1_100)
    assert events[4].body == Reserved("o2:0:north", "o2", 2, expires_at=0)
    assert [e.seq for e in events] == [state.seq + 1, state.seq + 1, state.seq + 2, state.seq + 2, state.seq + 3]
    assert queue_of(after) == [("o3", 0)] and after.level("north") == Level(6, 5)


def test_a_served_line_is_split_by_its_own_strategy_like_a_line_allocated_at_once():
    queued, _ = run(stocked(north=1), line("o1", 0, 4, strategy="most_stock"))
    after, events = run(queued, receive("south", 3))
    [planned] = [e.body for e in events if isinstance(e.body, Allocated)]
    assert planned.strategy == "most_stock" and planned.levels_seen == {"north": 1, "south": 3}
    assert [(p.warehouse, p.quantity) for p in planned.parts] == [("south", 3), ("north", 1)]
    direct, events = run(stocked(north=1, south=3), line("o1", 0, 4, backorder=False, strategy="most_stock"))
    assert [e.body for e in events if isinstance(e.body, Allocated)] == [planned]
    assert after.reservations == direct.reservations and after.levels == direct.levels


def test_a_new_line_never_jumps_a_waiting_one():
    state, _ = run(stocked(north=3), line("o1", 0, 5))
    after, [refused] = run(state, line("o2", 0, 1, backorder=False))
    assert refused.body.reason is RejectReason.INSUFFICIENT_STOCK and "backorders" in refused.body.detail
    after, [queued] = run(after, line("o3", 0, 1))
    assert queued.body.position == 2 and not after.reservations, "units enough, but the queue waits"


def test_a_direct_reservation_never_jumps_a_waiting_line():
    state, _ = run(stocked(north=3), line("o1", 0, 5))
    after, [refused] = run(state, cmd("r", Reserve("r1", "o9", "north", 1)))
    assert refused.body.reason is RejectReason.INSUFFICIENT_STOCK and "backorders" in refused.body.detail
    assert after == state, "the 3 units wait for the head"


def test_a_head_that_cannot_be_served_blocks_the_lines_behind_it():
    state, _ = run(stocked(), line("o1", 0, 5), line("o2", 0, 1))
    after, events = run(state, receive("north", 4))
    assert served(events) == [] and queue_of(after) == [("o1", 0), ("o2", 0)]
    after, events = run(after, receive("north", 2))
    assert served(events) == [("o1", 0), ("o2", 0)] and after.backorders == ()


def test_cancelling_a_queued_line_withdraws_it_and_may_let_the_next_be_served():
    state, _ = run(stocked(north=2), line("o1", 0, 5), line("o2", 0, 2))
    after, events = run(state, cmd("unqueue:o1:0", CancelBackorder("o1", 0)))
    assert [e.type for e in events] == ["BackorderCancelled", "Allocated", "Reserved"]
    assert events[0].body == BackorderCancelled("o1", 0, 5)
    assert (events[0].warehouse, events[0].seq, events[0].is_rejection) == ("", state.seq, False)
    assert served(events) == [("o2", 0)] and after.backorders == ()
    _, [refused] = run(after, cmd("unqueue:o2:0", CancelBackorder("o2", 0)))
    assert isinstance(refused.body, CommandRejected) and refused.body.reason is RejectReason.OTHER
    assert refused.body.command_type == "CancelBackorder"


def test_cancelling_a_line_behind_the_head_serves_nothing():
    state, _ = run(stocked(), line("o1", 0, 5), line("o2", 0, 2), line("o3", 0, 1))
    after, events = run(state, cmd("unqueue:o2:0", CancelBackorder("o2", 0)))
    assert [e.type for e in events] == ["BackorderCancelled"]
    assert queue_of(after) == [("o1", 0), ("o3", 0)]


def test_a_release_an_expiry_and_a_transfer_arriving_serve_the_queue():
    state, _ = run(stocked(north=3), cmd("r", Reserve("res", "o", "north", 3, ttl_ms=10)),
                   line("o1", 0, 2), line("o2", 0, 1), line("o3", 0, 3))
    released, events = run(state, cmd("rel", Release("res"), 5))
    assert served(events) == [("o1", 0), ("o2", 0)]
    expired, events = run(state, cmd("x", Expire("res"), 11))
    assert served(events) == [("o1", 0), ("o2", 0)] and expired.levels == released.levels
    moving, _ = run(stocked(north=4), line("o1", 0, 5),
                    cmd("t-1", TransferStock("north", "south", 4)))
    assert moving.backorders != ()
    moving, _ = run(moving, receive("north", 1))
    assert queue_of(moving) == [("o1", 0)], "4 units in transit are not available yet"
    arrived, events = run(moving, cmd("arrive:t-1", ArriveTransfer("t-1")))
    assert served(events) == [("o1", 0)] and arrived.backorders == ()


def test_a_line_queued_or_held_already_is_refused_and_a_queued_lines_ids_cannot_be_reserved():
    state, _ = run(stocked(north=1), line("o1", 0, 5))
    _, [again] = run(state, cmd("allocate-again", AllocateLine("o1", 0, 5, backorder=True)))
    assert again.body.reason is RejectReason.OTHER
    _, [taken] = run(state, cmd("r", Reserve("o1:0:north", "o", "north", 1)))
    assert isinstance(taken.body, ReservationRejected) and taken.body.reason is RejectReason.RESERVATION_EXISTS
    held, _ = run(stocked(north=1), cmd("r", Reserve("o1:0:south", "o", "north", 1)))
    _, [refused] = run(held, line("o1", 0, 5))
    assert refused.body.reason is RejectReason.RESERVATION_EXISTS


def test_a_served_line_ends_like_any_allocated_line():
    state, _ = run(stocked(), line("o1", 0, 3, ttl_ms=100))
    state, _ = run(state, receive("north", 3, at=50))
    assert state.reservations["o1:0:north"].expires_at == 150
    state, [committed] = run(state, cmd("c", Commit("o1:0:north"), 60))
    assert state.level("north") == Level(0, 0) and committed.type == "Committed"


# ---------------------------------------------------------------------------------- store
class Table(dict):
    def __init__(self, *args):
        super().__init__(*args)
        self.log: list[tuple[str, object]] = []

    def __setitem__(self, key, value):
        self.log.append((key, value))
        super().__setitem__(key, value)

    def pop(self, key, *default):
        if key in self:
            self.log.append((key, None))
        return super().pop(key, *default)


def stocked_store(table: Table) -> StockStore:
    store = StockStore(table)
    store.handle(cmd("p", CreateProduct("Shirt")))
    return store


def test_the_queue_is_kept_in_the_skus_state_and_a_state_written_before_backorders_has_none():
    table = Table()
    store = stocked_store(table)
    store.handle(line("o1", 0, 2, strategy="most_stock", priority=("south",), ttl_ms=9))
    assert table[f"s:{SKU}"]["bo"] == [["o1", 0, 2, "", "most_stock", ["south"], 9, False]]
    assert store.sku(SKU).backorders == (Backorder("o1", 0, 2, "", "most_stock", ("south",), 9),)
    old = {k: v for k, v in table[f"s:{SKU}"].items() if k != "bo"}
    assert StockStore({f"s:{SKU}": old}).sku(SKU).backorders == ()


def test_a_receipt_that_serves_backorders_recovers_from_a_crash_after_any_write():
    def prepared() -> tuple[Table, StockStore]:
        table = Table()
        store = stocked_store(table)
        store.handle(line("o1", 0, 2, ttl_ms=50))
        store.handle(line("o2", 0, 1))
        return table, store

    receipt = receive("north", 3, "in-3", at=1_000)
    clean_table, clean = prepared()
    expected = clean.handle(receipt)
    assert served(expected) == [("o1", 0), ("o2", 0)]
    table, store = prepared()
    before, mark = dict(table), len(table.log)
    store.handle(receipt)
    writes = table.log[mark:]
    for kept in range(len(writes) + 1):
        recovered = Table(before)
        for key, value in writes[:kept]:
            if value is None:
                dict.pop(recovered, key, None)
            else:
                dict.__setitem__(recovered, key, value)
        again = StockStore(recovered)
        assert again.handle(receipt) == expected, kept
        assert dict(recovered) == dict(clean_table), kept
    assert clean.reservation(SKU, "o1:0:north").state is ReservationState.PENDING
    assert f"x:{1_050:013d}:{SKU}:o1:0:north" in clean_table, "a served part is indexed by its deadline"


def test_a_tick_that_expires_a_reservation_serves_the_queue():
    store = stocked_store(Table())
    store.handle(receive("north", 2, "in-2"))
    store.handle(cmd("r", Reserve("res", "o", "north", 2, ttl_ms=10), 1))
    store.handle(line("o1", 0, 2))
    events = store.handle(Command("tick:0:20", CLOCK_KEY, 20, Tick()))
    assert [e.type for e in events] == ["Expired", "Allocated", "Reserved"]
    assert store.sku(SKU).backorders == () and store.reservation(SKU, "o1:0:north").quantity == 2


# ----------------------------------------------------------------------------- properties
orders = st.sampled_from(["o1", "o2", "o3", "o4"])
reservation_ids = st.sampled_from(["res-0", "res-1", "o1:0:north", "o2:1:south"])
warehouses = st.sampled_from(WAREHOUSES)
adjustments = st.builds(lambda wh, q: AdjustStock(wh, q, "adjust", "hold" if q > 0 else ""), warehouses,
                        st.integers(-3, 6))
lines = st.builds(AllocateLine, orders, st.integers(0, 1), st.integers(1, 7), st.sampled_from(["", *WAREHOUSES]),
                  st.sampled_from(["priority", "most_stock"]), st.lists(warehouses, max_size=2).map(tuple),
                  st.sampled_from([0, 3]), st.sampled_from([True, True, False]))
bodies = st.one_of(
    adjustments, adjustments, lines, lines, lines,  # weights: the queue fills and is served often
    st.builds(CancelBackorder, orders, st.integers(0, 1)),
    st.builds(Release, st.sampled_from(["o1:0:north", "o2:0:south", "o3:1:north", "o4:0:south"])),
    st.builds(Reserve, reservation_ids, st.just("o"), warehouses, st.integers(1, 4), st.sampled_from([0, 2])),
    st.builds(Release, reservation_ids),
    st.builds(Commit, reservation_ids),
    st.builds(Expire, reservation_ids),
)
# Long enough for lines to queue, then be served by what comes after them.
command_lists = st.lists(bodies, min_size=15, max_size=60).map(
    lambda bs: [cmd(f"c{i}", b, issued_at=i) for i, b in enumerate(bs)])


def head_can_be_planned(state: SkuState) -> bool:
    head = state.backorders[0]
    available = {wh: level.available for wh, level in state.levels.items()}
    return plan(available, head.quantity, head.preferred_warehouse, head.strategy, head.priority) is not None


@settings(max_examples=400, deadline=None)
@given(command_lists)
def test_after_every_decision_the_queue_is_empty_or_its_head_cannot_be_planned(commands):
    state = stocked()
    for command in commands:
        state = fold(state, decide(state, command))
        assert not state.backorders or not head_can_be_planned(state), command


@settings(max_examples=400, deadline=None)
@given(command_lists)
def test_lines_are_served_in_the_order_they_were_queued_and_none_jumps_the_queue(commands):
    """A model queue from the events: an Allocated while lines wait is always the head's."""
    start = stocked()
    state, events = run(start, *commands)
    model: list[tuple[str, int, int]] = []
    for event in events:
        body = event.body
        if isinstance(body, Backordered):
            assert body.position == len(model) + 1
            model.append((body.order_id, body.line, body.quantity))
        elif isinstance(body, BackorderCancelled):
            model.remove((body.order_id, body.line, body.quantity))
        elif isinstance(body, Allocated) and model:
            assert (body.order_id, body.line, body.quantity) == model.pop(0), "served out of order"
        elif isinstance(body, Reserved) and model and not event.command_id.startswith("allocate"):
            # A hold while lines wait is a served line's part, never a direct reservation's.
            assert event.event_id != event_id_for(event.command_id, 0), "a direct reservation jumped the queue"
    assert [(b.order_id, b.line, b.quantity) for b in state.backorders] == model
    assert fold(start, events) == state


@settings(max_examples=400, deadline=None)
@given(command_lists)
def test_backorders_never_oversell_and_reserved_is_what_pending_reservations_hold(commands):
    state, events = run(stocked(), *commands)
    for warehouse in WAREHOUSES:
        level = state.level(warehouse)
        assert 0 <= level.reserved <= level.on_hand
        assert level.reserved == sum(r.quantity for r in state.reservations.values()
                                     if r.warehouse == warehouse and r.state is ReservationState.PENDING)
    for event in events:
        if isinstance(event.body, (Backordered, BackorderCancelled)):
            assert (event.warehouse, event.on_hand_delta, event.reserved_delta) == ("", 0, 0)
            assert not event.is_rejection


@settings(max_examples=300, deadline=None)
@given(command_lists)
def test_each_decisions_served_lines_hold_exactly_their_plan_with_event_ids_in_sequence(commands):
    state = stocked()
    for command in commands:
        events = decide(state, command)
        assert [e.event_id for e in events] == [event_id_for(command.command_id, i) for i in range(len(events))]
        for i, event in enumerate(events):
            if isinstance(event.body, Allocated):
                parts = event.body.parts
                held = events[i + 1:i + 1 + len(parts)]
                assert sum(p.quantity for p in parts) == event.body.quantity
                assert [(p.warehouse, p.quantity, p.reservation_id) for p in parts] == [
                    (e.warehouse, e.body.quantity, e.body.reservation_id) for e in held]
        state = fold(state, events)
