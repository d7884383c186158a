"""The audit history's pieces without servers: its cursor, and its entries over the ledger rows
the sink writes for random command sequences (what the history lists, in what order, and the
levels before and after each change)."""
from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.routes.history import decode_cursor, encode_cursor, history_entry
from storage.queries import HISTORY_SKIPS
from storage.sink import _ledger_row
from streams.stock.records import AdjustStock, CreateProduct, SkuState
from tests.unit.test_logic import SKU, WAREHOUSES, cmd, command_lists, run


@given(st.integers(1, 2**63 - 1))
def test_a_cursor_names_the_seq_it_was_made_of(seq):
    cursor = encode_cursor(seq)
    assert decode_cursor(cursor) == seq
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor


@pytest.mark.parametrize("cursor", [
    "", "!!!!", "MTA=",  # padded: not what the API writes
    base64.urlsafe_b64encode(b"abc").decode(), base64.urlsafe_b64encode(b"012").decode(),
    base64.urlsafe_b64encode(b"-5").decode(), encode_cursor(0), "x" * 40, "\u00e9t\u00e9",
])
def test_anything_else_is_not_a_cursor(cursor):
    with pytest.raises(ValueError):
        decode_cursor(cursor)


def _history(events) -> tuple[list, list]:
    """The ledger rows of ``events`` the history lists, and those it leaves out (the query's filter)."""
    rows = [_ledger_row(e) for e in events]
    listed = [r for r in rows if r["warehouse"] and r["event_type"] not in HISTORY_SKIPS]
    return listed, [r for r in rows if r not in listed]


@settings(max_examples=300, deadline=None)
@given(command_lists)
def test_seq_orders_the_listed_changes_without_ties_and_what_is_left_out_changed_nothing(commands):
    _, events = run(SkuState(SKU), *commands)
    listed, left_out = _history(events)
    seqs = [r["seq"] for r in listed]
    assert seqs == sorted(set(seqs)), "a page boundary on seq would skip or repeat entries"
    assert all(r["on_hand_delta"] == r["reserved_delta"] == 0 for r in left_out)


@settings(max_examples=300, deadline=None)
@given(command_lists)
def test_each_entry_starts_from_the_level_the_one_before_left_and_the_last_ends_at_the_state(commands):
    state, events = run(SkuState(SKU), *commands)
    listed, _ = _history(events)
    for warehouse in WAREHOUSES:
        entries = [history_entry(r) for r in listed if r["warehouse"] == warehouse]
        level = (0, 0)
        for entry in entries:
            assert (entry.before.on_hand, entry.before.reserved) == level
            assert entry.before.available == entry.before.on_hand - entry.before.reserved
            assert entry.after.on_hand - entry.before.on_hand == entry.change.on_hand
            assert entry.after.reserved - entry.before.reserved == entry.change.reserved
            level = (entry.after.on_hand, entry.after.reserved)
        assert level == (state.level(warehouse).on_hand, state.level(warehouse).reserved)


def test_an_entry_carries_the_rows_actor_command_reason_and_event_fields():
    _, events = run(SkuState(SKU), cmd("p", CreateProduct("Shirt")),
                    cmd("in", AdjustStock("north", 7, "received", hold_id="in")),
                    cmd("out", AdjustStock("north", -2, "damaged")))
    [*_, received, removed] = [history_entry(r) for r in _history(events)[0]]
    assert (received.command_id, received.actor, received.reason) == ("in", "test", "received")
    assert (removed.before.on_hand, removed.after.on_hand, removed.change.on_hand) == (7, 5, -2)
    assert removed.details == {"quantity": -2, "reason": "damaged"}
    assert removed.event_type == "StockAdjusted" and removed.seq == received.seq + 1
