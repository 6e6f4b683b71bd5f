"""A simulated drone's state machine, driven by time the caller passes in.

Nothing here reads a clock or touches the network, so a seeded ``random.Random`` makes every
flight reproducible in unit tests; the runner owns wall-clock time and MQTT. Durations are
counted in the ``dt_s`` given to :meth:`SimDrone.step` and ``now_ms`` only stamps messages, so
the runner can run simulated time faster than the wall clock. How it moves is in
``flight.py``, what that costs and charging in ``battery.py``.

A drone's life: docked (idle) at a BART station, charging when low, then a flight, then
charging again. Left to itself (``autonomous``) it flies a leg to a station 2-12 km away
(vertical climb, great-circle cruise, vertical descent onto a pad). Commanded, it flies a
delivery mission: to the pickup station, land and load, to the destination, hover low to
drop, then back to the return station. Legs and missions are only flown when the battery
covers them with a reserve, so in normal operation a drone never runs flat, keeps below the
ceiling and to its cruise speed, and reports steadily. Injected faults (see ``faults.py``:
emergency hover, fast drain, GPS glitch, gust, altitude excursion, cell failure, radio
outage) break that on purpose; a drone that gets low in the air diverts to the nearest
station ("returning"), abandoning any delivery.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache, lru_cache
from typing import Any

from skyhive.domain.commands import Command, DeliverCommand, StationRef
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.geo import destination_point, haversine_m
from skyhive.domain.stations import Station, bart_stations
from skyhive.simulator.battery import (
    CHARGE_RATE_PCT_PER_S,
    CHARGE_TARGET_PCT,
    HOVER_DRAIN_PCT_PER_S,
    LANDING_RESERVE_PCT,
    LOW_BATTERY_PCT,
    MIN_TAKEOFF_PCT,
    Battery,
)
from skyhive.simulator.faults import FaultKind, FaultRates, Reading
from skyhive.simulator.flight import CRUISE_ALT_M, Motion, pad_position, vertical_s

LEG_DISTANCE_M = (2_000.0, 12_000.0)
DWELL_S = (20.0, 180.0)
INITIAL_DWELL_S = (0.0, 60.0)  # short, so a fresh fleet starts flying within a minute
INITIAL_BATTERY_PCT = (45.0, 100.0)
PAYLOAD_KG = (0.5, 2.5)
LOADING_S = (5.0, 10.0)
DROP_S = 5.0
DROP_ALT_M = 15.0  # the package is lowered on a tether: no landing in a customer's garden
RECENT_COMMANDS = 32  # deliver commands remembered, to ignore QoS 1 redeliveries
EMERGENCY_S = (15.0, 60.0)
FAULT_DRAIN_S = (60.0, 180.0)
FAULT_DRAIN_PCT_PER_S = 0.4  # about ten times the normal in-flight drain
GPS_JUMP_M = (2_000.0, 5_000.0)  # how far off a glitched reading's position is
GUST_S = (5.0, 12.0)
GUST_SPEED_MPS = (31.0, 40.0)  # above the 30 m/s a delivery drone is allowed
EXCURSION_ALT_M = (125.0, 150.0)  # where an altitude excursion peaks, above MAX_ALT_M
EXCURSION_ABOVE_S = (8.0, 20.0)  # time spent above MAX_ALT_M before coming back down
CELL_FAILURE_PCT = (20.0, 30.0)  # battery lost at once when a cell fails
OFFLINE_S = 30.0  # how long a radio outage lasts unless told otherwise

Event = dict[str, Any]


class Phase(StrEnum):
    """Where a drone is in its duty cycle (finer than the telemetry ``status``)."""

    DOCKED = "docked"
    CHARGING = "charging"
    CLIMB = "climb"
    CRUISE = "cruise"
    DESCENT = "descent"
    LOADING = "loading"  # on the pickup station's pad
    DROP = "drop"  # hovering at DROP_ALT_M over the destination


_GROUND_STATUS = {Phase.DOCKED: "idle", Phase.CHARGING: "charging"}
_AIRBORNE = frozenset({Phase.CLIMB, Phase.CRUISE, Phase.DESCENT, Phase.DROP})
_EN_ROUTE = frozenset({Phase.CLIMB, Phase.CRUISE})  # where gusts and excursions happen
_EN_ROUTE_FAULTS = frozenset({FaultKind.OVERSPEED, FaultKind.ALTITUDE})


@dataclass(slots=True)
class Mission:
    """A delivery the drone was commanded to fly; ``loaded`` once the package is on board."""

    delivery_id: str
    pickup: Station
    destination: tuple[float, float]
    return_station: Station
    payload_kg: float
    loaded: bool = False

    @classmethod
    def of(cls, cmd: DeliverCommand) -> Mission:
        return cls(
            cmd.delivery_id,
            _station(cmd.pickup),
            (cmd.destination.lat, cmd.destination.lon),
            _station(cmd.return_station),
            cmd.payload_kg,
        )


@dataclass(slots=True)
class SimDrone:
    """One simulated drone. ``station`` is where it is docked, or the next one it docks at.

    ``fault_once`` lists faults the drone has exactly once, in that order, right after it
    first takes off (at its first step on the way, so its last reading already said it was
    in flight), whatever ``faults`` says. ``offline_s`` is how long its radio outages last,
    in message time (``now_ms``, the wall clock in the runner): the server judges silence by
    when messages arrive, so an outage is not shortened by ``time_scale``.
    """

    spec: DroneSpec
    station: Station
    motion: Motion
    battery: Battery
    seq: int
    faults: FaultRates
    autonomous: bool = True  # flies legs of its own accord; otherwise only when commanded
    phase: Phase = Phase.DOCKED
    dwell_left_s: float = 0.0  # on the pad before the next leg, loading, or hovering to drop
    returning: bool = False
    delivery_id: str | None = None
    payload_kg: float | None = None
    mission: Mission | None = None
    emergency_left_s: float = 0.0
    drain_left_s: float = 0.0
    offline_s: float = OFFLINE_S
    fault_once: tuple[FaultKind, ...] = ()
    glitch: tuple[float, float] | None = None  # (bearing, metres) off for the next reading
    offline_until_ms: int = 0  # silent while now_ms is before this
    faults_started: Counter[FaultKind] = field(default_factory=Counter)
    _outbox: list[Event] = field(default_factory=list, init=False, repr=False)
    _accepted: deque[tuple[str, datetime]] = field(
        default_factory=lambda: deque(maxlen=RECENT_COMMANDS), init=False, repr=False
    )

    @property
    def drone_id(self) -> str:
        return self.spec.drone_id

    @property
    def cruise_speed_mps(self) -> float:
        return self.spec.cruise_speed_mps

    @property
    def status(self) -> str:
        """The telemetry ``status``: on a mission counts as ``in_flight`` even while loading."""
        if self.emergency_left_s > 0.0:
            return "emergency"
        if self.phase in _GROUND_STATUS:
            return _GROUND_STATUS[self.phase]
        return "returning" if self.returning else "in_flight"

    @property
    def airborne(self) -> bool:
        return self.phase in _AIRBORNE

    @property
    def emergencies_started(self) -> int:
        return self.faults_started[FaultKind.EMERGENCY]

    def is_silent(self, now_ms: int) -> bool:
        """In a radio outage: nothing it sends at ``now_ms`` gets out."""
        return now_ms < self.offline_until_ms

    @property
    def on_standby(self) -> bool:
        """On a pad, idle or charging, and fit to take a delivery."""
        return self.phase in _GROUND_STATUS and self.emergency_left_s <= 0.0

    def step(self, now_ms: int, dt_s: float, rng: random.Random) -> list[Event]:
        """Advance by ``dt_s`` simulated seconds; called once per published reading.

        Returns the delivery events this progress produced (``picked_up``, ``delivered``, or
        ``failed`` on a low-battery diversion), oldest first, stamped ``now_ms``. During a
        radio outage none are returned: they are kept, and returned once the link is back.
        """
        remaining = max(dt_s, 0.0)
        self._count_down_faults(remaining)
        self._roll_faults(now_ms, rng)
        if self.emergency_left_s > 0.0:
            self._hold(remaining)
        else:
            while remaining > 0.0:  # a long step can span several flight phases
                remaining = self._advance(now_ms, remaining, rng)
        return self._take_events(now_ms)

    def command(self, cmd: Command, now_ms: int, rng: random.Random) -> list[Event]:
        """Apply a command (parsed by :func:`skyhive.domain.commands.parse_command`); return
        the events it causes at once, stamped ``now_ms``."""
        if isinstance(cmd, DeliverCommand):
            self._deliver(cmd, now_ms, rng)
        else:
            self._recall(_station(cmd.return_station), now_ms, rng)
        return self._take_events(now_ms)

    def reading(self, now_ms: int) -> Reading:
        """The telemetry v1 message for the current state; consumes the next ``seq`` (and a
        pending GPS glitch, which puts this one reading's position off)."""
        seq = self.seq
        self.seq += 1
        m = self.motion
        lat, lon = m.lat, m.lon
        if self.glitch is not None:
            bearing, metres = self.glitch
            self.glitch = None
            lat, lon = destination_point(lat, lon, bearing, metres)
        msg: Reading = {
            "drone_id": self.drone_id,
            "seq": seq,
            "ts": format_ts(now_ms),
            "lat": round(lat, 7),
            "lon": round(lon, 7),
            "alt_m": round(m.alt_m, 1),
            "speed_mps": round(m.speed_mps, 2),
            "heading_deg": round(m.heading_deg, 1) % 360.0,
            "battery_pct": round(self.battery.pct, 2),
            "status": self.status,
            "emergency": self.emergency_left_s > 0.0,
        }
        if self.delivery_id is not None:
            msg["delivery_id"] = self.delivery_id
        if self.payload_kg is not None:
            msg["payload_kg"] = self.payload_kg
        return msg

    # -- commands --------------------------------------------------------------------------

    def _deliver(self, cmd: DeliverCommand, now_ms: int, rng: random.Random) -> None:
        mission = Mission.of(cmd)
        key = (cmd.delivery_id, cmd.issued_at)
        if key in self._accepted:
            return  # a redelivery of a command already taken: answering "busy" would fail it
        if not self.on_standby:
            self._emit(mission.delivery_id, "failed", now_ms, "busy")
            return
        if self.battery.pct - self._mission_cost_pct(mission) < LOW_BATTERY_PCT:
            self._emit(mission.delivery_id, "failed", now_ms, "insufficient battery")
            return
        self._accepted.append(key)
        self.mission = mission
        self.delivery_id = mission.delivery_id
        self.payload_kg = None
        self.motion.cruise_alt_m = rng.uniform(*CRUISE_ALT_M)
        if self.motion.near(mission.pickup):
            self._start_loading(rng)
        else:
            self._fly_to(mission.pickup, *pad_position(mission.pickup, rng))

    def _mission_cost_pct(self, m: Mission) -> float:
        """A pessimistic battery estimate: every leg climbs to the highest cruise altitude."""
        dest_lat, dest_lon = m.destination
        legs = [
            haversine_m(m.pickup.lat, m.pickup.lon, dest_lat, dest_lon),
            haversine_m(dest_lat, dest_lon, m.return_station.lat, m.return_station.lon),
        ]
        if not self.motion.near(m.pickup):
            legs.append(haversine_m(self.motion.lat, self.motion.lon, m.pickup.lat, m.pickup.lon))
        climb_s = vertical_s(CRUISE_ALT_M[1])
        return sum(self.battery.leg_cost(d, climb_s) for d in legs) + (
            HOVER_DRAIN_PCT_PER_S * DROP_S
        )

    def _recall(self, station: Station, now_ms: int, rng: random.Random) -> None:
        """Drop whatever it was doing and land at ``station``, the nearest way."""
        self._abandon(now_ms, "recalled")
        m = self.motion
        if self.airborne:
            self.returning = True
            if m.near(station):  # overhead already: straight down
                self.station = station
                m.target_lat, m.target_lon = m.lat, m.lon
                self.phase = Phase.DESCENT
            else:
                self._fly_to(station, *pad_position(station, rng))
        elif not m.near(station):
            self.returning = True
            m.cruise_alt_m = rng.uniform(*CRUISE_ALT_M)
            self._fly_to(station, *pad_position(station, rng))
        elif self.phase is Phase.LOADING:
            self._start_charging(rng)

    def _abandon(self, now_ms: int, reason: str) -> None:
        """Give up the current delivery (telling SkyHive, if it assigned one)."""
        if self.mission is not None:
            self._emit(self.mission.delivery_id, "failed", now_ms, reason)
            self.mission = None
        self.delivery_id = None
        self.payload_kg = None

    def _emit(self, delivery_id: str, event: str, now_ms: int, reason: str | None = None) -> None:
        ev: Event = {
            "drone_id": self.drone_id,
            "delivery_id": delivery_id,
            "event": event,
            "ts": format_ts(now_ms),
        }
        if reason is not None:
            ev["reason"] = reason
        self._outbox.append(ev)

    def _take_events(self, now_ms: int) -> list[Event]:
        if not self._outbox or self.is_silent(now_ms):
            return []
        events, self._outbox = self._outbox, []
        return events

    # -- faults ----------------------------------------------------------------------------

    def _count_down_faults(self, dt_s: float) -> None:
        """Time runs out on active faults; a fast drain empties the battery meanwhile."""
        if self.emergency_left_s > 0.0:
            self.emergency_left_s = max(self.emergency_left_s - dt_s, 0.0)
        if self.drain_left_s > 0.0:
            drained_s = min(dt_s, self.drain_left_s)
            self.battery.lose(FAULT_DRAIN_PCT_PER_S * drained_s)
            self.drain_left_s -= drained_s
        self.motion.count_down(dt_s)

    def _roll_faults(self, now_ms: int, rng: random.Random) -> None:
        """Start the faults due: the forced ones once the drone is on its way, then each
        fault not already under way with its probability (no draw for a zero rate)."""
        en_route = self.phase in _EN_ROUTE
        if self.fault_once and en_route:
            kinds, self.fault_once = self.fault_once, ()
            for kind in kinds:
                self.start_fault(kind, now_ms, rng)
        r, m = self.faults, self.motion
        if self.emergency_left_s <= 0.0 and r.emergency and rng.random() < r.emergency:
            self.start_fault(FaultKind.EMERGENCY, now_ms, rng)
        if self.drain_left_s <= 0.0 and r.battery_drain and rng.random() < r.battery_drain:
            self.start_fault(FaultKind.BATTERY_DRAIN, now_ms, rng)
        if self.glitch is None and r.gps_jump and rng.random() < r.gps_jump:
            self.start_fault(FaultKind.GPS_JUMP, now_ms, rng)
        if en_route and m.gust_left_s <= 0.0 and r.overspeed and rng.random() < r.overspeed:
            self.start_fault(FaultKind.OVERSPEED, now_ms, rng)
        if en_route and m.excursion_left_s <= 0.0 and r.altitude and rng.random() < r.altitude:
            self.start_fault(FaultKind.ALTITUDE, now_ms, rng)
        if r.battery_drop and rng.random() < r.battery_drop:
            self.start_fault(FaultKind.BATTERY_DROP, now_ms, rng)
        if not self.is_silent(now_ms) and r.offline and rng.random() < r.offline:
            self.start_fault(FaultKind.OFFLINE, now_ms, rng)

    def start_fault(self, kind: FaultKind, now_ms: int, rng: random.Random) -> None:
        """Start ``kind`` now (restarting it if under way). ``overspeed`` and ``altitude``
        start only on the way (climbing or cruising; elsewhere nothing happens) and end when
        the drone descends."""
        if kind in _EN_ROUTE_FAULTS and self.phase not in _EN_ROUTE:
            return
        m = self.motion
        if kind is FaultKind.EMERGENCY:
            self.emergency_left_s = rng.uniform(*EMERGENCY_S)
        elif kind is FaultKind.BATTERY_DRAIN:
            self.drain_left_s = rng.uniform(*FAULT_DRAIN_S)
        elif kind is FaultKind.GPS_JUMP:
            self.glitch = (rng.uniform(0.0, 360.0), rng.uniform(*GPS_JUMP_M))
        elif kind is FaultKind.OVERSPEED:
            m.gust_left_s = rng.uniform(*GUST_S)
            m.gust_speed_mps = rng.uniform(*GUST_SPEED_MPS)
        elif kind is FaultKind.ALTITUDE:
            m.excursion_alt_m = rng.uniform(*EXCURSION_ALT_M)
            m.excursion_left_s = rng.uniform(*EXCURSION_ABOVE_S)
        elif kind is FaultKind.BATTERY_DROP:
            self.battery.lose(rng.uniform(*CELL_FAILURE_PCT))
        else:
            self.offline_until_ms = now_ms + round(self.offline_s * 1000.0)
        self.faults_started[kind] += 1

    def _hold(self, dt_s: float) -> None:
        """Emergency: stop where it is (hovering if airborne) until the emergency clears."""
        self.motion.speed_mps = 0.0
        if self.airborne:
            self.battery.hover(dt_s)

    # -- duty cycle ------------------------------------------------------------------------

    def _advance(self, now_ms: int, dt_s: float, rng: random.Random) -> float:
        """Run the current phase for up to ``dt_s``; return the time left when it ended early."""
        phase = self.phase
        if phase is Phase.DOCKED:
            self.dwell_left_s = max(self.dwell_left_s - dt_s, 0.0)
            if self.dwell_left_s <= 0.0:
                self._plan_next(now_ms, rng)
            return 0.0
        if phase is Phase.CHARGING:
            if self.battery.charge(dt_s):
                self.phase = Phase.DOCKED
                self.dwell_left_s = rng.uniform(*DWELL_S)
            return 0.0
        if phase is Phase.CLIMB:
            left = self.motion.climb(dt_s, self.battery)
            if left is None:
                self._divert_if_low(now_ms)
                return 0.0
            self.phase = Phase.CRUISE
            return left
        if phase is Phase.CRUISE:
            left = self.motion.cruise(dt_s, self.cruise_speed_mps, self.battery)
            if left is None:
                self._divert_if_low(now_ms)
                return 0.0
            self.phase = Phase.DESCENT
            return left
        if phase is Phase.DESCENT:
            loaded = self.mission is not None and self.mission.loaded
            left = self.motion.descend(dt_s, DROP_ALT_M if loaded else 0.0, self.battery)
            if left is None:
                return 0.0
            self._arrive(rng)
            return left
        return self._dwell(now_ms, dt_s, rng)

    def _plan_next(self, now_ms: int, rng: random.Random) -> None:
        """Autonomous: fly an affordable leg, or charge first when low or when nothing is in
        reach. Otherwise stand by on the pad, topped up, for a command."""
        if not self.autonomous:
            if self.battery.pct < CHARGE_TARGET_PCT[0]:
                self._start_charging(rng)
            return
        if self.battery.pct < MIN_TAKEOFF_PCT:
            self._start_charging(rng)
            return
        alt = rng.uniform(*CRUISE_ALT_M)
        dest = self._choose_destination(alt, rng)
        if dest is None:
            self._start_charging(rng)
        else:
            self._take_off(dest, alt, now_ms, rng)

    def _choose_destination(self, alt: float, rng: random.Random) -> Station | None:
        budget = self.battery.pct - LANDING_RESERVE_PCT
        climb_s = vertical_s(alt)
        reachable = [
            s for s, d in _legs_from(self.station) if self.battery.leg_cost(d, climb_s) <= budget
        ]
        return rng.choice(reachable) if reachable else None

    def _take_off(self, dest: Station, alt: float, now_ms: int, rng: random.Random) -> None:
        """An autonomous leg, carrying a made-up delivery so telemetry looks like real work."""
        self.motion.cruise_alt_m = alt
        self.delivery_id = f"{self.drone_id}-{now_ms}"
        self.payload_kg = round(rng.uniform(*PAYLOAD_KG), 1)
        self._fly_to(dest, *pad_position(dest, rng))

    def _fly_to(self, station: Station, lat: float, lon: float) -> None:
        """Head for (lat, lon), docking next at ``station``: climb to cruise altitude first."""
        self.station = station
        self.motion.head_for(lat, lon)
        self.phase = Phase.CLIMB

    def _arrive(self, rng: random.Random) -> None:
        mission = self.mission
        if mission is None:
            self._land(rng)
        elif mission.loaded:
            self.motion.speed_mps = 0.0
            self.dwell_left_s = DROP_S
            self.phase = Phase.DROP
        else:
            self._start_loading(rng)

    def _start_loading(self, rng: random.Random) -> None:
        self.motion.speed_mps = 0.0
        self.dwell_left_s = rng.uniform(*LOADING_S)
        self.phase = Phase.LOADING

    def _dwell(self, now_ms: int, dt_s: float, rng: random.Random) -> float:
        """Loading at the pickup, or hovering over the destination; then the next leg."""
        hovering = self.phase is Phase.DROP
        if dt_s < self.dwell_left_s:
            self.dwell_left_s -= dt_s
            if hovering:
                self.battery.hover(dt_s)
            return 0.0
        used_s, self.dwell_left_s = self.dwell_left_s, 0.0
        mission = self.mission
        assert mission is not None  # only missions load and drop
        if hovering:
            self.battery.hover(used_s)
            self._emit(mission.delivery_id, "delivered", now_ms)
            self.mission = None
            self.delivery_id = None
            self.payload_kg = None
            self.returning = True
            home = mission.return_station
            self._fly_to(home, *pad_position(home, rng))
        else:
            mission.loaded = True
            self.payload_kg = mission.payload_kg
            self._emit(mission.delivery_id, "picked_up", now_ms)
            self._fly_to(mission.return_station, *mission.destination)
        return dt_s - used_s

    def _land(self, rng: random.Random) -> None:
        self.motion.alt_m = 0.0
        self.returning = False
        self.delivery_id = None
        self.payload_kg = None
        self._start_charging(rng)

    def _start_charging(self, rng: random.Random) -> None:
        self.motion.speed_mps = 0.0
        self.battery.start_charging(rng)
        self.phase = Phase.CHARGING

    def _divert_if_low(self, now_ms: int) -> None:
        """Abandon the leg (and any delivery) for the nearest station once the battery is low;
        only faults get a drone this low."""
        if self.returning or not self.battery.low:
            return
        self._abandon(now_ms, "low battery")
        m = self.motion
        nearest = min(bart_stations(), key=lambda s: haversine_m(m.lat, m.lon, s.lat, s.lon))
        self.station = nearest
        m.target_lat, m.target_lon = nearest.lat, nearest.lon
        self.returning = True


def make_fleet(
    count: int,
    now_ms: int,
    rng: random.Random,
    id_prefix: str = "drone",
    faults: FaultRates | None = None,
    autonomous_legs: bool = True,
    offline_s: float = OFFLINE_S,
    fault_once: Sequence[FaultKind] = (),
) -> list[SimDrone]:
    """``count`` drones docked round-robin across the stations, each with the registry's
    default :class:`DroneSpec` (home: the station it starts at), so the dispatcher's energy
    model matches what the drones burn. Every drone has the ``fault_once`` faults once, right
    after its first take-off; radio outages last ``offline_s``.

    ``seq`` starts at ``now_ms`` (epoch ms): a restarted simulator then never reuses a
    ``(drone_id, seq)`` idempotency key of an earlier run.
    """
    stations = bart_stations()
    width = max(4, len(str(count)))
    rates = faults if faults is not None else FaultRates()
    fleet = []
    for i in range(count):
        station = stations[i % len(stations)]
        spec = DroneSpec(drone_id=f"{id_prefix}-{i + 1:0{width}d}", home_station=station.code)
        drone = _new_drone(spec, station, now_ms, rng, rates, autonomous_legs)
        drone.offline_s = offline_s
        drone.fault_once = tuple(fault_once)
        fleet.append(drone)
    return fleet


def _new_drone(
    spec: DroneSpec,
    station: Station,
    now_ms: int,
    rng: random.Random,
    faults: FaultRates,
    autonomous: bool,
) -> SimDrone:
    lat, lon = pad_position(station, rng)
    battery_pct = rng.uniform(*INITIAL_BATTERY_PCT)
    battery = Battery(battery_pct, rng.uniform(*CHARGE_RATE_PCT_PER_S), spec.pct_per_km)
    dwell_left_s = rng.uniform(*INITIAL_DWELL_S)
    return SimDrone(
        spec=spec,
        station=station,
        motion=Motion(lat, lon, heading_deg=rng.uniform(0.0, 360.0)),
        battery=battery,
        seq=now_ms,
        faults=faults,
        autonomous=autonomous,
        dwell_left_s=dwell_left_s,
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


@cache
def _station_names() -> dict[str, str]:
    return {s.code: s.name for s in bart_stations()}


def _station(ref: StationRef) -> Station:
    """A command's station; its coordinates win over the shipped ones."""
    return Station(
        code=ref.station,
        name=_station_names().get(ref.station, ref.station),
        lat=ref.lat,
        lon=ref.lon,
    )


def format_ts(now_ms: int) -> str:
    """RFC 3339 UTC with millisecond precision, e.g. ``2025-01-02T03:04:05.678Z``."""
    seconds, millis = divmod(now_ms, 1000)
    return f"{_ts_seconds(seconds)}.{millis:03d}Z"


@lru_cache(maxsize=16)
def _ts_seconds(epoch_s: int) -> str:
    """Cached: every reading published within the same second shares this prefix."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S")
