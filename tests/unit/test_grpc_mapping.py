"""Dicts of the API (notifications, alerts, read-model rows) to gRPC messages, and status codes."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import grpc
from hypothesis import given, strategies as st

from api.events import low_stock_alert
from api.grpc.generated import inventory_pb2 as pb
from api.grpc.mapping import (DEFAULT_LOW_STOCK_LIMIT, MAX_LOW_STOCK_LIMIT, invalid_id,
                              levels_message, low_stock_limit, low_stock_message, stream_status,
                              timestamp, update_message)
from api.models import _ID
from api.routes.inventory import _levels
from api.subscriptions import ReplayTooLong, SubscriberTooSlow
from storage.sink import notification
from streams.stock.records import Event, StockAdjusted

# Epoch milliseconds a Timestamp holds (years 1 to 9999).
MS = st.integers(min_value=-62_135_596_800_000, max_value=253_402_300_799_999)
LONG = st.integers(min_value=-(2**63), max_value=2**63 - 1)
COUNT = st.integers(min_value=0, max_value=2**40)
TEXT = st.text(max_size=40)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=8)


def _maybe(values):
    """A field's value, or the zero/None/False a notification may carry instead."""
    return st.one_of(values, st.none(), st.just(0), st.just(False))


EVENTS = st.fixed_dictionaries({
    "event_id": _maybe(TEXT), "command_id": _maybe(TEXT),
    "type": st.sampled_from(["StockAdjusted", "Reserved", "Released", "ProductCreated", "", None]),
    "sku": _maybe(TEXT), "warehouse": _maybe(TEXT), "seq": _maybe(COUNT), "occurred_at": _maybe(MS),
    "on_hand": _maybe(LONG.filter(lambda v: abs(v) < 2**62)),
    "reserved": _maybe(LONG.filter(lambda v: abs(v) < 2**62)),
    "on_hand_delta": _maybe(LONG), "reserved_delta": _maybe(LONG), "low_stock": _maybe(st.booleans()),
    "sender": _maybe(TEXT), "duplicate": st.booleans(),
    "body": st.none() | st.dictionaries(st.text(max_size=8), JSON, max_size=4),
}, optional={  # absent from events persisted before their column existed
    "offset": _maybe(COUNT), "available": _maybe(LONG), "incoming": _maybe(LONG),
    "preordered": _maybe(LONG), "low_stock_threshold": _maybe(LONG), "expected_at": _maybe(MS),
})


@given(EVENTS)
def test_an_event_maps_field_by_field_with_none_as_the_zero_value(event):
    update = update_message(event)
    assert update.WhichOneof("kind") == "event"
    msg = pb.Update.FromString(update.SerializeToString()).event  # survives the wire as is
    for name in ("offset", "seq", "on_hand", "reserved", "incoming", "preordered", "on_hand_delta",
                 "reserved_delta", "low_stock_threshold"):
        assert getattr(msg, name) == (event.get(name) or 0), name
    for name in ("event_id", "command_id", "type", "sku", "warehouse", "sender"):
        assert getattr(msg, name) == (event.get(name) or ""), name
    assert msg.low_stock is bool(event["low_stock"])
    expected_available = event["available"] if event.get("available") is not None else \
        (event["on_hand"] or 0) - (event["reserved"] or 0)
    assert msg.available == expected_available
    assert json.loads(msg.body_json) == (event["body"] if event["body"] is not None else {})
    # occurred_at: epoch 0 is a time; None is none. expected_at: 0 means "no date", as in Avro.
    assert msg.HasField("occurred_at") is (event["occurred_at"] is not None)
    if event["occurred_at"] is not None:
        assert msg.occurred_at.ToMilliseconds() == event["occurred_at"]
    assert msg.HasField("expected_at") is bool(event.get("expected_at"))
    if event.get("expected_at"):
        assert msg.expected_at.ToMilliseconds() == event["expected_at"]


def test_the_sinks_own_notification_and_its_alert_map_completely():
    event = Event("e-1", "c-1", "SKU-1", 7, 1_700_000_000_123, "leeds", 3, 1, StockAdjusted(-2, "broken"),
                  on_hand_delta=-2, sender="user:alice", low_stock_threshold=5, low_stock=True,
                  incoming=10, preordered=4, expected_at=1_800_000_000_000)
    live = {**notification(event, duplicate=False), "offset": 42}
    msg = update_message(live).event
    assert (msg.offset, msg.event_id, msg.command_id, msg.type, msg.sku, msg.warehouse, msg.seq) == \
        (42, "e-1", "c-1", "StockAdjusted", "SKU-1", "leeds", 7)
    assert (msg.on_hand, msg.reserved, msg.available, msg.incoming, msg.preordered) == (3, 1, 2, 10, 4)
    assert (msg.on_hand_delta, msg.reserved_delta, msg.low_stock, msg.low_stock_threshold) == (-2, 0, True, 5)
    assert msg.sender == "user:alice" and json.loads(msg.body_json) == {"quantity": -2, "reason": "broken"}
    assert msg.occurred_at.ToMilliseconds() == 1_700_000_000_123
    assert msg.expected_at.ToMilliseconds() == 1_800_000_000_000

    update = update_message({**low_stock_alert(live), "offset": 42})
    assert update.WhichOneof("kind") == "alert"
    assert update.alert == pb.LowStockAlert(offset=42, event_id="e-1", sku="SKU-1", warehouse="leeds",
                                            available=2, threshold=5, occurred_at=timestamp(1_700_000_000_123))


