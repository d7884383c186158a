"""The capacity ledger's pure decisions: examples, then properties over random movements."""
from __future__ import annotations

from functools import reduce

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.warehouses.logic import (
    ConfirmSpace, CreateWarehouse, FreeSpace, HoldSpace, Refusal, ReleaseSpace, WarehouseState,
    decide, evolve,
)


def run(state: WarehouseState, *bodies) -> tuple[WarehouseState, list]:
    events = []
    for body in bodies:
        decided = decide(state, body)
        events.extend(decided)
        state = reduce(evolve, decided, state)
    return state, events


def created(capacity: int = 10) -> WarehouseState:
    state, _ = run(WarehouseState("north"), CreateWarehouse("North", "Leeds", capacity))
    return state


def test_space_is_held_before_stock_arrives_and_refused_beyond_capacity():
    state, [held] = run(created(10), HoldSpace("receipt-1", 7))
    assert held.kind == "SpaceHeld" and state.free == 3
    _, [refused] = run(state, HoldSpace("receipt-2", 4))
    assert refused.reason is Refusal.CAPACITY_EXCEEDED and "3 units of space free" in refused.detail
    state, [confirmed] = run(state, ConfirmSpace("receipt-1"))
    assert (confirmed.kind, state.stored, state.held, state.free) == ("SpaceConfirmed", 7, 0, 3)


def test_a_refused_receipt_releases_its_space_and_units_that_leave_free_it():
    state, _ = run(created(10), HoldSpace("r1", 6), ReleaseSpace("r1"))
    assert state.free == 10 and state.stored == 0
    state, _ = run(state, HoldSpace("r2", 10), ConfirmSpace("r2"), FreeSpace(4))
    assert (state.stored, state.free) == (6, 4)
    _, [unknown] = run(state, ConfirmSpace("r2"))
    assert unknown.reason is Refusal.UNKNOWN_HOLD


def test_an_unknown_warehouse_refuses_everything_but_its_creation():
    _, [refused] = run(WarehouseState("nowhere"), HoldSpace("r", 1))
    assert refused.reason is Refusal.UNKNOWN_WAREHOUSE
    _, [again] = run(created(), CreateWarehouse("North", "Leeds", 5))
    assert again.reason is Refusal.WAREHOUSE_EXISTS


holds = st.sampled_from([f"r{i}" for i in range(5)])
movements = st.lists(st.one_of(
    st.builds(HoldSpace, holds, st.integers(-1, 6)),
    st.builds(ConfirmSpace, holds),
    st.builds(ReleaseSpace, holds),
    st.builds(FreeSpace, st.integers(-1, 6)),
), max_size=60)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 20), movements)
def test_stored_plus_held_never_exceeds_capacity_and_the_state_is_the_fold_of_its_events(capacity, bodies):
    state = created(capacity)
    start = state
    state, events = run(state, *bodies)
    replayed = start
    for event in events:
        replayed = evolve(replayed, event)
        assert 0 <= replayed.stored and 0 <= replayed.held
        assert replayed.stored + replayed.held <= replayed.capacity
        assert (event.stored, event.held) == (replayed.stored, replayed.held)
    assert replayed == state


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 20), movements)
def test_every_hold_ends_at_most_once(capacity, bodies):
    _, events = run(created(capacity), *bodies)
    opened, ended = [], []
    for event in events:
        if event.kind == "SpaceHeld":
            opened.append(event.hold_id)
        elif event.kind in ("SpaceConfirmed", "SpaceReleased"):
            ended.append(event.hold_id)
            assert opened.count(event.hold_id) > ended[:-1].count(event.hold_id), \
                f"hold {event.hold_id} ended without being open"
