"""Persists stock events to PostgreSQL, idempotently, one transaction per batch.

- The ledger (``inventory_transactions``) is keyed by the event's deterministic id: a redelivered
  or re-announced event inserts nothing.
- Levels and reservations carry the SKU's ``seq``; an upsert only moves them forward, so an old
  event arriving again never rolls them back.
- Every event is NOTIFYed on ``stock_events`` inside the same transaction (delivered on commit),
  flagged ``duplicate`` when the ledger had it already. Listeners (the API's waiting requests and
  WebSocket subscribers) so learn of an event exactly when it is durable.
"""
from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

from sqlalchemy import Table, text
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.models import NOTIFY_CHANNEL, inventory_levels, inventory_transactions, products, reservations
from streams.stock.records import (
    Committed,
    Event,
    Expired,
    ProductCreated,
    Released,
    Reserved,
    event_to_avro,
)

__all__ = ["EventSink", "notification"]

log = logging.getLogger(__name__)


def _ts(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, tz=timezone.utc)


def notification(event: Event, duplicate: bool) -> dict[str, Any]:
    """The JSON an event is announced with, to the API and its WebSocket subscribers."""
    data = event_to_avro(event)
    data["type"], data["body"] = event.type, data["body"][1]
    data["available"] = event.on_hand - event.reserved
    data["duplicate"] = duplicate
    return data


def _ledger_row(event: Event) -> dict[str, Any]:
    body = event.body
    return {
        "event_id": event.event_id,
        "command_id": event.command_id,
        "sku": event.sku,
        "warehouse": event.warehouse,
        "event_type": event.type,
        "seq": event.seq,
        "on_hand_delta": event.on_hand_delta,
        "reserved_delta": event.reserved_delta,
        "on_hand_after": event.on_hand,
        "reserved_after": event.reserved,
        "reason": str(getattr(body, "reason", "")) or None,
        "reservation_id": getattr(body, "reservation_id", None) or None,
        "sender": event.sender,
        "occurred_at": _ts(event.occurred_at),
        "payload": notification(event, False)["body"],
    }


def _latest(rows: Iterable[dict[str, Any]], key: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per key, the highest version (an upsert may not touch a row twice)."""
    best: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        k = tuple(row[c] for c in key)
        if k not in best or row["version"] > best[k]["version"]:
            best[k] = row
    return list(best.values())


def _upsert_newer(table: Table, key: list[str], columns: tuple[str, ...], extra=None) -> Insert:
    """Insert, or move an existing row forward only when the incoming version is newer."""
    stmt = insert(table)
    newer = table.c.version < stmt.excluded.version
    return stmt.on_conflict_do_update(
        index_elements=key,
        set_={c: stmt.excluded[c] for c in columns},
        where=newer if extra is None else newer & extra(stmt),
    )


# Built once and executed with a list of rows: SQLAlchemy then compiles each statement once and
# caches it. A multi-VALUES statement built per batch was compiled every time, which took over
# 40% of the ledger worker's CPU (bench/README.md).
_INSERT_LEDGER = (insert(inventory_transactions).on_conflict_do_nothing(index_elements=["event_id"])
                  .returning(inventory_transactions.c.event_id))
_INSERT_PRODUCTS = insert(products).on_conflict_do_nothing(index_elements=["sku"])
_UPSERT_LEVELS = _upsert_newer(inventory_levels, ["sku", "warehouse"],
                               ("on_hand", "reserved", "version", "updated_at", "low_stock_threshold"))
# A reservation id names one SKU's reservation; another SKU's event never takes its row over.
_UPSERT_RESERVATIONS = _upsert_newer(reservations, ["reservation_id"], ("state", "version", "updated_at"),
                                     lambda stmt: reservations.c.sku == stmt.excluded.sku)


async def _execute(conn: AsyncConnection, stmt: Insert, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(stmt, rows)


def _product_rows(events: list[Event]) -> list[dict[str, Any]]:
    return [
        {"sku": e.sku, "name": e.body.name, "description": e.body.description,
         "category": e.body.category, "created_at": _ts(e.occurred_at),
         "created_by_command": e.command_id, "parent_sku": e.body.parent or None,
         "attributes": dict(e.body.attributes)}
        for e in events if isinstance(e.body, ProductCreated)
    ]


def _level_rows(events: list[Event]) -> list[dict[str, Any]]:
    return _latest((
        {"sku": e.sku, "warehouse": e.warehouse, "on_hand": e.on_hand, "reserved": e.reserved,
         "version": e.seq, "updated_at": _ts(e.occurred_at), "low_stock_threshold": e.low_stock_threshold}
        for e in events if not e.is_rejection and not isinstance(e.body, ProductCreated)
    ), ("sku", "warehouse"))


def _deadline(event: Event) -> datetime | None:
    # Only Reserved carries it; the upsert never overwrites it (the ending events lack it).
    expires_at = getattr(event.body, "expires_at", 0)
    return _ts(expires_at) if expires_at else None


def _reservation_rows(events: list[Event]) -> list[dict[str, Any]]:
    return _latest((
        {"reservation_id": e.body.reservation_id, "order_id": e.body.order_id, "sku": e.sku,
         "warehouse": e.warehouse, "quantity": e.body.quantity, "state": str(e.body.state),
         "version": e.seq, "created_at": _ts(e.occurred_at), "updated_at": _ts(e.occurred_at),
         "expires_at": _deadline(e)}
        for e in events if isinstance(e.body, (Reserved, Released, Committed, Expired))
    ), ("reservation_id",))


class EventSink:
    def __init__(self, engine: AsyncEngine, retry_s: float = 0.5) -> None:
        self.engine = engine
        self.retry_s = retry_s

    async def write(self, events: Sequence[Event]) -> None:
        """Persist ``events``, retrying until PostgreSQL takes them (the stream waits meanwhile)."""
        while True:
            try:
                async with self.engine.begin() as conn:
                    await self._write(conn, events)
                return
            except (OSError, ConnectionError) as exc:
                log.warning("PostgreSQL unavailable, retrying", extra={"error": str(exc)})
            except Exception as exc:  # SQLAlchemy wraps driver errors (e.g. a failover) in DBAPIError
                if not getattr(exc, "connection_invalidated", False):
                    raise
                log.warning("PostgreSQL connection lost, retrying", extra={"error": str(exc)})
            await asyncio.sleep(self.retry_s)

    async def _write(self, conn: AsyncConnection, events: Sequence[Event]) -> None:
        unique = list({e.event_id: e for e in events}.values())
        inserted = await conn.execute(_INSERT_LEDGER, [_ledger_row(e) for e in unique])
        new_ids = set(inserted.scalars())
        fresh = [e for e in unique if e.event_id in new_ids]
        await _execute(conn, _INSERT_PRODUCTS, _product_rows(fresh))
        await _execute(conn, _UPSERT_LEVELS, _level_rows(fresh))
        await _execute(conn, _UPSERT_RESERVATIONS, _reservation_rows(fresh))
        await self._notify(conn, events, new_ids)

    async def _notify(self, conn: AsyncConnection, events: Sequence[Event], new_ids: set) -> None:
        announced: set[str] = set()
        payloads = []
        for e in events:
            fresh = e.event_id in new_ids and e.event_id not in announced
            announced.add(e.event_id)
            payloads.append(json.dumps(notification(e, duplicate=not fresh), separators=(",", ":")))
        await conn.execute(
            text("SELECT pg_notify(:channel, p) FROM unnest(CAST(:payloads AS text[])) AS p"),
            {"channel": NOTIFY_CHANNEL, "payloads": payloads},
        )
