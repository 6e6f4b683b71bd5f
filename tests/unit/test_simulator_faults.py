"""The simulator's drone faults for the alert rules: each one looks like the real thing, trips
its rule (run here on the readings, as the processor would), and is counted; ``fault_once``
makes a drone have one right after it takes off. Pure: no servers."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import fields
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import orjson
import pytest

from skyhive.cli.simulation import simulate
from skyhive.domain.alert_config import Thresholds
from skyhive.domain.alert_rules import Context, Memory, evaluate
from skyhive.domain.commands import DeliverCommand, Point, StationRef
from skyhive.domain.geo import destination_point, haversine_m
from skyhive.domain.telemetry import parse_telemetry
from skyhive.simulator.drone import (
    CELL_FAILURE_PCT,
    EXCURSION_ABOVE_S,
    EXCURSION_ALT_M,
    GPS_JUMP_M,
    GUST_S,
    GUST_SPEED_MPS,
    Phase,
    SimDrone,
    make_fleet,
)
from skyhive.simulator.faults import FaultKind, FaultRates
from skyhive.simulator.flight import MAX_ALT_M
from skyhive.simulator.runner import SimStats, SimulatorConfig, _Publisher

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
Reading = dict[str, Any]
NEW_KINDS = ("gps_jump", "overspeed", "altitude", "battery_drop", "offline")
RULE_TYPES = ("gps_jump", "overspeed", "altitude", "battery_drop")


class Flight:
    """One drone flown step by step, one reading a step, like the runner does."""

    def __init__(self, drone: SimDrone, rng: random.Random, now_ms: int = T0_MS) -> None:
        self.drone, self.rng, self.now_ms = drone, rng, now_ms
        self.readings: list[Reading] = []  # the ones published (none during an outage)
        self.events: list[dict[str, Any]] = []

    def fly(self, seconds: float, dt_s: float = 1.0) -> list[Reading]:
        out = []
        for _ in range(round(seconds / dt_s)):
            self.now_ms += round(dt_s * 1000)
            self.events += self.drone.step(self.now_ms, dt_s, self.rng)
            reading = self.drone.reading(self.now_ms)
            if not self.drone.is_silent(self.now_ms):
                out.append(reading)
        self.readings += out
        return out

    def until(self, phase: Phase, limit_s: float = 600.0) -> None:
        for _ in range(round(limit_s)):
            if self.drone.phase is phase:
                return
            self.fly(1.0)
        raise AssertionError(f"never reached {phase}")


def cruising(seed: int = 3) -> Flight:
    """A drone that has just reached cruise altitude on an autonomous leg."""
    rng = random.Random(seed)
    flight = Flight(make_fleet(1, T0_MS, rng)[0], rng)
    flight.until(Phase.CRUISE)
    return flight


def docked(seed: int = 3) -> Flight:
    """A drone on its pad that stays there (no autonomous legs)."""
    rng = random.Random(seed)
    return Flight(make_fleet(1, T0_MS, rng, autonomous_legs=False)[0], rng)


def raised(readings: list[Reading]) -> dict[str, list[int]]:
    """Alert type → indices of the readings the alert rules flag for it (default thresholds)."""
    ctx, mem = Context(Thresholds()), Memory()
    out: dict[str, list[int]] = {}
    for i, r in enumerate(readings):
        t = parse_telemetry(orjson.dumps(r))
        for finding in evaluate(t, ctx, mem):
            if finding.severity is not None:
                out.setdefault(finding.type, []).append(i)
    return out


def seconds_between(a: Reading, b: Reading) -> float:
    return (datetime.fromisoformat(b["ts"]) - datetime.fromisoformat(a["ts"])).total_seconds()


# -- without faults ---------------------------------------------------------------------------


def test_fault_free_flights_raise_none_of_these_alerts() -> None:
    rng = random.Random(11)
    fleet = make_fleet(8, T0_MS, rng)
    flights = [Flight(d, rng) for d in fleet]
    for _ in range(1800):
        for f in flights:
            f.fly(1.0)
    assert {r["status"] for f in flights for r in f.readings} >= {"idle", "charging", "in_flight"}
    for f in flights:
        found = raised(f.readings)
        assert not {t: found[t] for t in RULE_TYPES if t in found}, f.drone.drone_id
        assert not f.drone.faults_started


def test_zero_rates_draw_no_random_numbers() -> None:
    """Adding faults must not change a seeded fleet that uses none of them."""
    flight = cruising()
    state = flight.rng.getstate()
    flight.drone.faults = FaultRates()
    flight.fly(5.0)
    assert flight.rng.getstate() == state


@pytest.mark.parametrize("name", NEW_KINDS)
def test_new_rates_outside_zero_to_one_are_rejected(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        FaultRates(**{name: 1.5})


def test_every_drone_fault_has_a_rate_and_every_rate_a_cli_flag() -> None:
    rates = {f.name for f in fields(FaultRates)}
    assert {k.value for k in FaultKind} <= rates
    options = {p.name for p in simulate.params}
    assert {f"{name}_rate" for name in rates} <= options
    assert "offline_s" in options
    once = next(p for p in simulate.params if p.name == "fault_once")
    assert set(once.type.choices) == {k.value for k in FaultKind}  # type: ignore[attr-defined]


# -- gps_jump ---------------------------------------------------------------------------------


def test_gps_jump_puts_one_reading_kilometres_off_and_the_drone_stays_on_course() -> None:
    flight = cruising()
    drone = flight.drone
    (before,) = flight.fly(1.0)
    drone.faults = FaultRates(gps_jump=1.0)
    (jumped,) = flight.fly(1.0)
    true_lat, true_lon = drone.motion.lat, drone.motion.lon
    drone.faults = FaultRates()
    after = flight.fly(3.0)

    off_m = haversine_m(jumped["lat"], jumped["lon"], true_lat, true_lon)
    assert GPS_JUMP_M[0] - 1.0 <= off_m <= GPS_JUMP_M[1] + 1.0
    step_m = haversine_m(before["lat"], before["lon"], after[0]["lat"], after[0]["lon"])
    assert step_m <= 2 * drone.cruise_speed_mps + 1.0  # two seconds of cruise: never moved
    assert jumped["alt_m"] == before["alt_m"] and jumped["speed_mps"] == before["speed_mps"]
    assert drone.faults_started[FaultKind.GPS_JUMP] == 1
    found = raised([before, jumped, *after])
    # the jumped reading only: the way back is judged against the last trusted position
    assert found["gps_jump"] == [1]


def test_gps_jump_happens_docked_too() -> None:
    flight = docked()
    flight.drone.faults = FaultRates(gps_jump=1.0)
    readings = flight.fly(3.0)
    assert flight.drone.faults_started[FaultKind.GPS_JUMP] == 3  # one glitch per reading
    assert all(r["status"] in ("idle", "charging") for r in readings)
    assert "gps_jump" in raised(readings)


# -- overspeed --------------------------------------------------------------------------------


def test_overspeed_gust_lasts_seconds_and_covers_ground_that_fast() -> None:
    flight = cruising()
    drone = flight.drone
    alt = drone.motion.alt_m
    drone.faults = FaultRates(overspeed=1.0)
    flight.fly(1.0)
    drone.faults = FaultRates()
    readings = flight.readings[-1:] + flight.fly(20.0)

    fast = [r for r in readings if r["speed_mps"] > 30.0]
    assert GUST_S[0] - 1 <= len(fast) <= GUST_S[1] + 1
    assert all(GUST_SPEED_MPS[0] <= r["speed_mps"] <= GUST_SPEED_MPS[1] for r in fast)
    assert readings[-1]["speed_mps"] == drone.cruise_speed_mps  # back to cruise speed
    for a, b in pairwise(readings):
        moved = haversine_m(a["lat"], a["lon"], b["lat"], b["lon"]) / seconds_between(a, b)
        assert moved == pytest.approx(b["speed_mps"], abs=0.5)
    assert all(r["alt_m"] == round(alt, 1) for r in readings)
    assert drone.faults_started[FaultKind.OVERSPEED] == 1
    found = raised(readings)
    assert len(found["overspeed"]) == len(fast) and "gps_jump" not in found


def test_overspeed_never_starts_on_the_ground() -> None:
    flight = docked()
    flight.drone.faults = FaultRates(overspeed=1.0, altitude=1.0)
    readings = flight.fly(30.0)
    assert not flight.drone.faults_started
    assert max(r["speed_mps"] for r in readings) == 0.0
    assert max(r["alt_m"] for r in readings) == 0.0


def test_a_gust_while_climbing_blows_the_drone_along_its_course() -> None:
    rng = random.Random(3)
    flight = Flight(make_fleet(1, T0_MS, rng, fault_once=(FaultKind.OVERSPEED,))[0], rng)
    flight.until(Phase.CLIMB)
    start = flight.readings[-1]
    target_m = haversine_m(
        start["lat"], start["lon"], flight.drone.motion.target_lat, flight.drone.motion.target_lon
    )
    (blown,) = flight.fly(1.0)
    assert flight.drone.phase is Phase.CLIMB
    assert blown["speed_mps"] > 30.0
    left_m = haversine_m(
        blown["lat"], blown["lon"], flight.drone.motion.target_lat, flight.drone.motion.target_lon
    )
    assert target_m - left_m == pytest.approx(blown["speed_mps"], abs=0.5)


# -- altitude ---------------------------------------------------------------------------------


def test_altitude_excursion_climbs_above_the_ceiling_for_a_while_then_comes_back() -> None:
    flight = cruising()
    drone = flight.drone
    cruise_alt = round(drone.motion.alt_m, 1)
    drone.faults = FaultRates(altitude=1.0)
    flight.fly(1.0)
    drone.faults = FaultRates()
    readings = flight.fly(120.0)

    peak = max(r["alt_m"] for r in readings)
    assert EXCURSION_ALT_M[0] - 0.1 <= peak <= EXCURSION_ALT_M[1] + 0.1
    above = [i for i, r in enumerate(readings) if r["alt_m"] > MAX_ALT_M]
    assert above == list(range(above[0], above[-1] + 1))  # one excursion
    sink_s = (peak - MAX_ALT_M) / 2.0  # down at the descent rate
    assert EXCURSION_ABOVE_S[0] - 1 <= len(above) <= EXCURSION_ABOVE_S[1] + sink_s + 2
    assert readings[-1]["alt_m"] == cruise_alt and readings[-1]["status"] == "in_flight"
    for a, b in pairwise(readings):  # no teleporting: at most the climb or descent rate
        assert -2.0 - 0.11 <= b["alt_m"] - a["alt_m"] <= 3.0 + 0.11
    assert all(r["speed_mps"] == drone.cruise_speed_mps for r in readings)
    assert drone.faults_started[FaultKind.ALTITUDE] == 1
    found = raised(readings)
    assert found["altitude"] == above


def test_altitude_excursion_ends_when_the_drone_descends() -> None:
    rng = random.Random(3)
    flight = Flight(make_fleet(1, T0_MS, rng, fault_once=(FaultKind.ALTITUDE,))[0], rng)
    flight.until(Phase.CHARGING, limit_s=3600)  # flew the leg, landed
    assert flight.drone.motion.excursion_left_s == 0.0
    assert max(r["alt_m"] for r in flight.readings) > MAX_ALT_M
    flight.until(Phase.CRUISE, limit_s=7200)  # the next leg is normal
    flight.fly(30.0)
    assert flight.readings[-1]["alt_m"] <= MAX_ALT_M


# -- battery_drop -----------------------------------------------------------------------------


def test_cell_failure_drops_the_battery_at_once_and_it_stays_down() -> None:
    flight = cruising()
    drone = flight.drone
    (before,) = flight.fly(1.0)
    drone.faults = FaultRates(battery_drop=1.0)
    (dropped,) = flight.fly(1.0)
    drone.faults = FaultRates()
    after = flight.fly(30.0)

    lost = before["battery_pct"] - dropped["battery_pct"]
    assert CELL_FAILURE_PCT[0] <= lost <= CELL_FAILURE_PCT[1] + 0.1
    levels = [dropped["battery_pct"]] + [r["battery_pct"] for r in after]
    assert all(b <= a for a, b in pairwise(levels))  # no bounce back: not a sensor glitch
    assert dropped["battery_pct"] - after[-1]["battery_pct"] < 2.0  # then drains as before
    assert drone.faults_started[FaultKind.BATTERY_DROP] == 1
    found = raised([before, dropped, *after])
    assert found["battery_drop"][0] == 1


def test_cell_failure_never_goes_below_empty() -> None:
    flight = docked()
    flight.drone.battery.pct = 10.0
    flight.drone.faults = FaultRates(battery_drop=1.0)
    (reading,) = flight.fly(1.0)
    assert reading["battery_pct"] >= 0.0
    parse_telemetry(orjson.dumps(reading))


# -- offline ----------------------------------------------------------------------------------


def test_outage_silences_the_drone_for_offline_s_of_message_time() -> None:
    flight = cruising()
    drone = flight.drone
    drone.offline_s = 12.0
    seq_before = drone.seq
    drone.faults = FaultRates(offline=1.0)
    assert flight.fly(1.0) == []
    started_ms = flight.now_ms
    drone.faults = FaultRates()
    heard = flight.fly(30.0, dt_s=0.5)

    assert drone.faults_started[FaultKind.OFFLINE] == 1
    back_ms = datetime.fromisoformat(heard[0]["ts"]).timestamp() * 1000
    assert back_ms - started_ms == pytest.approx(12_000)  # silent for offline_s exactly
    assert heard[0]["seq"] == seq_before + 1 + 23  # readings were lost, not delayed
    assert heard[0]["status"] == "in_flight"  # it kept flying meanwhile


def test_outage_length_does_not_scale_with_simulated_time() -> None:
    flight = cruising()
    flight.drone.offline_s = 5.0
    flight.drone.start_fault(FaultKind.OFFLINE, flight.now_ms, flight.rng)
    silent = 0
    for _ in range(20):  # 10 simulated seconds per 1 s of message time
        flight.now_ms += 1000
        flight.drone.step(flight.now_ms, 10.0, flight.rng)
        silent += flight.drone.is_silent(flight.now_ms)
    assert silent == 4  # 1-4 s later; heard again 5 s after it began


def test_delivery_events_wait_for_the_link_and_none_are_lost() -> None:
    flight = docked()
    drone = flight.drone
    here = StationRef(station=drone.station.code, lat=drone.motion.lat, lon=drone.motion.lon)
    lat, lon = destination_point(drone.motion.lat, drone.motion.lon, 90.0, 1500.0)
    cmd = DeliverCommand(
        delivery_id="d-1",
        pickup=here,
        destination=Point(lat=lat, lon=lon),
        return_station=here,
        issued_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert drone.command(cmd, flight.now_ms, flight.rng) == []  # loading on the pad
    drone.offline_s = 30.0
    drone.start_fault(FaultKind.OFFLINE, flight.now_ms, flight.rng)
    flight.fly(29.0)
    assert flight.events == [] and flight.readings == []
    assert drone.phase is not Phase.LOADING  # picked up meanwhile
    flight.fly(1.0)
    (event,) = flight.events
    assert event["event"] == "picked_up" and event["delivery_id"] == "d-1"
    picked_ms = datetime.fromisoformat(event["ts"]).timestamp() * 1000
    assert picked_ms < flight.now_ms - 10_000  # stamped when it happened, sent now


# -- fault_once -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(FaultKind))
def test_fault_once_starts_right_after_take_off_exactly_once(kind: FaultKind) -> None:
    rng = random.Random(4)
    fleet = make_fleet(3, T0_MS, rng, fault_once=(kind,), offline_s=5.0)
    flights = [Flight(d, rng) for d in fleet]
    for _ in range(900):
        for f in flights:
            f.fly(1.0)
    for f in flights:
        assert f.drone.faults_started == {kind: 1}, f.drone.drone_id
        assert f.drone.fault_once == ()
        first_up = next(i for i, r in enumerate(f.readings) if r["status"] != "idle")
        assert f.readings[first_up]["status"] == "in_flight"  # the server knows it is flying
        if kind in (FaultKind.GPS_JUMP, FaultKind.BATTERY_DROP, FaultKind.OVERSPEED):
            found = raised(f.readings)
            rule = kind.value
            assert found[rule][0] == first_up + 1, (kind, found)
        if kind is FaultKind.EMERGENCY:
            assert f.readings[first_up + 1]["status"] == "emergency"
        if kind is FaultKind.OFFLINE:
            gap_s = seconds_between(f.readings[first_up], f.readings[first_up + 1])
            assert gap_s >= 5.0


def test_fault_once_waits_while_docked_and_runs_several_in_order() -> None:
    rng = random.Random(4)
    drone = make_fleet(1, T0_MS, rng, autonomous_legs=False)[0]
    drone.fault_once = (FaultKind.BATTERY_DROP, FaultKind.GPS_JUMP)
    battery = drone.battery.pct
    flight = Flight(drone, rng)
    flight.fly(120.0)
    assert not drone.faults_started and drone.battery.pct >= battery
    drone.autonomous = True
    flight.until(Phase.CLIMB, limit_s=3600)
    assert not drone.faults_started  # the take-off reading goes out first
    flight.fly(1.0)
    assert drone.faults_started == {FaultKind.BATTERY_DROP: 1, FaultKind.GPS_JUMP: 1}
    assert not drone.fault_once


def test_emergencies_started_still_counts_emergencies() -> None:
    flight = cruising()
    flight.drone.faults = FaultRates(emergency=1.0)
    flight.fly(3.0)
    assert flight.drone.emergencies_started == 1 == flight.drone.faults_started[FaultKind.EMERGENCY]


# -- the runner -------------------------------------------------------------------------------


class FakeClient:
    """Stands in for the paho client: records publishes."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: bytes, qos: int) -> Any:
        self.published.append((topic, payload))
        return type("Info", (), {"rc": 0})()


