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
