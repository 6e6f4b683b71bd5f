"""`skyhive bench rebalance`: does rebalancing on forecast demand make fewer orders wait for
a drone? The same month of simulated orders (``simulator/history_demand.py``) is flown by the
same fleet without and with the dispatcher's rebalancing (``simulator/rebalance_sim.py``).

The forecast the rebalancer sees is Prophet's (the forecaster's model), trained per station
on the ``training_days`` of orders before the month and predicting the whole month at once
(a forecaster retraining every hour would do at least as well); ``--forecast oracle`` gives
it the demand model's true rates instead (the most rebalancing could gain), ``naive`` the
same hour a week before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from skyhive.domain.rebalance import RebalancePolicy
from skyhive.domain.stations import Station, bart_stations
from skyhive.simulator.history_demand import (
    HistoryOrder,
    hour_orders,
    hourly_factor,
    hours,
    station_weights,
)
from skyhive.simulator.rebalance_sim import FleetSim, Forecast

ForecastKind = Literal["prophet", "oracle", "naive"]
# A fixed month (a Monday), so runs compare: the simulation needs no calendar of its own.
MONTH_START = datetime(2026, 3, 2, tzinfo=UTC)
HOUR = timedelta(hours=1)


@dataclass
class RebalanceReport:
    days: int
    training_days: int
    drones: int
    orders_per_day: float
    forecast: str
    forecast_s: float
    without: dict[str, float] = field(default_factory=dict)
    with_rebalancing: dict[str, float] = field(default_factory=dict)
    simulate_s: float = 0.0


def _orders(
    stations: list[Station], since: datetime, until: datetime, per_day: float, seed: int
) -> list[HistoryOrder]:
    weights = station_weights(stations)
    return [
        o
        for h in hours(since, until)
        for o in hour_orders(h, stations, weights, per_day, ["sim"], seed)
    ]


def _counts(orders: list[HistoryOrder], since: datetime, n_hours: int) -> dict[str, list[float]]:
    counts: dict[str, list[float]] = {}
    for o in orders:
        i = int((o.created_at - since) / HOUR)
        counts.setdefault(o.station.code, [0.0] * n_hours)[i] += 1
    return counts


def forecast_for(
    kind: ForecastKind,
    stations: list[Station],
    since: datetime,
    days: int,
    training_days: int,
    per_day: float,
    seed: int,
    progress: Callable[[str], object],
) -> Forecast:
    """Orders per station for any hour of the month, as the rebalancer would be told."""
    weights = station_weights(stations)
    if kind == "oracle":
        return lambda h: {s.code: per_day * weights[s.code] * hourly_factor(h) for s in stations}
    start = since - timedelta(days=training_days)
    n = training_days * 24
    counts = _counts(_orders(stations, start, since, per_day, seed + 1), start, n)
    table: dict[datetime, dict[str, float]] = {}
    if kind == "naive":
        for code, values in counts.items():
            for i in range(days * 24):
                at = since + i * HOUR
                table.setdefault(at, {})[code] = values[n - 168 + i % 168]
        return lambda h: table.get(h, {})
    from skyhive.adapters.prophet_model import ProphetModel

    model = ProphetModel(0.8, 100)
    for k, s in enumerate(stations):
        values = counts.get(s.code, [0.0] * n)
        for i, band in enumerate(model.fit_predict(start, values, days * 24)):
            table.setdefault(since + i * HOUR, {})[s.code] = max(0.0, band.yhat)
        progress(f"prophet: {k + 1}/{len(stations)} stations fitted")
    return lambda h: table.get(h, {})


def run_rebalance_bench(
    days: int = 30,
    training_days: int = 28,
    drones: int = 60,
    orders_per_day: float = 1500.0,
    forecast: ForecastKind = "prophet",
    seed: int = 1,
    progress: Callable[[str], object] = print,
) -> RebalanceReport:
    stations = list(bart_stations())
    since, until = MONTH_START, MONTH_START + timedelta(days=days)
    t0 = time.perf_counter()
    predict = forecast_for(
        forecast, stations, since, days, training_days, orders_per_day, seed, progress
    )
    report = RebalanceReport(
        days, training_days, drones, orders_per_day, forecast, round(time.perf_counter() - t0, 1)
    )
    orders = _orders(stations, since, until, orders_per_day, seed)
    progress(f"{len(orders)} orders over {days} days at {len(stations)} stations")
    t1 = time.perf_counter()
    report.without = FleetSim(stations, drones, None, None).run(orders, since, until).figures()
    progress("without rebalancing: done")
    sim = FleetSim(stations, drones, RebalancePolicy(), predict)
    report.with_rebalancing = sim.run(orders, since, until).figures()
    report.simulate_s = round(time.perf_counter() - t1, 1)
    return report
