"""Forecast benchmark: one full retrain of every station's demand forecast (what the
forecaster role does each hour) over synthetic station hours, on fresh embedded servers.

``--stations`` stations (the BART codes, then ``X051``...) each get ``--days`` days of
orders per hour before a fixed time, Poisson around a profile of their own (seeded): a
morning and an evening peak, quieter weekends. They are written to ``station_hours`` as the
rollups write them (an hour without orders has no record), then one ``Forecaster.run`` is
timed. Reported: wall seconds, CPU seconds (this process and the Stan fits it ran as child
processes), seconds per station and per fit, and the MASE of the held-out week across
stations. The stack's own BART stations without data are each skipped at no cost.
"""

from __future__ import annotations

import math
import resource
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from skyhive.adapters.prophet_model import ProphetModel
from skyhive.bench.stack import bench_stack
from skyhive.domain.station_rollups import StationHour
from skyhive.domain.stations import bart_stations

END = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday, midnight: the run's clock
HOUR = timedelta(hours=1)


@dataclass
class ForecastReport:
    stations: int
    days: int
    station_hours: int  # records written (hours with orders)
    seed_s: float
    retrain_s: float
    cpu_s: float
    per_station_s: float
    fits: int
    per_fit_s: float
    trained: int
    skipped: int
    failed: int
    mase_median: float | None
    mase_max: float | None


def station_codes(n: int) -> list[str]:
    bart = [s.code for s in bart_stations()]
    return bart[:n] + [f"X{i:03d}" for i in range(len(bart) + 1, n + 1)]


def synthetic_hours(codes: list[str], days: int, seed: int = 16) -> list[StationHour]:
    """Each station's orders per hour over the ``days`` before ``END`` (zero hours left out)."""
    rng = np.random.default_rng(seed)
    start = END - timedelta(days=days)
    out = []
    for code in codes:
        base, weekend = rng.uniform(0.5, 6.0), rng.uniform(0.4, 1.2)
        morning, evening = rng.uniform(7, 9), rng.uniform(17, 19)
        for i in range(days * 24):
            at = start + i * HOUR
            h = at.hour
            peaks = math.exp(-(((h - morning) / 2) ** 2)) + math.exp(-(((h - evening) / 2) ** 2))
            rate = base * (0.15 + peaks) * (weekend if at.weekday() >= 5 else 1.0)
            orders = int(rng.poisson(rate))
            if orders:
                out.append(StationHour(code, at, orders=orders))
    return out


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the Stan fits, once waited for
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_forecast_bench(stations: int, days: int, progress: Any = print) -> ForecastReport:
    codes = station_codes(stations)
    with bench_stack((), "amqtt", progress) as bs:
        clients = bs.clients
        progress(f"writing {days} days of orders per hour for {stations} stations ...")
        t0 = time.monotonic()
        hours = synthetic_hours(codes, days)
        clients.station_hours.replace(END - timedelta(days=days), END, hours)
        seeded = time.monotonic() - t0
        progress("retraining every station ...")
        ProphetModel(0.8, 100).version()  # the import (~1 s) is paid once per process, not per run
        cpu0, t0 = _cpu_s(), time.monotonic()
        run = clients.forecaster.run(END)
        wall, cpu = time.monotonic() - t0, _cpu_s() - cpu0
        scores = [
            f.accuracy.mase
            for f in clients.forecasts.all()
            if f.station_id in codes and f.accuracy is not None and f.accuracy.mase is not None
        ]
    return ForecastReport(
        stations=stations,
        days=days,
        station_hours=len(hours),
        seed_s=round(seeded, 2),
        retrain_s=round(wall, 2),
        cpu_s=round(cpu, 2),
        per_station_s=round(wall / max(run.trained, 1), 3),
        fits=run.fits,
        per_fit_s=round(wall / max(run.fits, 1), 3),
        trained=run.trained,
        skipped=run.skipped,
        failed=run.failed,
        mase_median=round(statistics.median(scores), 3) if scores else None,
        mase_max=round(max(scores), 3) if scores else None,
    )
