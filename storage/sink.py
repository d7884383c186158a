"""Persists stock and warehouse ledger events to PostgreSQL, idempotently, one transaction per batch.

- The ledger (``inventory_transactions``) is keyed by the event's deterministic id: a redelivered
  or re-announced event inserts nothing.
  Warehouse events likewise, in ``warehouse_events``.
- Levels and reservations carry the SKU's ``seq``, warehouses their ledger's; an upsert only
  moves them forward, so an old event arriving again never rolls them back.
- Every event is NOTIFYed on ``stock_events`` inside the same transaction (delivered on commit),
  flagged ``duplicate`` when the ledger had it already; a warehouse event also carries
  ``"source": "warehouse"``. Listeners (the API's waiting requests and WebSocket subscribers) so
  learn of an event exactly when it is durable.
- A fresh stock event gets its ledger position, the ``offset`` its NOTIFY carries, under a lock
  that makes positions increase in commit order (``LEDGER_POSITION_LOCK``): a subscriber resumes
  after the last offset it saw (api/subscriptions.py).
- Before a batch of stock events commits, the API's read cache of every SKU it changes is
  invalidated (``ReadCacheInvalidator``, api/cache.py); a batch is not committed while Redis fails.
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Awaitable, Callable, Collection, Iterable, Sequence, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from sqlalchemy import Table, Update, bindparam, text, update
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from common.settings import Settings
from storage.models import (
    NOTIFY_CHANNEL,
    inventory_levels,
    inventory_transactions,
    order_events,
    orders,
    products,
    reservations,
    transfers,
    warehouse_events,
    warehouses,
)
from streams.stock.records import (
    Committed,
    Event,
    Expired,
    PreorderArrived,
    ProductCreated,
    Released,
    Reserved,
    TransferArrived,
    TransferredOut,
    event_to_avro,
)
from streams.orders.records import OrderEvent, order_event_to_avro
from streams.warehouses.records import WarehouseEvent, warehouse_event_to_avro

__all__ = ["EventSink", "notification", "warehouse_notification", "order_notification", "duplicate_flags",
           "ReadCacheInvalidator", "generation_key", "write_lease_key", "cached_skus", "scrub_nul",
           "refused_nul", "LEDGER_POSITION_LOCK"]

log = logging.getLogger(__name__)
_E = TypeVar("_E", Event, WarehouseEvent, OrderEvent)


def _ts(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, tz=timezone.utc)


def _ts_or_none(millis: int) -> datetime | None:
    """A moment that may be unset (0 in the events): NULL."""
    return _ts(millis) if millis else None


def _json_safe(value: Any) -> Any:
    """A body's value as JSON takes it: a Decimal (a product's unit cost) as its text, "12.5000",
    so the NOTIFY, the ledger's payload and a replay from it (api/subscriptions.py) all agree."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def notification(event: Event, duplicate: bool, offset: int | None = None) -> dict[str, Any]:
    """The JSON an event is announced with, to the API and its WebSocket subscribers. ``offset``:
    the event's ledger position, set for a fresh event (a duplicate was announced with its own);
    a subscriber resumes after the last one it saw (api/subscriptions.py). While a batch is written
    with its NULs replaced, so is its announcement: it says what the ledger holds."""
    data = event_to_avro(event)
    data["type"], data["body"] = event.type, _json_safe(data["body"][1])
    data["available"] = event.on_hand - event.reserved
    data["duplicate"] = duplicate
    if offset is not None:
        data["offset"] = offset
    return scrub_nul(data) if _scrubbing.get() else data


def warehouse_notification(event: WarehouseEvent, duplicate: bool) -> dict[str, Any]:
    """The JSON a warehouse ledger's event is announced with: flat like its Avro record, and told
    apart from the stock events on the same channel by ``source``."""
    data = warehouse_event_to_avro(event)
    data.update(source="warehouse", type=str(event.kind),
                free=event.capacity - event.stored - event.held, duplicate=duplicate)
    return data


def order_notification(event: OrderEvent, duplicate: bool) -> dict[str, Any]:
    """An order's event, announced flat (a snapshot of the order after it), ``source`` "order"."""
    data = order_event_to_avro(event)
    data.update(source="order", type=str(event.kind), duplicate=duplicate)
    return data


