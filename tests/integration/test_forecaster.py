"""The forecaster against the embedded MongoDB and the real Prophet: strongly seasonal
synthetic orders in ``station_hours``, a fixed clock, forecasts stored in ``forecasts`` and
served by the API (shapes, roles, 404s); and the role started and stopped as `up` runs it."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from auth_helpers import api_client
from cli_env import cli_env
from manual_clock import ManualClock
from polling import wait_for
from skyhive.api.fields import Items
from skyhive.api.forecasts import ForecastSummary, StationForecastView
from skyhive.bootstrap import bootstrap
from skyhive.cli import cli
from skyhive.domain.station_rollups import StationHour
from skyhive.settings import Settings
from skyhive.wiring import Clients
from skyhive.workers.forecaster import run_forecaster

NOW = datetime(2026, 11, 23, 12, 40, tzinfo=UTC)  # a Monday; the current hour is 12:00
CURRENT = NOW.replace(minute=0)
HOUR = timedelta(hours=1)


def rate(at: datetime) -> float:
    """Orders expected per hour: morning and evening peaks, half on weekends."""
    peaks = math.exp(-(((at.hour - 8) / 2) ** 2)) + math.exp(-(((at.hour - 18) / 2) ** 2))
    return (0.3 + 12 * peaks) * (0.5 if at.weekday() >= 5 else 1.0)


def seed_orders(clients: Clients, days: dict[str, int]) -> None:
    """Poisson orders per hour, for each station over its ``days`` before the current hour,
    written as a rollup pass writes a window (hours without orders have no record)."""
    rng = np.random.default_rng(1)
    start = CURRENT - timedelta(days=max(days.values()))
    records = []
    for station, n in days.items():
        first = CURRENT - timedelta(days=n)
        for hour in (first + i * HOUR for i in range(n * 24)):
            orders = int(rng.poisson(rate(hour))) or int(hour == first)  # from its first order
            records.append(StationHour(station, hour, orders=orders))
    clients.station_hours.replace(start, CURRENT, [r for r in records if r.orders])


@pytest.fixture
def trained(clients: Clients) -> Clients:
    """12TH and EMBR with three weeks of orders, 19TH with one day; one run at ``NOW``."""
    bootstrap(clients)
    clients.__dict__["clock"] = ManualClock(NOW)
    seed_orders(clients, {"12TH": 21, "EMBR": 21, "19TH": 1})
    run = clients.forecaster.run()
    assert (run.trained, run.failed, run.fits) == (2, 0, 4)
    assert run.skipped == run.stations - 2  # every other BART station, 19TH among them
    return clients


def test_each_station_gets_48_hourly_points_from_the_current_hour(trained: Clients) -> None:
    for station in ("12TH", "EMBR"):
        f = trained.forecasts.get(station)
        assert f is not None and f.status == "ok" and f.model == "prophet"
        assert f.model_version and f.trained_at == NOW
        assert f.training is not None and f.training.since == CURRENT - timedelta(days=21)
        assert f.training.until == CURRENT and f.training_orders > 1000
        assert [p.hour for p in f.points] == [CURRENT + i * HOUR for i in range(48)]
        assert all(0 <= p.lower <= p.yhat <= p.upper for p in f.points)
        # It learned the peaks: tomorrow 08:00 well above tomorrow 03:00.
        by_hour = {p.hour: p.yhat for p in f.points}
        tomorrow = CURRENT.replace(hour=0) + timedelta(days=1)
        assert by_hour[tomorrow + 8 * HOUR] > by_hour[tomorrow + 3 * HOUR] + 5
        acc = f.accuracy
        assert acc is not None and acc.holdout.since == CURRENT - timedelta(days=7)
        assert acc.period_h == 168  # 14 days of training: a week's season
        # Better than the naive forecast (yesterday again, noise and all), yet not suspiciously
        # perfect: Poisson noise is left that no model can foresee.
        assert acc.mase is not None and 0.3 < acc.mase < 1.0, acc
        assert len(f.holdout_points) == 168


def test_a_station_with_too_little_history_has_its_reason_stored(trained: Clients) -> None:
    short = trained.forecasts.get("19TH")
    assert short is not None and short.status == "insufficient_history"
    assert "24 h of history" in short.reason and "48 h" in short.reason
    assert short.points == () and short.accuracy is None
    quiet = trained.forecasts.get("MONT")
    assert quiet is not None and "no orders" in quiet.reason


def test_a_second_run_replaces_each_station_s_document(trained: Clients) -> None:
    before = trained.db.forecasts.count_documents({})
    trained.__dict__["clock"].advance(3600)
    trained.forecaster.run()
    assert trained.db.forecasts.count_documents({}) == before
    f = trained.forecasts.get("12TH")
    assert f is not None and f.points[0].hour == CURRENT + HOUR


def _get(client: FlaskClient, url: str, status: int = 200) -> Any:
    resp = client.get(url)
    assert resp.status_code == status, (url, resp.status_code, resp.data[:300])
    return resp.get_json()


def test_the_api_serves_summaries_and_forecast_against_actual(trained: Clients) -> None:
    viewer = api_client(trained, "viewer")
    listed = _get(viewer, "/api/v1/forecasts")
    by_station = {f["station_id"]: f for f in listed["items"]}
    assert listed["count"] == len(by_station) >= 50
    ok = by_station["12TH"]
    assert ok["status"] == "ok" and "points" not in ok
    assert ok["next_hour"]["hour"] == "2026-11-23T12:00:00Z"
    assert ok["horizon"] == {
        "since": "2026-11-23T12:00:00Z",
        "until": "2026-11-25T12:00:00Z",
        "hours": 48,
    }
    assert ok["accuracy"]["mase"] > 0 and ok["accuracy"]["holdout"]["hours"] == 168
    assert ok["horizon_orders"] == pytest.approx(
        sum(p.yhat for p in trained.forecasts.get("12TH").points)  # type: ignore[union-attr]
    )
    assert by_station["19TH"]["status"] == "insufficient_history"
    assert by_station["19TH"]["next_hour"] is None

    Items[ForecastSummary].model_validate(listed)  # as the OpenAPI document declares

    one = _get(viewer, "/api/v1/forecasts/12TH?hours=48")
    StationForecastView.model_validate(one)
    assert len(one["points"]) == 48 and len(one["holdout_points"]) == 168
    actual = one["actual"]
    assert [a["hour"] for a in actual[-2:]] == ["2026-11-23T11:00:00Z", "2026-11-23T12:00:00Z"]
    assert len(actual) == 48 and actual[-1]["orders"] == 0  # the current hour: none recorded
    recorded = {
        h.hour: h.orders
        for h in trained.station_hours.of_station("12TH", CURRENT - 47 * HOUR, CURRENT)
    }
    assert sum(a["orders"] for a in actual) == sum(recorded.values()) > 0


def test_forecast_reads_need_a_staff_key_and_unknown_stations_are_404(clients: Clients) -> None:
    bootstrap(clients)
    for role in ("viewer", "operator", "admin"):
        assert _get(api_client(clients, role), "/api/v1/forecasts")["items"] == []
    clients.customers.insert({"_id": "cus-1", "name": "C", "email": "c@example.com"})
    customer = api_client(clients, "customer", "cus-1")
    assert _get(customer, "/api/v1/forecasts", 403)["error"]["code"] == 403
    anonymous = api_client(clients, "viewer").application.test_client()
    assert _get(anonymous, "/api/v1/forecasts/12TH", 401)["error"]["code"] == 401

    viewer = api_client(clients, "viewer")
    missing = _get(viewer, "/api/v1/forecasts/NOPE", 404)["error"]
    assert missing["field"] == "station_id" and "NOPE" in missing["message"]
    assert _get(viewer, "/api/v1/forecasts/bad%20id", 400)["error"]["field"] == "station_id"
    assert _get(viewer, "/api/v1/forecasts/12TH?hours=0", 400)["error"]["field"] == "hours"
    pending = _get(viewer, "/api/v1/forecasts/12TH?hours=3")
    assert pending["status"] == "not_trained" and pending["points"] == []
    assert [a["orders"] for a in pending["actual"]] == [0, 0, 0]


def test_the_role_runs_at_start_and_stops_on_request(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(forecast={"start_delay_s": 0, "interval_s": 3600})
    clients = Clients(settings)
    try:
        bootstrap(clients)
        stop = threading.Event()
        role = threading.Thread(target=run_forecaster, args=(settings, stop))
        role.start()
        try:
            wait_for(lambda: clients.db.forecasts.count_documents({}) >= 50, "forecasts", 30)
        finally:
            stop.set()
            role.join(timeout=10)
        assert not role.is_alive()
        assert clients.forecasts.get("12TH") is not None
    finally:
        clients.close()


def test_once_retrains_now_and_says_how_it_went(clients: Clients) -> None:
    bootstrap(clients)
    s = clients.settings
    env = cli_env(s)
    result = CliRunner().invoke(cli, ["forecaster", "--once"], env=env)
    assert result.exit_code == 0, result.output
    assert "50 stations: 0 forecast, 50 without enough history, 0 failed" in result.output
    assert clients.db.forecasts.count_documents({"status": "insufficient_history"}) == 50
