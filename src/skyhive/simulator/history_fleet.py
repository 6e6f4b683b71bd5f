"""A drone in simulated history: the live simulator's own state machine (``drone.SimDrone``:
flight, battery, charging, faults) stepped through simulated time, its readings judged by the
alert rules as they are made (``history_alerts``).

On the ground it is stepped lazily, up to whenever the dispatcher next looks at it, and
reports every ``docked_interval_s``; a delivery is flown whole as soon as it is commanded,
reporting every ``reading_interval_s``, so when and where it lands is known at once. Delivery
events are dated to within the reading interval (``STEP_S`` at most).
"""

from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from skyhive.domain.commands import DeliverCommand, return_command
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.stations import Station
from skyhive.domain.telemetry import Telemetry
from skyhive.simulator.battery import (
    CHARGE_RATE_PCT_PER_S,
    CHARGE_TAPER_ABOVE_PCT,
    CHARGE_TAPER_FACTOR,
    Battery,
)
from skyhive.simulator.drone import Event, Phase, SimDrone
from skyhive.simulator.faults import FaultKind, FaultRates
from skyhive.simulator.flight import Motion, pad_position
from skyhive.simulator.history_alerts import DroneAlerts, NearestStations

STEP_S = 15.0  # a flight's longest step between two looks at the drone
GROUND_STEP_S = 60.0  # charging is stepped at least this finely (the taper above 80 %)
START_BATTERY_PCT = (60.0, 100.0)
# Each flight has at most one fault, with these probabilities (per flight, so they do not
# depend on the reading interval), starting this long after take-off.
FLIGHT_FAULTS = {
    FaultKind.EMERGENCY: 0.003,
    FaultKind.BATTERY_DRAIN: 0.008,
    FaultKind.BATTERY_DROP: 0.004,
    FaultKind.GPS_JUMP: 0.006,
    FaultKind.OVERSPEED: 0.004,
    FaultKind.ALTITUDE: 0.004,
}
RECALL = "recall"  # an operator calls the drone back to the nearest station (what the API can do)
RECALL_P = 0.004
RECALL_REASON = "operator recall: high winds at the destination"
FAULT_AFTER_S = (10.0, 240.0)
_GROUND = frozenset({Phase.DOCKED, Phase.CHARGING})


@dataclass(frozen=True, slots=True)
class Flight:
    """A commanded flight, flown: the delivery events it produced (``picked_up``,
    ``delivered``, ``failed`` with a reason), oldest first, and when it was back on a pad."""

    events: list[Event]
    landed_ms: int


def seconds_to_charge(battery: Battery, to_pct: float) -> float:
    """How long charging takes from the battery's level to ``to_pct`` (inf past full)."""
    if to_pct > 100.0:
        return math.inf
    rate = battery.charge_rate_pct_per_s
    knee = CHARGE_TAPER_ABOVE_PCT
    below = max(0.0, min(to_pct, knee) - battery.pct) / rate
    above = max(0.0, to_pct - max(battery.pct, knee)) / (rate * CHARGE_TAPER_FACTOR)
    return below + above


FlightFault = tuple[FaultKind | str, float]  # a FaultKind or RECALL, seconds after take-off


def flight_fault(rng: random.Random) -> FlightFault | None:
    """What goes wrong on this flight, if anything, and when after take-off."""
    for kind, p in (*FLIGHT_FAULTS.items(), (RECALL, RECALL_P)):
        if rng.random() < p:
            return kind, rng.uniform(*FAULT_AFTER_S)
    return None


