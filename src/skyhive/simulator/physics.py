"""Pure drone physics: one state machine per drone, driven by time the caller passes in.

Nothing here reads a clock or touches the network, so a seeded ``random.Random`` makes every
flight reproducible in unit tests; the runner owns wall-clock time and MQTT.

A drone's life: docked (idle) at a BART station, charging when low, then a leg to a station
2-12 km away (vertical climb, great-circle cruise, vertical descent onto a pad), then charging
again. Legs are only chosen when the battery covers them with a landing reserve, so in normal
operation a drone never runs flat; injected faults (emergency hover, fast drain) break that on
purpose, and a drone that gets low in the air diverts to the nearest station ("returning").
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache, lru_cache

from skyhive.domain.geo import bearing_deg, destination_point, haversine_m
from skyhive.domain.stations import Station, bart_stations
from skyhive.simulator.faults import FaultRates, Reading

MAX_ALT_M = 120.0  # legal ceiling for small drones (FAA Part 107: 400 ft)
CRUISE_ALT_M = (60.0, 110.0)
CRUISE_SPEED_MPS = (12.0, 18.0)
CLIMB_RATE_MPS = 3.0
DESCENT_RATE_MPS = 2.0
LEG_DISTANCE_M = (2_000.0, 12_000.0)
PAD_OFFSET_MAX_M = 12.0  # stations have several pads around the station's coordinates
DRAIN_PER_KM_PCT = (1.2, 2.0)  # varies per airframe
HOVER_DRAIN_PCT_PER_S = 0.015  # spent while airborne whatever the distance flown
CHARGE_RATE_PCT_PER_S = (0.08, 0.15)  # roughly 7-14 minutes from 35 % to full
CHARGE_TAPER_ABOVE_PCT = 80.0  # constant-voltage phase: charging slows near full
CHARGE_TAPER_FACTOR = 0.5
CHARGE_TARGET_PCT = (95.0, 100.0)
MIN_TAKEOFF_PCT = 35.0
LANDING_RESERVE_PCT = 25.0  # a leg is affordable only if this much is left on landing
LOW_BATTERY_PCT = 15.0  # airborne below this (faults only): divert to the nearest station
DWELL_S = (20.0, 180.0)
INITIAL_DWELL_S = (0.0, 60.0)  # short, so a fresh fleet starts flying within a minute
INITIAL_BATTERY_PCT = (45.0, 100.0)
PAYLOAD_KG = (0.5, 2.5)
EMERGENCY_S = (15.0, 60.0)
FAULT_DRAIN_S = (60.0, 180.0)
FAULT_DRAIN_PCT_PER_S = 0.4  # about ten times the normal in-flight drain


class Phase(StrEnum):
    """Where a drone is in its duty cycle (finer than the telemetry ``status``)."""

    DOCKED = "docked"
    CHARGING = "charging"
    CLIMB = "climb"
    CRUISE = "cruise"
    DESCENT = "descent"


_GROUND_STATUS = {Phase.DOCKED: "idle", Phase.CHARGING: "charging"}


@dataclass(slots=True)
class SimDrone:
    """One simulated drone. ``station`` is where it is docked, or where it is flying to."""

    drone_id: str
    station: Station
    lat: float
    lon: float
    battery_pct: float
    seq: int
    faults: FaultRates
    drain_per_km_pct: float
    charge_rate_pct_per_s: float
    phase: Phase = Phase.DOCKED
    phase_until_ms: int = 0  # end of the dwell on the pad
    alt_m: float = 0.0
    speed_mps: float = 0.0
    heading_deg: float = 0.0
    target_lat: float = 0.0
    target_lon: float = 0.0
    cruise_alt_m: float = 0.0
    cruise_speed_mps: float = 0.0
    charge_target_pct: float = 100.0
    returning: bool = False
    delivery_id: str | None = None
    payload_kg: float | None = None
    emergency_until_ms: int | None = None
    drain_until_ms: int | None = None
    emergencies_started: int = 0

    @property
    def status(self) -> str:
        """The telemetry ``status`` for the current state."""
        if self.emergency_until_ms is not None:
            return "emergency"
        if self.phase in _GROUND_STATUS:
            return _GROUND_STATUS[self.phase]
        return "returning" if self.returning else "in_flight"

    @property
    def airborne(self) -> bool:
        return self.phase in (Phase.CLIMB, Phase.CRUISE, Phase.DESCENT)

    def step(self, now_ms: int, dt_s: float, rng: random.Random) -> None:
        """Advance by ``dt_s`` seconds up to ``now_ms``; called once per published reading."""
        self._roll_faults(now_ms, rng)
        self._apply_fault_drain(now_ms, dt_s)
        if self._in_emergency(now_ms):
            self._hold(dt_s)
            return
        remaining = max(dt_s, 0.0)
        while True:  # a long step can span several flight phases
            remaining = self._advance(now_ms, remaining, rng)
            if remaining <= 0.0:
                return

    def reading(self, now_ms: int) -> Reading:
        """The telemetry v1 message for the current state; consumes the next ``seq``."""
        seq = self.seq
        self.seq += 1
        msg: Reading = {
            "drone_id": self.drone_id,
            "seq": seq,
            "ts": format_ts(now_ms),
            "lat": round(self.lat, 7),
            "lon": round(self.lon, 7),
            "alt_m": round(self.alt_m, 1),
            "speed_mps": round(self.speed_mps, 2),
            "heading_deg": round(self.heading_deg, 1) % 360.0,
            "battery_pct": round(self.battery_pct, 2),
            "status": self.status,
            "emergency": self.emergency_until_ms is not None,
        }
        if self.delivery_id is not None:
            msg["delivery_id"] = self.delivery_id
            msg["payload_kg"] = self.payload_kg
        return msg

    # -- faults ----------------------------------------------------------------------------

    def _roll_faults(self, now_ms: int, rng: random.Random) -> None:
        rates = self.faults
        if self.emergency_until_ms is None and rates.emergency and rng.random() < rates.emergency:
            self.emergency_until_ms = now_ms + _ms(rng.uniform(*EMERGENCY_S))
            self.emergencies_started += 1
        if (
            self.drain_until_ms is None
            and rates.battery_drain
            and rng.random() < rates.battery_drain
        ):
            self.drain_until_ms = now_ms + _ms(rng.uniform(*FAULT_DRAIN_S))

    def _apply_fault_drain(self, now_ms: int, dt_s: float) -> None:
        if self.drain_until_ms is None:
            return
        if now_ms >= self.drain_until_ms:
            self.drain_until_ms = None
            return
        self.battery_pct = max(0.0, self.battery_pct - FAULT_DRAIN_PCT_PER_S * dt_s)

    def _in_emergency(self, now_ms: int) -> bool:
        if self.emergency_until_ms is not None and now_ms >= self.emergency_until_ms:
            self.emergency_until_ms = None
        return self.emergency_until_ms is not None

    def _hold(self, dt_s: float) -> None:
        """Emergency: stop where it is (hovering if airborne) until the emergency clears."""
        self.speed_mps = 0.0
        if self.airborne:
            self._drain(dt_s, 0.0)

    # -- duty cycle ------------------------------------------------------------------------

    def _advance(self, now_ms: int, dt_s: float, rng: random.Random) -> float:
        """Run the current phase for up to ``dt_s``; return the time left when it ended early."""
        if self.phase is Phase.DOCKED:
            if now_ms >= self.phase_until_ms:
                self._plan_next(now_ms, rng)
            return 0.0
        if self.phase is Phase.CHARGING:
            self._charge(now_ms, dt_s, rng)
            return 0.0
        if self.phase is Phase.CLIMB:
            return self._climb(dt_s)
        if self.phase is Phase.CRUISE:
            return self._cruise(dt_s)
        return self._descend(now_ms, dt_s, rng)

    def _plan_next(self, now_ms: int, rng: random.Random) -> None:
        """Fly an affordable leg, or charge first when low or when nothing is in reach."""
        if self.battery_pct < MIN_TAKEOFF_PCT:
            self._start_charging(rng)
            return
        alt = rng.uniform(*CRUISE_ALT_M)
        speed = rng.uniform(*CRUISE_SPEED_MPS)
        dest = self._choose_destination(alt, speed, rng)
        if dest is None:
            self._start_charging(rng)
        else:
            self._take_off(dest, alt, speed, now_ms, rng)

    def _choose_destination(self, alt: float, speed: float, rng: random.Random) -> Station | None:
        budget = self.battery_pct - LANDING_RESERVE_PCT
        reachable = [
            s for s, d in _legs_from(self.station) if self._leg_cost(d, alt, speed) <= budget
        ]
        return rng.choice(reachable) if reachable else None

    def _leg_cost(self, distance_m: float, alt: float, speed: float) -> float:
        """Battery percent a whole leg uses: distance drain plus airborne time drain."""
        airborne_s = alt / CLIMB_RATE_MPS + distance_m / speed + alt / DESCENT_RATE_MPS
        return self.drain_per_km_pct * distance_m / 1000.0 + HOVER_DRAIN_PCT_PER_S * airborne_s

    def _take_off(
        self, dest: Station, alt: float, speed: float, now_ms: int, rng: random.Random
    ) -> None:
        self.station = dest
        self.target_lat, self.target_lon = pad_position(dest, rng)
        self.heading_deg = bearing_deg(self.lat, self.lon, self.target_lat, self.target_lon)
        self.cruise_alt_m = alt
        self.cruise_speed_mps = speed
        self.delivery_id = f"{self.drone_id}-{now_ms}"
        self.payload_kg = round(rng.uniform(*PAYLOAD_KG), 1)
        self.phase = Phase.CLIMB

    def _climb(self, dt_s: float) -> float:
        to_top_s = max(self.cruise_alt_m - self.alt_m, 0.0) / CLIMB_RATE_MPS
        self.speed_mps = CLIMB_RATE_MPS
        if dt_s < to_top_s:
            self.alt_m += CLIMB_RATE_MPS * dt_s
            self._drain(dt_s, 0.0)
            self._divert_if_low()
            return 0.0
        self.alt_m = self.cruise_alt_m
        self._drain(to_top_s, 0.0)
        self.phase = Phase.CRUISE
        return dt_s - to_top_s

    def _cruise(self, dt_s: float) -> float:
        speed = self.cruise_speed_mps
        self.speed_mps = speed
        left_m = haversine_m(self.lat, self.lon, self.target_lat, self.target_lon)
        if speed * dt_s < left_m:
            course = bearing_deg(self.lat, self.lon, self.target_lat, self.target_lon)
            self.lat, self.lon = destination_point(self.lat, self.lon, course, speed * dt_s)
            self.heading_deg = bearing_deg(self.lat, self.lon, self.target_lat, self.target_lon)
            self._drain(dt_s, speed * dt_s)
            self._divert_if_low()
            return 0.0
        self.lat, self.lon = self.target_lat, self.target_lon
        self._drain(left_m / speed, left_m)
        self.phase = Phase.DESCENT
        return dt_s - left_m / speed

    def _descend(self, now_ms: int, dt_s: float, rng: random.Random) -> float:
        to_ground_s = self.alt_m / DESCENT_RATE_MPS
        self.speed_mps = DESCENT_RATE_MPS
        if dt_s < to_ground_s:
            self.alt_m -= DESCENT_RATE_MPS * dt_s
            self._drain(dt_s, 0.0)
            return 0.0
        self._drain(to_ground_s, 0.0)
        self._land(rng)
        return 0.0

    def _land(self, rng: random.Random) -> None:
        self.alt_m = 0.0
        self.returning = False
        self.delivery_id = None
        self.payload_kg = None
        self._start_charging(rng)

    def _start_charging(self, rng: random.Random) -> None:
        self.speed_mps = 0.0
        self.charge_target_pct = rng.uniform(*CHARGE_TARGET_PCT)
        self.phase = Phase.CHARGING

    def _charge(self, now_ms: int, dt_s: float, rng: random.Random) -> None:
        rate = self.charge_rate_pct_per_s
        if self.battery_pct >= CHARGE_TAPER_ABOVE_PCT:
            rate *= CHARGE_TAPER_FACTOR
        self.battery_pct = min(self.battery_pct + rate * dt_s, 100.0)
        if self.battery_pct >= self.charge_target_pct:
            self.phase = Phase.DOCKED
            self.phase_until_ms = now_ms + _ms(rng.uniform(*DWELL_S))

    def _drain(self, airborne_s: float, distance_m: float) -> None:
        used = HOVER_DRAIN_PCT_PER_S * airborne_s + self.drain_per_km_pct * distance_m / 1000.0
        self.battery_pct = max(0.0, self.battery_pct - used)

    def _divert_if_low(self) -> None:
        """Abandon the leg for the nearest station once the battery is low (faults only)."""
        if self.returning or self.battery_pct >= LOW_BATTERY_PCT:
            return
        nearest = min(bart_stations(), key=lambda s: haversine_m(self.lat, self.lon, s.lat, s.lon))
        self.station = nearest
        self.target_lat, self.target_lon = nearest.lat, nearest.lon
        self.returning = True


def make_fleet(
    count: int,
    now_ms: int,
    rng: random.Random,
    id_prefix: str = "drone",
    faults: FaultRates | None = None,
) -> list[SimDrone]:
    """``count`` drones docked round-robin across the stations.

    ``seq`` starts at ``now_ms`` (epoch ms): a restarted simulator then never reuses a
    ``(drone_id, seq)`` idempotency key of an earlier run.
    """
    stations = bart_stations()
    width = max(4, len(str(count)))
    rates = faults if faults is not None else FaultRates()
    return [
        _new_drone(
            f"{id_prefix}-{i + 1:0{width}d}", stations[i % len(stations)], now_ms, rng, rates
        )
        for i in range(count)
    ]


def _new_drone(
    drone_id: str, station: Station, now_ms: int, rng: random.Random, faults: FaultRates
) -> SimDrone:
    lat, lon = pad_position(station, rng)
    return SimDrone(
        drone_id=drone_id,
        station=station,
        lat=lat,
        lon=lon,
        battery_pct=rng.uniform(*INITIAL_BATTERY_PCT),
        seq=now_ms,
        faults=faults,
        drain_per_km_pct=rng.uniform(*DRAIN_PER_KM_PCT),
        charge_rate_pct_per_s=rng.uniform(*CHARGE_RATE_PCT_PER_S),
        phase_until_ms=now_ms + _ms(rng.uniform(*INITIAL_DWELL_S)),
        heading_deg=rng.uniform(0.0, 360.0),
    )


def pad_position(station: Station, rng: random.Random) -> tuple[float, float]:
    """A landing pad near ``station``: within ``PAD_OFFSET_MAX_M`` of its coordinates."""
    return destination_point(
        station.lat, station.lon, rng.uniform(0.0, 360.0), rng.uniform(0.0, PAD_OFFSET_MAX_M)
    )


@cache
def _legs_from(origin: Station) -> tuple[tuple[Station, float], ...]:
    """Candidate destinations with distances: 2-12 km away, else the nearest other station."""
    others = [
        (s, haversine_m(origin.lat, origin.lon, s.lat, s.lon))
        for s in bart_stations()
        if s.code != origin.code
    ]
    in_range = tuple((s, d) for s, d in others if LEG_DISTANCE_M[0] <= d <= LEG_DISTANCE_M[1])
    return in_range or (min(others, key=lambda sd: sd[1]),)


def format_ts(now_ms: int) -> str:
    """RFC 3339 UTC with millisecond precision, e.g. ``2025-01-02T03:04:05.678Z``."""
    seconds, millis = divmod(now_ms, 1000)
    return f"{_ts_seconds(seconds)}.{millis:03d}Z"


@lru_cache(maxsize=16)
def _ts_seconds(epoch_s: int) -> str:
    """Cached: every reading published within the same second shares this prefix."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _ms(seconds: float) -> int:
    return round(seconds * 1000.0)