def test_timestamps_take_milliseconds_and_datetimes_naive_ones_as_utc():
    when = datetime(2030, 3, 1, 12, 30, 1, 500_000, tzinfo=timezone.utc)
    assert timestamp(when).ToDatetime(tzinfo=timezone.utc) == when
    assert timestamp(when.replace(tzinfo=None)) == timestamp(when)
    assert timestamp(when.astimezone(timezone(timedelta(hours=2)))) == timestamp(when)
    assert timestamp(0).ToMilliseconds() == 0 and timestamp(0, zero_is_none=True) is None
    assert timestamp(None) is None


LEVEL_ROWS = st.lists(st.fixed_dictionaries({
    "warehouse": st.from_regex(r"[a-z]{1,8}", fullmatch=True), "on_hand": COUNT, "reserved": COUNT,
    "low_stock_threshold": COUNT, "incoming": COUNT, "preordered": COUNT, "version": COUNT,
    "expected_at": st.none() | st.datetimes(timezones=st.just(timezone.utc)),
}), max_size=5, unique_by=lambda r: r["warehouse"])


@given(LEVEL_ROWS, COUNT)
def test_levels_and_totals_equal_what_the_rest_read_computes(rows, in_transit):
    msg = levels_message("SKU-1", rows, in_transit)
    levels, totals = _levels(rows)  # GET /inventory/{product_id}'s own computation
    assert [(lv.warehouse, lv.on_hand, lv.reserved, lv.available, lv.low_stock_threshold, lv.incoming,
             lv.preordered, lv.preorderable) for lv in msg.warehouses] == \
        [(lv.warehouse, lv.on_hand, lv.reserved, lv.available, lv.low_stock_threshold, lv.incoming,
          lv.preordered, lv.preorderable) for lv in levels]
    assert [lv.expected_at.ToDatetime(tzinfo=timezone.utc) if lv.HasField("expected_at") else None
            for lv in msg.warehouses] == [lv.expected_at for lv in levels]
    assert (msg.totals.available, msg.totals.reserved, msg.totals.total) == \
        (totals.available, totals.reserved, totals.total)
    assert (msg.totals.incoming, msg.totals.preordered, msg.totals.preorderable) == \
        (totals.incoming or 0, totals.preordered or 0, totals.preorderable or 0)
    assert msg.version == max((r["version"] for r in rows), default=0)
    assert (msg.product_id, msg.in_transit) == ("SKU-1", in_transit)


def test_low_stock_rows_show_available_units_and_their_threshold():
    updated = datetime(2030, 1, 1, tzinfo=timezone.utc)
    rows = [{"sku": "A", "warehouse": "w1", "on_hand": 5, "reserved": 4, "low_stock_threshold": 3,
             "updated_at": updated}]
    assert low_stock_message(rows) == pb.LowStockList(levels=[pb.LowStockLevel(
        product_id="A", warehouse="w1", available=1, low_stock_threshold=3, updated_at=timestamp(updated))])
    assert low_stock_message([]) == pb.LowStockList()


@given(st.from_regex(_ID, fullmatch=True), st.sampled_from([" ", "\n", "/", "?", "é", "x" * 128]))
def test_ids_rest_accepts_are_accepted_and_others_refused(valid, spoiler):
    assert invalid_id(valid.rstrip("\n"), "product_id") is None
    assert invalid_id(spoiler + valid if spoiler.strip() == "" else valid + spoiler, "product_id") is not None


def test_invalid_ids_name_the_field():
    assert invalid_id("SKU-1", "product_id") is None
    assert "product_id" in invalid_id("", "product_id")
    assert "warehouse" in invalid_id("bad id", "warehouse")
    assert invalid_id("x" * 129, "product_id") is not None


@given(st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_a_low_stock_limit_is_the_default_for_0_and_refused_out_of_range(limit):
    expected = DEFAULT_LOW_STOCK_LIMIT if limit == 0 else limit if 1 <= limit <= MAX_LOW_STOCK_LIMIT else None
    assert low_stock_limit(limit) == expected


def test_the_resume_helpers_errors_have_their_status_and_others_none():
    assert stream_status(ReplayTooLong("500 events missed"))[0] is grpc.StatusCode.OUT_OF_RANGE
    assert stream_status(SubscriberTooSlow("queue full"))[0] is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert stream_status(ValueError("boom")) is None
