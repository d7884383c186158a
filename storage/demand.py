"""Reads for demand forecasting (GET /analytics/forecast/{sku}): a SKU's daily demand history from
the stream analytics' windows, and its available units now. Parameterised SQLAlchemy Core only.

A SKU's demand on a day is the sum over its warehouses of the ``'day'`` windows' ``demand_units``
(units asked for: reserved or refused for lack of stock). The analytics worker writes a window
only when something happened, so a day without a row, between the SKU's first row and the last
day asked for, is a day nobody asked for it: ``daily_demand`` fills those with 0, in Python (a
year is 365 tuples), so the series is dense and its length is the days of history.
"""
from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.models import analytics_windows
from storage.queries import get_available

__all__ = ["daily_demand", "available_now", "dense_days"]

log = logging.getLogger(__name__)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


async def daily_demand(conn: AsyncConnection, sku: str, since: date, until: date) -> list[tuple[date, int]]:
    """The SKU's demand per UTC day from ``since`` to ``until`` (both included), oldest first,
    starting at its first day with a window (none: ``[]``); days without one are 0."""
    windows = analytics_windows.c
    query = (select(windows.window_start, func.sum(windows.demand_units))
             .where(windows.granularity == "day", windows.sku == sku,
                    windows.window_start >= _midnight(since),
                    windows.window_start < _midnight(until + timedelta(days=1)))
             .group_by(windows.window_start).order_by(windows.window_start))
    rows = (await conn.execute(query)).all()
    return dense_days({start.astimezone(timezone.utc).date(): int(units) for start, units in rows}, until)


def dense_days(found: dict[date, int], until: date) -> list[tuple[date, int]]:
    """Every day from the first in ``found`` to ``until``, 0 where ``found`` has none."""
    if not found:
        return []
    first = min(found)
    return [(first + timedelta(days=i), found.get(first + timedelta(days=i), 0))
            for i in range((until - first).days + 1)]


async def available_now(conn: AsyncConnection, sku: str) -> int:
    """Units of the SKU available now: on hand minus reserved, summed over its warehouses."""
    return (await get_available(conn, [sku]))[sku]
