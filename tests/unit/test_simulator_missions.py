"""Simulated drones obey the dispatcher: delivery missions, recalls, refusals, and a battery
that drains as the registry spec says, so the dispatcher's energy model holds."""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import orjson
import pytest

from skyhive.domain.commands import (
    Command,
    DeliverCommand,
    deliver_command,
    parse_command,
    parse_event,
    return_command,
)
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.geo import destination_point, haversine_m
from skyhive.domain.stations import Station, bart_stations
from skyhive.domain.telemetry import parse_telemetry
from skyhive.simulator.battery import HOVER_DRAIN_PCT_PER_S
from skyhive.simulator.drone import DROP_ALT_M, DROP_S, Phase, SimDrone, make_fleet
from skyhive.simulator.faults import FaultRates
from skyhive.simulator.flight import CLIMB_RATE_MPS, CRUISE_ALT_M, DESCENT_RATE_MPS
from skyhive.simulator.runner import SimStats, SimulatorConfig, _Publisher

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
ISSUED = datetime(2026, 1, 1, tzinfo=UTC)
STATIONS = {s.code: s for s in bart_stations()}
HOME = STATIONS["12TH"]  # where the first drone of a fleet starts
NEAR_M = 30.0
# Most a flight's climbs, descents and drop hover can cost on top of the per-km cruise drain.
LEG_OVERHEAD_PCT = HOVER_DRAIN_PCT_PER_S * (
    CRUISE_ALT_M[1] / CLIMB_RATE_MPS + CRUISE_ALT_M[1] / DESCENT_RATE_MPS
)

Reading = dict[str, Any]
Event = dict[str, Any]


@dataclass
class Flight:
    """Readings one per step, and each event with the index of the reading it came with."""

    readings: list[Reading] = field(default_factory=list)
    events: list[tuple[int, Event]] = field(default_factory=list)
    now_ms: int = T0_MS

    def kinds(self) -> list[str]:
        return [e["event"] for _, e in self.events]

    def at(self, kind: str) -> Reading:
        return next(self.readings[i] for i, e in self.events if e["event"] == kind)


def idle_drone(seed: int = 1, battery: float = 90.0) -> tuple[SimDrone, random.Random]:
    """A drone docked at HOME that never flies unless commanded."""
    rng = random.Random(seed)
    drone = make_fleet(1, T0_MS, rng, autonomous_legs=False)[0]
    drone.battery.pct = battery
    return drone, rng


def delivery(
    delivery_id: str = "dlv-1",
    pickup: Station = HOME,
    km: float = 1.0,
    return_station: Station | None = None,
    issued_at: datetime = ISSUED,
) -> DeliverCommand:
    """A deliver command to a point ``km`` east of ``pickup``."""
    dest = destination_point(pickup.lat, pickup.lon, 90.0, km * 1000.0)
    return deliver_command(delivery_id, pickup, dest, return_station or pickup, issued_at, 2.2)


def fly(
    drone: SimDrone,
    rng: random.Random,
    seconds: float,
    flight: Flight | None = None,
    until_status: str | None = None,
) -> Flight:
    """Step ``drone`` a second at a time for ``seconds``, or until its status turns to
    ``until_status``, recording readings and events."""
    out = flight if flight is not None else Flight()
    previous = out.readings[-1]["status"] if out.readings else None
    for _ in range(round(seconds)):
        out.now_ms += 1000
        events = drone.step(out.now_ms, 1.0, rng)
        reading = drone.reading(out.now_ms)
        out.events += [(len(out.readings), e) for e in events]
        out.readings.append(reading)
        if until_status is not None and reading["status"] == until_status != previous:
            break
        previous = reading["status"]
    return out


def command(drone: SimDrone, cmd: Command, rng: random.Random, flight: Flight) -> list[Event]:
    """``cmd`` as the drone receives it: through its JSON."""
    return drone.command(parse_command(cmd.to_json()), flight.now_ms, rng)


def dist_m(r: Reading, lat: float, lon: float) -> float:
    return haversine_m(r["lat"], r["lon"], lat, lon)


def flown_km(readings: list[Reading]) -> float:
    return (
        sum(haversine_m(a["lat"], a["lon"], b["lat"], b["lon"]) for a, b in pairwise(readings))
        / 1000.0
    )


