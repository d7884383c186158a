"""Demand forecasting (streams/analytics/forecast.py): pure, no I/O. Fits are real statsforecast
fits of small synthetic series (a few ms each; the first test pays the ~3 s import)."""
from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.analytics.forecast import (
    NO_HISTORY, classify, days_of_cover, forecast, safety_stock, stockout_date)

TODAY = date(2030, 3, 1)


def _forecast(history, available=95, service_level=0.95, lead_time_days=7, horizon_days=90):
    return forecast(history, available, TODAY, service_level, lead_time_days, horizon_days)


def _numbers(result) -> list:
    return [result.method, result.demand_pattern, result.trend, result.mean_daily_demand, result.sigma,
            result.safety_stock, result.reorder_point, result.days_of_cover, result.stockout_date]


def test_constant_demand_is_forecast_exactly():
    result = _forecast([10] * 30, available=95)
    assert result.has_history and result.reason is None and result.history_days == 30
    assert result.method.startswith("AutoETS") and result.demand_pattern == "smooth"
    assert result.trend == "none"
    assert [d.units for d in result.days] == [10.0] * 90
    assert [d.date for d in result.days[:2]] == [TODAY, TODAY + timedelta(days=1)]
    assert result.mean_daily_demand == 10.0
    assert result.safety_stock == 0.0
    assert result.reorder_point == 70.0          # 10 x lead time, no safety stock
    assert result.days_of_cover == 9.5
    # days 1..9 consume 90, day 10 (today + 9) reaches 100 > 95
    assert result.stockout_date == TODAY + timedelta(days=9)


def test_lead_time_sets_the_reorder_point_even_beyond_the_horizon():
    result = _forecast([10] * 30, lead_time_days=30, horizon_days=5)
    assert len(result.days) == 5 and result.reorder_point == 300.0
    assert result.stockout_date is None           # 50 units in 5 days never exceed 95


@pytest.mark.parametrize("history, trend", [
    (list(range(1, 61)), "up"),
    (list(range(120, 60, -1)), "down"),
])
def test_a_linear_series_has_its_trend(history, trend):
    result = _forecast(history)
    assert result.method in ("AutoETS(AAN)", "AutoETS(AAdN)", "AutoETS(MAN)", "AutoETS(MAdN)"), result.method
    assert result.trend == trend
    units = [d.units for d in result.days[:10]]
    assert units == sorted(units, reverse=trend == "down")


def test_a_downward_trend_never_forecasts_negative_demand():
    result = _forecast(list(range(60, 0, -1)))
    assert result.trend == "down"
    assert min(d.units for d in result.days) == 0.0
    assert min(d.low for d in result.days) >= 0.0


@pytest.mark.parametrize("seed", range(5))
def test_a_flat_noisy_series_has_no_trend(seed):
    history = list(np.round(10 + np.random.default_rng(seed).normal(0, 2, 90)))
    result = _forecast(history)
    assert result.demand_pattern == "smooth" and result.trend == "none"
    assert 8 < result.mean_daily_demand < 12
    assert result.safety_stock > 0
    assert all(d.low <= d.units <= d.high for d in result.days)


def test_intermittent_demand_is_forecast_by_croston():
    history = [0] * 60
    for day, units in ((3, 3), (11, 2), (19, 4), (30, 3), (41, 2), (52, 3)):
        history[day] = units
    result = _forecast(history)
    assert result.demand_pattern == "intermittent"
    assert result.method == "CrostonSBA" and result.trend == "none"
    assert 0 < result.mean_daily_demand < 1
    assert all(d.low is None and d.high is None for d in result.days)


@pytest.mark.parametrize("history", [[], [0], [0] * 30])
def test_no_demand_history_invents_no_number(history):
    result = _forecast(history)
    assert not result.has_history and result.reason == NO_HISTORY
    assert result.history_days == len(history)
    assert result.days == ()
    assert _numbers(result) == [None] * 9


def test_a_short_history_is_forecast_by_its_mean_and_says_so():
    result = _forecast([5, 7, 6])
    assert result.has_history and result.method == "HistoricAverage"
    assert "short history" in result.reason
    assert result.mean_daily_demand == 6.0


def test_nothing_available_runs_out_today():
    result = _forecast([10] * 30, available=0)
    assert result.stockout_date == TODAY and result.days_of_cover == 0.0
    assert _forecast([10] * 30, available=-3).stockout_date == TODAY


def test_classification_cut_offs():
    assert classify([]) is None and classify([0, 0]) is None
    assert classify([10] * 10) == "smooth"
    assert classify([1, 10] * 10) == "erratic"
    assert classify([0, 0, 5] * 10) == "intermittent"
    assert classify([0, 0, 1, 0, 0, 20] * 10) == "lumpy"


def test_safety_stock_and_cover():
    assert safety_stock(0.0, 0.99, 7) == 0.0
    assert safety_stock(2.0, 0.95, 4) == pytest.approx(1.644854 * 2 * 2, abs=1e-5)
    assert days_of_cover(95, 10) == 9.5 and days_of_cover(95, 0) is None
    assert stockout_date([10, 10], 20, TODAY) is None
    assert stockout_date([10, 10], 19, TODAY) == TODAY + timedelta(days=1)


def _order(day: date | None) -> int:
    return 10**9 if day is None else day.toordinal()


@given(units=st.lists(st.floats(0, 100), max_size=60), a=st.integers(-5, 3000), b=st.integers(-5, 3000))
def test_stockout_date_is_monotone_in_available(units, a, b):
    low, high = sorted((a, b))
    assert _order(stockout_date(units, low, TODAY)) <= _order(stockout_date(units, high, TODAY))


_HISTORIES = st.lists(st.integers(0, 40), min_size=1, max_size=60)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=_HISTORIES, a=st.integers(-5, 2000), b=st.integers(-5, 2000))
def test_forecast_stockout_is_monotone_in_available(history, a, b):
    low, high = sorted((a, b))
    first, second = _forecast(history, available=low), _forecast(history, available=high)
    assert _order(first.stockout_date) <= _order(second.stockout_date)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=_HISTORIES, a=st.floats(0.501, 0.999), b=st.floats(0.501, 0.999))
def test_reorder_point_is_non_decreasing_in_service_level(history, a, b):
    low, high = sorted((a, b))
    first, second = _forecast(history, service_level=low), _forecast(history, service_level=high)
    if not first.has_history:
        assert first.reorder_point is None and second.reorder_point is None
        return
    assert first.reorder_point <= second.reorder_point
