"""The pure decision core: examples, then properties over random command sequences."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.stock.logic import decide, evolve, fold
from streams.stock.records import (
    AdjustStock,
    AllocateLine,
    Allocated,
    AllocationPart,
    AllocationRejected,
    CancelBackorder,
    Command,
    CommandRejected,
    Commit,
    Committed,
    CreateProduct,
    Expire,
    Expired,
    Level,
    RejectReason,
    Release,
    Released,
    ReservationRejected,
    ReservationState,
    Reserve,
    Reserved,
    SetLowStockThreshold,
    SkuState,
    StockAdjusted,
    event_id_for,
)

SKU = "SKU-1"
WAREHOUSES = ("north", "south")


def cmd(command_id: str, body, issued_at: int = 1) -> Command:
    return Command(command_id, SKU, issued_at, body, sender="test")


def run(state: SkuState, *commands: Command) -> tuple[SkuState, list]:
    events = []
    for command in commands:
        decided = decide(state, command)
        events.extend(decided)
        state = fold(state, decided)
    return state, events


def stocked(units: int = 10) -> SkuState:
    state, _ = run(SkuState(SKU), cmd("p", CreateProduct("Shirt")),
                   cmd("in", AdjustStock("north", units, "received", hold_id="in")))
    return state


def test_create_then_receive_sets_levels_and_versions():
    state = stocked(10)
    assert state.product is not None and state.product.name == "Shirt"
    assert state.level("north") == Level(10, 0)
    assert state.seq == 2


def test_unknown_product_is_rejected_and_changes_nothing():
    state = SkuState(SKU)
    [event] = decide(state, cmd("c", AdjustStock("north", 5, "received", hold_id="c")))
    assert isinstance(event.body, CommandRejected)
    assert event.body.reason is RejectReason.UNKNOWN_PRODUCT
    assert evolve(state, event) == state


def test_a_receipt_without_space_held_in_its_warehouse_is_refused_a_removal_needs_none():
    state = stocked(5)
    after, [refused] = run(state, cmd("in2", AdjustStock("north", 3, "received")))
    assert refused.body.reason is RejectReason.SPACE_NOT_HELD
    assert after == state and refused.seq == state.seq and refused.on_hand_delta == 0
    after, [removed] = run(state, cmd("out", AdjustStock("north", -2, "damaged")))
    assert isinstance(removed.body, StockAdjusted) and after.level("north") == Level(3, 0)


def test_reserve_holds_stock_and_rejects_beyond_available():
    state, events = run(stocked(3), cmd("r1", Reserve("res-1", "o1", "north", 2)),
                        cmd("r2", Reserve("res-2", "o2", "north", 2)))
    assert isinstance(events[0].body, Reserved)
    assert isinstance(events[1].body, ReservationRejected)
    assert events[1].body.reason is RejectReason.INSUFFICIENT_STOCK
    assert state.level("north") == Level(3, 2)
    assert events[1].seq == events[0].seq, "a rejection does not advance the version"


def test_commit_takes_stock_out_and_release_after_commit_is_refused():
    state, events = run(stocked(5), cmd("r", Reserve("res", "o", "north", 2)),
                        cmd("c", Commit("res")), cmd("x", Release("res")))
    assert isinstance(events[1].body, Committed)
    assert events[1].on_hand_delta == -2 and events[1].reserved_delta == -2
    assert isinstance(events[2].body, CommandRejected)
    assert events[2].body.reason is RejectReason.RESERVATION_NOT_PENDING
    assert state.level("north") == Level(3, 0)
    assert state.reservations["res"].state is ReservationState.COMMITTED


def test_release_returns_units():
    state, events = run(stocked(5), cmd("r", Reserve("res", "o", "north", 5)), cmd("x", Release("res")))
    assert isinstance(events[1].body, Released)
    assert state.level("north") == Level(5, 0)


def test_reserved_units_cannot_be_removed():
    state, events = run(stocked(5), cmd("r", Reserve("res", "o", "north", 4)),
                        cmd("out", AdjustStock("north", -2, "damaged")))
    assert events[1].body.reason is RejectReason.INSUFFICIENT_STOCK
    assert state.level("north") == Level(5, 4)


def test_invalid_quantities_and_duplicate_reservation_ids_are_rejected():
    state = stocked(5)
    reasons = [decide(state, c)[0].body.reason for c in (
        cmd("a", AdjustStock("north", 0, "nothing")),
        cmd("b", Reserve("res", "o", "north", 0)),
        cmd("c", Reserve("res", "o", "north", -1)),
    )]
    assert reasons == [RejectReason.INVALID_QUANTITY] * 3
    state, events = run(state, cmd("d", Reserve("res", "o", "north", 1)),
                        cmd("e", Reserve("res", "o", "north", 1)))
    assert events[1].body.reason is RejectReason.RESERVATION_EXISTS
    assert state.level("north").reserved == 1


def test_event_ids_are_deterministic():
    state = stocked(5)
    first = decide(state, cmd("same", Reserve("res", "o", "north", 1)))
    again = decide(state, cmd("same", Reserve("res", "o", "north", 1)))
    assert first == again
    assert first[0].event_id == event_id_for("same")


# ------------------------------------------------------------------------------ variants
def test_a_variant_is_a_product_of_its_own_with_a_parent_and_attributes():
    state, [created] = run(SkuState(SKU), cmd("v", CreateProduct("Shirt, L", parent="SHIRT",
                                                                   attributes={"size": "L"})))
    assert (created.body.parent, dict(created.body.attributes)) == ("SHIRT", {"size": "L"})
    assert state.product.parent == "SHIRT" and state.product.attributes == {"size": "L"}
    _, [own] = run(SkuState(SKU), cmd("x", CreateProduct("Loop", parent=SKU)))
    assert isinstance(own.body, CommandRejected)


# ------------------------------------------------------------------------------- bundles
def bundle() -> SkuState:
    state, _ = run(SkuState(SKU), cmd("b", CreateProduct("Gift set", components={"A": 1, "B": 2})))
    return state


def test_a_bundle_is_a_product_with_components():
    state, [created] = run(SkuState(SKU), cmd("b", CreateProduct("Gift set", components={"A": 1, "B": 2})))
    assert dict(created.body.components) == {"A": 1, "B": 2} and created.seq == 1
    assert state.product.components == {"A": 1, "B": 2} and state.product.is_bundle
    assert not stocked(1).product.is_bundle, "an ordinary product has no components"


def test_a_bundle_with_a_quantity_below_one_or_listing_itself_is_refused():
    for components, reason in (({"A": 1, "B": 0}, RejectReason.INVALID_QUANTITY),
                               ({"A": -2}, RejectReason.INVALID_QUANTITY),
                               ({"A": 1, SKU: 1}, RejectReason.OTHER),
                               ({"": 1}, RejectReason.OTHER)):
        state, [refused] = run(SkuState(SKU), cmd("b", CreateProduct("Gift set", components=components)))
        assert isinstance(refused.body, CommandRejected) and refused.body.reason is reason, components
        assert state == SkuState(SKU), "nothing is created"


def test_a_bundle_holds_no_stock_receipts_removals_reservations_and_allocations_are_refused():
    state = bundle()
    after, events = run(state, cmd("in", AdjustStock("north", 3, "received", hold_id="in")),
                        cmd("out", AdjustStock("north", -1, "damaged")),
                        cmd("r", Reserve("res", "o", "north", 1)),
                        cmd("a", AllocateLine("o", 0, 1)))
    assert [type(e.body) for e in events] == [CommandRejected, CommandRejected, ReservationRejected,
                                              AllocationRejected]
    assert {e.body.reason for e in events} == {RejectReason.BUNDLE_HOLDS_NO_STOCK}
    assert after == state and all(e.on_hand_delta == e.reserved_delta == 0 for e in events)


def test_a_bundles_components_survive_the_stores_round_trip():
    from streams.stock.store import StockStore, _dump_sku, _load_sku

    table: dict = {}
    store = StockStore(table)
    store.handle(cmd("b", CreateProduct("Gift set", components={"A": 1, "B": 2})))
    assert store.sku(SKU).product.components == {"A": 1, "B": 2}
    [refused] = store.handle(cmd("r", Reserve("res", "o", "north", 1)))
    assert refused.body.reason is RejectReason.BUNDLE_HOLDS_NO_STOCK, "decided on the loaded state"
    assert _load_sku(SKU, _dump_sku(bundle(), 1))[0] == bundle()
    # A state written before bundles has a 5-element product: an ordinary product.
    old = {**_dump_sku(stocked(4), 2)}
    old["product"] = old["product"][:5]
    loaded, recorded = _load_sku(SKU, old)
    assert (loaded, recorded) == (stocked(4), 2) and not loaded.product.is_bundle


# -------------------------------------------------------------------------------- expiry
def test_a_reservation_with_a_ttl_is_due_at_issued_at_plus_ttl():
    state, [event] = run(stocked(5), cmd("r", Reserve("res", "o", "north", 2, ttl_ms=1_000), 10_000))
    assert event.body.expires_at == 11_000
    assert state.reservations["res"].expires_at == 11_000
    _, [forever] = run(stocked(5), cmd("r", Reserve("res", "o", "north", 2), 10_000))
    assert forever.body.expires_at == 0


def test_expire_before_the_deadline_is_refused_and_at_it_returns_the_units():
    state, _ = run(stocked(5), cmd("r", Reserve("res", "o", "north", 2, ttl_ms=1_000), 10_000))
    early, [refused] = run(state, cmd("x1", Expire("res"), 10_999))
    assert isinstance(refused.body, CommandRejected) and early == state
    after, [expired] = run(state, cmd("x2", Expire("res"), 11_000))
    assert isinstance(expired.body, Expired) and expired.reserved_delta == -2
    assert after.level("north") == Level(5, 0)
    assert after.reservations["res"].state is ReservationState.EXPIRED


def test_a_reservation_without_a_ttl_never_expires():
    state, _ = run(stocked(5), cmd("r", Reserve("res", "o", "north", 2), 10_000))
    _, [refused] = run(state, cmd("x", Expire("res"), 10**12))
    assert isinstance(refused.body, CommandRejected)


def test_commit_after_the_deadline_is_refused_release_is_not():
    state, _ = run(stocked(5), cmd("r", Reserve("res", "o", "north", 2, ttl_ms=1_000), 10_000))
    _, [late] = run(state, cmd("c", Commit("res"), 11_000))
    assert late.body.reason is RejectReason.RESERVATION_EXPIRED
    _, [in_time] = run(state, cmd("c", Commit("res"), 10_999))
    assert isinstance(in_time.body, Committed)
    released, [release] = run(state, cmd("l", Release("res"), 20_000))
    assert isinstance(release.body, Released) and released.level("north") == Level(5, 0)


def test_an_ended_reservation_does_not_expire_and_a_negative_ttl_is_refused():
    state, _ = run(stocked(5), cmd("r", Reserve("res", "o", "north", 2, ttl_ms=1_000), 10_000),
                   cmd("c", Commit("res"), 10_500))
    _, [refused] = run(state, cmd("x", Expire("res"), 12_000))
    assert refused.body.reason is RejectReason.RESERVATION_NOT_PENDING
    _, [negative] = run(stocked(5), cmd("r", Reserve("res", "o", "north", 2, ttl_ms=-1), 10_000))
    assert isinstance(negative.body, ReservationRejected)


# ----------------------------------------------------------------------------- low stock
def test_crossing_below_the_threshold_flags_that_event_only():
    state, [set_] = run(stocked(8), cmd("t", SetLowStockThreshold("north", 5)))
    assert set_.low_stock_threshold == 5 and not set_.low_stock and set_.seq == state.seq
    state, [above] = run(state, cmd("r1", Reserve("a", "o", "north", 3)))  # 5 available: not below
    assert not above.low_stock and above.low_stock_threshold == 5
    state, [crossing] = run(state, cmd("r2", Reserve("b", "o", "north", 1)))  # 4 available
    assert crossing.low_stock
    state, [still_low] = run(state, cmd("r3", Reserve("c", "o", "north", 1)))
    assert not still_low.low_stock, "already below: no second alert"
    state, [back] = run(state, cmd("l", Release("a")))  # 6 available
    assert not back.low_stock
    _, [again] = run(state, cmd("r4", Reserve("d", "o", "north", 3)))
    assert again.low_stock, "crossing again after recovering raises a new alert"


def test_a_threshold_set_above_the_available_units_alerts_and_zero_turns_it_off():
    state, [raised] = run(stocked(3), cmd("t", SetLowStockThreshold("north", 5)))
    assert raised.low_stock
    state, [off] = run(state, cmd("t0", SetLowStockThreshold("north", 0)))
    assert not off.low_stock and state.threshold("north") == 0
    _, [rejected] = run(state, cmd("r", Reserve("a", "o", "north", 9)))
    assert not rejected.low_stock
    _, [negative] = run(state, cmd("tn", SetLowStockThreshold("north", -1)))
    assert isinstance(negative.body, CommandRejected)


# ------------------------------------------------------------------ order line allocation
def two_warehouses(north: int = 3, south: int = 5) -> SkuState:
    state, _ = run(stocked(north), cmd("in-s", AdjustStock("south", south, "received", hold_id="in-s")))
    return state


def allocate(order: str = "o1", line: int = 1, quantity: int = 6, **options) -> Command:
    return cmd(f"allocate:{order}:{line}", AllocateLine(order, line, quantity, **options), issued_at=1_000)


def test_a_line_is_split_across_warehouses_a_plan_then_a_reservation_per_part():
    state = two_warehouses(3, 5)
    after, events = run(state, allocate(quantity=6, preferred_warehouse="north"))
    plan_event, *held = events
    assert plan_event.body == Allocated("o1", 1, 6, "priority", {"north": 3, "south": 5}, (
        AllocationPart("north", 3, "o1:1:north"), AllocationPart("south", 3, "o1:1:south")))
    assert (plan_event.warehouse, plan_event.seq, plan_event.on_hand_delta, plan_event.reserved_delta) \
        == ("", state.seq, 0, 0)
    assert not plan_event.is_rejection
    assert [(e.warehouse, e.body.reservation_id, e.body.quantity) for e in held] == [
        ("north", "o1:1:north", 3), ("south", "o1:1:south", 3)]
    assert all(isinstance(e.body, Reserved) and e.body.order_id == "o1" for e in held)
    assert [e.seq for e in held] == [state.seq + 1, state.seq + 2]
    assert [(e.on_hand, e.reserved, e.reserved_delta) for e in held] == [(3, 3, 3), (5, 3, 3)]
    assert after.level("north") == Level(3, 3) and after.level("south") == Level(5, 3)
    assert {rid: r.state for rid, r in after.reservations.items()} == {
        "o1:1:north": ReservationState.PENDING, "o1:1:south": ReservationState.PENDING}


def test_a_line_the_warehouses_cannot_cover_is_rejected_and_nothing_is_held():
    state = two_warehouses(3, 5)
    after, [rejected] = run(state, allocate(quantity=9, strategy="most_stock"))
    assert rejected.body == AllocationRejected("o1", 1, 9, RejectReason.INSUFFICIENT_STOCK,
                                               rejected.body.detail, "most_stock", {"north": 3, "south": 5})
    assert rejected.is_rejection and rejected.warehouse == "" and rejected.seq == state.seq
    assert after == state


def test_an_allocation_of_an_unknown_product_a_bad_quantity_or_strategy_is_rejected():
    state = two_warehouses()
    reasons = [decide(s, c)[0].body.reason for s, c in (
        (SkuState(SKU), allocate()),
        (state, allocate(quantity=0)),
        (state, allocate(strategy="nearest")),
        (state, allocate(ttl_ms=-1)),
    )]
    assert reasons == [RejectReason.UNKNOWN_PRODUCT, RejectReason.INVALID_QUANTITY, RejectReason.OTHER,
                       RejectReason.OTHER]
    assert all(isinstance(decide(state, c)[0].body, AllocationRejected)
               for c in (allocate(quantity=-2), allocate(strategy="")))


def test_levels_seen_are_the_units_available_in_every_warehouse_at_the_time():
    state, _ = run(two_warehouses(3, 5), cmd("r", Reserve("res", "o", "south", 4)),
                   cmd("out", AdjustStock("north", -3, "damaged")))
    _, [plan_event, held] = run(state, allocate(quantity=1, preferred_warehouse="north"))
    assert plan_event.body.levels_seen == {"north": 0, "south": 1}
    assert plan_event.body.parts == (AllocationPart("south", 1, "o1:1:south"),)
    assert held.warehouse == "south"


def test_allocation_event_ids_are_distinct_and_deterministic():
    state = two_warehouses(3, 5)
    first = decide(state, allocate(quantity=6))
    assert first == decide(state, allocate(quantity=6))
    assert [e.event_id for e in first] == [event_id_for("allocate:o1:1", i) for i in range(3)]
    assert len({e.event_id for e in first}) == 3


def test_the_state_after_an_allocation_is_the_fold_of_its_events():
    state = two_warehouses(3, 5)
    events = decide(state, allocate(quantity=7, strategy="most_stock"))
    assert fold(state, events) == run(state, allocate(quantity=7, strategy="most_stock"))[0]
    assert fold(state, events[:1]) == state, "the plan alone holds nothing"
    assert evolve(state, events[0]) == state


def test_a_line_allocated_again_is_refused_not_held_twice():
    state, _ = run(two_warehouses(3, 5), allocate(quantity=2))
    again, [refused] = run(state, cmd("allocate-again", AllocateLine("o1", 1, 2)))
    assert refused.body.reason is RejectReason.RESERVATION_EXISTS and again == state
    _, [other_line, _] = run(state, allocate(line=2, quantity=1))
    assert isinstance(other_line.body, Allocated)


def test_allocated_parts_expire_like_any_reservation_and_end_one_by_one():
    state, events = run(two_warehouses(3, 5), allocate(quantity=4, ttl_ms=500))
    assert [e.body.expires_at for e in events[1:]] == [1_500, 1_500]
    state, [committed] = run(state, cmd("c", Commit("o1:1:south"), 1_400))
    assert isinstance(committed.body, Committed) and state.level("south") == Level(4, 0)
    state, [expired] = run(state, cmd("x", Expire("o1:1:north"), 1_500))
    assert isinstance(expired.body, Expired) and state.level("north") == Level(3, 0)


def test_each_part_is_decided_on_the_level_the_part_before_leaves_and_may_raise_low_stock():
    state, _ = run(two_warehouses(3, 5), cmd("t", SetLowStockThreshold("south", 4)))
    _, [plan_event, north, south] = run(state, allocate(quantity=5, priority=("north", "south")))
    assert not plan_event.low_stock and not north.low_stock
    assert south.low_stock and (south.on_hand, south.reserved) == (5, 2)


# ----------------------------------------------------------------------------- properties
quantities = st.integers(min_value=-3, max_value=6)
# Some are an order line's parts (AllocateLine): ids "<order>:<line>:<warehouse>".
reservation_ids = st.sampled_from([f"res-{i}" for i in range(6)] + ["o1:0:north", "o1:1:south", "o2:0:south"])
warehouses = st.sampled_from(WAREHOUSES)
bodies = st.one_of(
    st.builds(CreateProduct, st.sampled_from(["Shirt", ""])),
    # A receipt carries the hold of its space, as its warehouse's ledger sends it.
    st.builds(lambda wh, q: AdjustStock(wh, q, "adjust", "hold" if q > 0 else ""), warehouses, quantities),
    st.builds(Reserve, reservation_ids, st.just("order"), warehouses, quantities,
              st.sampled_from([0, 0, 1, 3, 10, -1])),
    st.builds(Release, reservation_ids),
    st.builds(Commit, reservation_ids),
    st.builds(Expire, reservation_ids),
    st.builds(SetLowStockThreshold, warehouses, st.integers(-1, 8)),
    st.builds(AllocateLine, st.sampled_from(["o1", "o2"]), st.integers(0, 1), quantities,
              st.sampled_from(["", *WAREHOUSES, "west"]),
              st.sampled_from(["priority", "most_stock", "nearest"]),
              st.lists(warehouses, max_size=2).map(tuple), st.sampled_from([0, 0, 2, -1]), st.booleans()),
    st.builds(CancelBackorder, st.sampled_from(["o1", "o2"]), st.integers(0, 1)),
)
# Valid allocations only, for the properties that start from stock.
allocations = st.builds(AllocateLine, st.sampled_from(["o1", "o2", "o3"]), st.integers(0, 1),
                        st.integers(1, 6), st.sampled_from(["", *WAREHOUSES]),
                        st.sampled_from(["priority", "most_stock"]),
                        st.lists(warehouses, max_size=2).map(tuple), st.sampled_from([0, 2]), st.booleans())
command_lists = st.lists(bodies, min_size=1, max_size=60).map(
    lambda bs: [cmd(f"c{i}", b, issued_at=i) for i, b in enumerate(bs)])


@settings(max_examples=300, deadline=None)
@given(command_lists)
def test_stock_is_never_negative_nor_oversold(commands):
    state, _ = run(SkuState(SKU), *commands)
    for level in state.levels.values():
        assert level.reserved >= 0
        assert level.on_hand >= level.reserved


@settings(max_examples=300, deadline=None)
@given(command_lists)
def test_replaying_the_events_rebuilds_the_state(commands):
    state, events = run(SkuState(SKU), *commands)
    assert fold(SkuState(SKU), events) == state


@settings(max_examples=300, deadline=None)
@given(command_lists)
def test_reserved_equals_pending_reservations(commands):
    state, _ = run(SkuState(SKU), *commands)
    for warehouse in WAREHOUSES:
        pending = sum(r.quantity for r in state.reservations.values()
                      if r.warehouse == warehouse and r.state is ReservationState.PENDING)
        assert state.level(warehouse).reserved == pending


@settings(max_examples=300, deadline=None)
@given(command_lists)
def test_ledger_deltas_sum_to_levels(commands):
    state, events = run(SkuState(SKU), *commands)
    for warehouse in WAREHOUSES:
        mine = [e for e in events if e.warehouse == warehouse]
        assert sum(e.on_hand_delta for e in mine) == state.level(warehouse).on_hand
        assert sum(e.reserved_delta for e in mine) == state.level(warehouse).reserved


@settings(max_examples=200, deadline=None)
@given(command_lists)
def test_each_reservation_ends_at_most_once(commands):
    _, events = run(SkuState(SKU), *commands)
    ended = [e.body.reservation_id for e in events
             if isinstance(e.body, (Committed, Released, Expired))]
    assert len(ended) == len(set(ended))


@settings(max_examples=300, deadline=None)
@given(command_lists)
def test_low_stock_is_flagged_exactly_when_a_level_crosses_below_its_threshold(commands):
    state = SkuState(SKU)
    for command in commands:
        before = state
        events = decide(state, command)
        state = fold(state, events)
        for event in events:
            wh = event.warehouse
            was = before.threshold(wh) > 0 and before.level(wh).available < before.threshold(wh)
            now = state.threshold(wh) > 0 and state.level(wh).available < state.threshold(wh)
            assert event.low_stock == (now and not was and not event.is_rejection), (command, event)
            assert event.low_stock_threshold == state.threshold(wh)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(allocations, bodies), min_size=1, max_size=40).map(
    lambda bs: [cmd(f"c{i}", b, issued_at=i) for i, b in enumerate(bs)]))
def test_allocations_on_stocked_warehouses_hold_exactly_their_plan(commands):
    """From a SKU with stock in both warehouses: an Allocated is followed by one Reserved per part
    (same ids, quantities and warehouses, one version each), and the invariants still hold."""
    start = two_warehouses(3, 5)
    state, events = run(start, *commands)
    assert fold(start, events) == state
    for warehouse in WAREHOUSES:
        level = state.level(warehouse)
        assert 0 <= level.reserved <= level.on_hand
        assert level.reserved == sum(r.quantity for r in state.reservations.values()
                                     if r.warehouse == warehouse and r.state is ReservationState.PENDING)
    for i, event in enumerate(events):
        if isinstance(event.body, Allocated):
            parts, held = event.body.parts, events[i + 1:i + 1 + len(event.body.parts)]
            assert sum(p.quantity for p in parts) == event.body.quantity
            assert all(p.quantity <= event.body.levels_seen[p.warehouse] for p in parts)
            assert [(p.warehouse, p.quantity, p.reservation_id) for p in parts] == [
                (e.warehouse, e.body.quantity, e.body.reservation_id) for e in held]
            assert [e.seq for e in held] == list(range(event.seq + 1, event.seq + 1 + len(parts)))
            assert all(e.command_id == event.command_id for e in held)


# ---------------------------------------------------------------------------- unit costs
def test_the_unit_cost_goes_into_the_event_and_the_product_with_4_places():
    from decimal import Decimal

    state, [created] = run(SkuState(SKU), cmd("p", CreateProduct("Shirt", unit_cost=Decimal("12.5"))))
    assert created.body.unit_cost == Decimal("12.5") and str(created.body.unit_cost) == "12.5000"
    assert state.product.unit_cost == Decimal("12.5000")
    variant, [own] = run(SkuState(SKU), cmd("v", CreateProduct("Shirt, L", parent="S", unit_cost=Decimal("7"))))
    assert own.body.unit_cost == Decimal("7") and variant.product.unit_cost == Decimal("7")
    assert stocked(1).product.unit_cost is None, "no cost: not known"


def test_a_unit_cost_the_read_model_cannot_hold_is_refused_and_so_is_a_bundles():
    from decimal import Decimal

    from streams.stock.logic import MAX_UNIT_COST

    for bad in (Decimal("-0.0001"), MAX_UNIT_COST + Decimal("0.0001"), Decimal("1.23456"), Decimal("NaN")):
        state, [refused] = run(SkuState(SKU), cmd("p", CreateProduct("Shirt", unit_cost=bad)))
        assert isinstance(refused.body, CommandRejected) and state.product is None, bad
        assert refused.body.reason is RejectReason.OTHER and "unit cost" in refused.body.detail
    _, [bundled] = run(SkuState(SKU), cmd("b", CreateProduct("Set", components={"A": 1}, unit_cost=Decimal(1))))
    assert isinstance(bundled.body, CommandRejected) and "bundle" in bundled.body.detail
    for fine in (Decimal(0), MAX_UNIT_COST, Decimal("1.23450")):
        _, [created] = run(SkuState(SKU), cmd("p", CreateProduct("Shirt", unit_cost=fine)))
        assert created.body.unit_cost == fine, fine