def seconds(flight: Flight, kind: str) -> float:
    index = next(i for i, e in flight.events if e["event"] == kind)
    return index + 1.0  # one-second steps


def assert_valid_event(event: Event, drone: SimDrone) -> None:
    parsed = parse_event(orjson.loads(orjson.dumps(event)), topic_drone_id=drone.drone_id)
    assert parsed.drone_id == drone.drone_id


# -- missions ---------------------------------------------------------------------------------


def test_delivery_from_the_home_station_picks_up_delivers_and_comes_back_to_charge() -> None:
    drone, rng = idle_drone()
    cmd = delivery(km=1.0)
    dest = (cmd.destination.lat, cmd.destination.lon)
    flight = Flight()
    assert command(drone, cmd, rng, flight) == []

    fly(drone, rng, 3600, flight, until_status="idle")

    assert flight.kinds() == ["picked_up", "delivered"]
    for _, event in flight.events:
        assert_valid_event(event, drone)
        assert event["delivery_id"] == "dlv-1" and "reason" not in event
    picked_up, delivered = flight.at("picked_up"), flight.at("delivered")
    assert dist_m(picked_up, HOME.lat, HOME.lon) <= NEAR_M
    assert seconds(flight, "picked_up") <= 11.0  # already at the pickup: just loading
    assert dist_m(delivered, *dest) <= NEAR_M
    assert delivered["alt_m"] <= DROP_ALT_M + 3.0  # dropped from low, not from cruise
    landed = next(r for r in flight.readings if r["status"] == "charging")
    assert dist_m(landed, HOME.lat, HOME.lon) <= NEAR_M and landed["alt_m"] == 0.0
    assert flight.readings[-1]["status"] == "idle" and flight.readings[-1]["battery_pct"] >= 95.0


def test_delivery_flies_to_a_remote_pickup_first_and_returns_where_told() -> None:
    drone, rng = idle_drone()
    pickup, home = STATIONS["MCAR"], STATIONS["LAKE"]
    flight = Flight()
    command(drone, delivery(pickup=pickup, km=1.5, return_station=home), rng, flight)

    fly(drone, rng, 3600, flight, until_status="charging")

    assert flight.kinds() == ["picked_up", "delivered"]
    picked_at = next(i for i, e in flight.events if e["event"] == "picked_up")
    on_pad = [r for r in flight.readings[:picked_at] if dist_m(r, pickup.lat, pickup.lon) <= NEAR_M]
    assert on_pad and min(r["alt_m"] for r in on_pad) == 0.0  # landed at the pickup
    landed = flight.readings[-1]
    assert landed["status"] == "charging" and dist_m(landed, home.lat, home.lon) <= NEAR_M


def test_telemetry_tells_the_mission_stage() -> None:
    drone, rng = idle_drone()
    flight = Flight()
    command(drone, delivery(pickup=STATIONS["19TH"], km=2.0), rng, flight)
    fly(drone, rng, 3600, flight, until_status="charging")
    picked = next(i for i, e in flight.events if e["event"] == "picked_up")
    dropped = next(i for i, e in flight.events if e["event"] == "delivered")

    for r in flight.readings:
        parse_telemetry(orjson.dumps(r), topic_drone_id=drone.drone_id)
    to_pickup, loaded, back = (
        flight.readings[:picked],
        flight.readings[picked:dropped],
        flight.readings[dropped:-1],
    )
    assert all(r["delivery_id"] == "dlv-1" and r["status"] == "in_flight" for r in to_pickup)
    assert all("payload_kg" not in r for r in to_pickup)  # nothing on board yet
    assert all(r["delivery_id"] == "dlv-1" and r["payload_kg"] == 2.2 for r in loaded)
    assert all(r["status"] == "in_flight" for r in loaded)
    assert all(r["status"] == "returning" and "delivery_id" not in r for r in back)
    cruise = [r["speed_mps"] for r in flight.readings if r["alt_m"] >= CRUISE_ALT_M[0]]
    assert max(cruise) == drone.spec.cruise_speed_mps