def duplicate_flags(event_ids: Iterable[str], new_ids: set[str]) -> list[bool]:
    """Per event, whether it is announced as a duplicate: the ledger had it before this batch, or
    it came earlier in the batch (a listener sees each event fresh at most once)."""
    announced: set[str] = set()
    flags = []
    for event_id in event_ids:
        flags.append(event_id not in new_ids or event_id in announced)
        announced.add(event_id)
    return flags


def _ledger_row(event: Event, position: int | None = None) -> dict[str, Any]:
    """The event's ledger row; ``position``: its offset (None: the column's default, for tests)."""
    body = event.body
    row = {
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
        # The rest of the level after the event: a level at any past moment is one row.
        "incoming_after": event.incoming,
        "preordered_after": event.preordered,
        "expected_at_after": _ts_or_none(event.expected_at),
        "low_stock_threshold_after": event.low_stock_threshold,
        "low_stock": event.low_stock,
    }
    if position is not None:
        row["position"] = position
    return row


def _warehouse_event_row(event: WarehouseEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "command_id": event.command_id,
        "warehouse_id": event.warehouse_id,
        "kind": str(event.kind),
        "seq": event.seq,
        "sku": event.sku or None,
        "quantity": event.quantity,
        "hold_id": event.hold_id or None,
        "stored_after": event.stored,
        "held_after": event.held,
        "capacity": event.capacity,
        "reason": None if event.reason is None else str(event.reason),
        "detail": event.detail or None,
        "sender": event.sender,
        "occurred_at": _ts(event.occurred_at),
        "payload": warehouse_event_to_avro(event),
    }


