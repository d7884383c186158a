"""GET /analytics/inventory: the stream analytics' figures (streams/analytics/), read from PostgreSQL.

The analytics worker folds every stock event into a cell per SKU, warehouse and hour or day (by
the event's time) and persists the cells (``analytics_windows``); this route sums them over a
range (``storage/analytics.py``). The figures lag the events by the worker's delay (about a
second), and are the same after a replay.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Literal

from fastapi import APIRouter, Query

from api.deps import EngineDep
from api.models import AnalyticsOut, IsoDateTime, Text
from api.problems import PROBLEM_RESPONSES, Problem
from api.security import Viewer
from storage.analytics import inventory_analytics
from streams.analytics.cells import window_start

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/analytics", tags=["analytics"])
_ID = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"
_DEFAULT_SPAN = {"hour": timedelta(hours=24), "day": timedelta(days=30)}


def _window_of(moment: datetime, granularity: str) -> datetime:
    start = window_start(int(moment.timestamp() * 1000), granularity)
    return datetime.fromtimestamp(start / 1000, timezone.utc)


@router.get("/inventory", dependencies=[Viewer], response_model=AnalyticsOut, responses=PROBLEM_RESPONSES)
async def get_inventory_analytics(
        engine: EngineDep,
        granularity: Literal["hour", "day"] = Query("hour", description="the windows summed: UTC hours or days"),
        since: IsoDateTime | None = Query(None, description="from the window holding this time (ISO 8601 with "
                                                              "a timezone); default: 24 h (hour) or 30 days "
                                                              "(day) before `until`"),
        until: IsoDateTime | None = Query(None, description="windows starting before this time; default: now"),
        warehouse: str | None = Query(None, pattern=_ID, description="only this warehouse's cells"),
        category: Text | None = Query(None, max_length=100, description="only products of this category"),
        top: int = Query(10, ge=1, le=100, description="how many SKUs `top_demand` lists")):
    """Demand, reservations, refusals for lack of stock, commits, releases, receipts, removals,
    turnover, stock value and low stock, over the stock events whose time (`occurred_at`) falls
    in the windows from `since`'s to before `until`.

    Figures (units are the events' quantities; each counted once, also after a redelivery):
    - `reserved_units` / `reservations`: Reserved events, whatever their source: a reservation,
      an order line's part, a pre-order's hold, a backordered line once it is served.
    - `rejected_units` / `rejections`: reservations and order lines refused with
      `INSUFFICIENT_STOCK`. Other refusals are not demand.
    - `demand_units` = `reserved_units` + `rejected_units`. A backordered line counts once served
      (its Reserved), never while it waits.
    - `reservation_rate` = reserved / demand, `stockout_rate` = rejected / demand (null without demand).
    - `committed_units`: commits; `released_units`: releases and expiries; `received_units`:
      receipts and transfers arrived; `removed_units`: removals and transfers out.
    - `turnover` = committed / average on hand, the average being, per SKU and warehouse,
      (on hand before its first window's first event + on hand after its last window's last
      event) / 2, summed (null when 0).
    - `stock_value`: per SKU and warehouse, on hand after its last window in range x the SKU's
      unit cost, summed (null when no cost is known); `skus_without_cost` counts the others.
    - `series`: the same counts per window with data, oldest first; `top_demand`: the `top` SKUs
      by demand; `low_stock`: per warehouse, the SKUs whose last window closed with available
      units below a set threshold (`skus_low`) and the threshold crossings (`alerts`).

    Order lines' events that name no warehouse (a line refused as a whole) are in warehouse "".
    422 when `since` is after `until`."""
    end = until or datetime.now(timezone.utc)
    try:
        start = since or end - _DEFAULT_SPAN[granularity]
        if start > end:
            raise Problem(422, "Invalid request", "since must not be after until", "invalid-request")
        first = _window_of(start, granularity)
    except (OverflowError, OSError, ValueError) as exc:  # near year 1: beyond what a window can hold
        raise Problem(422, "Invalid request", "since/until: out of range", "invalid-request") from exc
    figures = await inventory_analytics(engine, granularity, first, end, warehouse, category, top)
    return AnalyticsOut(granularity=granularity, since=first, until=end, warehouse=warehouse,
                        category=category, **figures)