def test_a_delivery_takes_off_mid_charge() -> None:
    drone, rng = idle_drone(battery=60.0)
    flight = fly(drone, rng, 120)
    assert flight.readings[-1]["status"] == "charging"
    command(drone, delivery(), rng, flight)
    fly(drone, rng, 600, flight, until_status="returning")
    assert flight.kinds() == ["picked_up", "delivered"]


def test_a_docked_drone_never_flies_on_its_own() -> None:
    rng = random.Random(3)
    fleet = make_fleet(10, T0_MS, rng, autonomous_legs=False)
    start = [(d.motion.lat, d.motion.lon) for d in fleet]
    statuses = set()
    for k in range(1, 3601):
        for d in fleet:
            assert d.step(T0_MS + k * 1000, 1.0, rng) == []
            statuses.add(d.status)
    assert statuses <= {"idle", "charging"}
    assert [(d.motion.lat, d.motion.lon) for d in fleet] == start
    assert all(
        d.motion.alt_m == 0.0 and d.status == "idle" and d.battery.pct >= 95.0 for d in fleet
    )


def test_an_autonomous_drone_does_not_start_its_own_legs_mid_mission() -> None:
    rng = random.Random(4)
    drone = make_fleet(1, T0_MS, rng)[0]
    drone.battery.pct = 90.0
    flight = Flight()
    command(drone, delivery(km=3.0), rng, flight)
    fly(drone, rng, 3600, flight, until_status="charging")
    assert flight.kinds() == ["picked_up", "delivered"]
    ids = {r.get("delivery_id") for r in flight.readings}
    assert ids == {"dlv-1", None}  # no made-up delivery of an autonomous leg in between


# -- refusals and recalls ---------------------------------------------------------------------


def test_a_busy_drone_refuses_another_delivery_and_keeps_its_own() -> None:
    drone, rng = idle_drone()
    flight = Flight()
    command(drone, delivery("dlv-1"), rng, flight)
    fly(drone, rng, 30, flight)

    (refusal,) = command(drone, delivery("dlv-2", issued_at=ISSUED.replace(minute=1)), rng, flight)

    assert refusal["event"] == "failed" and refusal["reason"] == "busy"
    assert refusal["delivery_id"] == "dlv-2"
    assert_valid_event(refusal, drone)
    fly(drone, rng, 3600, flight, until_status="charging")
    assert [(e["delivery_id"], e["event"]) for _, e in flight.events] == [
        ("dlv-1", "picked_up"),
        ("dlv-1", "delivered"),
    ]


def test_a_redelivered_command_is_ignored_rather_than_refused() -> None:
    """QoS 1 may deliver a command twice: "busy" would fail the delivery being flown."""
    drone, rng = idle_drone()
    flight = Flight()
    command(drone, delivery("dlv-1"), rng, flight)
    fly(drone, rng, 30, flight)
    assert command(drone, delivery("dlv-1"), rng, flight) == []
    fly(drone, rng, 3600, flight, until_status="idle")
    assert command(drone, delivery("dlv-1"), rng, flight) == []  # done: not flown again
    assert drone.mission is None and drone.status == "idle"


def test_the_same_delivery_dispatched_again_is_flown_again() -> None:
    drone, rng = idle_drone()
    flight = Flight()
    command(drone, delivery("dlv-1"), rng, flight)
    fly(drone, rng, 3600, flight, until_status="idle")
    command(drone, delivery("dlv-1", issued_at=ISSUED.replace(hour=1)), rng, flight)
    assert drone.mission is not None


def test_a_flying_drone_refuses_a_delivery() -> None:
    rng = random.Random(2)
    drone = make_fleet(1, T0_MS, rng)[0]
    drone.battery.pct = 90.0
    flight = fly(drone, rng, 600, until_status="in_flight")
    assert drone.status == "in_flight"
    (refusal,) = command(drone, delivery(), rng, flight)
    assert (refusal["event"], refusal["reason"]) == ("failed", "busy")


def test_a_drone_in_emergency_refuses_a_delivery() -> None:
    drone, rng = idle_drone()
    drone.faults = FaultRates(emergency=1.0)
    flight = fly(drone, rng, 1)
    assert drone.status == "emergency"
    (refusal,) = command(drone, delivery(), rng, flight)
    assert (refusal["event"], refusal["reason"]) == ("failed", "busy")


