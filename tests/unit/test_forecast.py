"""Forecast arithmetic (``domain/forecast.py``) and the forecaster's run
(``services/forecaster.py``) on small in-memory ports and a seasonal naive model: the training
plans, zero-filled series, MASE by hand, clipped points, skipped and failed stations."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from manual_clock import ManualClock
from skyhive.domain.forecast import (
    Band,
    ForecastConfig,
    StationForecast,
    Window,
    accuracy,
    filled,
    plan,
    points,
    seasonal_period,
)
from skyhive.domain.stations import Station
from skyhive.services.forecaster import Forecaster

NOW = datetime(2026, 11, 23, 12, 40, tzinfo=UTC)  # the current hour is 12:00
HOUR = timedelta(hours=1)
CONFIG = ForecastConfig()


def test_an_hour_without_a_record_is_zero_orders() -> None:
    t0 = datetime(2026, 11, 23, tzinfo=UTC)
    counts = {t0 + HOUR: 3.0, t0 + 3 * HOUR: 1.0, t0 + 9 * HOUR: 7.0}  # the last is outside
    assert filled(counts, Window(t0, t0 + 5 * HOUR)) == [0.0, 3.0, 0.0, 1.0, 0.0]


def test_mase_by_hand() -> None:
    # Two days of a daily pattern: the day-before naive forecast errs |1-0|, |3-2|, ... on day 2.
    day1 = [0.0, 2.0, 4.0] + [1.0] * 21
    day2 = [1.0, 3.0, 4.0] + [1.0] * 21
    train = day1 + day2
    assert seasonal_period(len(train)) == 24
    naive = (1 + 1 + 0) / 24  # the in-sample seasonal naive error, per hour of day 2
    actual, predicted = [2.0, 0.0, 5.0], [1.0, 0.0, 2.0]  # errors 1, 0, 3
    holdout = Window(NOW, NOW + 3 * HOUR)
    got = accuracy(train, actual, predicted, holdout)
    assert got.mae == pytest.approx(4 / 3)
    assert got.naive_mae == pytest.approx(naive)
    assert got.mase == pytest.approx((4 / 3) / naive)
    assert got.period_h == 24 and got.holdout == holdout and got.note == ""


def test_mase_is_undefined_when_the_naive_forecast_is_exact() -> None:
    holdout = Window(NOW, NOW + HOUR)
    flat = accuracy([0.0] * 48, [1.0], [0.5], holdout)
    assert flat.mase is None and flat.mae == 0.5 and "naive" in flat.note
    short = accuracy([1.0] * 10, [1.0], [1.0], holdout)
    assert short.mase is None and "season" in short.note


def test_the_naive_season_is_a_week_once_two_weeks_are_there() -> None:
    assert seasonal_period(2 * 168 - 1) == 24
    assert seasonal_period(2 * 168) == 168


def test_training_plans() -> None:
    current = datetime(2026, 11, 23, 12, tzinfo=UTC)
    none = plan(None, NOW, CONFIG)
    assert none.training is None and "no orders" in none.skip_reason

    short = plan(current - 30 * HOUR, NOW, CONFIG)
    assert short.training == Window(current - 30 * HOUR, current)
    assert "30 h of history" in short.skip_reason and "48 h" in short.skip_reason

    five_days = plan(current - timedelta(days=5, minutes=-20), NOW, CONFIG)
    assert not five_days.skip_reason and five_days.holdout is None
    assert five_days.training == Window(current - timedelta(days=5), current)
    assert "168 h held out" in five_days.holdout_note

    twenty = plan(current - timedelta(days=20), NOW, CONFIG)
    assert twenty.training == Window(current - timedelta(days=20), current)
    assert twenty.holdout == Window(current - timedelta(days=7), current)

    long = plan(current - timedelta(days=90), NOW, CONFIG)
    assert long.training == Window(current - timedelta(days=30), current)


def test_points_are_hourly_never_negative_and_ordered() -> None:
    bands = [Band(2.0, 1.0, 3.0), Band(-0.5, -2.0, 1.0), Band(1.0, 1.2, 0.9)]
    got = points(NOW, bands)
    assert [p.hour for p in got] == [NOW, NOW + HOUR, NOW + 2 * HOUR]
    assert [(p.yhat, p.lower, p.upper) for p in got] == [
        (2.0, 1.0, 3.0),
        (0.0, 0.0, 1.0),
        (1.0, 1.0, 1.0),
    ]


def test_the_config_refuses_more_minimum_history_than_training() -> None:
    with pytest.raises(ValueError, match="min_history_days"):
        ForecastConfig(training_days=3, min_history_days=4)


# --- the service on in-memory ports ------------------------------------------------------------


class SeasonalNaive:
    """Repeats the last day; raises for a station whose series is marked by a 999."""

    name = "naive"

    def __init__(self) -> None:
        self.fits: list[int] = []

    def version(self) -> str:
        return "1"

    def fit_predict(self, start: datetime, values: Sequence[float], horizon_h: int) -> list[Band]:
        if 999.0 in values:
            raise RuntimeError("cannot fit")
        self.fits.append(len(values))
        day = list(values[-24:])
        return [Band(day[i % 24], day[i % 24] - 1, day[i % 24] + 1) for i in range(horizon_h)]


class MemoryHistory:
    def __init__(self, counts: dict[str, dict[datetime, float]]) -> None:
        self.counts = counts

    def orders(self, since: datetime, until: datetime) -> dict[str, dict[datetime, float]]:
        return {
            s: {h: n for h, n in c.items() if since <= h < until} for s, c in self.counts.items()
        }

    def first_hours(self, station_ids: Iterable[str]) -> dict[str, datetime]:
        return {s: min(self.counts[s]) for s in station_ids if self.counts.get(s)}


class MemoryStations:
    def __init__(self, *codes: str) -> None:
        self.stations = {c: Station(c, c, 37.8, -122.27) for c in codes}

    def get(self, code: str) -> Station | None:
        return self.stations.get(code)

    def all(self) -> dict[str, Station]:
        return self.stations


class MemoryForecasts:
    def __init__(self) -> None:
        self.saved: dict[str, StationForecast] = {}

    def save(self, forecast: StationForecast) -> None:
        self.saved[forecast.station_id] = forecast


def orders(at: datetime) -> float:
    """The hour of day, 3 more on odd days of the month."""
    return float(at.hour + 3 * (at.day % 2))


def daily(days: int, end: datetime, mark: float | None = None) -> dict[datetime, float]:
    """``orders`` of each hour of the ``days`` days before ``end``; sparse (zeros left out)."""
    start = end - timedelta(days=days)
    out = {start + i * HOUR: orders(start + i * HOUR) for i in range(days * 24)}
    out = {h: n for h, n in out.items() if n}
    if mark is not None:
        out[start + 5 * HOUR] = mark
    return out


def test_a_run_trains_scores_and_records_every_station() -> None:
    current = datetime(2026, 11, 23, 12, tzinfo=UTC)
    history = MemoryHistory(
        {
            "LONG": daily(20, current),
            "SHORT": daily(4, current),
            "BROKEN": daily(20, current, mark=999.0),
            "ONE_DAY": daily(1, current),
            "GONE": daily(3, current - timedelta(days=40)),  # recorded, not a station any more
        }
    )
    model, store = SeasonalNaive(), MemoryForecasts()
    stations = MemoryStations("LONG", "SHORT", "BROKEN", "ONE_DAY", "QUIET")
    svc = Forecaster(CONFIG, history, store, stations, model, ManualClock(NOW))
    run = svc.run()

    assert (run.stations, run.trained, run.skipped, run.failed) == (6, 3, 2, 1)
    assert run.fits == 5
    assert model.fits == [23 * 24, 30 * 24, 13 * 24, 20 * 24, 4 * 24]  # GONE, LONG, SHORT
    assert set(store.saved) == {"LONG", "SHORT", "ONE_DAY", "QUIET", "GONE"}  # BROKEN: kept

    long = store.saved["LONG"]
    assert long.status == "ok" and long.trained_at == NOW and long.model == "naive"
    assert long.horizon == Window(current, current + 48 * HOUR)
    assert [p.hour for p in long.points] == [current + i * HOUR for i in range(48)]
    # The last day repeated: 22 Nov (even) from 12:00, then 23 Nov (odd) from midnight.
    assert (long.points[5].yhat, long.points[12].yhat) == (17.0, 3.0)
    acc = long.accuracy
    assert acc is not None and acc.holdout == Window(current - timedelta(days=7), current)
    assert acc.period_h == 24 and acc.naive_mae == 3.0  # a day's change is always ±3
    assert acc.mase == pytest.approx(acc.mae / 3.0) and acc.mase > 0
    assert len(long.holdout_points) == 168
    assert long.training_orders == sum(daily(20, current).values())

    short = store.saved["SHORT"]
    assert short.status == "ok" and short.accuracy is None and "held out" in short.accuracy_note
    assert store.saved["ONE_DAY"].status == "insufficient_history"
    assert "24 h of history" in store.saved["ONE_DAY"].reason
    assert "no orders" in store.saved["QUIET"].reason
    # Quiet for the whole training window: trained on its zeros, so zero orders expected.
    gone = store.saved["GONE"]
    assert gone.status == "ok" and gone.training_orders == 0
    assert {p.yhat for p in gone.points} == {0.0}
    assert gone.accuracy is not None and gone.accuracy.mase is None


def test_a_stop_ends_the_run_between_stations() -> None:
    import threading

    stop = threading.Event()
    stop.set()
    store = MemoryForecasts()
    svc = Forecaster(
        CONFIG,
        MemoryHistory({}),
        store,
        MemoryStations("A", "B"),
        SeasonalNaive(),
        ManualClock(NOW),
    )
    run = svc.run(stop=stop)
    assert run.stopped and store.saved == {}
