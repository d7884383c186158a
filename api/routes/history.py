"""GET /inventory/{product_id}/history: the audit trail of a SKU's levels, read from the ledger.

Every event the sink stored (``inventory_transactions``) that changed a level is an entry: who sent
it (the command's sender, the API's principal), which command, the reason, and the warehouse's
level before and after it. Rejections are stored too but changed nothing, so they are not listed
(storage/queries.py ``HISTORY_SKIPS``).

Newest first, paged by the SKU's ``seq``, its total order: a page ends at the ``seq`` its cursor
names, so entries written meanwhile (all newer) never shift a later page, unlike an offset.
"""
from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from fastapi import APIRouter, Path, Query

from api.deps import EngineDep
from api.models import HistoryChangeOut, HistoryEntryOut, HistoryLevelOut, HistoryOut, IsoDateTime
from api.problems import PROBLEM_RESPONSES, Problem
from api.security import Viewer
from storage.queries import get_history, get_product

__all__ = ["router", "encode_cursor", "decode_cursor", "history_entry"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/inventory", tags=["inventory"])
_ID = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"
_MAX_CURSOR = 32  # base64 of a 64-bit integer's digits fits easily


def encode_cursor(seq: int) -> str:
    """The opaque cursor of the page after the entry ``seq``: base64url of its digits, unpadded."""
    return base64.urlsafe_b64encode(str(seq).encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> int:
    """The ``seq`` a cursor names. ``ValueError`` for anything ``encode_cursor`` did not write
    (checked by writing it again), so a mangled cursor is refused rather than read as another page."""
    if not cursor or len(cursor) > _MAX_CURSOR:
        raise ValueError("malformed cursor")
    try:
        digits = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("malformed cursor") from exc
    if not digits.isdigit() or encode_cursor(int(digits)) != cursor or int(digits) < 1:
        raise ValueError("malformed cursor")
    return int(digits)


def _level(on_hand: int, reserved: int) -> HistoryLevelOut:
    return HistoryLevelOut(on_hand=on_hand, reserved=reserved, available=on_hand - reserved)


def history_entry(row: dict[str, Any]) -> HistoryEntryOut:
    """A ledger row as an entry. The row keeps the level after the event and the event's deltas;
    the level before is their difference (the ledger's deltas sum to the levels)."""
    on_hand, reserved = row["on_hand_after"], row["reserved_after"]
    delta_on_hand, delta_reserved = row["on_hand_delta"], row["reserved_delta"]
    return HistoryEntryOut(
        seq=row["seq"], event_id=str(row["event_id"]), event_type=row["event_type"],
        warehouse=row["warehouse"], command_id=row["command_id"], actor=row["sender"],
        reason=row["reason"], reservation_id=row["reservation_id"], occurred_at=row["occurred_at"],
        before=_level(on_hand - delta_on_hand, reserved - delta_reserved),
        after=_level(on_hand, reserved),
        change=HistoryChangeOut(on_hand=delta_on_hand, reserved=delta_reserved),
        details=row["payload"] or {})


@router.get("/{product_id}/history", dependencies=[Viewer], response_model=HistoryOut,
            responses=PROBLEM_RESPONSES)
async def get_product_history(
        engine: EngineDep,
        product_id: str = Path(pattern=_ID, examples=["SKU-TSHIRT-RED-M"]),
        warehouse: str | None = Query(None, pattern=_ID, description="only this warehouse's changes"),
        since: IsoDateTime | None = Query(None, description="changes at this time or later (ISO 8601, "
                                                              "with a timezone)"),
        until: IsoDateTime | None = Query(None, description="changes before this time (ISO 8601, "
                                                              "with a timezone)"),
        limit: int = Query(100, ge=1, le=500, description="entries per page"),
        cursor: str | None = Query(None, max_length=_MAX_CURSOR,
                                   description="`next_cursor` of the previous page")):
    """Every change of the product's stock levels, newest first: its event, warehouse, command
    id, actor (`user:<name>`, `key:<key id>`, `clock` for an expiry), reason, reservation, time,
    and the level before and after. Requests that were refused changed nothing and are not
    listed. Paged: follow `next_cursor` until it is null. 404 for an unknown product; 422 for a
    malformed cursor or `since` after `until`."""
    if since is not None and until is not None and since > until:
        raise Problem(422, "Invalid request", "since must not be after until", "invalid-request")
    try:
        before_seq = None if cursor is None else decode_cursor(cursor)
    except ValueError as exc:
        raise Problem(422, "Invalid request", "cursor: not a cursor of this history", "invalid-request") from exc
    async with engine.connect() as conn:
        if await get_product(conn, product_id) is None:
            raise Problem(404, "Unknown product", f"no product {product_id}")
        rows = await get_history(conn, product_id, warehouse, since, until, before_seq, limit)
    entries = [history_entry(row) for row in rows[:limit]]
    next_cursor = encode_cursor(entries[-1].seq) if len(rows) > limit else None
    return HistoryOut(product_id=product_id, entries=entries, next_cursor=next_cursor)
