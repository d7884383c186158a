"""Pure translations between the API's dicts and the messages of schemas/inventory.proto.

Kept apart from the server so that they are tested without a server, a database or Kafka
(tests/unit/test_grpc_mapping.py). The dicts are those the rest of the API already uses: the
live notifications of storage/sink.py ``notification()`` (plus their ledger ``offset``), the
alerts of api/events.py ``low_stock_alert()``, and rows of storage/queries.py. A missing or None
field maps to the proto's zero value (proto3 has no null), never to an error: a replayed event
persisted before a column existed must still reach the client.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from api.grpc.generated import inventory_pb2 as pb
from api.subscriptions import ReplayTooLong, SubscriberTooSlow

__all__ = ["ID_PATTERN", "DEFAULT_LOW_STOCK_LIMIT", "MAX_LOW_STOCK_LIMIT", "timestamp", "event_message",
           "alert_message", "update_message", "levels_message", "low_stock_message", "invalid_id",
           "low_stock_limit", "stream_status"]

#: The ids REST accepts in paths and queries (api/models.py ``_ID``).
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")
DEFAULT_LOW_STOCK_LIMIT = 500   # as GET /inventory/low-stock
MAX_LOW_STOCK_LIMIT = 5000
LOW_STOCK_TYPE = "LowStock"     # api/events.py low_stock_alert()


def timestamp(value: int | datetime | None, zero_is_none: bool = False) -> Timestamp | None:
    """A Timestamp of epoch milliseconds or an aware datetime; None for None (and for 0 when
    0 means "none", as for ``expected_at``)."""
    if value is None or (zero_is_none and value == 0):
        return None
    stamp = Timestamp()
    if isinstance(value, datetime):
        stamp.FromDatetime(value if value.tzinfo else value.replace(tzinfo=timezone.utc))
    else:
        stamp.FromMilliseconds(int(value))
    return stamp


def _int(event: Mapping[str, Any], key: str) -> int:
    return int(event.get(key) or 0)


def _str(event: Mapping[str, Any], key: str) -> str:
    return str(event.get(key) or "")


def event_message(event: Mapping[str, Any]) -> pb.InventoryEvent:
    on_hand, reserved = _int(event, "on_hand"), _int(event, "reserved")
    available = event.get("available")
    body = event.get("body")
    return pb.InventoryEvent(
        offset=_int(event, "offset"), event_id=_str(event, "event_id"),
        command_id=_str(event, "command_id"), type=_str(event, "type"), sku=_str(event, "sku"),
        warehouse=_str(event, "warehouse"), seq=_int(event, "seq"),
        occurred_at=timestamp(event.get("occurred_at")),
        on_hand=on_hand, reserved=reserved,
        available=on_hand - reserved if available is None else int(available),
        incoming=_int(event, "incoming"), preordered=_int(event, "preordered"),
        on_hand_delta=_int(event, "on_hand_delta"), reserved_delta=_int(event, "reserved_delta"),
        low_stock=bool(event.get("low_stock")), low_stock_threshold=_int(event, "low_stock_threshold"),
        sender=_str(event, "sender"),
        body_json=json.dumps(body if body is not None else {}, sort_keys=True, default=str),
        expected_at=timestamp(event.get("expected_at"), zero_is_none=True))


def alert_message(alert: Mapping[str, Any]) -> pb.LowStockAlert:
    return pb.LowStockAlert(
        offset=_int(alert, "offset"), event_id=_str(alert, "event_id"), sku=_str(alert, "sku"),
        warehouse=_str(alert, "warehouse"), available=_int(alert, "available"),
        threshold=_int(alert, "threshold"), occurred_at=timestamp(alert.get("occurred_at")))


def update_message(message: Mapping[str, Any]) -> pb.Update:
    """A streamed item: a low-stock alert or an event, told apart as the WebSocket's are."""
    if message.get("type") == LOW_STOCK_TYPE:
        return pb.Update(alert=alert_message(message))
    return pb.Update(event=event_message(message))


def _level(row: Mapping[str, Any]) -> pb.Level:
    incoming, preordered = int(row["incoming"] or 0), int(row["preordered"] or 0)
    return pb.Level(warehouse=row["warehouse"], on_hand=row["on_hand"], reserved=row["reserved"],
                    available=row["on_hand"] - row["reserved"],
                    low_stock_threshold=row["low_stock_threshold"], incoming=incoming,
                    preordered=preordered, preorderable=incoming - preordered,
                    expected_at=timestamp(row.get("expected_at")))


def levels_message(product_id: str, rows: Iterable[Mapping[str, Any]], in_transit: int) -> pb.InventoryLevels:
    """A product's levels (storage/queries.py ``get_levels`` rows) and their totals, summed as
    GET /inventory/{product_id} sums them (api/models.py ``TotalsOut.of``)."""
    rows = list(rows)
    levels = [_level(row) for row in rows]
    on_hand, reserved = sum(lv.on_hand for lv in levels), sum(lv.reserved for lv in levels)
    incoming, preordered = sum(lv.incoming for lv in levels), sum(lv.preordered for lv in levels)
    totals = pb.Totals(available=on_hand - reserved, reserved=reserved, total=on_hand,
                       incoming=incoming, preordered=preordered, preorderable=incoming - preordered)
    return pb.InventoryLevels(product_id=product_id, warehouses=levels, totals=totals,
                              version=max((int(r["version"]) for r in rows), default=0),
                              in_transit=in_transit)


def low_stock_message(rows: Iterable[Mapping[str, Any]]) -> pb.LowStockList:
    """storage/queries.py ``get_low_stock`` rows, as GET /inventory/low-stock shows them."""
    return pb.LowStockList(levels=[
        pb.LowStockLevel(product_id=r["sku"], warehouse=r["warehouse"],
                         available=r["on_hand"] - r["reserved"],
                         low_stock_threshold=r["low_stock_threshold"],
                         updated_at=timestamp(r.get("updated_at")))
        for r in rows])


def invalid_id(value: str, what: str) -> str | None:
    """Why ``value`` is not a valid id (the details of an INVALID_ARGUMENT), or None."""
    if ID_PATTERN.fullmatch(value):
        return None
    return f"{what} must match {ID_PATTERN.pattern}"


def low_stock_limit(requested: int) -> int | None:
    """The limit a ListLowStock asks for (0: the default), None when out of range."""
    if requested == 0:
        return DEFAULT_LOW_STOCK_LIMIT
    return requested if 1 <= requested <= MAX_LOW_STOCK_LIMIT else None


def stream_status(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """The status a watch ends with for the resume helper's errors (api/subscriptions.py);
    None for any other exception."""
    if isinstance(exc, ReplayTooLong):
        # The request is valid but asks for more history than is served: OUT_OF_RANGE tells a
        # client not to retry as is (re-read the levels, watch without an offset).
        return grpc.StatusCode.OUT_OF_RANGE, f"{exc} (re-read the levels, then watch without after_offset)"
    if isinstance(exc, SubscriberTooSlow):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, f"{exc} (resume from the last offset received)"
    return None
