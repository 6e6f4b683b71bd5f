"""The simulator's pure half: flights are physically plausible and faults look like faults."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime
from itertools import pairwise
from typing import Any

import orjson
import pytest

from skyhive.domain.geo import bearing_deg, haversine_m
from skyhive.domain.stations import bart_stations
from skyhive.domain.telemetry import InvalidTelemetry, parse_telemetry
from skyhive.simulator.battery import MIN_TAKEOFF_PCT
from skyhive.simulator.drone import Phase, SimDrone, format_ts, make_fleet
from skyhive.simulator.faults import FaultRates, MalformedKind, MessageFaults, malformed_payload
from skyhive.simulator.flight import MAX_ALT_M

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
Reading = dict[str, Any]


def simulate(
    drones: int, seconds: int, dt_s: float = 1.0, seed: int = 7, faults: FaultRates | None = None
) -> dict[str, list[Reading]]:
    """Every drone's readings over ``seconds``, one reading per ``dt_s``."""
    rng = random.Random(seed)
    fleet = make_fleet(drones, T0_MS, rng, faults=faults)
    out: dict[str, list[Reading]] = {d.drone_id: [] for d in fleet}
    for k in range(1, int(seconds / dt_s) + 1):
        now_ms = T0_MS + round(k * dt_s * 1000)
        for d in fleet:
            d.step(now_ms, dt_s, rng)
            out[d.drone_id].append(d.reading(now_ms))
    return out


@pytest.fixture(scope="module")
def flights() -> dict[str, list[Reading]]:
    return simulate(drones=20, seconds=3600)


def consecutive(
    flights: dict[str, list[Reading]], *statuses: str
) -> Iterator[tuple[Reading, Reading]]:
    """Pairs of consecutive readings of one drone where both have one of ``statuses``."""
    for readings in flights.values():
        for a, b in pairwise(readings):
            if a["status"] in statuses and b["status"] in statuses:
                yield a, b


def transitions(flights: dict[str, list[Reading]], before: str, after: str) -> list[Reading]:
    """Readings where a drone's status just changed from ``before`` to ``after``."""
    return [
        b
        for readings in flights.values()
        for a, b in pairwise(readings)
        if a["status"] == before and b["status"] == after
    ]


def seconds_between(a: Reading, b: Reading) -> float:
    return (datetime.fromisoformat(b["ts"]) - datetime.fromisoformat(a["ts"])).total_seconds()


def distance_to_nearest_station_m(r: Reading) -> float:
    return min(haversine_m(r["lat"], r["lon"], s.lat, s.lon) for s in bart_stations())


