"""The dispatcher's rebalancing pass (``domain/rebalance.py``): every ``rebalance.every_s``,
from the latest demand forecasts and the live fleet, move idle drones toward the stations
that will want them in the next hour, each with a ``return_to_station`` command that says
why (relayed to the drone like every command) and a record in ``rebalance_moves``.

A drone counts as docked at a station when it is idle or charging within ``DOCK_KM`` of it
and holds no delivery. Drones sent in the last ``ARRIVAL_S`` and not yet docked where they
were sent count as on their way there. With several dispatchers, one pass at a time runs (a
Redis lease of one period), so no drone is moved twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from skyhive.domain.fleet import DroneSpec
from skyhive.domain.rebalance import DockedDrone, Move, RebalancePolicy, StationOutlook, plan
from skyhive.domain.rollups import period_start
from skyhive.ports.clock import Clock
from skyhive.ports.dispatch_queue import DispatchQueue
from skyhive.ports.live_fleet import LiveFleet
from skyhive.ports.rebalancing import ForecastReader, MoveLog
from skyhive.ports.stations import StationLookup
from skyhive.settings import RebalanceConfig

log = logging.getLogger(__name__)

DOCK_KM = 0.15  # the dispatcher's own count of docked drones uses the same radius
ARRIVAL_S = 900.0
DOCKED_STATUSES = ("idle", "charging")

# Sends one drone to a station with a reason (``DroneCommands.return_to_station``).
SendTo = Callable[[str, str, str], object]
# Takes the lease of one pass (True: this process runs it).
Lease = Callable[[float], bool]


class Rebalancer:
    def __init__(
        self,
        config: RebalanceConfig,
        reserve_pct: float,
        *,
        forecasts: ForecastReader,
        stations: StationLookup,
        live: LiveFleet,
        queue: DispatchQueue,
        specs: Callable[[list[str]], dict[str, DroneSpec]],
        send_to: SendTo,
        moves: MoveLog,
        lease: Lease,
        clock: Clock,
    ) -> None:
        self._c = config
        self._policy = RebalancePolicy(
            max_moves=config.max_moves,
            max_km=config.max_km,
            min_battery_pct=config.min_battery_pct,
            reserve_pct=reserve_pct,
            keep=config.keep,
        )
        self._forecasts = forecasts
        self._stations = stations
        self._live = live
        self._queue = queue
        self._specs = specs
        self._send_to = send_to
        self._moves = moves
        self._lease = lease
        self._clock = clock

    def run(self) -> list[Move]:
        """One pass; returns the moves made (none without the lease or forecasts)."""
        if not self._lease(self._c.every_s):
            return []
        now = self._clock.now()
        demand = self.next_hour(now)
        if not demand:
            return []
        recent = self._moves.since(now - timedelta(seconds=max(self._c.cooldown_s, ARRIVAL_S)))
        outlook = self.outlook(demand, recent, now)
        cooling = {
            m["drone_id"]: m["at"]
            for m in recent
            if m["at"] >= now - timedelta(seconds=self._c.cooldown_s)
        }
        moves = plan(outlook, self._policy, cooling)
        for m in moves:
            self._send_to(m.drone_id, f"rebalancing: {m.reason}", m.to_station)
            log.info("rebalancing: %s %s -> %s (%.1f km): %s", m.drone_id, m.from_station,
                     m.to_station, m.km, m.reason)  # fmt: skip
        self._moves.record(moves, now)
        return moves

    def next_hour(self, now: datetime) -> dict[str, float]:
        """Each station's forecast orders for the hour ahead (the forecast hour holding
        ``now`` + 30 min); stations without a current forecast are left out."""
        hour = period_start(now + timedelta(minutes=30), "hour")
        out: dict[str, float] = {}
        for f in self._forecasts.all():
            for p in f.points:
                if p.hour == hour:
                    out[f.station_id] = max(0.0, p.yhat)
        return out

    def outlook(
        self, demand: dict[str, float], recent: list[dict[str, Any]], now: datetime
    ) -> list[StationOutlook]:
        """Each forecast station's pads, forecast, idle drones docked and drones on their way."""
        stations = [s for s in self._stations.all().values() if s.code in demand]
        most = max((s.pads for s in stations), default=0) + 5
        near = self._live.nearby_many([(s.lat, s.lon) for s in stations], DOCK_KM, most)
        ids = sorted({d for hits in near for d, _ in hits})
        states = dict(zip(ids, self._live.get_many(ids), strict=True))
        busy = self._queue.claimed(ids)
        specs = self._specs(ids)
        docked: dict[str, list[DockedDrone]] = {}
        docked_at: dict[str, str] = {}
        for s, hits in zip(stations, near, strict=True):
            for drone_id, _ in hits:
                state = states.get(drone_id) or {}
                if (
                    drone_id in busy
                    or drone_id in docked_at
                    or state.get("status") not in DOCKED_STATUSES
                    or state.get("delivery_id")
                ):
                    continue
                docked_at[drone_id] = s.code
                spec = specs.get(drone_id)
                battery = float(state.get("battery_pct") or 0.0)
                docked.setdefault(s.code, []).append(
                    DockedDrone(drone_id, battery, spec.pct_per_km if spec else None)
                )
        arriving = now - timedelta(seconds=ARRIVAL_S)
        incoming: dict[str, int] = {}
        for m in recent:
            if m["at"] >= arriving and docked_at.get(m["drone_id"]) != m["to_station"]:
                incoming[m["to_station"]] = incoming.get(m["to_station"], 0) + 1
        return [
            StationOutlook(
                s.code,
                s.lat,
                s.lon,
                s.pads,
                demand[s.code],
                tuple(docked.get(s.code, ())),
                incoming.get(s.code, 0),
            )
            for s in stations
        ]