def _order_event_row(event: OrderEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "command_id": event.command_id,
        "order_id": event.order_id,
        "kind": str(event.kind),
        "seq": event.seq,
        "status": "" if event.status is None else str(event.status),
        "reason": None if event.reason is None else str(event.reason),
        "detail": event.detail or None,
        "sender": event.sender,
        "occurred_at": _ts(event.occurred_at),
        "payload": order_event_to_avro(event),
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
# Ledger positions (the offsets subscribers resume from) must increase in COMMIT order, or a
# subscriber that saw offset 11 could later miss an offset 10 committed after it. A sequence alone
# orders the values taken, not the commits; so every stock-event transaction takes this lock
# (held until its commit) before it takes positions: they commit one after another, in position
# order, however many ledger processes there are. The key is arbitrary, fixed, and this lock's own.
LEDGER_POSITION_LOCK = 0x1ED6E5_0FF5E7
_LOCK_POSITIONS = text("SELECT pg_advisory_xact_lock(:key)")
# A batch's positions in one round trip, ascending: given to its fresh events in batch order
# (nextval per row of a multi-row INSERT would follow whatever order the executor takes). Those
# given to events the ledger had already are left unused: offsets increase, with gaps.
_NEXT_POSITIONS = text("SELECT nextval('inventory_transactions_position_seq') AS p "
                       "FROM generate_series(1, :n) ORDER BY p")
_INSERT_WAREHOUSE_EVENTS = (insert(warehouse_events).on_conflict_do_nothing(index_elements=["event_id"])
                            .returning(warehouse_events.c.event_id))
_INSERT_PRODUCTS = insert(products).on_conflict_do_nothing(index_elements=["sku"])
_UPSERT_LEVELS = _upsert_newer(inventory_levels, ["sku", "warehouse"],
                               ("on_hand", "reserved", "version", "updated_at", "low_stock_threshold",
                                "incoming", "preordered", "expected_at"))
# A reservation id names one SKU's reservation; another SKU's event never takes its row over.
_UPSERT_RESERVATIONS = _upsert_newer(reservations, ["reservation_id"],
                                     ("state", "version", "updated_at", "awaiting"),
                                     lambda stmt: reservations.c.sku == stmt.excluded.sku)
# A pre-order's units arrived: its row (written by its Reserved, in this batch or before) awaits
# fewer. Run after the upsert above; like it, it only moves a row forward.
_UPDATE_ARRIVALS = (update(reservations)
                    .where(reservations.c.reservation_id == bindparam("b_reservation_id"),
                           reservations.c.sku == bindparam("b_sku"),
                           reservations.c.version < bindparam("b_version"))
                    .values(awaiting=bindparam("b_awaiting"), version=bindparam("b_version"),
                            updated_at=bindparam("b_updated_at")))
_UPSERT_TRANSFERS = _upsert_newer(transfers, ["transfer_id"], ("state", "version", "updated_at"))
# Name, location and created_at are the WarehouseCreated's: inserted once, never updated.
_UPSERT_WAREHOUSES = _upsert_newer(warehouses, ["warehouse_id"],
                                   ("capacity", "stored", "held", "version", "updated_at"))
_INSERT_ORDER_EVENTS = (insert(order_events).on_conflict_do_nothing(index_elements=["event_id"])
                        .returning(order_events.c.event_id))
# Created with the order's first event; after that only what an event changes moves forward.
_UPSERT_ORDERS = _upsert_newer(orders, ["order_id"], ("status", "lines", "version", "updated_at"))
_NOTIFY = text("SELECT pg_notify(:channel, p) FROM unnest(CAST(:payloads AS text[])) AS p")


# ------------------------------------------------------------------ NUL in text
# PostgreSQL text cannot hold NUL (SQLSTATE 22021), nor jsonb a \u0000 (22P05). The API refuses
# it in every free-text field (api/models.py), but an event from another producer may carry one:
# retried as it is, its batch would fail forever and wedge the read model. So a batch refused for
# it is written again with every NUL replaced by U+FFFD, visibly, and the same on a redelivery
# (the rows stay keyed by the same ids). Only such a batch pays for the scan.
NUL_REPLACEMENT = "\ufffd"
_NUL_SQLSTATES = frozenset({"22021", "22P05"})
_scrubbing: contextvars.ContextVar[bool] = contextvars.ContextVar("scrubbing_nul", default=False)


def scrub_nul(value: Any) -> Any:
    """``value`` with every NUL of its strings (dict keys, nested values too) replaced."""
    if isinstance(value, str):
        return value.replace("\x00", NUL_REPLACEMENT) if "\x00" in value else value
    if isinstance(value, dict):
        return {scrub_nul(k): scrub_nul(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_nul(v) for v in value]
    return value


def refused_nul(exc: BaseException) -> bool:
    """Whether PostgreSQL refused a statement for a NUL in text or jsonb."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in _NUL_SQLSTATES


def _rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [scrub_nul(row) for row in rows] if _scrubbing.get() else rows


async def _execute(conn: AsyncConnection, stmt: Insert | Update, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(stmt, _rows(rows))


async def _insert_ledger(conn: AsyncConnection, stmt: Insert, events: Sequence[_E],
                         row: Callable[[_E], dict[str, Any]]) -> tuple[list[_E], set[str]]:
    """Insert each event once; the events the ledger did not have before, and their ids."""
    unique = list({e.event_id: e for e in events}.values())
    new_ids = set((await conn.execute(stmt, _rows([row(e) for e in unique]))).scalars())
    return [e for e in unique if e.event_id in new_ids], new_ids


async def _announce(conn: AsyncConnection, events: Sequence[_E], new_ids: set[str],
                    payload: Callable[[_E, bool], dict[str, Any]]) -> None:
    """NOTIFY every event in the writing transaction: delivered on commit, so only once durable."""
    flags = duplicate_flags((e.event_id for e in events), new_ids)
    payloads = [json.dumps(payload(e, dup), separators=(",", ":")) for e, dup in zip(events, flags)]
    await conn.execute(_NOTIFY, {"channel": NOTIFY_CHANNEL, "payloads": payloads})


async def _take_positions(conn: AsyncConnection, events: Sequence[Event]) -> dict[str, int]:
    """Under the ledger's position lock (until the commit), a position per distinct event id, in
    batch order (one round trip for the batch)."""
    ids = list(dict.fromkeys(e.event_id for e in events))
    await conn.execute(_LOCK_POSITIONS, {"key": LEDGER_POSITION_LOCK})
    taken = list((await conn.execute(_NEXT_POSITIONS, {"n": len(ids)})).scalars())
    return dict(zip(ids, taken))


def _product_rows(events: list[Event]) -> list[dict[str, Any]]:
    return [
        {"sku": e.sku, "name": e.body.name, "description": e.body.description,
         "category": e.body.category, "created_at": _ts(e.occurred_at),
         "created_by_command": e.command_id, "parent_sku": e.body.parent or None,
         "attributes": dict(e.body.attributes), "components": dict(e.body.components),
         "unit_cost": e.body.unit_cost}  # a Decimal (NUMERIC(18, 4)) or None: not known
        for e in events if isinstance(e.body, ProductCreated)
    ]


def _level_rows(events: list[Event]) -> list[dict[str, Any]]:
    return _latest((
        {"sku": e.sku, "warehouse": e.warehouse, "on_hand": e.on_hand, "reserved": e.reserved,
         "version": e.seq, "updated_at": _ts(e.occurred_at), "low_stock_threshold": e.low_stock_threshold,
         "incoming": e.incoming, "preordered": e.preordered, "expected_at": _ts_or_none(e.expected_at)}
        # Facts of no warehouse move no level: a product's creation, an order line's plan
        # (Allocated: its Reserved events hold it), a backorder queued or withdrawn.
        for e in events if not e.is_rejection and e.warehouse
    ), ("sku", "warehouse"))


def _deadline(event: Event) -> datetime | None:
    # Only Reserved carries it; the upsert never overwrites it (the ending events lack it).
    return _ts_or_none(getattr(event.body, "expires_at", 0))


def _reservation_rows(events: list[Event]) -> list[dict[str, Any]]:
    return _latest((
        {"reservation_id": e.body.reservation_id, "order_id": e.body.order_id, "sku": e.sku,
         "warehouse": e.warehouse, "quantity": e.body.quantity, "state": str(e.body.state),
         "version": e.seq, "created_at": _ts(e.occurred_at), "updated_at": _ts(e.occurred_at),
         "expires_at": _deadline(e),
         # A pre-order's units not arrived yet; a hold that ended awaits nothing any more.
         "awaiting": getattr(e.body, "awaiting", 0)}
        for e in events if isinstance(e.body, (Reserved, Released, Committed, Expired))
    ), ("reservation_id",))


def _arrival_rows(events: list[Event]) -> list[dict[str, Any]]:
    """Per pre-order whose units arrived: what it still awaits (its latest arrival of the batch)."""
    latest = _latest((
        {"reservation_id": e.body.reservation_id, "sku": e.sku, "awaiting": e.body.awaiting,
         "version": e.seq, "updated_at": _ts(e.occurred_at)}
        for e in events if isinstance(e.body, PreorderArrived)
    ), ("reservation_id",))
    return [{f"b_{name}": value for name, value in row.items()} for row in latest]


def _transfer_rows(events: list[Event]) -> list[dict[str, Any]]:
    """One row per transfer: in transit once its units left the source, arrived after."""
    rows = []
    for e in events:
        body = e.body
        if isinstance(body, TransferredOut):
            source, destination, state = e.warehouse, body.destination, "IN_TRANSIT"
        elif isinstance(body, TransferArrived):
            source, destination, state = body.source, e.warehouse, "ARRIVED"
        else:
            continue
        rows.append({"transfer_id": body.transfer_id, "sku": e.sku, "source": source,
                     "destination": destination, "quantity": body.quantity, "state": state,
                     "version": e.seq, "created_at": _ts(e.occurred_at), "updated_at": _ts(e.occurred_at)})
    return _latest(rows, ("transfer_id",))


def _warehouse_rows(events: list[WarehouseEvent]) -> list[dict[str, Any]]:
    """One row per warehouse: its latest ledger, named and dated by its earliest event of the
    batch (the WarehouseCreated when the row is new; the upsert keeps an existing row's)."""
    applied = sorted((e for e in events if not e.refused), key=lambda e: e.seq)
    first: dict[str, WarehouseEvent] = {}
    for e in applied:
        first.setdefault(e.warehouse_id, e)
    return _latest((
        {"warehouse_id": e.warehouse_id, "name": first[e.warehouse_id].name,
         "location": first[e.warehouse_id].location, "capacity": e.capacity, "stored": e.stored,
         "held": e.held, "version": e.seq, "created_at": _ts(first[e.warehouse_id].occurred_at),
         "updated_at": _ts(e.occurred_at)}
        for e in applied
    ), ("warehouse_id",))


def _order_rows(events: list[OrderEvent]) -> list[dict[str, Any]]:
    """One row per order: its latest snapshot of the batch (refusals change nothing)."""
    return _latest((
        {"order_id": e.order_id, "customer": e.customer, "status": str(e.status),
         "preferred_warehouse": e.preferred_warehouse, "allow_backorders": e.allow_backorders,
         "allow_preorders": e.allow_preorders,
         "strategy": e.strategy, "lines": order_event_to_avro(e)["lines"], "version": e.seq,
         "created_at": _ts(e.occurred_at), "updated_at": _ts(e.occurred_at)}
        for e in events if e.reason is None
    ), ("order_id",))


# ------------------------------------------------------------------ the API's read cache
def generation_key(sku: str) -> str:
    """Moved before every commit that changes the SKU's inventory answer (api/cache.py)."""
    return f"inv:gen:{sku}"


def write_lease_key(sku: str) -> str:
    """The batches about to commit a change of the SKU: while any, its answer is not cached."""
    return f"inv:lease:{sku}"


def cached_skus(events: Iterable[Event]) -> set[str]:
    """The SKUs whose ``GET /inventory`` answer ``events`` change: each event's own, and a new
    variant's parent, whose answer lists its variants (a bundle's answer depends on its
    components' SKUs, which the cache tracks itself). A rejection changes no row."""
    skus = set()
    for e in events:
        if not e.is_rejection:
            skus.add(e.sku)
            if isinstance(e.body, ProductCreated) and e.body.parent:
                skus.add(e.body.parent)
    return skus


class ReadCacheInvalidator:
    """Invalidates the API's cached answers of the SKUs a batch changes, around its commit.

    Before the commit each SKU gets the batch's write lease, then a new generation: an entry built
    before cannot be served any more, and none is stored while the lease is held (api/cache.py
    tells why both are needed). After the commit the leases are released. A lease not released
    (a crash, Redis failing after the commit) expires after ``lease_s``; until then that SKU is only
    not cached. ``lease_s`` must exceed the time from ``begin`` to the commit (one COMMIT)."""

    def __init__(self, redis: Redis, lease_s: float) -> None:
        self.redis, self.lease_s = redis, lease_s
        self._leased: dict[str, set[str]] = {}  # by batch, the SKUs whose lease it took

    @classmethod
    def from_settings(cls, settings: Settings) -> ReadCacheInvalidator:
        # Bounded calls: an unreachable Redis fails the batch (retried) instead of hanging it.
        redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
        return cls(redis, settings.read_cache_write_lease_s)

    async def begin(self, batch: str, skus: Collection[str]) -> None:
        """Lease ``skus`` to ``batch`` and move their generations, in one MULTI. Raises
        ``RedisError``: then the batch must not commit (an entry could outlive its change)."""
        if not skus:
            return
        now = time.time()
        self._leased.setdefault(batch, set()).update(skus)  # first: the MULTI may apply, then fail
        async with self.redis.pipeline(transaction=True) as pipe:
            for sku in skus:
                key = write_lease_key(sku)
                pipe.zremrangebyscore(key, "-inf", now)  # leases a crash left behind
                pipe.zadd(key, {batch: now + self.lease_s})
                pipe.expire(key, int(self.lease_s) + 1)
                pipe.incr(generation_key(sku))
            await pipe.execute()

    async def end(self, batch: str) -> None:
        """After the commit (or the batch's failure): release its leases. A lease that expired
        meanwhile may have let a reader store an answer older than the commit: that SKU gets one
        more generation."""
        skus = list(self._leased.pop(batch, ()))
        if not skus:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for sku in skus:
                    pipe.zrem(write_lease_key(sku), batch)
                released = await pipe.execute()
            if lost := [sku for sku, removed in zip(skus, released) if not removed]:
                log.warning("write leases expired before their commit", extra={"skus": len(lost)})
                async with self.redis.pipeline(transaction=False) as pipe:
                    for sku in lost:
                        pipe.incr(generation_key(sku))
                    await pipe.execute()
        except RedisError as exc:
            log.warning("cannot release write leases; they expire", extra={"error": repr(exc)})


class EventSink:
    def __init__(self, engine: AsyncEngine, retry_s: float = 0.5,
                 cache: ReadCacheInvalidator | None = None) -> None:
        """``cache``: None only where no API caches reads of this PostgreSQL (api/cache.py)."""
        self.engine = engine
        self.retry_s = retry_s
        self.cache = cache

    async def write(self, events: Sequence[Event]) -> None:
        """Persist stock ``events``, retrying until PostgreSQL takes them (the stream waits meanwhile)."""
        batch = uuid.uuid4().hex
        try:
            await self._persist(functools.partial(self._write, batch=batch), events)
        finally:
            if self.cache is not None:
                await self.cache.end(batch)

    async def write_warehouse_events(self, events: Sequence[WarehouseEvent]) -> None:
        """Persist warehouse ledger ``events``, retrying like ``write``."""
        await self._persist(self._write_warehouse, events)

    async def write_order_events(self, events: Sequence[OrderEvent]) -> None:
        """Persist order ``events``, retrying like ``write``."""
        await self._persist(self._write_orders, events)

    async def _persist(self, write: Callable[[AsyncConnection, Sequence[_E]], Awaitable[None]],
                       events: Sequence[_E]) -> None:
        """One transaction for the batch, retried while PostgreSQL is away."""
        if not events:
            return
        scrub = False
        while True:
            token = _scrubbing.set(scrub)
            try:
                async with self.engine.begin() as conn:
                    await write(conn, events)
                return
            except (OSError, ConnectionError) as exc:
                log.warning("PostgreSQL unavailable, retrying", extra={"error": str(exc)})
            except RedisError as exc:  # the read cache was not invalidated: nothing committed
                log.warning("Redis unavailable, the batch waits for it", extra={"error": repr(exc)})
            except Exception as exc:  # SQLAlchemy wraps driver errors (e.g. a failover) in DBAPIError
                if refused_nul(exc) and not scrub:
                    log.warning("text with NUL refused: the batch is written with U+FFFD for it",
                                extra={"error": str(exc)})
                    scrub = True
                    continue
                if not getattr(exc, "connection_invalidated", False):
                    raise
                log.warning("PostgreSQL connection lost, retrying", extra={"error": str(exc)})
            finally:
                _scrubbing.reset(token)
            await asyncio.sleep(self.retry_s)

    async def _write(self, conn: AsyncConnection, events: Sequence[Event], batch: str = "") -> None:
        positions = await _take_positions(conn, events)
        fresh, new_ids = await _insert_ledger(conn, _INSERT_LEDGER, events,
                                              lambda e: _ledger_row(e, positions[e.event_id]))
        await _execute(conn, _INSERT_PRODUCTS, _product_rows(fresh))
        await _execute(conn, _UPSERT_LEVELS, _level_rows(fresh))
        await _execute(conn, _UPSERT_RESERVATIONS, _reservation_rows(fresh))
        await _execute(conn, _UPDATE_ARRIVALS, _arrival_rows(fresh))
        await _execute(conn, _UPSERT_TRANSFERS, _transfer_rows(fresh))
        await _announce(conn, events, new_ids,
                        lambda e, dup: notification(e, dup, None if dup else positions[e.event_id]))
        if self.cache is not None:  # last before the commit: the leases are held the shortest time
            await self.cache.begin(batch, cached_skus(fresh))

    async def _write_warehouse(self, conn: AsyncConnection, events: Sequence[WarehouseEvent]) -> None:
        fresh, new_ids = await _insert_ledger(conn, _INSERT_WAREHOUSE_EVENTS, events, _warehouse_event_row)
        await _execute(conn, _UPSERT_WAREHOUSES, _warehouse_rows(fresh))
        await _announce(conn, events, new_ids, warehouse_notification)

    async def _write_orders(self, conn: AsyncConnection, events: Sequence[OrderEvent]) -> None:
        fresh, new_ids = await _insert_ledger(conn, _INSERT_ORDER_EVENTS, events, _order_event_row)
        await _execute(conn, _UPSERT_ORDERS, _order_rows(fresh))
        await _announce(conn, events, new_ids, order_notification)
