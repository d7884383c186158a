"""The analytics sink's SQL: window cells into ``analytics_windows``, only ever forward.

A cell is upserted by (granularity, window start, SKU, warehouse) and replaces the row only when
it has counted a later event (``last_offset``): a redelivered or reordered older cell changes
nothing, so the sink is at-least-once with exactly-once effects, like the ledger.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Iterable

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.models import analytics_windows
from streams.analytics.cells import Cell

__all__ = ["cell_row", "latest_rows", "write_cells"]

log = logging.getLogger(__name__)

_KEY = ("granularity", "window_start", "sku", "warehouse")
_stmt = insert(analytics_windows)
_UPSERT = _stmt.on_conflict_do_update(
    index_elements=list(_KEY),
    set_={**{c.name: _stmt.excluded[c.name] for c in analytics_windows.columns
             if c.name not in _KEY and c.name != "updated_at"},
          "updated_at": func.now()},
    where=analytics_windows.c.last_offset < _stmt.excluded.last_offset,
)


def cell_row(granularity: str, start_ms: int, sku: str, warehouse: str, cell: Cell) -> dict[str, Any]:
    row = {name: getattr(cell, name) for name in Cell.__dataclass_fields__}
    row.update(granularity=granularity, sku=sku, warehouse=warehouse,
               window_start=datetime.fromtimestamp(start_ms / 1000, timezone.utc))
    return row


def latest_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per key, the furthest one: PostgreSQL refuses to update a row twice in one INSERT."""
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[k] for k in _KEY)
        if key not in latest or latest[key]["last_offset"] < row["last_offset"]:
            latest[key] = row
    return list(latest.values())


async def write_cells(engine: AsyncEngine, rows: list[dict[str, Any]]) -> int:
    """Upsert ``rows`` in one transaction; returns how many were distinct keys."""
    rows = latest_rows(rows)
    if not rows:
        return 0
    async with engine.begin() as conn:
        await conn.execute(_UPSERT, rows)
    return len(rows)
