"""The rebalancing pass on the real servers: forecasts in MongoDB, drones live in Redis,
commands on the commands stream, moves recorded with their reason; a drone just moved and a
drone holding a delivery stay put; one dispatcher at a time runs a pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
from customer_seed import add_customers

from auth_helpers import api_client
from manual_clock import ManualClock
from skyhive.bootstrap import bootstrap
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.forecast import ForecastPoint, StationForecast, Window
from skyhive.domain.stations import bart_stations
from skyhive.domain.telemetry import validate_telemetry
from skyhive.wiring import Clients
from skyhive.workers.dispatcher import build_rebalancer

NOW = datetime(2026, 11, 23, 8, 40, tzinfo=UTC)  # the hour ahead: 09:00-10:00
STATIONS = {s.code: s for s in bart_stations()}
BUSY, SPARE = STATIONS["12TH"], STATIONS["19TH"]  # about 0.6 km apart


def forecast(code: str, per_hour: float) -> StationForecast:
    hour = datetime(2026, 11, 23, 9, tzinfo=UTC)
    points = tuple(
        ForecastPoint(hour + timedelta(hours=h), per_hour, per_hour * 0.5, per_hour * 1.5)
        for h in range(-1, 3)
    )
    return StationForecast(
        station_id=code,
        trained_at=NOW,
        status="ok",
        model="test",
        horizon=Window(hour - timedelta(hours=1), hour + timedelta(hours=3)),
        points=points,
    )


def dock(clients: Clients, drone: str, code: str, battery: float, **extra: object) -> None:
    s = STATIONS[code]
    clients.fleet.register(DroneSpec(drone_id=drone, home_station=code))
    reading = {"drone_id": drone, "seq": 1, "ts": int(NOW.timestamp() * 1000)}
    reading |= {"lat": s.lat, "lon": s.lon, "battery_pct": battery, "status": "idle"} | extra
    clients.live.apply([validate_telemetry(reading)], NOW.isoformat())


def commands(clients: Clients) -> list[dict[str, object]]:
    """Commands queued since the last look (a consumer group of the test's own)."""
    entries = clients.bus.consume(clients.settings.commands_stream, "t", "t", 100, 1)
    return [{"drone": m.key, **orjson.loads(m.value)} for m in entries]


def test_idle_spare_drones_fly_to_the_station_that_will_want_them(clients: Clients) -> None:
    bootstrap(clients)
    clients.clock = ManualClock(NOW)  # type: ignore[misc]
    clients.forecasts.save(forecast(BUSY.code, 3.0))
    clients.forecasts.save(forecast(SPARE.code, 0.2))
    dock(clients, "b1", BUSY.code, 90)
    for i, battery in enumerate((95, 85, 40, 99)):
        dock(clients, f"s{i}", SPARE.code, battery)
    dock(clients, "s9", SPARE.code, 99, delivery_id="d-1")  # carrying a delivery: not spare
    clients.bus.ensure_group(clients.settings.commands_stream, "t")
    r = build_rebalancer(clients, "one")
    moves = r.run()
    # BUSY wants 3, has 1: two of SPARE's drones, best battery first (s3, s0); SPARE keeps 1.
    assert [(m.drone_id, m.from_station, m.to_station) for m in moves] == [
        ("s3", SPARE.code, BUSY.code),
        ("s0", SPARE.code, BUSY.code),
    ]
    sent = commands(clients)
    assert [(c["drone"], c["return_station"]["station"]) for c in sent] == [
        ("s3", BUSY.code),
        ("s0", BUSY.code),
    ]
    assert all(str(c["reason"]).startswith("rebalancing: 12TH expects 3.0 orders") for c in sent)
    logged = clients.rebalance_moves.since(NOW - timedelta(minutes=1))
    assert {m["drone_id"] for m in logged} == {"s3", "s0"}
    assert all("expects 3.0 orders next hour" in m["reason"] for m in logged)

    # Another dispatcher within the period: the lease is taken, no pass.
    assert build_rebalancer(clients, "two").run() == []
    # A period later the moved drones are on their way (counted as coming) and cooling down:
    # nothing more to do.
    clients.redis_text.delete("rebalance:lease")
    clients.clock.advance(300)  # type: ignore[attr-defined]
    assert r.run() == []
    assert commands(clients) == []


def test_no_forecast_no_move(clients: Clients) -> None:
    bootstrap(clients)
    clients.clock = ManualClock(NOW)  # type: ignore[misc]
    clients.bus.ensure_group(clients.settings.commands_stream, "t")
    dock(clients, "s0", SPARE.code, 99)
    dock(clients, "s1", SPARE.code, 99)
    assert build_rebalancer(clients, "one").run() == []
    assert commands(clients) == []


def test_the_api_lists_the_moves_with_their_reason(clients: Clients) -> None:
    clients.clock = ManualClock(NOW)  # type: ignore[misc]
    bootstrap(clients)
    clients.forecasts.save(forecast(BUSY.code, 2.0))
    clients.forecasts.save(forecast(SPARE.code, 0.0))
    dock(clients, "s0", SPARE.code, 99)
    dock(clients, "s1", SPARE.code, 98)
    [move] = build_rebalancer(clients, "one").run()
    api = api_client(clients, role="viewer")
    body = api.get("/api/v1/rebalancing/moves").get_json()
    assert body["count"] == 1
    [item] = body["items"]
    assert (item["drone_id"], item["from_station"], item["to_station"]) == ("s0", "19TH", "12TH")
    assert item["reason"] == move.reason and item["at"].startswith("2026-11-23T08:40")
    bad = api.get("/api/v1/rebalancing/moves?hours=0")
    assert bad.status_code == 400 and "hours" in str(bad.get_json())
    add_customers(clients, "c1")
    customer = api_client(clients, role="customer", customer_id="c1")
    assert customer.get("/api/v1/rebalancing/moves").status_code == 403
