"""GET /analytics/forecast/{product_id}: products made and stocked through the API, their demand
history written straight into analytics_windows (the analytics worker's table) as synthetic
daily rows, forecast through the API by a viewer."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy.dialects.postgresql import insert

from storage.models import analytics_windows

from .conftest import assert_invariants, auth_headers, create_stocked_product, new_sku

PROBLEM = "application/problem+json"


def _day(offset: int) -> datetime:
    """UTC midnight ``offset`` days from today (negative: past)."""
    today = datetime.now(timezone.utc).date()
    return datetime.combine(today + timedelta(days=offset), time.min, tzinfo=timezone.utc)


# The analytics worker may be running (a session fixture) and writes today's real cell of these
# SKUs (their receipts): a synthetic row replaces it, and its offset is past any real one, so the
# worker's forward-only upsert never replaces the synthetic row.
_SYNTHETIC_OFFSET = 2**62


def _row(sku: str, offset: int, units: int, warehouse: str = "default") -> dict:
    return {"granularity": "day", "window_start": _day(offset), "sku": sku, "warehouse": warehouse,
            "demand_units": units, "reserved_units": units, "source_partition": 0,
            "last_offset": _SYNTHETIC_OFFSET}


async def _insert(engine, rows: list[dict]) -> None:
    stmt = insert(analytics_windows)
    stmt = stmt.on_conflict_do_update(
        index_elements=["granularity", "window_start", "sku", "warehouse"],
        set_={name: stmt.excluded[name] for name in ("demand_units", "reserved_units", "last_offset")})
    async with engine.begin() as conn:
        await conn.execute(stmt, rows)


async def _forecast(client, settings, sku: str, **params) -> dict:
    response = await client.get(f"/analytics/forecast/{sku}", params=params,
                                headers=auth_headers(settings, "viewer"))
    assert response.status_code == 200, response.text
    return response.json()


async def test_forecast_from_daily_demand(client, engine, settings):
    steady = await create_stocked_product(client, 95)
    rising = await create_stocked_product(client, 500)
    sporadic = await create_stocked_product(client, 20)
    rows = [row for day in range(-30, 0) for row in (_row(steady, day, 6), _row(steady, day, 4, "other"))]
    rows.append(_row(steady, 0, 1000))  # today is not over: not history
    rows += [_row(rising, day, 62 + 2 * day) for day in range(-30, 0)]  # 2 .. 60 units a day, rising
    rows += [_row(sporadic, -10, 3), _row(sporadic, -5, 3)]  # the days between: no demand
    await _insert(engine, rows)

    body = await _forecast(client, settings, steady)
    today = date.fromisoformat(body["as_of"])
    assert today == datetime.now(timezone.utc).date()
    assert body["has_history"] and body["reason"] is None
    assert body["history_days"] == 30 and body["demand_pattern"] == "smooth" and body["trend"] == "none"
    assert body["method"].startswith("AutoETS")
    assert body["daily_demand"][0] == {"date": (today - timedelta(days=30)).isoformat(), "units": 10}
    assert [d["units"] for d in body["daily_demand"]] == [10] * 30
    assert body["daily_demand"][-1]["date"] == (today - timedelta(days=1)).isoformat()
    assert len(body["forecast"]) == settings.forecast_horizon_days
    assert body["forecast"][0] == {"date": today.isoformat(), "units": 10.0, "low": 10.0, "high": 10.0}
    assert body["available"] == 95 and body["service_level"] == 0.95 and body["lead_time_days"] == 7
    assert body["mean_daily_demand"] == 10.0 and body["safety_stock"] == 0.0
    assert body["reorder_point"] == 70.0 and body["days_of_cover"] == 9.5
    assert body["stockout_date"] == (today + timedelta(days=9)).isoformat()

    shorter = await _forecast(client, settings, steady, lead_time_days=3, horizon_days=5, service_level=0.99)
    assert shorter["reorder_point"] == 30.0 and len(shorter["forecast"]) == 5
    assert shorter["stockout_date"] is None  # 50 units over 5 days leave some of the 95

    up = await _forecast(client, settings, rising)
    assert up["trend"] == "up" and up["method"].startswith("AutoETS(")
    assert up["forecast"][1]["units"] > up["forecast"][0]["units"] > 58

    rare = await _forecast(client, settings, sporadic)
    assert rare["history_days"] == 10 and rare["method"] == "CrostonSBA" and rare["trend"] == "none"
    assert [d["units"] for d in rare["daily_demand"]] == [3, 0, 0, 0, 0, 3, 0, 0, 0, 0]
    assert 0 < rare["mean_daily_demand"] < 3
    await assert_invariants(settings, engine, [steady, rising, sporadic])


async def test_forecast_without_history_unknown_product_and_bad_parameters(client, engine, settings):
    quiet = await create_stocked_product(client, 7)
    body = await _forecast(client, settings, quiet)
    assert not body["has_history"] and body["reason"] == "no demand history"
    assert body["history_days"] == 0 and body["daily_demand"] == [] and body["forecast"] == []
    assert body["available"] == 7
    for field in ("method", "demand_pattern", "trend", "mean_daily_demand", "safety_stock",
                  "reorder_point", "days_of_cover", "stockout_date"):
        assert body[field] is None, field

    missing = await client.get(f"/analytics/forecast/{new_sku()}")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    for params in ({"service_level": 1}, {"service_level": 0.5}, {"service_level": "high"},
                   {"lead_time_days": 0}, {"horizon_days": 366}, {"lead_time_days": 1.5}):
        response = await client.get(f"/analytics/forecast/{quiet}", params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"] == PROBLEM
    anonymous = await client.get(f"/analytics/forecast/{quiet}", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    await assert_invariants(settings, engine, [quiet])
