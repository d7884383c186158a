"""Transfers between warehouses: out of the source, in transit, into the destination, as pure
decisions of the SKU's owner and the saga steps around them."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.stock import logic as stock
from streams.stock.records import (
    AdjustStock, ArriveTransfer, Command, CreateProduct, RejectReason, Reserve, SkuState, TransferArrived,
    TransferredOut, TransferStock,
)
from streams.stock.store import StockStore
from streams.warehouses import logic as ledger
from streams.warehouses.records import (
    ConfirmSpace, CreateWarehouse, FreeSpace, ReceiveStock, ReleaseSpace, WarehouseCommand, WarehouseState,
)
from streams.warehouses.saga import STOCK_SENDER, arrivals_for, receipts_for, space_commands_for

SKU = "SKU-1"


def stocked(**levels: int) -> SkuState:
    state = SkuState(SKU)
    bodies = [CreateProduct("Shirt")] + [AdjustStock(wh, units, "in", f"h-{wh}") for wh, units in levels.items()]
    for i, body in enumerate(bodies):
        state = stock.fold(state, stock.decide(state, Command(f"setup-{i}", SKU, 1, body)))
    return state


def run(state: SkuState, command: Command) -> tuple[SkuState, list]:
    events = stock.decide(state, command)
    return stock.fold(state, events), events


def units(state: SkuState) -> int:
    """On hand in every warehouse plus in transit: what a transfer must never change."""
    return sum(level.on_hand for level in state.levels.values()) + sum(q for _, _, q in state.in_transit.values())


def test_units_leave_the_source_travel_and_arrive_once():
    state = stocked(north=10)
    state, [out] = run(state, Command("t-1", SKU, 5, TransferStock("north", "south", 4)))
    assert isinstance(out.body, TransferredOut) and (out.warehouse, out.on_hand, out.on_hand_delta) == ("north", 6, -4)
    assert state.in_transit == {"t-1": ("north", "south", 4)} and units(state) == 10
    state, [arrived] = run(state, Command("arrive:t-1", SKU, 6, ArriveTransfer("t-1")))
    assert isinstance(arrived.body, TransferArrived) and (arrived.warehouse, arrived.on_hand) == ("south", 4)
    assert state.in_transit == {} and units(state) == 10
    _, [again] = run(state, Command("arrive:t-1-again", SKU, 7, ArriveTransfer("t-1")))
    assert again.is_rejection, "a transfer arrives once"


def test_reserved_units_do_not_leave_and_a_transfer_needs_two_warehouses():
    state, _ = run(stocked(north=5), Command("r", SKU, 2, Reserve("r-1", "o", "north", 3)))
    _, [short] = run(state, Command("t-1", SKU, 5, TransferStock("north", "south", 3)))
    assert short.body.reason is RejectReason.INSUFFICIENT_STOCK
    _, [same] = run(state, Command("t-2", SKU, 5, TransferStock("north", "north", 1)))
    assert same.is_rejection


def test_the_ledgers_hold_at_the_destination_first_and_settle_when_the_units_arrive():
    hold = WarehouseCommand("t-1", "south", 5, ReceiveStock(SKU, 4, "rebalance", source="north"), "ops")
    created = WarehouseCommand("c", "south", 1, CreateWarehouse("South", "", 10))
    south = ledger.fold(WarehouseState("south"), ledger.decide(WarehouseState("south"), created))
    [move] = receipts_for(hold, ledger.decide(south, hold))
    assert move == Command("t-1", SKU, 5, TransferStock("north", "south", 4), "ops")

    state, out = run(stocked(north=10), move)
    assert space_commands_for(move, out) == [
        WarehouseCommand(f"free:{out[0].event_id}", "north", 5, FreeSpace(SKU, 4), STOCK_SENDER)]
    [arrive] = arrivals_for(move, out)
    assert arrive == Command("arrive:t-1", SKU, 5, ArriveTransfer("t-1"), STOCK_SENDER)
    _, arrived = run(state, arrive)
    assert space_commands_for(arrive, arrived) == [
        WarehouseCommand("settle:t-1", "south", 5, ConfirmSpace("t-1"), STOCK_SENDER)]

    _, refused = run(stocked(north=1), move)
    assert arrivals_for(move, refused) == []
    assert space_commands_for(move, refused) == [
        WarehouseCommand("settle:t-1", "south", 5, ReleaseSpace("t-1"), STOCK_SENDER)]


def test_a_transfer_in_transit_survives_the_store_and_a_redelivery():
    store = StockStore({})
    for i, body in enumerate([CreateProduct("Shirt"), AdjustStock("north", 6, "in", "h")]):
        store.handle(Command(f"s-{i}", SKU, 1, body))
    move = Command("t-1", SKU, 2, TransferStock("north", "south", 5))
    first = store.handle(move)
    assert store.handle(move) == first, "a redelivery answers the same, and moves nothing twice"
    assert store.sku(SKU).in_transit == {"t-1": ("north", "south", 5)}
    store.handle(Command("arrive:t-1", SKU, 3, ArriveTransfer("t-1")))
    assert store.sku(SKU).levels["south"].on_hand == 5 and store.sku(SKU).in_transit == {}


moves = st.lists(st.tuples(st.sampled_from(["out", "arrive", "in"]), st.sampled_from(["a", "b", "c"]),
                           st.sampled_from(["a", "b", "c"]), st.integers(1, 6), st.integers(0, 5)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(moves)
def test_on_hand_plus_in_transit_changes_only_by_receipts(steps):
    state, received = stocked(a=8, b=3), 11
    for n, (kind, source, destination, quantity, which) in enumerate(steps):
        if kind == "out":
            body = TransferStock(source, destination, quantity)
        elif kind == "arrive":
            body = ArriveTransfer(f"t-{which}")
        else:
            body, received = AdjustStock(source, quantity, "in", f"h-{n}"), received + quantity
        state, _ = run(state, Command(f"t-{n}" if kind == "out" else f"c-{n}", SKU, n, body))
        assert units(state) == received
        assert all(level.on_hand >= level.reserved >= 0 for level in state.levels.values())
