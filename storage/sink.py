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

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.models import NOTIFY_CHANNEL, inventory_levels, inventory_transactions, products, reservations
from streams.stock.records import (
    Committed,
    Event,
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
        stmt = insert(inventory_transactions).values([_ledger_row(e) for e in unique])
        stmt = stmt.on_conflict_do_nothing(index_elements=["event_id"])
        new_ids = set((await conn.execute(stmt.returning(inventory_transactions.c.event_id))).scalars())
        fresh = [e for e in unique if e.event_id in new_ids]
        await self._products(conn, fresh)
        await self._levels(conn, fresh)
        await self._reservations(conn, fresh)
        await self._notify(conn, events, new_ids)

    async def _products(self, conn: AsyncConnection, events: list[Event]) -> None:
        rows = [
            {"sku": e.sku, "name": e.body.name, "description": e.body.description,
             "category": e.body.category, "created_at": _ts(e.occurred_at),
             "created_by_command": e.command_id}
            for e in events if isinstance(e.body, ProductCreated)
        ]
        if rows:
            await conn.execute(insert(products).values(rows).on_conflict_do_nothing(index_elements=["sku"]))

    async def _levels(self, conn: AsyncConnection, events: list[Event]) -> None:
        rows = _latest((
            {"sku": e.sku, "warehouse": e.warehouse, "on_hand": e.on_hand, "reserved": e.reserved,
             "version": e.seq, "updated_at": _ts(e.occurred_at)}
            for e in events if not e.is_rejection and not isinstance(e.body, ProductCreated)
        ), ("sku", "warehouse"))
        if not rows:
            return
        stmt = insert(inventory_levels).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=["sku", "warehouse"],
            set_={c: stmt.excluded[c] for c in ("on_hand", "reserved", "version", "updated_at")},
            where=inventory_levels.c.version < stmt.excluded.version,
        )
        await conn.execute(stmt)

    async def _reservations(self, conn: AsyncConnection, events: list[Event]) -> None:
        rows = _latest((
            {"reservation_id": e.body.reservation_id, "order_id": e.body.order_id, "sku": e.sku,
             "warehouse": e.warehouse, "quantity": e.body.quantity, "state": str(e.body.state),
             "version": e.seq, "created_at": _ts(e.occurred_at), "updated_at": _ts(e.occurred_at)}
            for e in events if isinstance(e.body, (Reserved, Released, Committed))
        ), ("reservation_id",))
        if not rows:
            return
        stmt = insert(reservations).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=["reservation_id"],
            set_={c: stmt.excluded[c] for c in ("state", "version", "updated_at")},
            where=(reservations.c.version < stmt.excluded.version)
            & (reservations.c.sku == stmt.excluded.sku),
        )
        await conn.execute(stmt)

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