def test_runner_publishes_nothing_during_an_outage_and_counts_faults() -> None:
    config = SimulatorConfig(drones=2, seed=1)
    client, stats = FakeClient(), SimStats()
    commands: deque[tuple[str, bytes]] = deque()
    pub = _Publisher(config, client, stats, commands)  # type: ignore[arg-type]
    silent, loud = pub.fleet
    silent.start_fault(FaultKind.OFFLINE, T0_MS, pub.rng)
    silent.offline_until_ms = 2**62  # for the whole test, whatever the clock says
    loud.start_fault(FaultKind.BATTERY_DROP, T0_MS, pub.rng)
    cmd = orjson.dumps({"type": "return_to_station"})
    commands.append((f"skyhive/drones/{silent.drone_id}/commands", cmd))
    pub._apply_commands()
    pub._publish_slots(0, 10)

    topics = {t for t, _ in client.published}
    assert topics == {f"skyhive/drones/{loud.drone_id}/telemetry"}
    assert stats.silent == 5 and stats.published == 5
    assert list(commands) == [(f"skyhive/drones/{silent.drone_id}/commands", cmd)]  # waits
    assert stats.commands == stats.bad_commands == 0
    snap = pub._snapshot(1.0)
    assert snap["outages"] == 1 and snap["battery_drops"] == 1 and snap["gps_jumps"] == 0


@pytest.mark.parametrize(
    "kwargs",
    [{"offline_s": 0.0}, {"offline_s": float("inf")}, {"fault_once": ("gps_jump",)}],
)
def test_simulator_config_rejects_bad_fault_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SimulatorConfig(**kwargs)


def test_gusts_and_excursions_cannot_be_started_on_the_ground() -> None:
    flight = docked()
    flight.drone.start_fault(FaultKind.OVERSPEED, flight.now_ms, flight.rng)
    flight.drone.start_fault(FaultKind.ALTITUDE, flight.now_ms, flight.rng)
    assert not flight.drone.faults_started
    assert flight.drone.motion.gust_left_s == flight.drone.motion.excursion_left_s == 0.0
