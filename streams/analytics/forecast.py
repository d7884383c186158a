"""Demand forecasting per SKU: numbers in, numbers out (no I/O), for GET /analytics/forecast/{sku}.

``forecast(history, available, today, ...)`` takes a SKU's daily demand (units asked for per UTC
day, reserved or refused, oldest first, ending yesterday) and what is available now, and says how
much will be asked for each day of the horizon, the safety stock and reorder point for a service
level and lead time, the days the available units cover, and the day they run out.

The model depends on the demand's pattern (Syntetos-Boylan: ADI, the mean interval between
demands, and CV², the squared coefficient of variation of the non-zero demands, cut at 1.32 and
0.49): smooth or erratic demand (a demand most days) is fitted by ``AutoETS`` (exponential
smoothing, the error/trend form chosen by AICc; no season: daily seasonality would need far more
history than most SKUs have); intermittent or lumpy demand (mostly zero days) by ``CrostonSBA``,
which forecasts the demand *rate* of sporadic sales where ETS would chase the last spike. The
classification matters both ways: a constant 10/day must forecast exactly 10 (ETS does, Croston's
SBA bias correction would say 9.5).

statsforecast takes ~2-4 s to import (scipy.stats ~1 s), so both are imported lazily inside
``forecast``, which the API only ever calls from a worker thread (``asyncio.to_thread``), never on
the event loop; the API's start does not pay for them either.

Choices stated once:
- ``mean_daily_demand`` is the mean forecast over the lead time (the rate the reorder point uses);
  ``days_of_cover`` divides the available units by it.
- ``sigma`` is the standard deviation (ddof 1) of the in-sample one-step errors, actual minus the
  library's fitted value; ``safety_stock = z(service_level) * sigma * sqrt(lead_time_days)``.
- Forecast units are clipped at 0 (a trend down does not forecast negative demand) and rounded to
  1e-6 units, so a constant demand gives exactly that constant and its sums are exact.
- No demand at all (empty history, or only zeros): ``has_history=False`` and no number at all.
- Fewer than ``MIN_ETS_DAYS`` (7) days of history: AutoETS cannot fit so few points; smooth demand
  is then forecast by the historical mean (``HistoricAverage``) and ``reason`` says the history is
  short. If a fit fails or gives a non-finite forecast the same mean is used, and ``reason`` says so.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np

__all__ = ["Forecast", "DayForecast", "forecast", "classify", "stockout_date", "days_of_cover",
           "safety_stock", "ADI_CUTOFF", "CV2_CUTOFF", "MIN_ETS_DAYS", "NO_HISTORY"]

log = logging.getLogger(__name__)

ADI_CUTOFF = 1.32   # Syntetos-Boylan: mean interval between demands at or above it is sporadic
CV2_CUTOFF = 0.49   # ... and squared variation of the demand sizes at or above it is erratic
MIN_ETS_DAYS = 7    # AutoETS refuses fewer points ("tiny datasets")
NO_HISTORY = "no demand history"
_DECIMALS = 6


@dataclass(frozen=True)
class DayForecast:
    date: date
    units: float
    low: float | None = None   # bounds of the central interval at the service level, if the
    high: float | None = None  # model gives one (AutoETS, HistoricAverage; not Croston)


@dataclass(frozen=True)
class Forecast:
    has_history: bool
    reason: str | None
    history_days: int
    method: str | None = None          # "AutoETS(AAN)", "AutoETS(AAdN)", "CrostonSBA", "HistoricAverage"
    demand_pattern: str | None = None  # "smooth", "erratic", "intermittent", "lumpy"
    trend: str | None = None           # "up", "down", "none"
    days: tuple[DayForecast, ...] = ()  # today (day 1) .. today + horizon - 1
    mean_daily_demand: float | None = None  # over the lead time
    sigma: float | None = None          # std of the in-sample one-step errors
    safety_stock: float | None = None
    reorder_point: float | None = None
    days_of_cover: float | None = None
    stockout_date: date | None = None


def classify(history: Sequence[float]) -> str | None:
    """Syntetos-Boylan class of a demand series; None when it has no demand at all. ADI is the
    number of days per day with demand; CV² is over the non-zero demands only."""
    values = np.asarray(history, dtype=float)
    sizes = values[values > 0]
    if sizes.size == 0:
        return None
    adi = values.size / sizes.size
    cv2 = float(np.var(sizes) / np.mean(sizes) ** 2)
    if adi < ADI_CUTOFF:
        return "smooth" if cv2 < CV2_CUTOFF else "erratic"
    return "intermittent" if cv2 < CV2_CUTOFF else "lumpy"


def stockout_date(units: Sequence[float], available: float, today: date) -> date | None:
    """The first day (``units[0]`` is today, day 1) on which the cumulative demand exceeds
    ``available``; today when nothing is available; None if not within ``units``."""
    if available <= 0:
        return today
    total = 0.0
    for day, demand in enumerate(units):
        total += demand
        if total > available:
            return today + timedelta(days=day)
    return None


def days_of_cover(available: float, mean_daily: float) -> float | None:
    """Days the available units last at the mean daily demand; None when no demand is forecast."""
    if mean_daily <= 0:
        return None
    return _round(max(available, 0) / mean_daily)


def safety_stock(sigma: float, service_level: float, lead_time_days: int) -> float:
    """z(service level) x sigma x sqrt(lead time): cover for the forecast errors over the lead time."""
    from scipy.stats import norm  # lazy, like statsforecast: ~1 s of import the API need not pay at start

    return _round(float(norm.ppf(service_level)) * sigma * math.sqrt(lead_time_days))


def forecast(history: Sequence[float], available: int, today: date, service_level: float,
             lead_time_days: int, horizon_days: int) -> Forecast:
    """Forecast a SKU's daily demand from ``history`` (see the module's docstring). CPU-bound and
    imports statsforecast on first use: call it from a worker thread."""
    values = np.asarray(history, dtype=float)
    pattern = classify(values)
    if pattern is None:
        return Forecast(has_history=False, reason=NO_HISTORY, history_days=int(values.size))
    steps = max(horizon_days, lead_time_days, 2)  # two points at least, to read a slope
    fit = _fit(values, pattern, steps, service_level)
    units = [_round(max(u, 0.0)) for u in fit["mean"]]
    lead = units[:lead_time_days]
    mean_daily = _round(sum(lead) / lead_time_days)
    sigma = _sigma(values, fit["fitted"])
    stock = safety_stock(sigma, service_level, lead_time_days)
    low, high = fit["low"], fit["high"]
    days = tuple(DayForecast(date=today + timedelta(days=i), units=units[i],
                             low=None if low is None else _round(max(low[i], 0.0)),
                             high=None if high is None else _round(max(high[i], 0.0)))
                 for i in range(horizon_days))
    return Forecast(
        has_history=True, reason=fit["reason"], history_days=int(values.size), method=fit["method"],
        demand_pattern=pattern, trend=fit["trend"], days=days, mean_daily_demand=mean_daily,
        sigma=_round(sigma), safety_stock=stock, reorder_point=_round(sum(lead) + stock),
        days_of_cover=days_of_cover(available, mean_daily),
        stockout_date=stockout_date(units[:horizon_days], available, today))


# ------------------------------------------------------------------------------ fitting
def _fit(values: np.ndarray, pattern: str, steps: int, service_level: float) -> dict[str, Any]:
    """The chosen model's forecast: mean, low/high (or None), in-sample fitted values, method,
    trend and a reason (None when nothing needs saying)."""
    level = service_level * 100
    sporadic = pattern in ("intermittent", "lumpy")
    short = values.size < MIN_ETS_DAYS
    reason = f"short history: {values.size} of {MIN_ETS_DAYS} days needed to fit AutoETS" if short else None
    try:
        with np.errstate(all="ignore"):
            if sporadic:
                fit = _croston(values, steps)
            elif short:
                fit = _mean(values, steps, level)
            else:
                fit = _ets(values, steps, level)
        if not np.all(np.isfinite(fit["mean"])):
            raise ValueError("non-finite forecast")
    except Exception as exc:  # a model that cannot fit this series must not fail the request
        log.warning("%s fit failed (%s); falling back to the historical mean", pattern, exc)
        with np.errstate(all="ignore"):
            fit = _mean(values, steps, level)
        reason = f"{reason}; " if reason else ""
        reason += "the model could not fit this history: historical mean"
    return {**fit, "reason": reason}


def _ets(values: np.ndarray, steps: int, level: float) -> dict[str, Any]:
    from statsforecast.models import AutoETS  # lazy: ~3 s import, worker threads only

    model = AutoETS(season_length=1).fit(values)
    error, trend, season, damped = model.model_["components"]
    predicted = model.predict(h=steps, level=[level])
    mean = np.asarray(predicted["mean"], dtype=float)
    low, high = _bounds(predicted)
    return {"mean": mean, "low": low, "high": high,
            "fitted": np.asarray(model.predict_in_sample()["fitted"], dtype=float),
            "method": f"AutoETS({error}{trend}{'d' if damped == 'D' else ''}{season})",
            "trend": "none" if trend == "N" else _slope_sign(mean)}


def _croston(values: np.ndarray, steps: int) -> dict[str, Any]:
    from statsforecast.models import CrostonSBA

    model = CrostonSBA().fit(values)
    return {"mean": np.asarray(model.predict(h=steps)["mean"], dtype=float), "low": None, "high": None,
            "fitted": np.asarray(model.predict_in_sample()["fitted"], dtype=float),
            "method": "CrostonSBA", "trend": "none"}


def _mean(values: np.ndarray, steps: int, level: float) -> dict[str, Any]:
    from statsforecast.models import HistoricAverage

    model = HistoricAverage().fit(values)
    predicted = model.predict(h=steps, level=[level])
    low, high = _bounds(predicted)
    return {"mean": np.asarray(predicted["mean"], dtype=float), "low": low, "high": high,
            "fitted": np.asarray(model.predict_in_sample()["fitted"], dtype=float),
            "method": "HistoricAverage", "trend": "none"}


def _bounds(predicted: dict[str, Any]) -> tuple[list[float] | None, list[float] | None]:
    """The interval's columns (named ``lo-<level>``/``hi-<level>``), or None if absent or not finite."""
    low = next((v for k, v in predicted.items() if k.startswith("lo-")), None)
    high = next((v for k, v in predicted.items() if k.startswith("hi-")), None)
    if low is None or high is None or not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        return None, None
    return [float(v) for v in low], [float(v) for v in high]


def _slope_sign(mean: np.ndarray) -> str:
    """"up"/"down" from the forecast's slope over its first two days; "none" if it is flat."""
    slope = float(mean[1] - mean[0])
    tolerance = 1e-9 * max(1.0, abs(float(mean[0])))
    if slope > tolerance:
        return "up"
    return "down" if slope < -tolerance else "none"


def _sigma(values: np.ndarray, fitted: np.ndarray) -> float:
    """Std (ddof 1) of the one-step errors where the model has a fitted value; 0 with fewer than 2."""
    errors = values - fitted
    errors = errors[np.isfinite(errors)]
    if errors.size < 2:
        return 0.0
    return float(np.std(errors, ddof=1))


def _round(value: float) -> float:
    return round(float(value), _DECIMALS)
