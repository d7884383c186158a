"""Exactly-once effects of the warehouse ledgers' table layout: duplicates, the window, crashes."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.warehouses.records import (
    ConfirmSpace, CreateWarehouse, EventKind, FreeSpace, ReceiveStock, ReleaseSpace, WarehouseCommand,
)
from streams.warehouses.store import WarehouseStore

from .crash_batches import check_crash_inside_a_batch

WH = "north"


def cmd(command_id: str, body, warehouse: str = WH, at: int = 1) -> WarehouseCommand:
    return WarehouseCommand(command_id, warehouse, at, body, sender="test")


def created(table: dict, capacity: int = 10, window: int = 10_000) -> WarehouseStore:
    store = WarehouseStore(table, window=window)
    store.handle(cmd("create", CreateWarehouse("North", "Leeds", capacity)))
    return store


def test_a_redelivered_command_gets_the_same_events_and_changes_nothing_twice():
    store = created({})
    first = store.handle(cmd("r1", ReceiveStock("SKU-1", 4, "received")))
    assert store.handle(cmd("r1", ReceiveStock("SKU-1", 4, "received"))) == first
    assert first[0].kind is EventKind.SPACE_HELD and store.ledger(WH).holds == {"r1": 4}

    confirmed = store.handle(cmd("settle:r1", ConfirmSpace("r1")))
    freed = store.handle(cmd("free:e1", FreeSpace("SKU-1", 3)))
    # Later, and re-stamped: still the same command.
    assert store.handle(cmd("settle:r1", ConfirmSpace("r1"), at=99)) == confirmed
    assert store.handle(cmd("free:e1", FreeSpace("SKU-1", 3))) == freed
    assert store.handle(cmd("r1", ReceiveStock("SKU-1", 4, "received"))) == first
    ledger = store.ledger(WH)
    assert (ledger.stored, ledger.held, ledger.seq) == (1, 0, 4)


def test_a_refusal_is_remembered_too():
    store = created({}, capacity=3)
    [refused] = store.handle(cmd("big", ReceiveStock("SKU-1", 5, "received")))
    assert refused.refused
    store.handle(cmd("create-more", CreateWarehouse("North", "Leeds", 50)))  # refused: it exists
    assert store.handle(cmd("big", ReceiveStock("SKU-1", 5, "received"))) == [refused]
    assert store.ledger(WH).held == 0


def test_the_window_forgets_old_command_ids():
    table: dict = {}
    store = created(table, capacity=100, window=3)
    for i in range(5):
        store.handle(cmd(f"free-{i}", FreeSpace("SKU-1", 1)))
        store.handle(cmd(f"r{i}", ReceiveStock("SKU-1", 2, "received")))
    remembered = sorted(k for k in table if k.startswith(f"c:{WH}:"))
    assert remembered == [f"c:{WH}:free-4", f"c:{WH}:r3", f"c:{WH}:r4"]
    # A forgotten command is decided anew: the hold of r0 is open, so its id is refused as in use.
    [again] = store.handle(cmd("r0", ReceiveStock("SKU-1", 2, "received")))
    assert again.refused and store.ledger(WH).held == 10


def test_warehouses_are_independent():
    table: dict = {}
    store = created(table, capacity=5)
    store.handle(cmd("create", CreateWarehouse("South", "Bristol", 1), warehouse="south"))
    store.handle(cmd("r", ReceiveStock("SKU-1", 5, "received")))
    [south] = store.handle(cmd("r", ReceiveStock("SKU-1", 5, "received"), warehouse="south"))
    assert south.refused and south.warehouse_id == "south"
    assert (store.ledger(WH).held, store.ledger("south").capacity) == (5, 1)


# -------------------------------------------------------------------- crashes inside a batch
WAREHOUSES = ("north", "south")
holds = st.integers(0, 12).map(lambda j: f"c{j}")  # the id of the j-th command, if it was a receipt
body_strategy = st.one_of(
    st.builds(ReceiveStock, st.sampled_from(["SKU-1", "SKU-2"]), st.integers(0, 6), st.just("in")),
    st.builds(ConfirmSpace, holds),
    st.builds(ReleaseSpace, holds),
    st.builds(FreeSpace, st.just("SKU-1"), st.integers(0, 4)),
)
WINDOW = 5


def setup(table) -> None:
    store = WarehouseStore(table, window=WINDOW)
    for wh in WAREHOUSES:
        store.handle(cmd(f"create-{wh}", CreateWarehouse(wh.title(), "", 12), warehouse=wh))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(WAREHOUSES), body_strategy), min_size=1, max_size=30), st.data())
def test_a_crash_inside_a_batch_then_redelivery_equals_no_crash(pairs, data):
    commands = [cmd(f"c{i}", body, wh, at=i) for i, (wh, body) in enumerate(pairs)]
    check_crash_inside_a_batch(lambda table: WarehouseStore(table, window=WINDOW), setup, commands, data, WINDOW,
                               lambda store, key: store.ledger(key), WAREHOUSES)
