"""Turns the event that decided a command into the HTTP answer."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi.responses import JSONResponse

from api.models import LevelOut, PendingOut
from api.problems import Problem
from streams.stock.records import RejectReason
from streams.warehouses.records import Refusal

__all__ = ["decided", "pending", "level_of", "moment"]

_REJECTIONS: dict[str, tuple[int, str]] = {
    RejectReason.INSUFFICIENT_STOCK: (409, "Insufficient stock"),
    RejectReason.UNKNOWN_PRODUCT: (404, "Unknown product"),
    RejectReason.PRODUCT_EXISTS: (409, "Product exists"),
    RejectReason.UNKNOWN_RESERVATION: (404, "Unknown reservation"),
    RejectReason.RESERVATION_NOT_PENDING: (409, "Reservation not pending"),
    RejectReason.RESERVATION_EXISTS: (409, "Reservation exists"),
    RejectReason.RESERVATION_EXPIRED: (409, "Reservation expired"),
    RejectReason.INVALID_QUANTITY: (422, "Invalid quantity"),
    RejectReason.OTHER: (422, "Invalid command"),
    RejectReason.SPACE_NOT_HELD: (409, "Space not held"),
    RejectReason.BUNDLE_HOLDS_NO_STOCK: (422, "Bundle holds no stock"),
    RejectReason.PREORDER_NOT_ARRIVED: (409, "Pre-order not arrived"),
    # A warehouse ledger's refusals (streams/warehouses/).
    Refusal.UNKNOWN_WAREHOUSE: (404, "Unknown warehouse"),
    Refusal.WAREHOUSE_EXISTS: (409, "Warehouse exists"),
    Refusal.CAPACITY_EXCEEDED: (409, "Capacity exceeded"),
    Refusal.UNKNOWN_HOLD: (409, "Unknown hold"),
    # An order's refusals (streams/orders/).
    "UNKNOWN_ORDER": (404, "Unknown order"),
    "ORDER_EXISTS": (409, "Order exists"),
    "INVALID_ORDER": (422, "Invalid order"),
    "NOT_CANCELLABLE": (409, "Order not cancellable"),
    "NOT_RESERVED": (409, "Order not reserved"),
}
_REJECTION_TYPES = {"ReservationRejected", "CommandRejected", "Refused"}


def pending(command_id: str) -> JSONResponse:
    """202: in the log, not yet decided within the time limit; safe to retry with the same key."""
    return JSONResponse(PendingOut(command_id=command_id).model_dump(), status_code=202,
                        headers={"Retry-After": "1"})


def decided(event: dict[str, Any] | None, command_id: str) -> dict[str, Any] | JSONResponse:
    """The deciding event, or raises the Problem a rejection maps to; 202 when undecided."""
    if event is None:
        return pending(command_id)
    if event["type"] not in _REJECTION_TYPES:
        return event
    facts = event.get("body") or event  # a ledger's event is flat
    reason = facts["reason"]
    status, title = _REJECTIONS.get(reason, (409, "Refused"))
    raise Problem(status, title, facts.get("detail", ""), title.lower().replace(" ", "-"),
                  reason=reason, command_id=command_id)


def moment(millis: int | None) -> datetime | None:
    """An event's epoch ms as a time; None for 0 (unset)."""
    return datetime.fromtimestamp(millis / 1000, tz=timezone.utc) if millis else None


def level_of(event: dict[str, Any]) -> LevelOut:
    """The warehouse's level after a stock event (as announced)."""
    incoming, preordered = event.get("incoming", 0), event.get("preordered", 0)
    return LevelOut(warehouse=event["warehouse"], on_hand=event["on_hand"],
                    reserved=event["reserved"], available=event["on_hand"] - event["reserved"],
                    low_stock_threshold=event.get("low_stock_threshold", 0), incoming=incoming,
                    preordered=preordered, preorderable=incoming - preordered,
                    expected_at=moment(event.get("expected_at")))
