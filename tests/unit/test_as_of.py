"""As-of reads without servers: the ledger rows the sink writes hold, at every moment, each
warehouse's whole level. GET /inventory/{product_id}?as_of= picks per (SKU, warehouse) the row
of the last level change at or before the moment (highest seq; rejections and events of no
warehouse skipped, storage/queries.py ``get_levels_as_of``): here that rule is applied to the rows
of random command sequences and compared with the SKU's state after the commands up to then."""
from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import given, settings

from storage.queries import HISTORY_SKIPS
from storage.sink import _ledger_row
from streams.stock.records import SkuState
from tests.unit.test_logic import SKU, WAREHOUSES, command_lists, run


def levels_as_of(rows: list[dict], as_of: datetime) -> dict[str, tuple]:
    """The query's rule over ``rows``, with its columns: (on_hand, reserved, incoming, preordered,
    expected_at, threshold) per warehouse."""
    chosen: dict[str, dict] = {}
    for row in rows:
        if not row["warehouse"] or row["event_type"] in HISTORY_SKIPS or row["occurred_at"] > as_of:
            continue
        if row["warehouse"] not in chosen or row["seq"] > chosen[row["warehouse"]]["seq"]:
            chosen[row["warehouse"]] = row
    return {w: (r["on_hand_after"], r["reserved_after"], r["incoming_after"] or 0, r["preordered_after"] or 0,
                r["expected_at_after"], r["low_stock_threshold_after"] or 0) for w, r in chosen.items()}


def moment(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, tz=timezone.utc)


def state_levels(state: SkuState) -> dict[str, tuple]:
    out = {}
    for warehouse in WAREHOUSES:
        level = state.level(warehouse)
        expected = moment(level.expected_at) if level.expected_at else None
        out[warehouse] = (level.on_hand, level.reserved, level.incoming, level.preordered, expected,
                          state.threshold(warehouse))
    return out


@settings(max_examples=300, deadline=None)
@given(command_lists)
def test_the_as_of_rule_over_the_ledger_gives_the_levels_of_every_past_moment(commands):
    _, events = run(SkuState(SKU), *commands)
    rows = [_ledger_row(e) for e in events]
    state = SkuState(SKU)
    for i, command in enumerate(commands):
        state, _ = run(state, command)
        as_of = moment(command.issued_at)  # the commands' times increase: each is a moment
        found = levels_as_of(rows, as_of)
        expected = state_levels(state)
        for warehouse in WAREHOUSES:
            never_changed = (0, 0, 0, 0, None, 0)
            assert found.get(warehouse, never_changed) == expected[warehouse], (i, warehouse)


@settings(max_examples=100, deadline=None)
@given(command_lists)
def test_before_the_first_event_there_is_no_level(commands):
    _, events = run(SkuState(SKU), *commands)
    rows = [_ledger_row(e) for e in events]
    assert levels_as_of(rows, moment(min(c.issued_at for c in commands) - 1)) == {}
