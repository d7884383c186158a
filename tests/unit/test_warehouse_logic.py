"""The capacity ledger's pure decisions: examples, then properties over random movements."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.stock.records import event_id_for
from streams.warehouses.logic import decide, evolve, fold
from streams.warehouses.records import (
    ConfirmSpace, CreateWarehouse, EventKind, FreeSpace, ReceiveStock, Refusal, ReleaseSpace,
    WarehouseCommand, WarehouseState, warehouse_event_id,
)

WH = "north"


def cmd(command_id: str, body, at: int = 1) -> WarehouseCommand:
    return WarehouseCommand(command_id, WH, at, body, sender="test")


def receive(hold_id: str, quantity: int, sku: str = "SKU-1") -> WarehouseCommand:
    """A receipt: its command id is its hold's id."""
    return cmd(hold_id, ReceiveStock(sku, quantity, "received"))


def run(state: WarehouseState, *commands: WarehouseCommand) -> tuple[WarehouseState, list]:
    events = []
    for command in commands:
        decided = decide(state, command)
        events.extend(decided)
        state = fold(state, decided)
    return state, events


def created(capacity: int = 10) -> WarehouseState:
    state, _ = run(WarehouseState(WH), cmd("create", CreateWarehouse("North", "Leeds", capacity)))
    return state


def test_space_is_held_before_stock_arrives_and_refused_beyond_capacity():
    state, [held] = run(created(10), receive("receipt-1", 7))
    assert (held.kind, held.hold_id, held.sku, held.quantity) == (EventKind.SPACE_HELD, "receipt-1", "SKU-1", 7)
    assert held.receipt_reason == "received" and state.free == 3
    _, [refused] = run(state, receive("receipt-2", 4))
    assert refused.reason is Refusal.CAPACITY_EXCEEDED and "3 units of space free" in refused.detail
    state, [confirmed] = run(state, cmd("settle-1", ConfirmSpace("receipt-1")))
    assert (confirmed.kind, state.stored, state.held, state.free) == (EventKind.SPACE_CONFIRMED, 7, 0, 3)


def test_a_refused_receipt_releases_its_space_and_units_that_leave_free_it():
    state, _ = run(created(10), receive("r1", 6), cmd("x1", ReleaseSpace("r1")))
    assert state.free == 10 and state.stored == 0
    state, _ = run(state, receive("r2", 10), cmd("x2", ConfirmSpace("r2")), cmd("out", FreeSpace("SKU-1", 4)))
    assert (state.stored, state.free) == (6, 4)
    _, [unknown] = run(state, cmd("x3", ConfirmSpace("r2")))
    assert unknown.reason is Refusal.UNKNOWN_HOLD


def test_an_open_hold_id_cannot_be_held_again():
    state, _ = run(created(10), receive("r1", 2))
    after, [again] = run(state, receive("r1", 3))
    assert again.reason is Refusal.OTHER and after.holds == {"r1": 2}


def test_an_existing_warehouse_cannot_be_created_again():
    _, [again] = run(created(), cmd("again", CreateWarehouse("North", "Leeds", 5)))
    assert again.reason is Refusal.WAREHOUSE_EXISTS


@pytest.mark.parametrize("body", [ReceiveStock("SKU-1", 1, "received"), ConfirmSpace("r"),
                                  ReleaseSpace("r"), FreeSpace("SKU-1", 1)])
def test_an_unknown_warehouse_refuses_everything_but_its_creation(body):
    nowhere = WarehouseState(WH)
    state, [refused] = run(nowhere, cmd("c", body))
    assert refused.reason is Refusal.UNKNOWN_WAREHOUSE and state == nowhere
    _, [made] = run(nowhere, cmd("c", CreateWarehouse("North", "Leeds", 0)))
    assert made.kind is EventKind.WAREHOUSE_CREATED and made.capacity == 0


def test_a_command_for_another_warehouse_is_not_decided():
    with pytest.raises(ValueError):
        decide(created(), WarehouseCommand("c", "south", 1, FreeSpace("SKU-1", 1)))


@given(st.text(max_size=20))
def test_event_ids_are_deterministic_per_command_id_and_not_the_stock_events(command_id):
    state = created(10)
    first = decide(state, receive(command_id, 2))
    assert decide(state, receive(command_id, 2)) == first
    assert first[0].event_id == warehouse_event_id(command_id)
    # A receipt's stock command has the same command id: their events must not share an id.
    assert first[0].event_id != event_id_for(command_id)
    assert decide(state, receive(command_id + "x", 2))[0].event_id != first[0].event_id


# ----------------------------------------------------------------------------- properties
hold_ids = st.sampled_from([f"r{i}" for i in range(5)])
movements = st.lists(st.tuples(st.one_of(
    st.builds(ReceiveStock, st.sampled_from(["SKU-1", "SKU-2"]), st.integers(-1, 6), st.just("in")),
    st.builds(ConfirmSpace, hold_ids),
    st.builds(ReleaseSpace, hold_ids),
    st.builds(FreeSpace, st.just("SKU-1"), st.integers(-1, 6)),
    st.builds(CreateWarehouse, st.just("North"), st.just("Leeds"), st.integers(-1, 5)),
), hold_ids), max_size=60)


def commands_of(drawn) -> list[WarehouseCommand]:
    """Receipts take a hold id from a small pool (so some are open already); others a fresh id."""
    return [receive(hold, b.quantity, b.sku) if isinstance(b, ReceiveStock) else cmd(f"c{i}", b, i)
            for i, (b, hold) in enumerate(drawn)]


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 20), movements)
def test_stored_plus_held_never_exceeds_capacity_and_the_state_is_the_fold_of_its_events(capacity, drawn):
    start = created(capacity)
    state, events = run(start, *commands_of(drawn))
    replayed = start
    for event in events:
        replayed = evolve(replayed, event)
        assert 0 <= replayed.stored and 0 <= replayed.held
        assert replayed.stored + replayed.held <= replayed.capacity
        assert (event.stored, event.held, event.capacity) == (replayed.stored, replayed.held, replayed.capacity)
    assert replayed == state == fold(start, events)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 20), movements)
def test_a_refusal_changes_nothing_and_keeps_seq_while_an_effect_advances_it(capacity, drawn):
    state = created(capacity)
    for command in commands_of(drawn):
        [event] = decide(state, command)
        after = evolve(state, event)
        if event.refused:
            assert event.reason is not None and after == state and event.seq == state.seq
        else:
            assert event.reason is None and event.seq == after.seq == state.seq + 1
        state = after


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 20), movements)
def test_every_hold_ends_at_most_once(capacity, drawn):
    _, events = run(created(capacity), *commands_of(drawn))
    open_holds: set[str] = set()
    for event in events:
        if event.kind is EventKind.SPACE_HELD:
            assert event.hold_id not in open_holds
            open_holds.add(event.hold_id)
        elif event.kind in (EventKind.SPACE_CONFIRMED, EventKind.SPACE_RELEASED):
            assert event.hold_id in open_holds, f"hold {event.hold_id} ended without being open"
            open_holds.remove(event.hold_id)
