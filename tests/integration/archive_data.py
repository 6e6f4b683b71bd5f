"""One known day of history, written through the real repositories, for the archive tests:
readings of three drones (one unregistered), deliveries in every end state, alerts, and
records of the days around it that the day's export must leave out.

The day is ``DAY`` (2026-11-23, UTC). What the archive and the KPIs must say of it is
worked out by hand in the tests from the figures here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from billing_data import order, world

from manual_clock import ManualClock
from skyhive.domain.alert_lifecycle import AlertUpdate
from skyhive.domain.deliveries import Delivery, delivered_fields
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.history import group_readings
from skyhive.domain.telemetry import Telemetry, validate_telemetry
from skyhive.wiring import Clients

DAY = date(2026, 11, 23)
MIDNIGHT = datetime(2026, 11, 23, tzinfo=UTC)
EIGHT = MIDNIGHT + timedelta(hours=8)
# When the tests run: the day closed an hour ago.
AFTER = MIDNIGHT + timedelta(days=1, hours=1)

LAT, LON = 37.80, -122.27
D1_STEP_LAT = 1e-4  # d-1 flies north this much per second
D2_STEP_LON = 2e-4  # d-2 flies east
READINGS_OF_DAY = 121 + 20 + 3  # d-1, d-2, d-3


def _reading(drone: str, seq: int, at: datetime, **fields: Any) -> Telemetry:
    ms = (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    return validate_telemetry({"drone_id": drone, "seq": seq, "ts": ms, **fields})


def readings() -> list[Telemetry]:
    """d-1: 60 s in flight (battery -0.1 a second), 30 s idle, 30 s charging, from 08:00,
    one reading a second, and one in the day's last millisecond; one just before the day and
    one at the next midnight (neither in the day). d-2: in flight (-0.2 a second), ten
    readings, five minutes silent, ten more."""
    out = [_reading("d-1", 0, MIDNIGHT - timedelta(milliseconds=500), battery_pct=95.0)]
    for i in range(120):
        if i < 60:
            state = {"status": "in_flight", "battery_pct": round(90 - 0.1 * i, 1)}
        elif i < 90:
            state = {"status": "idle", "battery_pct": 84.0}
        else:
            state = {"status": "charging", "battery_pct": round(84 + 0.1 * (i - 89), 1)}
        at = EIGHT + timedelta(seconds=i)
        out.append(_reading("d-1", i + 1, at, lat=LAT + D1_STEP_LAT * i, lon=LON, **state))
    last = MIDNIGHT + timedelta(days=1, milliseconds=-1)
    out.append(_reading("d-1", 998, last, status="idle", battery_pct=99.0, lat=LAT, lon=LON))
    out.append(_reading("d-1", 999, MIDNIGHT + timedelta(days=1), battery_pct=99.0))
    for i in range(20):
        at = EIGHT + timedelta(seconds=i + (300 if i >= 10 else 0))
        out.append(
            _reading(
                "d-2",
                i + 1,
                at,
                status="in_flight",
                battery_pct=round(80 - 0.2 * i, 1),
                lat=LAT,
                lon=LON + D2_STEP_LON * i,
                wind_mps=3.5,  # an unknown field: kept, as JSON, in `extra`
            )
        )
    out += [_reading("d-3", i, EIGHT + timedelta(minutes=i), battery_pct=50.0) for i in range(3)]
    return out


def _assign(clients: Clients, d: Delivery, at: datetime, drone: str, eta: datetime) -> None:
    fields = {"drone_id": drone, "dispatch": {"drone_id": drone, "eta": eta.isoformat()}}
    clients.deliveries.transition(d.id, "assigned", at, f"assigned to {drone}", fields)


def _deliver(clients: Clients, d: Delivery, picked: datetime, dropped: datetime) -> None:
    repo = clients.deliveries
    repo.transition(d.id, "picked_up", picked, f"picked up by {d.drone_id}")
    repo.transition(d.id, "delivered", dropped, "delivered", delivered_fields(d, dropped))


def deliveries(clients: Clients) -> dict[str, str]:
    """The day's orders by letter → delivery id (and one ordered the day before):
    A, B, C delivered at 12TH (A and C by their ETA, B late); D failed and E cancelled at
    EMBR; G ordered at 23:50 and picked up after midnight, still under way."""
    svc = world(clients, "alice")
    at = EIGHT.replace
    ids: dict[str, str] = {}

    def made(letter: str, station: str, created: datetime) -> Delivery:
        d = order(svc, "alice", station, created)
        ids[letter] = d.id
        return d

    for letter, created, wait_s, picked, dropped, eta in (
        ("A", at(hour=9), 60, at(hour=9, minute=5), at(hour=9, minute=20), at(hour=9, minute=25)),
        ("B", at(hour=9, minute=10), 180, at(hour=9, minute=15), at(hour=9, minute=45), at(hour=9, minute=40)),
        ("C", at(hour=10), 30, at(hour=10, minute=2), at(hour=10, minute=12), at(hour=10, minute=20)),
    ):  # fmt: skip
        d = made(letter, "12TH", created)
        _assign(clients, d, created + timedelta(seconds=wait_s), "d-1", eta)
        _deliver(clients, clients.deliveries.get(d.id) or d, picked, dropped)
    d = made("D", "EMBR", at(hour=9, minute=30))
    _assign(clients, d, at(hour=9, minute=32), "d-2", at(hour=10))
    clients.deliveries.transition(d.id, "picked_up", at(hour=9, minute=35), "picked up by d-2")
    failed = "d-2 reported failure: insufficient battery"
    clients.deliveries.transition(d.id, "failed", at(hour=9, minute=50), failed)
    e = made("E", "EMBR", at(hour=11))
    clients.deliveries.transition(e.id, "cancelled", at(hour=11, minute=5), "cancelled by request")
    made("F", "12TH", MIDNIGHT - timedelta(hours=1))  # the day before
    g = made("G", "12TH", at(hour=23, minute=50))
    _assign(clients, g, at(hour=23, minute=52), "d-1", at(hour=23, minute=59))
    picked = MIDNIGHT + timedelta(days=1, minutes=5)
    clients.deliveries.transition(g.id, "picked_up", picked, "picked up by d-1")
    return ids


def alerts(clients: Clients) -> None:
    """d-1 low battery (critical) and d-3 offline (warning) on the day; one the day before."""
    noon, before = EIGHT.replace(hour=12), MIDNIGHT - timedelta(hours=2)
    clients.alerts.apply(
        [
            AlertUpdate("a-1", "d-1", "low_battery", "critical", EIGHT, EIGHT, count=2),
            AlertUpdate("a-2", "d-3", "offline", "warning", noon, noon),
            AlertUpdate("a-0", "d-2", "offline", "warning", before, before),
        ]
    )


def make_day(clients: Clients) -> dict[str, str]:
    """The whole day written, the clock an hour after it closed; the deliveries' ids."""
    clients.__dict__["clock"] = ManualClock(AFTER)  # before anything is built with it
    ids = deliveries(clients)
    clients.fleet.ensure_registered(
        [
            DroneSpec(drone_id="d-1", model="x4", home_station="12TH", battery_capacity_wh=500),
            DroneSpec(drone_id="d-2", model="x8", home_station="EMBR", battery_capacity_wh=800),
        ]
    )
    stored = readings()
    clients.telemetry.store(group_readings(stored, {"d-3": True}))
    clients.telemetry.store(group_readings(stored[3:8]))  # a replay: stored once all the same
    alerts(clients)
    return ids
