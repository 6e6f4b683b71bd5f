"""A month of orders flown twice by the same fleet, without and with the dispatcher's
rebalancing (``domain/rebalance.py``), to measure what it changes: how many orders find no
drone docked at their pickup station and wait for one to fly in.

Discrete events, pure: orders arrive as the history simulator draws them
(``simulator/history_demand.py``); an order takes the idle drone docked at its station with
the most battery, else the drone that can be there first (flying in from another station,
or finishing a trip), and the customer cancels if that is later than their patience. A trip
flies pickup → destination → the nearest station with a free pad (as the dispatcher picks
return stations), at cruise speed, with a fixed handling time; batteries drain per km and
charge on the pad. With rebalancing, every ``every_s`` the plan of ``domain/rebalance.py``
runs on the forecast of the hour ahead and its moves fly their hop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from skyhive.domain.geo import haversine_m, nearest
from skyhive.domain.rebalance import DockedDrone, RebalancePolicy, StationOutlook, plan
from skyhive.domain.stations import Station
from skyhive.simulator.history_demand import HistoryOrder

SPEED_MPS = 15.0
HANDLING_S = 120.0  # pickup and drop-off
PCT_PER_KM = 1.6  # a 500 Wh drone at 8 Wh/km
CHARGE_PCT_PER_S = 100.0 / 3600.0  # empty to full in an hour
RESERVE_PCT = 20.0

# Forecast orders per station for the hour starting at a time.
Forecast = Callable[[datetime], dict[str, float]]


@dataclass(slots=True)
class _Drone:
    id: str
    station: str  # where it is, or is flying to
    free_at: float  # epoch s it lands there
    battery: float  # on landing

    def battery_at(self, t: float) -> float:
        return min(100.0, self.battery + max(0.0, t - self.free_at) * CHARGE_PCT_PER_S)


@dataclass(slots=True)
class Outcome:
    orders: int = 0
    from_the_pad: int = 0  # a drone was docked at the pickup station
    waited: int = 0  # one had to fly in
    cancelled: int = 0  # it would have come after the customer's patience
    wait_s: list[float] = field(default_factory=list)
    moves: int = 0
    moved_km: float = 0.0

    def figures(self) -> dict[str, float]:
        waits = sorted(self.wait_s)
        p90 = waits[int(0.9 * (len(waits) - 1))] if waits else 0.0
        return {
            "orders": self.orders,
            "from_the_pad": self.from_the_pad,
            "waited": self.waited,
            "waited_share": round(self.waited / self.orders, 4) if self.orders else 0.0,
            "cancelled": self.cancelled,
            "mean_wait_s": round(sum(waits) / len(waits), 1) if waits else 0.0,
            "p90_wait_s": round(p90, 1),
            "moves": self.moves,
            "moved_km": round(self.moved_km, 1),
        }


def _km(a: Station, lat: float, lon: float) -> float:
    return haversine_m(a.lat, a.lon, lat, lon) / 1000.0


class FleetSim:
    def __init__(
        self,
        stations: Sequence[Station],
        drones: int,
        policy: RebalancePolicy | None,
        forecast: Forecast | None,
        every_s: float = 900.0,
        cooldown_s: float = 3600.0,
    ) -> None:
        self.stations = {s.code: s for s in stations}
        ordered = list(stations)
        self.drones = [
            _Drone(f"sim-{i:03d}", ordered[i % len(ordered)].code, 0.0, 100.0)
            for i in range(drones)
        ]
        self.policy = policy
        self.forecast = forecast
        self.every_s = every_s
        self.cooldown_s = cooldown_s
        self._moved: dict[str, float] = {}  # drone → when it was last moved
        self.out = Outcome()

    def run(self, orders: Sequence[HistoryOrder], since: datetime, until: datetime) -> Outcome:
        tick = since.timestamp()
        for d in self.drones:
            d.free_at = tick
        for o in orders:
            t = o.created_at.timestamp()
            while self.policy is not None and tick <= t:
                self._rebalance(tick)
                tick += self.every_s
            self._order(o, t)
        return self.out

    # --- orders ---------------------------------------------------------------------------

    def _order(self, o: HistoryOrder, t: float) -> None:
        self.out.orders += 1
        s = o.station
        dest = o.request.destination
        trip_km = _km(s, dest.lat, dest.lon)
        back = self._return_station(dest.lat, dest.lon, t)
        trip_km += _km(back, dest.lat, dest.lon)
        best: tuple[float, float, _Drone] | None = None  # (arrival, -battery, drone)
        for d in self.drones:
            hop_km = _km(self.stations[d.station], s.lat, s.lon)
            leave = max(t, d.free_at)
            if d.battery_at(leave) - (hop_km + trip_km) * PCT_PER_KM < RESERVE_PCT:
                continue  # even charged until now it cannot; it may later
            arrival = leave + hop_km * 1000.0 / SPEED_MPS
            key = (arrival, -d.battery_at(leave), d)
            if best is None or key[:2] < best[:2]:
                best = key
        if best is None or best[0] - t > o.patience_s:
            self.out.cancelled += 1
            return
        arrival, _, d = best
        wait = arrival - t
        if wait <= 0:
            self.out.from_the_pad += 1
        else:
            self.out.waited += 1
        self.out.wait_s.append(max(0.0, wait))
        hop_km = _km(self.stations[d.station], s.lat, s.lon)
        d.battery = d.battery_at(max(t, d.free_at)) - (hop_km + trip_km) * PCT_PER_KM
        d.free_at = arrival + trip_km * 1000.0 / SPEED_MPS + HANDLING_S
        d.station = back.code

    def _return_station(self, lat: float, lon: float, t: float) -> Station:
        """The nearest station with a free pad among the five nearest, else the nearest."""
        short = nearest(lat, lon, list(self.stations.values()), lambda s: (s.lat, s.lon), 5)
        present: dict[str, int] = {}
        for d in self.drones:
            present[d.station] = present.get(d.station, 0) + 1
        return next((s for s in short if present.get(s.code, 0) < s.pads), short[0])

    # --- rebalancing ----------------------------------------------------------------------

    def _rebalance(self, t: float) -> None:
        assert self.policy is not None and self.forecast is not None
        hour = datetime.fromtimestamp(t, UTC) + timedelta(minutes=30)
        demand = self.forecast(hour.replace(minute=0, second=0, microsecond=0))
        docked: dict[str, list[DockedDrone]] = {}
        incoming: dict[str, int] = {}
        for d in self.drones:
            if d.free_at <= t:
                docked.setdefault(d.station, []).append(
                    DockedDrone(d.id, d.battery_at(t), PCT_PER_KM)
                )
            else:
                incoming[d.station] = incoming.get(d.station, 0) + 1
        outlook = [
            StationOutlook(
                s.code,
                s.lat,
                s.lon,
                s.pads,
                demand.get(s.code, 0.0),
                tuple(docked.get(s.code, ())),
                incoming.get(s.code, 0),
            )
            for s in self.stations.values()
        ]
        by_id = {d.id: d for d in self.drones}
        cooling = {k: v for k, v in self._moved.items() if t - v < self.cooldown_s}
        for m in plan(outlook, self.policy, cooling):
            self._moved[m.drone_id] = t
            d = by_id[m.drone_id]
            d.battery = d.battery_at(t) - m.km * PCT_PER_KM
            d.free_at = t + m.km * 1000.0 / SPEED_MPS
            d.station = m.to_station
            self.out.moves += 1
            self.out.moved_km += m.km
