"""GET /analytics/forecast/{sku}: demand forecast, reorder point, days of cover, stockout date.

The history is the stream analytics' daily demand windows (storage/demand.py), up to yesterday
(today is not over yet), at most ``forecast_history_days`` long; the model is fitted by the pure
``streams/analytics/forecast.py`` in a worker thread (``asyncio.to_thread``): fitting is CPU work
(~60 ms for a year of history) and its first call imports statsforecast (~3 s), neither of which
may stall the event loop that serves every other request and WebSocket.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

from fastapi import APIRouter, Path, Query

from api.deps import EngineDep, SettingsDep
from api.models import DemandDayOut, ForecastDayOut, ForecastOut
from api.problems import PROBLEM_RESPONSES, Problem
from api.security import Viewer
from storage.demand import available_now, daily_demand
from storage.queries import get_product
from streams.analytics.forecast import forecast

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/analytics", tags=["analytics"])
_ID = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"


@router.get("/forecast/{product_id}", dependencies=[Viewer], response_model=ForecastOut,
            responses=PROBLEM_RESPONSES)
async def get_forecast(
        engine: EngineDep, settings: SettingsDep,
        product_id: str = Path(pattern=_ID, examples=["SKU-TSHIRT-RED-M"]),
        service_level: float | None = Query(
            None, gt=0.5, lt=1, description="probability of not running out during the lead time, "
                                            "which sets the safety stock (default 0.95)"),
        lead_time_days: int | None = Query(None, ge=1, le=365, description="replenishment lead time "
                                                                           "in days (default 7)"),
        horizon_days: int | None = Query(None, ge=1, le=365, description="days to forecast, from "
                                                                         "today (default 90)")):
    """The product's daily demand (units reserved or refused for lack of stock, all warehouses)
    forecast from its history up to yesterday: the model chosen for its demand pattern (AutoETS
    for regular demand, Croston SBA for sporadic), its trend, each day's forecast with an interval
    at the service level, the safety stock and reorder point for the lead time, the days the
    available units cover and the day they run out. A product never asked for has
    `has_history: false` and no figures. 404 for an unknown product."""
    service_level = settings.forecast_service_level if service_level is None else service_level
    lead_time_days = settings.forecast_lead_time_days if lead_time_days is None else lead_time_days
    horizon_days = settings.forecast_horizon_days if horizon_days is None else horizon_days
    today = datetime.now(timezone.utc).date()
    yesterday = today - timedelta(days=1)
    async with engine.connect() as conn:
        if await get_product(conn, product_id) is None:
            raise Problem(404, "Unknown product", f"no product {product_id}")
        history = await daily_demand(conn, product_id, today - timedelta(days=settings.forecast_history_days),
                                     yesterday)
        available = await available_now(conn, product_id)
    result = await asyncio.to_thread(forecast, [units for _, units in history], available, today,
                                     service_level, lead_time_days, horizon_days)
    return ForecastOut(
        product_id=product_id, as_of=today, has_history=result.has_history, reason=result.reason,
        history_days=result.history_days, method=result.method, demand_pattern=result.demand_pattern,
        trend=result.trend, daily_demand=[DemandDayOut(date=day, units=units) for day, units in history],
        forecast=[ForecastDayOut(date=d.date, units=d.units, low=d.low, high=d.high) for d in result.days],
        mean_daily_demand=result.mean_daily_demand, available=available, service_level=service_level,
        lead_time_days=lead_time_days, horizon_days=horizon_days, sigma=result.sigma,
        safety_stock=result.safety_stock, reorder_point=result.reorder_point,
        days_of_cover=result.days_of_cover, stockout_date=result.stockout_date)
