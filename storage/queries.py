"""Reads of the read model (parameterised SQLAlchemy Core, never string-built SQL)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.models import inventory_levels, products, reservations

__all__ = ["get_product", "get_levels", "get_reservation"]


async def get_product(conn: AsyncConnection, sku: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(products).where(products.c.sku == sku))).mappings().first()
    return dict(row) if row else None


async def get_levels(conn: AsyncConnection, sku: str) -> list[dict[str, Any]]:
    query = select(inventory_levels).where(inventory_levels.c.sku == sku).order_by(
        inventory_levels.c.warehouse)
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def get_reservation(conn: AsyncConnection, reservation_id: str) -> dict[str, Any] | None:
    query = select(reservations).where(reservations.c.reservation_id == reservation_id)
    row = (await conn.execute(query)).mappings().first()
    return dict(row) if row else None
