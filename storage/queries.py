"""Reads of the read model (parameterised SQLAlchemy Core, never string-built SQL)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.models import inventory_levels, orders, products, reservations, transfers, warehouses

__all__ = ["get_product", "get_levels", "get_reservation", "get_low_stock", "get_variants",
           "get_warehouses", "get_order", "get_in_transit", "get_products",
           "get_available"]


async def get_product(conn: AsyncConnection, sku: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(products).where(products.c.sku == sku))).mappings().first()
    return dict(row) if row else None


async def get_levels(conn: AsyncConnection, sku: str) -> list[dict[str, Any]]:
    query = select(inventory_levels).where(inventory_levels.c.sku == sku).order_by(
        inventory_levels.c.warehouse)
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def get_variants(conn: AsyncConnection, sku: str) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """A product's variants, each with its levels (two queries, whatever the number of variants)."""
    variants = [dict(r) for r in (await conn.execute(
        select(products).where(products.c.parent_sku == sku).order_by(products.c.sku))).mappings()]
    if not variants:
        return []
    query = select(inventory_levels).where(inventory_levels.c.sku.in_([v["sku"] for v in variants])) \
        .order_by(inventory_levels.c.sku, inventory_levels.c.warehouse)
    levels: dict[str, list[dict[str, Any]]] = {}
    for row in (await conn.execute(query)).mappings():
        levels.setdefault(row["sku"], []).append(dict(row))
    return [(variant, levels.get(variant["sku"], [])) for variant in variants]


async def get_low_stock(conn: AsyncConnection, warehouse: str | None, limit: int) -> list[dict[str, Any]]:
    """Levels whose available units are below their threshold (the partial index's rows)."""
    levels = inventory_levels.c
    query = (select(inventory_levels)
             .where(levels.low_stock_threshold > 0,
                    levels.on_hand - levels.reserved < levels.low_stock_threshold)
             .order_by(levels.warehouse, levels.sku).limit(limit))
    if warehouse is not None:
        query = query.where(levels.warehouse == warehouse)
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def get_reservation(conn: AsyncConnection, reservation_id: str) -> dict[str, Any] | None:
    query = select(reservations).where(reservations.c.reservation_id == reservation_id)
    row = (await conn.execute(query)).mappings().first()
    return dict(row) if row else None


async def get_warehouses(conn: AsyncConnection, warehouse_id: str | None = None) -> list[dict[str, Any]]:
    """Warehouses with their ledgers and their stock summed over SKUs (one query)."""
    levels = inventory_levels.c
    summed = ("on_hand", "reserved", "incoming", "preordered")
    stock = (select(levels.warehouse, *(func.sum(levels[c]).label(c) for c in summed),
                    func.count().label("skus"))
             .group_by(levels.warehouse).subquery())
    query = (select(warehouses, *(func.coalesce(stock.c[c], 0).label(c) for c in (*summed, "skus")))
             .outerjoin(stock, stock.c.warehouse == warehouses.c.warehouse_id)
             .order_by(warehouses.c.warehouse_id))
    if warehouse_id is not None:
        query = query.where(warehouses.c.warehouse_id == warehouse_id)
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def get_order(conn: AsyncConnection, order_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(orders).where(orders.c.order_id == order_id))).mappings().first()
    return dict(row) if row else None


async def get_products(conn: AsyncConnection, skus: list[str]) -> dict[str, dict[str, Any]]:
    """The products among ``skus``, by SKU (one query); a SKU that is no product is absent."""
    query = select(products).where(products.c.sku.in_(skus))
    return {row["sku"]: dict(row) for row in (await conn.execute(query)).mappings()}


async def get_available(conn: AsyncConnection, skus: list[str]) -> dict[str, int]:
    """Each SKU's available units summed over its warehouses (one query; 0 without a level)."""
    levels = inventory_levels.c
    query = (select(levels.sku, func.sum(levels.on_hand - levels.reserved))
             .where(levels.sku.in_(skus)).group_by(levels.sku))
    found = {sku: int(units) for sku, units in (await conn.execute(query)).all()}
    return {sku: found.get(sku, 0) for sku in skus}


async def get_in_transit(conn: AsyncConnection, sku: str) -> int:
    """Units of ``sku`` on their way between warehouses."""
    query = select(func.coalesce(func.sum(transfers.c.quantity), 0)).where(
        transfers.c.sku == sku, transfers.c.state == "IN_TRANSIT")
    return int((await conn.execute(query)).scalar_one())


# ------------------------------------------------------------------------------ audit history
from datetime import datetime  # noqa: E402

from storage.models import inventory_transactions  # noqa: E402
from streams.stock.records import AllocationRejected, CommandRejected, ReservationRejected  # noqa: E402

__all__ += ["get_history", "HISTORY_SKIPS"]

#: Ledger rows the history leaves out, as they changed no level: rejections (they are facts, with
#: their reason, but change nothing). Rows of no warehouse are left out too (a product's creation,
#: an order line's plan, a backorder queued or withdrawn). Every other event advanced the SKU's
#: ``seq`` by one (streams/stock/logic.py), so ``seq`` orders the history with no ties.
HISTORY_SKIPS = tuple(cls.__name__ for cls in (ReservationRejected, CommandRejected, AllocationRejected))