def test_a_delivery_beyond_the_battery_is_refused() -> None:
    drone, rng = idle_drone(battery=18.0)
    flight = Flight()
    (refusal,) = command(drone, delivery(km=2.0), rng, flight)
    assert (refusal["event"], refusal["reason"]) == ("failed", "insufficient battery")
    assert drone.mission is None and drone.phase in (Phase.DOCKED, Phase.CHARGING)


def test_recall_mid_mission_fails_the_delivery_and_lands_at_the_station() -> None:
    drone, rng = idle_drone()
    flight = Flight()
    command(drone, delivery(km=3.0), rng, flight)
    fly(drone, rng, 60, flight)
    assert flight.kinds() == ["picked_up"]
    lake = STATIONS["LAKE"]

    (failed,) = command(drone, return_command(lake, ISSUED, "delivery cancelled"), rng, flight)

    assert (failed["event"], failed["reason"], failed["delivery_id"]) == (
        "failed",
        "recalled",
        "dlv-1",
    )
    assert_valid_event(failed, drone)
    after = len(flight.readings)
    fly(drone, rng, 3600, flight, until_status="charging")
    assert flight.kinds() == ["picked_up"]  # nothing more: never delivered
    back = flight.readings[after:]
    assert all("delivery_id" not in r for r in back)
    assert all(r["status"] == "returning" for r in back[:-1])
    assert back[-1]["status"] == "charging" and dist_m(back[-1], lake.lat, lake.lon) <= NEAR_M


def test_recall_before_pickup_fails_the_assigned_delivery() -> None:
    drone, rng = idle_drone()
    flight = Flight()
    command(drone, delivery(pickup=STATIONS["MCAR"]), rng, flight)
    fly(drone, rng, 30, flight)
    (failed,) = command(drone, return_command(HOME, ISSUED, "reassigned"), rng, flight)
    assert (failed["event"], failed["reason"]) == ("failed", "recalled")
    fly(drone, rng, 3600, flight, until_status="charging")
    assert flight.kinds() == [] and dist_m(flight.readings[-1], HOME.lat, HOME.lon) <= NEAR_M


def test_recall_of_an_idle_drone_flies_it_over_without_events() -> None:
    drone, rng = idle_drone()
    flight = Flight()
    lake = STATIONS["LAKE"]
    assert command(drone, return_command(lake, ISSUED, "rebalance"), rng, flight) == []
    fly(drone, rng, 3600, flight, until_status="charging")
    assert flight.kinds() == [] and {r["status"] for r in flight.readings} >= {"returning"}
    assert dist_m(flight.readings[-1], lake.lat, lake.lon) <= NEAR_M
    assert command(drone, return_command(lake, ISSUED, "again"), rng, flight) == []
    assert drone.phase is Phase.CHARGING  # already there: stays on the pad


# -- battery ----------------------------------------------------------------------------------


def test_cruise_drains_exactly_the_specs_percent_per_km() -> None:
    drone, rng = idle_drone()
    spec = DroneSpec(
        drone_id=drone.drone_id,
        home_station=HOME.code,
        battery_capacity_wh=400.0,
        consumption_wh_per_km=12.0,
    )
    drone.battery.pct_per_km = spec.pct_per_km
    flight = Flight()
    command(drone, delivery(km=3.0), rng, flight)
    while drone.phase is not Phase.CRUISE:
        fly(drone, rng, 1, flight)
    before, lat, lon = drone.battery.pct, drone.motion.lat, drone.motion.lon
    fly(drone, rng, 60, flight)
    assert drone.phase is Phase.CRUISE
    km = haversine_m(lat, lon, drone.motion.lat, drone.motion.lon) / 1000.0
    assert km == pytest.approx(60 * 15.0 / 1000.0)
    assert before - drone.battery.pct == pytest.approx(km * 3.0)


