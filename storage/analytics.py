"""The SQL of GET /analytics/inventory: figures over the stream analytics' cells
(``analytics_windows``, written by streams/analytics/).

Every query reads the cells of one granularity whose window starts in ``[since, until)`` (the
route rounds ``since`` down to its window, so a window the range overlaps counts whole),
optionally of one warehouse and of the products of one category. All parameters are bound.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["inventory_analytics"]

# The cells in range. CAST: asyncpg must know a parameter's type even when it is NULL.
_CELLS = """
WITH w AS (
    SELECT a.*
    FROM analytics_windows a
    LEFT JOIN products p ON p.sku = a.sku
    WHERE a.granularity = :granularity
      AND a.window_start >= :since AND a.window_start < :until
      AND (CAST(:warehouse AS text) IS NULL OR a.warehouse = CAST(:warehouse AS text))
      AND (CAST(:category AS text) IS NULL OR p.category = CAST(:category AS text))
),
-- Each SKU and warehouse's first and last cell in range.
ends AS (
    SELECT DISTINCT ON (sku, warehouse) sku, warehouse, on_hand_close, stock_value_close, unit_cost,
           low_stock_close
    FROM w ORDER BY sku, warehouse, window_start DESC
),
starts AS (
    SELECT DISTINCT ON (sku, warehouse) sku, warehouse, on_hand_open
    FROM w ORDER BY sku, warehouse, window_start ASC
)
"""

_TOTALS = text(_CELLS + """
SELECT coalesce(sum(demand_units), 0) AS demand_units,
       coalesce(sum(reserved_units), 0) AS reserved_units,
       coalesce(sum(reservations), 0) AS reservations,
       coalesce(sum(rejected_units), 0) AS rejected_units,
       coalesce(sum(rejections), 0) AS rejections,
       coalesce(sum(committed_units), 0) AS committed_units,
       coalesce(sum(released_units), 0) AS released_units,
       coalesce(sum(received_units), 0) AS received_units,
       coalesce(sum(removed_units), 0) AS removed_units,
       (SELECT coalesce(sum((s.on_hand_open + e.on_hand_close) / 2.0), 0)
          FROM starts s JOIN ends e USING (sku, warehouse)) AS average_on_hand,
       (SELECT sum(stock_value_close) FROM ends) AS stock_value,
       (SELECT count(DISTINCT sku) FROM ends WHERE warehouse <> '' AND unit_cost IS NULL) AS skus_without_cost
FROM w
""")

_SERIES = text(_CELLS + """
SELECT window_start, sum(demand_units) AS demand_units, sum(reserved_units) AS reserved_units,
       sum(rejected_units) AS rejected_units, sum(committed_units) AS committed_units,
       sum(reservations) AS reservations, sum(rejections) AS rejections
FROM w GROUP BY window_start ORDER BY window_start
""")

_TOP = text(_CELLS + """
SELECT sku AS product_id, sum(demand_units) AS demand_units, sum(rejected_units) AS rejected_units,
       sum(committed_units) AS committed_units
FROM w GROUP BY sku HAVING sum(demand_units) > 0
ORDER BY sum(demand_units) DESC, sku LIMIT :top
""")

_LOW = text(_CELLS + """
SELECT e.warehouse, count(*) FILTER (WHERE e.low_stock_close) AS skus_low,
       (SELECT coalesce(sum(low_stock_alerts), 0) FROM w WHERE w.warehouse = e.warehouse) AS alerts
FROM ends e WHERE e.warehouse <> ''
GROUP BY e.warehouse ORDER BY e.warehouse
""")


def _ratio(part: int, whole: Decimal | int) -> float | None:
    return None if not whole else round(float(part) / float(whole), 6)


async def inventory_analytics(engine: AsyncEngine, granularity: str, since: datetime, until: datetime,
                              warehouse: str | None, category: str | None, top: int) -> dict[str, Any]:
    """Totals, the series per window, the top SKUs by demand and low stock per warehouse."""
    params = {"granularity": granularity, "since": since, "until": until, "warehouse": warehouse,
              "category": category}
    async with engine.connect() as conn:
        totals = dict((await conn.execute(_TOTALS, params)).mappings().one())
        series = [dict(r) for r in (await conn.execute(_SERIES, params)).mappings()]
        top_demand = [dict(r) for r in (await conn.execute(_TOP, {**params, "top": top})).mappings()]
        low_stock = [dict(r) for r in (await conn.execute(_LOW, params)).mappings()]
    demand = totals["demand_units"]
    average = totals.pop("average_on_hand")
    totals.update(
        reservation_rate=_ratio(totals["reserved_units"], demand),
        stockout_rate=_ratio(totals["rejected_units"], demand),
        turnover=_ratio(totals["committed_units"], average),
    )
    return {"totals": totals, "series": series, "top_demand": top_demand, "low_stock": low_stock}
