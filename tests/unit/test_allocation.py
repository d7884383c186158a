"""Where an order line's units come from (streams/stock/allocation.py): examples, then properties
of the greedy plan over random stock, preferences and strategies."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.sink import _ledger_row, _level_rows, _reservation_rows
from streams.stock.allocation import STRATEGIES, plan, reservation_id_for
from streams.stock.logic import decide, fold
from streams.stock.records import AdjustStock, AllocateLine, Command, CreateProduct, SkuState

NAMES = ("a", "b", "c", "d", "e")


def test_the_preferred_warehouse_covers_the_line_alone_when_it_can():
    assert plan({"a": 9, "b": 2, "c": 5}, 4, "c", "priority", ("a",)) == [("c", 4)]


def test_priority_then_name_and_a_split_only_past_the_first():
    available = {"a": 2, "b": 2, "c": 3, "d": 1}
    assert plan(available, 6, "", "priority", ("c", "zz", "c")) == [("c", 3), ("a", 2), ("b", 1)]


def test_most_stock_first_ties_by_name():
    assert plan({"a": 2, "b": 5, "c": 5}, 7, "", "most_stock") == [("b", 5), ("c", 2)]


def test_a_preferred_warehouse_without_units_is_skipped():
    assert plan({"a": 0, "b": 3}, 2, "a", "priority") == [("b", 2)]
    assert plan({"b": 3}, 2, "nowhere", "most_stock") == [("b", 2)]


def test_no_plan_when_all_the_warehouses_together_fall_short():
    assert plan({"a": 2, "b": 3, "c": -1}, 6, "a", "priority") is None
    assert plan({}, 1) is None
    assert plan({"a": 2, "b": 3}, 5) == [("a", 2), ("b", 3)]


def test_a_bad_quantity_or_strategy_is_a_programming_error():
    with pytest.raises(ValueError):
        plan({"a": 2}, 0)
    with pytest.raises(ValueError):
        plan({"a": 2}, 1, strategy="nearest")


def test_reservation_ids_are_derived_from_the_line_and_the_warehouse():
    assert reservation_id_for("o-1", 2, "north") == "o-1:2:north"


# ----------------------------------------------------------------------------- properties
stock = st.dictionaries(st.sampled_from(NAMES), st.integers(-2, 12), max_size=len(NAMES))
requests = st.fixed_dictionaries({
    "quantity": st.integers(1, 40),
    "preferred": st.sampled_from(["", "zz", *NAMES]),
    "strategy": st.sampled_from(STRATEGIES),
    "priority": st.lists(st.sampled_from([*NAMES, "zz"]), max_size=6).map(tuple),
})


def _rank(available: dict[str, int], strategy: str, priority: tuple[str, ...], warehouse: str) -> tuple:
    """How the strategy orders two warehouses (the preferred one aside)."""
    if strategy == "priority":
        return (0, priority.index(warehouse), "") if warehouse in priority else (1, 0, warehouse)
    return (-available[warehouse], warehouse)


@settings(max_examples=500, deadline=None)
@given(stock, requests)
def test_a_plan_exists_exactly_when_the_units_available_cover_the_line(available, request):
    planned = plan(available, **request)
    total = sum(units for units in available.values() if units > 0)
    assert (planned is None) == (total < request["quantity"])
    if planned is not None:
        assert sum(units for _, units in planned) == request["quantity"]


@settings(max_examples=500, deadline=None)
@given(stock, requests)
def test_a_plan_never_takes_more_than_a_warehouse_has_and_each_at_most_once(available, request):
    planned = plan(available, **request) or []
    assert all(0 < units <= available.get(wh, 0) for wh, units in planned)
    assert len({wh for wh, _ in planned}) == len(planned)


@settings(max_examples=500, deadline=None)
@given(stock, requests)
def test_the_preferred_warehouse_goes_first_when_it_has_units(available, request):
    planned = plan(available, **request)
    if planned and available.get(request["preferred"], 0) > 0:
        assert planned[0][0] == request["preferred"]


@settings(max_examples=500, deadline=None)
@given(stock, requests)
def test_the_strategy_orders_the_warehouses_and_none_is_skipped(available, request):
    planned = plan(available, **request)
    if not planned:
        return
    def rank(warehouse: str) -> tuple:
        return _rank(available, request["strategy"], request["priority"], warehouse)

    used = [wh for wh, _ in planned if wh != request["preferred"]]
    assert used == sorted(used, key=rank)
    unused = [wh for wh, units in available.items() if units > 0 and wh not in dict(planned)]
    if used:
        assert all(rank(wh) > rank(used[-1]) for wh in unused)


@settings(max_examples=500, deadline=None)
@given(stock, requests)
def test_a_line_is_split_only_when_the_warehouses_before_could_not_cover_it(available, request):
    """Greedy: every part but the last empties its warehouse, so the parts before the last fall
    short of the line; one warehouse that can cover it alone when tried first takes it all."""
    planned = plan(available, **request)
    if not planned:
        return
    *full, (_, last) = planned
    assert all(units == available[wh] for wh, units in full)
    assert sum(units for _, units in full) < request["quantity"]
    assert 0 < last <= request["quantity"]
    if available[planned[0][0]] >= request["quantity"]:
        assert len(planned) == 1


@settings(max_examples=200, deadline=None)
@given(stock, requests)
def test_the_plan_is_deterministic_whatever_the_order_of_the_levels(available, request):
    reordered = dict(reversed(list(available.items())))
    assert plan(available, **request) == plan(reordered, **request)


# ----------------------------------------------------------------------------------- sink
def test_the_sink_writes_no_level_for_a_plan_and_reservations_from_its_reserved_events():
    state = SkuState("SKU-1")
    for command in (Command("p", "SKU-1", 1, CreateProduct("Shirt")),
                    Command("n", "SKU-1", 1, AdjustStock("north", 2, "in", "h1")),
                    Command("s", "SKU-1", 1, AdjustStock("south", 5, "in", "h2"))):
        state = fold(state, decide(state, command))
    events = decide(state, Command("allocate:o:0", "SKU-1", 5, AllocateLine("o", 0, 4, ttl_ms=10)))
    refused = decide(state, Command("allocate:o:1", "SKU-1", 5, AllocateLine("o", 1, 99)))
    assert [e.type for e in events + refused] == ["Allocated", "Reserved", "Reserved", "AllocationRejected"]

    levels = _level_rows(events + refused)
    assert sorted((r["warehouse"], r["reserved"]) for r in levels) == [("north", 2), ("south", 2)]
    rows = _reservation_rows(events + refused)
    assert sorted((r["reservation_id"], r["warehouse"], r["quantity"]) for r in rows) == [
        ("o:0:north", "north", 2), ("o:0:south", "south", 2)]
    assert all(r["expires_at"] is not None for r in rows)
    ledger = [_ledger_row(e) for e in events + refused]
    assert ledger[0]["reservation_id"] is None and ledger[0]["payload"]["parts"][1]["warehouse"] == "south"
    assert ledger[-1]["reason"] == "INSUFFICIENT_STOCK"
