"""The history simulator's generation (``simulator/history*.py``): demand with daily and
weekly seasonality, finished deliveries whose records read as the dispatcher and tracker
write them, readings and alerts from the live simulator's models and the processor's rules,
and all of it the same for the same seed."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from skyhive.domain.alert_config import ALERT_TYPES, AlertConfig
from skyhive.domain.deliveries import TERMINAL
from skyhive.domain.dispatch import DispatchPolicy
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.pricing import PricingConfig
from skyhive.domain.stations import bart_stations
from skyhive.domain.telemetry import Telemetry
from skyhive.services.history_seed import summarise
from skyhive.simulator.history import (
    HistoryChunk,
    HistoryPlan,
    fleet_for,
    generate,
    parse_duration,
    starting_stations,
    window_ending,
)
from skyhive.simulator.history_alerts import OPERATOR, DroneAlerts, NearestStations
from skyhive.simulator.history_demand import (
    LOCAL,
    hour_orders,
    hours,
    station_weights,
)
from skyhive.simulator.history_fleet import HistoryDrone

STATIONS = bart_stations()
MONDAY = datetime(2026, 11, 16, 8, tzinfo=UTC)  # midnight in San Francisco
CUSTOMERS = ("cust-1", "cust-2", "cust-3")


def plan(days: float, drones: int, seed: int, orders_per_day: float) -> HistoryPlan:
    specs = fleet_for(drones, [], STATIONS)
    return HistoryPlan(
        since=MONDAY,
        until=MONDAY + timedelta(days=days),
        drones=tuple(zip(specs, starting_stations(specs, STATIONS), strict=True)),
        stations=STATIONS,
        customers=CUSTOMERS,
        seed=seed,
        orders_per_day=orders_per_day,
        alerts=AlertConfig(),
        pricing=PricingConfig(),
        policy=DispatchPolicy(reserve_pct=20.0),
        radius_km=15.0,
        reading_interval_s=30.0,
        docked_interval_s=600.0,
    )


def merged(chunks: list[HistoryChunk]) -> HistoryChunk:
    out = HistoryChunk(chunks[-1].reached)
    for c in chunks:
        out.readings += c.readings
        out.deliveries += c.deliveries
        out.alerts += c.alerts
        out.active_alerts += c.active_alerts
        out.left_out += c.left_out
    return out


@pytest.fixture(scope="module")
def history() -> HistoryChunk:
    """Three days of ten drones (seed 2 has a few failed deliveries among its 850 orders)."""
    return merged(list(generate(plan(3, 10, 2, 300))))


def test_demand_has_daily_and_weekly_seasonality_and_busier_downtown_stations() -> None:
    weights = station_weights(STATIONS)
    by_hour: Counter[int] = Counter()
    by_day: Counter[int] = Counter()
    by_station: Counter[str] = Counter()
    for h in hours(MONDAY, MONDAY + timedelta(days=28)):
        for o in hour_orders(h, STATIONS, weights, 400, CUSTOMERS, seed=5):
            local = o.created_at.astimezone(LOCAL)
            by_hour[local.hour] += 1
            by_day[local.weekday()] += 1
            by_station[o.station.code] += 1
    night = by_hour[2] + by_hour[3] + by_hour[4]
    assert by_hour[8] > 3 * night and by_hour[18] > 3 * night  # morning and evening peaks
    assert by_hour[18] > by_hour[15] and by_hour[8] > by_hour[6]
    weekday = sum(by_day[d] for d in range(5)) / 5
    assert by_day[5] < 0.9 * weekday and by_day[6] < by_day[5]  # Saturday, then Sunday
    assert 0.85 * 400 < weekday / 4 < 1.15 * 400  # a weekday's orders, over four weeks
    assert (
        by_station["POWL"] > 4 * by_station["ANTC"] and by_station["MONT"] > 4 * by_station["PITT"]
    )
    assert abs(sum(weights.values()) - 1.0) < 1e-9


def test_an_hours_orders_depend_on_the_seed_and_the_hour_only() -> None:
    weights = station_weights(STATIONS)
    hour = MONDAY + timedelta(hours=17)
    first = hour_orders(hour, STATIONS, weights, 400, CUSTOMERS, seed=9)
    assert first == hour_orders(hour, STATIONS, weights, 400, CUSTOMERS, seed=9)
    assert first != hour_orders(hour, STATIONS, weights, 400, CUSTOMERS, seed=10)
    assert all(hour <= o.created_at < hour + timedelta(hours=1) for o in first)
    assert len({o.id for o in first}) == len(first) and all(
        o.id.startswith("hist-9-") for o in first
    )


def test_durations_and_the_window_end_at_the_start_of_the_hour() -> None:
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration(" 12H ") == timedelta(hours=12)
    for bad in ("0h", "1.5h", "3w", "", "d"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    now = datetime(2026, 11, 23, 12, 41, 7, tzinfo=UTC)
    since, until = window_ending(now, timedelta(days=7))
    assert until == datetime(2026, 11, 23, 12, tzinfo=UTC) and since == until - timedelta(days=7)
    window = list(hours(since, until))
    assert window[0] == since and len(window) == 168


def test_the_fleet_is_the_registrys_active_drones_then_the_live_simulators_names() -> None:
    registered = [
        DroneSpec(drone_id="drone-0002", home_station="EMBR"),
        DroneSpec(drone_id="drone-0001", home_station="MONT", status="maintenance"),
        DroneSpec(drone_id="zeta", home_station="ANTC"),
    ]
    fleet = fleet_for(4, registered, STATIONS)
    assert [s.drone_id for s in fleet] == ["drone-0002", "zeta", "drone-0003", "drone-0004"]
    assert fleet[2].home_station == STATIONS[2].code  # as make_fleet homes drone-0003
    assert starting_stations(fleet, STATIONS)[0].code == "EMBR"


def test_the_same_seed_makes_the_same_history_and_another_seed_another() -> None:
    def run(seed: int) -> tuple[list[dict[str, object]], list[str], list[str]]:
        h = merged(list(generate(plan(0.5, 4, seed, 200))))
        return (
            [r.model_dump() for r in h.readings],
            [d.model_dump_json() for d in h.deliveries],
            [a.model_dump_json() for a in h.alerts],
        )

    once = run(3)
    assert once == run(3) and once[1]
    assert run(4)[1] != once[1]


def test_every_delivery_is_finished_and_its_times_are_in_order(history: HistoryChunk) -> None:
    assert len(history.deliveries) > 500
    assert len({d.id for d in history.deliveries}) == len(history.deliveries)
    for d in history.deliveries:
        assert d.status in TERMINAL and d.timeline[-1].status == d.status
        steps = [s.at for s in d.timeline]
        assert steps == sorted(steps) and steps[0] == d.created_at
        assert d.created_at >= MONDAY and d.updated_at == steps[-1] < MONDAY + timedelta(days=3)
        assert d.version == len(d.timeline) - 1 and d.price_estimate is not None
        if d.dispatch is not None:
            assert d.created_at <= d.dispatch["assigned_at"] <= d.dispatch["eta"]
        if d.status == "delivered":
            assert d.delivered_at == steps[-1] and d.price_final == d.price_estimate
            assert d.delivery_s == (d.delivered_at - d.created_at).total_seconds() > 60
            assert d.eta is None and d.delivered_month == f"{d.delivered_at:%Y-%m}"
            statuses = [s.status for s in d.timeline]
            assert statuses[-4:] == ["assigned", "picked_up", "in_transit", "delivered"]
        elif d.status == "cancelled":
            assert d.drone_id is None and d.timeline[-1].note == "cancelled by request"
            assert d.waiting_reason


def test_failures_are_rare_but_present_and_say_why(history: HistoryChunk) -> None:
    statuses = Counter(d.status for d in history.deliveries)
    total = len(history.deliveries)
    assert 1 <= statuses["failed"] < 0.02 * total
    assert statuses["cancelled"] < 0.1 * total
    for d in history.deliveries:
        if d.status == "failed":
            assert "reported failure:" in d.timeline[-1].note and d.drone_id is not None


def test_readings_are_in_the_window_once_each_with_a_battery_within_bounds(
    history: HistoryChunk,
) -> None:
    readings = history.readings
    assert len(readings) > 10_000
    assert len({(r.drone_id, r.seq) for r in readings}) == len(readings)
    for r in readings:
        assert MONDAY <= r.ts < MONDAY + timedelta(days=3) and r.seq == r.ts_ms
        assert 0.0 <= r.battery_pct <= 100.0
    statuses = Counter(r.status for r in readings)
    assert statuses["in_flight"] and statuses["returning"] and statuses["idle"]
    assert statuses["charging"]
    delivered = {d.id for d in history.deliveries if d.status == "delivered"}
    carried = {r.delivery_id for r in readings if r.payload_kg is not None}
    assert delivered <= carried  # every delivered package was flown


def test_alerts_are_raised_where_the_readings_say_so(history: HistoryChunk) -> None:
    alerts = history.alerts
    kinds = Counter(a.type for a in alerts)
    assert kinds["low_battery"] and set(kinds) <= set(ALERT_TYPES)
    for a in alerts:
        assert MONDAY <= a.opened_at < MONDAY + timedelta(days=3)
        assert a.count and a.last_seen is not None and a.last_seen >= a.opened_at
        if a.state in ("resolved", "resolved_unacknowledged"):
            assert a.resolved_at is not None and a.resolved_at >= a.opened_at
        if a.type == "low_battery":
            assert a.details is not None and a.details["battery_pct"] < 25.0
    active = {(d, t) for d, t, _ in history.active_alerts}
    still = {(a.drone_id, a.type) for a in alerts if a.state in ("open", "acknowledged")}
    assert active == still


def _reading(seq_s: int, lat: float, lon: float = -122.4, status: str = "in_flight") -> Telemetry:
    ts = int(MONDAY.timestamp()) + seq_s
    return Telemetry.model_validate(
        {
            "drone_id": "d1",
            "seq": ts * 1000,
            "ts": ts * 1000,
            "battery_pct": 80.0,
            "lat": lat,
            "lon": lon,
            "alt_m": 90.0,
            "speed_mps": 15.0,
            "status": status,
        }
    )


def test_an_operator_acknowledges_then_resolves_an_alert_that_waits_for_a_person() -> None:
    spec = DroneSpec(drone_id="d1", home_station="EMBR")
    alerts = DroneAlerts(spec, AlertConfig(), NearestStations(STATIONS), random.Random(1))
    for i, lat in enumerate((37.70, 37.7001, 37.75, 37.7002)):  # one position 5 km off
        alerts.observe(_reading(i * 5, lat))
    assert alerts.take() == []  # a GPS jump stays until a person looks
    alerts.observe(_reading(3 * 3600, 37.7003, status="idle"))
    [done] = alerts.take()
    assert done.type == "gps_jump" and done.state == "resolved"
    assert done.acknowledged_by == done.resolved_by == OPERATOR
    assert done.opened_at < done.acknowledged_at < done.resolved_at  # type: ignore[operator]
    assert alerts.close(MONDAY + timedelta(hours=4)) == ([], [])


def test_a_flight_that_would_not_be_over_by_the_end_is_taken_back() -> None:
    from skyhive.domain.commands import deliver_command

    spec = DroneSpec(drone_id="d1", home_station="EMBR")
    station = STATIONS[0]
    rng = random.Random(2)
    nearest_station = NearestStations(STATIONS)
    alerts = DroneAlerts(spec, AlertConfig(), nearest_station, rng)
    since_ms = int(MONDAY.timestamp() * 1000)
    drone = HistoryDrone(spec, station, since_ms, 30.0, 600.0, alerts, nearest_station, rng)
    at_ms = since_ms + 3_600_000
    drone.advance(at_ms)
    before = (drone.sim.battery.pct, len(drone.readings), drone.rng.getstate())
    cmd = deliver_command("o1", station, (37.85, -122.27), station, MONDAY, 1.0)
    assert drone.fly(cmd, at_ms, at_ms + 60_000) is None
    assert (drone.sim.battery.pct, len(drone.readings), drone.rng.getstate()) == before
    flight = drone.fly(cmd, at_ms, at_ms + 7_200_000)
    assert flight is not None and [e["event"] for e in flight.events] == ["picked_up", "delivered"]
    assert drone.busy_until_ms == flight.landed_ms > at_ms and drone.sim.status == "charging"


def test_summarise_rebuilds_the_drone_and_station_rollups() -> None:
    calls: list[tuple[str, datetime, datetime]] = []

    class Rollups:
        def __init__(self, name: str) -> None:
            self.name = name

        def rebuild(self, since: datetime, until: datetime) -> int:
            calls.append((self.name, since, until))
            return 7

    class Wired:
        rollups = Rollups("drones")
        station_rollups = Rollups("stations")

    until = MONDAY + timedelta(days=1)
    w = Wired()
    assert summarise(w.rollups, w.station_rollups, MONDAY, until) == {
        "rollups": 7,
        "station_rollups": 7,
    }
    assert calls == [("drones", MONDAY, until), ("stations", MONDAY, until)]