def angle_diff(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


# -- normal operation -------------------------------------------------------------------------


def test_every_reading_passes_the_v1_parser(flights: dict[str, list[Reading]]) -> None:
    for drone_id, readings in flights.items():
        for r in readings:
            t = parse_telemetry(orjson.dumps(r), topic_drone_id=drone_id)
            assert t.drone_id == drone_id and not t.is_emergency


def test_fleet_cycles_through_idle_charging_and_flight(flights: dict[str, list[Reading]]) -> None:
    seen = {r["status"] for readings in flights.values() for r in readings}
    assert seen == {"idle", "charging", "in_flight"}


def test_drones_start_spread_across_stations() -> None:
    fleet = make_fleet(100, T0_MS, random.Random(1))
    assert len({d.station.code for d in fleet}) == len(bart_stations())
    assert len({d.drone_id for d in fleet}) == 100


def test_seq_strictly_increases_per_drone(flights: dict[str, list[Reading]]) -> None:
    for readings in flights.values():
        seqs = [r["seq"] for r in readings]
        assert all(b == a + 1 for a, b in pairwise(seqs))
        assert seqs[0] >= T0_MS  # seeded from the clock: a restart never reuses a seq


def test_ground_speed_is_plausible(flights: dict[str, list[Reading]]) -> None:
    speeds = [
        haversine_m(a["lat"], a["lon"], b["lat"], b["lon"]) / seconds_between(a, b)
        for a, b in consecutive(flights, "in_flight")
    ]
    assert len(speeds) > 1000
    assert max(speeds) <= 25.0
    assert 12.0 <= max(speeds) <= 18.0 + 0.5  # cruising, not crawling


def test_reported_speed_matches_movement_in_cruise(flights: dict[str, list[Reading]]) -> None:
    checked = 0
    for a, b in consecutive(flights, "in_flight"):
        level = a["alt_m"] == b["alt_m"] > 0.0 and a["speed_mps"] == b["speed_mps"]
        if level:  # a whole step of cruise
            moved = haversine_m(a["lat"], a["lon"], b["lat"], b["lon"]) / seconds_between(a, b)
            assert moved == pytest.approx(b["speed_mps"], abs=0.05)
            checked += 1
    assert checked > 1000


def test_altitude_stays_under_the_legal_ceiling(flights: dict[str, list[Reading]]) -> None:
    alts = [r["alt_m"] for readings in flights.values() for r in readings]
    assert max(alts) <= MAX_ALT_M
    assert max(alts) >= 60.0  # drones do reach cruise altitude
    assert min(alts) == 0.0


def test_heading_is_the_bearing_of_movement(flights: dict[str, list[Reading]]) -> None:
    checked = 0
    for a, b in consecutive(flights, "in_flight"):
        if haversine_m(a["lat"], a["lon"], b["lat"], b["lon"]) > 5.0:
            moved = bearing_deg(a["lat"], a["lon"], b["lat"], b["lon"])
            assert angle_diff(b["heading_deg"], moved) < 1.0
            checked += 1
    assert checked > 1000


def test_battery_drains_in_flight(flights: dict[str, list[Reading]]) -> None:
    pairs = list(consecutive(flights, "in_flight"))
    assert pairs
    assert all(b["battery_pct"] < a["battery_pct"] for a, b in pairs)


def test_battery_rises_while_charging(flights: dict[str, list[Reading]]) -> None:
    pairs = list(consecutive(flights, "charging"))
    assert pairs
    assert all(b["battery_pct"] > a["battery_pct"] for a, b in pairs if a["battery_pct"] < 100.0)


def test_battery_stays_in_range_and_never_runs_low(flights: dict[str, list[Reading]]) -> None:
    levels = [r["battery_pct"] for readings in flights.values() for r in readings]
    assert max(levels) <= 100.0
    assert min(levels) >= 20.0


def test_a_low_drone_only_picks_legs_it_can_finish() -> None:
    rng = random.Random(11)
    fleet = make_fleet(50, T0_MS, rng)
    for d in fleet:
        d.battery.pct = MIN_TAKEOFF_PCT + 5.0  # enough for short legs only
    lowest, flew = 100.0, 0
    for k in range(1, 1801):
        for d in fleet:
            d.step(T0_MS + k * 1000, 1.0, rng)
            lowest = min(lowest, d.battery.pct)
            flew += d.status == "in_flight"
    assert flew > 0
    assert lowest >= 20.0  # landed with a reserve, never near flat


def test_takes_off_only_with_enough_battery(flights: dict[str, list[Reading]]) -> None:
    takeoffs = transitions(flights, "idle", "in_flight")
    assert takeoffs
    assert all(r["battery_pct"] >= MIN_TAKEOFF_PCT for r in takeoffs)
    assert all(r["delivery_id"] and r["payload_kg"] > 0 for r in takeoffs)


def test_charges_to_nearly_full_before_the_next_leg(flights: dict[str, list[Reading]]) -> None:
    charged = transitions(flights, "charging", "idle")
    assert charged
    assert all(r["battery_pct"] >= 95.0 for r in charged)


def test_legs_end_on_the_ground_at_a_station(flights: dict[str, list[Reading]]) -> None:
    landings = transitions(flights, "in_flight", "charging")
    assert len(landings) >= 20
    for r in landings:
        assert r["alt_m"] == 0.0 and r["speed_mps"] == 0.0 and "delivery_id" not in r
        assert distance_to_nearest_station_m(r) <= 30.0


def test_legs_are_a_few_km_long(flights: dict[str, list[Reading]]) -> None:
    hops_m = [
        haversine_m(a["lat"], a["lon"], b["lat"], b["lon"])
        for readings in flights.values()
        for a, b in pairwise(r for r in readings if r["status"] in ("idle", "charging"))
    ]
    legs_m = [h for h in hops_m if h >= 1.0]  # the rest are readings on the same pad
    assert len(legs_m) >= 20
    assert all(2_000.0 - 30.0 <= h <= 12_000.0 + 30.0 for h in legs_m)


def test_long_steps_still_land_on_a_pad() -> None:
    """A step may span climb, cruise and descent; the drone must not overshoot any of them."""
    coarse = simulate(drones=10, seconds=3 * 3600, dt_s=60.0)
    landings = transitions(coarse, "in_flight", "charging")
    assert landings
    assert all(distance_to_nearest_station_m(r) <= 30.0 for r in landings)
    assert max(r["alt_m"] for rs in coarse.values() for r in rs) <= MAX_ALT_M


def test_same_seed_same_flights() -> None:
    assert simulate(drones=3, seconds=600) == simulate(drones=3, seconds=600)
    assert simulate(drones=3, seconds=600) != simulate(drones=3, seconds=600, seed=8)


def test_timestamps_are_rfc3339_utc_with_milliseconds() -> None:
    assert format_ts(T0_MS + 5) == "2026-01-01T00:00:00.005Z"
    assert format_ts(T0_MS + 61_999) == "2026-01-01T00:01:01.999Z"


# -- state faults ------------------------------------------------------------------------------


def airborne_drone(rng: random.Random) -> tuple[SimDrone, int]:
    """A drone that has just reached cruise, and the time in ms it got there."""
    drone = make_fleet(1, T0_MS, rng)[0]
    now_ms = T0_MS
    while drone.phase is not Phase.CRUISE:
        now_ms += 1000
        drone.step(now_ms, 1.0, rng)
    return drone, now_ms


def test_emergency_fault_hovers_in_place_with_emergency_status() -> None:
    rng = random.Random(3)
    drone, now_ms = airborne_drone(rng)
    drone.faults = FaultRates(emergency=1.0)
    readings = []
    for _ in range(10):
        now_ms += 1000
        drone.step(now_ms, 1.0, rng)
        readings.append(drone.reading(now_ms))
    parsed = [parse_telemetry(orjson.dumps(r)) for r in readings]
    assert all(t.status == "emergency" and t.emergency and t.is_emergency for t in parsed)
    assert len({(t.lat, t.lon, t.alt_m) for t in parsed}) == 1  # hovering
    assert all(t.speed_mps == 0.0 for t in parsed)
    assert parsed[0].alt_m is not None and parsed[0].alt_m > 0.0
    assert drone.emergencies_started == 1


def test_emergency_clears_and_the_flight_resumes() -> None:
    rng = random.Random(3)
    drone, now_ms = airborne_drone(rng)
    drone.faults = FaultRates(emergency=1.0)
    drone.step(now_ms + 1000, 1.0, rng)
    drone.faults = FaultRates()
    statuses = []
    for k in range(2, 120):
        drone.step(now_ms + k * 1000, 1.0, rng)
        statuses.append(drone.reading(now_ms + k * 1000)["status"])
    assert statuses[0] == "emergency" and statuses[-1] == "in_flight"


def test_battery_drain_fault_drains_much_faster() -> None:
    normal = simulate(drones=10, seconds=300)
    drained = simulate(drones=10, seconds=300, faults=FaultRates(battery_drain=1.0))
    for drone_id in normal:
        normal_used = normal[drone_id][0]["battery_pct"] - normal[drone_id][-1]["battery_pct"]
        drained_used = drained[drone_id][0]["battery_pct"] - drained[drone_id][-1]["battery_pct"]
        assert (
            drained_used >= max(normal_used, 0.0) + 40.0
            or drained[drone_id][-1]["battery_pct"] == 0.0
        )
    assert all(0.0 <= r["battery_pct"] <= 100.0 for rs in drained.values() for r in rs)


def test_low_battery_in_the_air_diverts_to_the_nearest_station() -> None:
    rng = random.Random(5)
    drone, now_ms = airborne_drone(rng)
    drone.faults = FaultRates(battery_drain=1.0)
    statuses = set()
    for _ in range(3600):
        now_ms += 1000
        drone.step(now_ms, 1.0, rng)
        reading = drone.reading(now_ms)
        parse_telemetry(orjson.dumps(reading))
        statuses.add(reading["status"])
        if reading["status"] == "charging":
            break
    assert "returning" in statuses
    assert reading["status"] == "charging" and distance_to_nearest_station_m(reading) <= 30.0


# -- message faults ----------------------------------------------------------------------------


def a_reading(seq: int = 1) -> Reading:
    drone = make_fleet(1, T0_MS, random.Random(1))[0]
    drone.seq = seq
    return drone.reading(T0_MS + seq)


def test_no_faults_means_one_faithful_payload_and_no_randomness() -> None:
    faults, rng = MessageFaults(FaultRates()), random.Random(1)
    state = rng.getstate()
    reading = a_reading()
    assert faults.emit("drone-0001", reading, rng) == [orjson.dumps(reading)]
    assert rng.getstate() == state


def test_duplicate_fault_sends_the_same_payload_twice() -> None:
    faults = MessageFaults(FaultRates(duplicate=1.0))
    payloads = faults.emit("drone-0001", a_reading(), random.Random(1))
    assert len(payloads) == 2 and payloads[0] == payloads[1]
    assert faults.counts.duplicates == 1


def test_out_of_order_fault_swaps_consecutive_readings() -> None:
    faults, rng = MessageFaults(FaultRates(out_of_order=1.0)), random.Random(1)
    sent = [p for seq in range(1, 6) for p in faults.emit("drone-0001", a_reading(seq), rng)]
    sent += [p for _, p in faults.flush()]
    assert [orjson.loads(p)["seq"] for p in sent] == [2, 1, 4, 3, 5]
    assert faults.counts.out_of_order == 3
    assert faults.flush() == []


def test_malformed_fault_rotates_through_every_kind_and_all_fail_parsing() -> None:
    faults, rng = MessageFaults(FaultRates(malformed=1.0)), random.Random(1)
    reasons = []
    for seq in range(1, len(MalformedKind) + 1):
        (payload,) = faults.emit("drone-0001", a_reading(seq), rng)
        with pytest.raises(InvalidTelemetry) as exc:
            parse_telemetry(payload, topic_drone_id="drone-0001")
        reasons.append(exc.value.reason)
    assert len(set(reasons)) == len(MalformedKind)
    assert faults.counts.malformed == len(MalformedKind)


@pytest.mark.parametrize(
    ("kind", "reason_part"),
    [
        (MalformedKind.NOT_JSON, "not JSON"),
        (MalformedKind.MISSING_BATTERY, "battery_pct"),
        (MalformedKind.LAT_OUT_OF_RANGE, "lat"),
        (MalformedKind.BATTERY_OUT_OF_RANGE, "battery_pct"),
        (MalformedKind.WRONG_TYPE, "lat"),
    ],
)
def test_each_malformed_kind_is_rejected_for_its_reason(
    kind: MalformedKind, reason_part: str
) -> None:
    reading = a_reading()
    parse_telemetry(orjson.dumps(reading))  # the original is fine
    with pytest.raises(InvalidTelemetry) as exc:
        parse_telemetry(malformed_payload(reading, kind))
    assert reason_part in exc.value.reason


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan")])
def test_fault_rates_outside_zero_to_one_are_rejected(rate: float) -> None:
    with pytest.raises(ValueError, match="duplicate"):
        FaultRates(duplicate=rate)
