"""How a simulated drone moves: vertical climb, great-circle cruise, vertical descent, each
paid for from its :class:`Battery`, plus the two faults that change a flight (a gust that
blows it along faster than allowed, an altitude excursion above the ceiling).

What the drone does next when a phase of flight ends is the state machine's business
(``drone.py``): these methods only say how much of the time given was left over.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from skyhive.domain.geo import bearing_deg, destination_point, haversine_m
from skyhive.domain.stations import Station
from skyhive.simulator.battery import Battery

MAX_ALT_M = 120.0  # legal ceiling for small drones (FAA Part 107: 400 ft)
CRUISE_ALT_M = (60.0, 110.0)
CLIMB_RATE_MPS = 3.0
DESCENT_RATE_MPS = 2.0
PAD_OFFSET_MAX_M = 12.0  # stations have several pads around the station's coordinates
AT_STATION_M = 30.0  # this close to a station's coordinates is being there (on one of its pads)


def vertical_s(alt: float) -> float:
    """Seconds spent climbing to ``alt`` and descending from it."""
    return alt / CLIMB_RATE_MPS + alt / DESCENT_RATE_MPS


def pad_position(station: Station, rng: random.Random) -> tuple[float, float]:
    """A landing pad near ``station``: within ``PAD_OFFSET_MAX_M`` of its coordinates."""
    return destination_point(
        station.lat, station.lon, rng.uniform(0.0, 360.0), rng.uniform(0.0, PAD_OFFSET_MAX_M)
    )


@dataclass(slots=True)
class Motion:
    """Position, altitude, speed and heading, the point flown to, and the flight faults under
    way. The ``climb``, ``cruise`` and ``descend`` steps return the time left once their
    phase is over, or None while it goes on."""

    lat: float
    lon: float
    alt_m: float = 0.0
    speed_mps: float = 0.0
    heading_deg: float = 0.0
    target_lat: float = 0.0
    target_lon: float = 0.0
    cruise_alt_m: float = 0.0
    gust_left_s: float = 0.0
    gust_speed_mps: float = 0.0
    excursion_left_s: float = 0.0  # counts down only while above MAX_ALT_M
    excursion_alt_m: float = 0.0

    def near(self, station: Station) -> bool:
        return haversine_m(self.lat, self.lon, station.lat, station.lon) <= AT_STATION_M

    def head_for(self, lat: float, lon: float) -> None:
        self.target_lat, self.target_lon = lat, lon
        self.heading_deg = bearing_deg(self.lat, self.lon, lat, lon)

    def count_down(self, dt_s: float) -> None:
        """Time runs out on a gust; an excursion's clock runs only above the ceiling."""
        if self.gust_left_s > 0.0:
            self.gust_left_s = max(self.gust_left_s - dt_s, 0.0)
        if self.excursion_left_s > 0.0 and self.alt_m > MAX_ALT_M:
            self.excursion_left_s = max(self.excursion_left_s - dt_s, 0.0)

    def climb(self, dt_s: float, battery: Battery) -> float | None:
        """Straight up to cruise altitude (or to an excursion's peak); a gust meanwhile
        blows the drone along its course."""
        top = self._level_alt()
        to_top_s = max(top - self.alt_m, 0.0) / CLIMB_RATE_MPS
        self.speed_mps = CLIMB_RATE_MPS
        if dt_s < to_top_s:
            self.alt_m += CLIMB_RATE_MPS * dt_s
            battery.hover(dt_s)
            self._blown(dt_s)
            return None
        self.alt_m = max(self.alt_m, top)
        battery.hover(to_top_s)
        self._blown(to_top_s)
        return dt_s - to_top_s

    def cruise(self, dt_s: float, cruise_speed_mps: float, battery: Battery) -> float | None:
        """Towards the target at cruise speed (a gust's, in one), holding altitude."""
        speed = self.gust_speed_mps if self.gust_left_s > 0.0 else cruise_speed_mps
        self.speed_mps = speed
        left_m = haversine_m(self.lat, self.lon, self.target_lat, self.target_lon)
        if speed * dt_s < left_m:
            course = bearing_deg(self.lat, self.lon, self.target_lat, self.target_lon)
            self.lat, self.lon = destination_point(self.lat, self.lon, course, speed * dt_s)
            self.heading_deg = bearing_deg(self.lat, self.lon, self.target_lat, self.target_lon)
            battery.cruise(speed * dt_s)
            self._level(dt_s, battery)
            return None
        self.lat, self.lon = self.target_lat, self.target_lon
        battery.cruise(left_m)
        self._level(left_m / speed, battery)
        return dt_s - left_m / speed

    def descend(self, dt_s: float, floor_m: float, battery: Battery) -> float | None:
        """Down to ``floor_m`` (the pad, or drop height). Gusts and altitude excursions are
        over by then."""
        self.gust_left_s = self.excursion_left_s = 0.0
        to_floor_s = max(self.alt_m - floor_m, 0.0) / DESCENT_RATE_MPS
        self.speed_mps = DESCENT_RATE_MPS
        if dt_s < to_floor_s:
            self.alt_m -= DESCENT_RATE_MPS * dt_s
            battery.hover(dt_s)
            return None
        self.alt_m = floor_m
        battery.hover(to_floor_s)
        return dt_s - to_floor_s

    def _level_alt(self) -> float:
        """The altitude to hold on the way: cruise altitude, or an excursion's peak."""
        if self.excursion_left_s > 0.0:
            return max(self.cruise_alt_m, self.excursion_alt_m)
        return self.cruise_alt_m

    def _level(self, dt_s: float, battery: Battery) -> None:
        """Cruising: climb or sink towards the altitude to hold (off it only in an altitude
        excursion); vertical motion costs as hovering does."""
        target = self._level_alt()
        if self.alt_m < target:
            rise_s = min((target - self.alt_m) / CLIMB_RATE_MPS, dt_s)
            self.alt_m = min(self.alt_m + CLIMB_RATE_MPS * rise_s, target)
            battery.hover(rise_s)
        elif self.alt_m > target:
            sink_s = min((self.alt_m - target) / DESCENT_RATE_MPS, dt_s)
            self.alt_m = max(self.alt_m - DESCENT_RATE_MPS * sink_s, target)
            battery.hover(sink_s)

    def _blown(self, dt_s: float) -> None:
        """Climbing in a gust: carried along the course (never past the target) at the
        gust's speed, which is what the drone's ground speed reads."""
        if self.gust_left_s <= 0.0:
            return
        self.speed_mps = self.gust_speed_mps
        left_m = haversine_m(self.lat, self.lon, self.target_lat, self.target_lon)
        push_m = min(self.gust_speed_mps * dt_s, left_m)
        if push_m > 0.0:
            course = bearing_deg(self.lat, self.lon, self.target_lat, self.target_lon)
            self.lat, self.lon = destination_point(self.lat, self.lon, course, push_m)