class HistoryDrone:
    def __init__(
        self,
        spec: DroneSpec,
        station: Station,
        since_ms: int,
        reading_interval_s: float,
        docked_interval_s: float,
        alerts: DroneAlerts,
        nearest: NearestStations,
        rng: random.Random,
    ) -> None:
        lat, lon = pad_position(station, rng)
        self.sim = SimDrone(
            spec=spec,
            station=station,
            motion=Motion(lat, lon, heading_deg=rng.uniform(0.0, 360.0)),
            battery=Battery(
                rng.uniform(*START_BATTERY_PCT),
                rng.uniform(*CHARGE_RATE_PCT_PER_S),
                spec.pct_per_km,
            ),
            seq=0,
            faults=FaultRates(),  # faults come per flight (flight_fault), not per reading
            autonomous=False,
        )
        self.spec = spec
        self.alerts = alerts
        self.nearest = nearest
        self.rng = rng
        self.t_ms = since_ms  # stepped up to here
        self.busy_until_ms = since_ms  # back on a pad from here
        self._flight_ms = round(reading_interval_s * 1000)
        self._docked_ms = round(docked_interval_s * 1000)
        self._next_ms = since_ms + rng.randrange(self._docked_ms)  # next reading on the ground
        self.readings: list[Telemetry] = []  # made and not yet taken

    @property
    def drone_id(self) -> str:
        return self.spec.drone_id

    def advance(self, t_ms: int) -> None:
        """On the ground until ``t_ms`` (charging, then standing by), reporting on the way."""
        while self._next_ms <= t_ms:
            self._ground_to(self._next_ms)
            self._read(self._next_ms)
            self._next_ms += self._docked_ms
        self._ground_to(t_ms)

    def fly(
        self,
        cmd: DeliverCommand,
        t_ms: int,
        until_ms: int,
        fault: FlightFault | None = None,
    ) -> Flight | None:
        """Fly the delivery commanded at ``t_ms`` until back on a pad. None, with the drone
        as it was, when it would not be back before ``until_ms``."""
        self.advance(t_ms)
        saved = self._save() if until_ms - t_ms < 4 * 3_600_000 else None
        events = self.sim.command(cmd, t_ms, self.rng)
        if events:  # refused (busy, or not enough battery): still on its pad
            return Flight(events, t_ms)
        fault_ms = t_ms + round(fault[1] * 1000) if fault else None
        now, next_read = t_ms, t_ms + self._flight_ms
        while self.sim.phase not in _GROUND:
            step = min(round(STEP_S * 1000), next_read - now)
            now += step
            if now >= until_ms:
                assert saved is not None  # no flight lasts four hours
                self._restore(saved)
                return None
            if fault is not None and fault_ms is not None and now >= fault_ms:
                events += self._fault(fault[0], now)
                fault = None
            events += self.sim.step(now, step / 1000, self.rng)
            if now == next_read or self.sim.phase in _GROUND:
                events += self._read(now)
                next_read = now + self._flight_ms
        self.t_ms = self.busy_until_ms = now
        self._next_ms = now + self._docked_ms
        return Flight(events, now)

    def _ground_to(self, t_ms: int) -> None:
        while self.t_ms < t_ms:
            to = min(t_ms, self.t_ms + round(GROUND_STEP_S * 1000))
            self.sim.step(to, (to - self.t_ms) / 1000, self.rng)
            self.t_ms = to

    def _fault(self, kind: FaultKind | str, now_ms: int) -> list[Event]:
        if isinstance(kind, FaultKind):
            self.sim.start_fault(kind, now_ms, self.rng)
            return []
        return self._recall(
            self.nearest(self.sim.motion.lat, self.sim.motion.lon), now_ms, RECALL_REASON
        )

    def _recall(self, station: Station, now_ms: int, reason: str) -> list[Event]:
        at = datetime.fromtimestamp(now_ms / 1000, UTC)
        return self.sim.command(return_command(station, at, reason), now_ms, self.rng)

    def _read(self, now_ms: int) -> list[Event]:
        """Report at ``now_ms`` (its seq is its time in ms, as for a drone without a counter)
        and judge the reading; a ``cannot_reach_station`` alert recalls the drone, whose
        delivery events that causes are returned."""
        self.sim.seq = now_ms
        reading = Telemetry.model_validate(self.sim.reading(now_ms))
        self.readings.append(reading)
        recall = self.alerts.observe(reading)
        if recall is None:
            return []
        return self._recall(recall, now_ms, "battery cannot reach a station with the reserve")

    def _save(self) -> _Saved:
        return _Saved(
            copy.deepcopy(self.sim),
            self.rng.getstate(),
            self.alerts.saved(),
            self.t_ms,
            self._next_ms,
            len(self.readings),
        )

    def _restore(self, saved: _Saved) -> None:
        self.sim = saved.sim
        self.rng.setstate(saved.rng)
        self.alerts.restore(saved.alerts)
        self.t_ms, self._next_ms = saved.t_ms, saved.next_ms
        del self.readings[saved.readings :]


@dataclass(frozen=True, slots=True)
class _Saved:
    """A drone as it was before a flight that may be taken back."""

    sim: SimDrone
    rng: tuple[Any, ...]
    alerts: object
    t_ms: int
    next_ms: int
    readings: int