async def get_history(conn: AsyncConnection, sku: str, warehouse: str | None, since: datetime | None,
                      until: datetime | None, before_seq: int | None, limit: int) -> list[dict[str, Any]]:
    """The SKU's level changes, newest first: at most ``limit`` + 1 rows (the extra one tells the
    caller there is a next page), with ``seq`` below ``before_seq`` (keyset pagination on the
    index on (sku, seq)), in ``warehouse``, at ``since`` or later and before ``until``."""
    tx = inventory_transactions.c
    query = (select(inventory_transactions)
             .where(tx.sku == sku, tx.warehouse != "", tx.event_type.not_in(HISTORY_SKIPS))
             .order_by(tx.seq.desc()).limit(limit + 1))
    if warehouse is not None:
        query = query.where(tx.warehouse == warehouse)
    if since is not None:
        query = query.where(tx.occurred_at >= since)
    if until is not None:
        query = query.where(tx.occurred_at < until)
    if before_seq is not None:
        query = query.where(tx.seq < before_seq)
    return [dict(r) for r in (await conn.execute(query)).mappings()]


# ------------------------------------------------------------------ resumable subscriptions
__all__ += ["get_ledger_head", "get_ledger_after", "count_ledger_after"]


def _after(after: int, product_id: str | None, warehouse: str | None) -> list[Any]:
    """The ledger rows past offset ``after`` a subscriber of this filter receives (every stock
    event, a rejection's too: the live stream publishes them all)."""
    tx = inventory_transactions.c
    conditions = [tx.position > after]
    if product_id is not None:
        conditions.append(tx.sku == product_id)
    if warehouse is not None:
        conditions.append(tx.warehouse == warehouse)
    return conditions


async def get_ledger_head(conn: AsyncConnection) -> int:
    """The ledger's last offset (0 when empty): a new subscriber starts after it."""
    query = select(func.coalesce(func.max(inventory_transactions.c.position), 0))
    return int((await conn.execute(query)).scalar_one())


async def get_ledger_after(conn: AsyncConnection, after: int, product_id: str | None,
                           warehouse: str | None, limit: int) -> list[dict[str, Any]]:
    """At most ``limit`` ledger rows past offset ``after``, in offset order (keyset on the unique
    index on position)."""
    query = (select(inventory_transactions).where(*_after(after, product_id, warehouse))
             .order_by(inventory_transactions.c.position).limit(limit))
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def count_ledger_after(conn: AsyncConnection, after: int, product_id: str | None,
                             warehouse: str | None, cap: int) -> int:
    """How many rows past ``after`` (counting stops at ``cap``: only "more than the limit" matters)."""
    capped = select(inventory_transactions.c.position).where(*_after(after, product_id, warehouse)) \
        .limit(cap).subquery()
    return int((await conn.execute(select(func.count()).select_from(capped))).scalar_one())


# ------------------------------------------------------------------------------ as-of reads
__all__ += ["get_levels_as_of", "get_variants_as_of", "get_in_transit_as_of"]


async def get_levels_as_of(conn: AsyncConnection, skus: list[str],
                           as_of: datetime) -> dict[str, list[dict[str, Any]]]:
    """Per SKU of ``skus``, its levels per warehouse at ``as_of``, rebuilt from the ledger (one
    query): per (SKU, warehouse) the level after its last change at or before then, the change
    with the highest ``seq`` (the SKU's order) among those that moved a level (as the history:
    rejections and events of no warehouse change none). The rows have the keys of
    ``inventory_levels``'s; ``version`` is that change's ``seq``. The columns migration 0011
    added are NULL for the events before it: 0 (expected_at None)."""
    tx = inventory_transactions.c
    query = (select(tx.sku, tx.warehouse, tx.seq.label("version"), tx.on_hand_after.label("on_hand"),
                    tx.reserved_after.label("reserved"),
                    func.coalesce(tx.incoming_after, 0).label("incoming"),
                    func.coalesce(tx.preordered_after, 0).label("preordered"),
                    tx.expected_at_after.label("expected_at"),
                    func.coalesce(tx.low_stock_threshold_after, 0).label("low_stock_threshold"))
             .where(tx.sku.in_(skus), tx.warehouse != "", tx.event_type.not_in(HISTORY_SKIPS),
                    tx.occurred_at <= as_of)
             .distinct(tx.sku, tx.warehouse)
             .order_by(tx.sku, tx.warehouse, tx.seq.desc()))
    levels: dict[str, list[dict[str, Any]]] = {sku: [] for sku in skus}
    for row in (await conn.execute(query)).mappings():
        levels[row["sku"]].append(dict(row))
    return levels


async def get_variants_as_of(conn: AsyncConnection, sku: str, as_of: datetime) -> list[dict[str, Any]]:
    """A product's variants created at or before ``as_of``."""
    query = (select(products).where(products.c.parent_sku == sku, products.c.created_at <= as_of)
             .order_by(products.c.sku))
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def get_in_transit_as_of(conn: AsyncConnection, sku: str, as_of: datetime) -> int:
    """Units of ``sku`` between two warehouses at ``as_of``: those that left (TransferredOut, a
    negative on-hand change) and had not arrived (TransferArrived, the same units back)."""
    tx = inventory_transactions.c
    query = select(func.coalesce(-func.sum(tx.on_hand_delta), 0)).where(
        tx.sku == sku, tx.event_type.in_(("TransferredOut", "TransferArrived")), tx.occurred_at <= as_of)
    return int((await conn.execute(query)).scalar_one())