@pytest.mark.parametrize(
    ("pickup", "km", "home"),
    [("12TH", 1.0, "12TH"), ("MCAR", 2.5, "LAKE"), ("ROCK", 4.0, "12TH")],
)
def test_a_missions_battery_use_is_its_distance_times_the_spec_rate(
    pickup: str, km: float, home: str
) -> None:
    drone, rng = idle_drone(battery=95.0)
    drone.battery.charge_rate_pct_per_s = 0.0  # so the landing reading shows what the flight used
    flight = Flight()
    command(
        drone, delivery(pickup=STATIONS[pickup], km=km, return_station=STATIONS[home]), rng, flight
    )
    fly(drone, rng, 7200, flight, until_status="charging")

    used = 95.0 - drone.battery.pct
    cruise = flown_km(flight.readings) * drone.battery.pct_per_km
    assert cruise > 0.0
    assert cruise <= used <= cruise + 3 * LEG_OVERHEAD_PCT + HOVER_DRAIN_PCT_PER_S * DROP_S


def test_the_fleet_flies_the_registrys_default_spec() -> None:
    fleet = make_fleet(60, T0_MS, random.Random(1))
    default = DroneSpec(drone_id="x", home_station="x")
    for d in fleet:
        assert d.spec.drone_id == d.drone_id and d.spec.home_station == d.station.code
        assert d.battery.pct_per_km == default.pct_per_km == pytest.approx(1.6)
        assert d.cruise_speed_mps == default.cruise_speed_mps


def test_low_battery_mid_mission_fails_the_delivery_and_diverts() -> None:
    drone, rng = idle_drone()
    flight = Flight()
    command(drone, delivery(km=8.0), rng, flight)
    fly(drone, rng, 60, flight)
    drone.faults = FaultRates(battery_drain=1.0)
    fly(drone, rng, 3600, flight, until_status="charging")
    assert flight.kinds() == ["picked_up", "failed"]
    assert flight.events[-1][1]["reason"] == "low battery"
    assert drone.status == "charging"


# -- faults -----------------------------------------------------------------------------------


def test_an_emergency_pauses_a_mission_which_then_completes() -> None:
    drone, rng = idle_drone()
    flight = Flight()
    command(drone, delivery(km=2.0), rng, flight)
    fly(drone, rng, 40, flight)
    drone.faults = FaultRates(emergency=1.0)
    fly(drone, rng, 1, flight)
    drone.faults = FaultRates()
    fly(drone, rng, 3600, flight, until_status="charging")
    assert "emergency" in {r["status"] for r in flight.readings}
    assert flight.kinds() == ["picked_up", "delivered"]


def test_message_faults_leave_missions_alone() -> None:
    drone, rng = idle_drone()
    drone.faults = FaultRates(duplicate=1.0, out_of_order=1.0, malformed=1.0)
    flight = Flight()
    command(drone, delivery(), rng, flight)
    fly(drone, rng, 3600, flight, until_status="charging")
    assert flight.kinds() == ["picked_up", "delivered"]


# -- commands as received ---------------------------------------------------------------------


class Published:
    """Stands in for the paho client: records publishes."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: bytes, qos: int) -> Any:
        self.items.append((topic, payload))
        return type("Info", (), {"rc": 0})()


def test_the_runner_applies_a_command_and_skips_an_unusable_one_changing_nothing() -> None:
    client, stats, commands = Published(), SimStats(), deque[tuple[str, bytes]]()
    pub = _Publisher(
        SimulatorConfig(drones=1, seed=1, autonomous_legs=False), client, stats, commands
    )
    (drone,) = pub.fleet
    drone.battery.pct = 90.0
    topic = f"skyhive/drones/{drone.drone_id}/commands"
    good = delivery("dlv-1", pickup=drone.station).to_json()
    bad = orjson.loads(good)
    bad["destination"]["lat"] = "37.8"
    state = repr(drone)
    for payload in [b"{not json", orjson.dumps({"type": "self_destruct"}), orjson.dumps(bad)]:
        commands.append((topic, payload))
    pub._apply_commands()
    assert (stats.commands, stats.bad_commands) == (0, 3) and repr(drone) == state
    commands.append((topic, good))
    pub._apply_commands()
    assert (stats.commands, stats.bad_commands) == (1, 3) and drone.delivery_id == "dlv-1"


# -- runner config ----------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.0, -1.0, math.inf, math.nan])
def test_time_scale_must_be_positive_and_finite(scale: float) -> None:
    with pytest.raises(ValueError, match="time_scale"):
        SimulatorConfig(time_scale=scale)
