"""Rebalancing: move idle drones toward the stations where the next hour's forecast demand
exceeds the drones docked there, so an order finds a drone on its pad instead of waiting for
one to fly in after it was placed.

Pure: the plan of one pass from the stations (pads, forecast orders for the next hour) and
the idle drones docked at each. A station's *need* is its forecast orders rounded up, less
the drones docked (and already on their way) there; its *spare* is the drones docked beyond
its own forecast. Each move takes a spare drone from the nearest station with one (within
``max_km``, with battery for the hop and the reserve) to the station of the largest need
with a free pad, until no need, no spare, or ``max_moves``. A drone moved recently is not
moved again (``cooldown``: no ping-pong on a forecast that wavers), and every move says why.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from skyhive.domain.geo import haversine_m


@dataclass(frozen=True, slots=True)
class RebalancePolicy:
    max_moves: int = 10  # per pass
    max_km: float = 8.0  # a hop longer than this is not worth the flight
    min_battery_pct: float = 50.0  # below: the drone charges where it is
    reserve_pct: float = 20.0  # battery left on landing, at least
    keep: int = 1  # drones a station keeps whatever its forecast (the unforeseen order)
    # Battery per km of a hop (a typical drone's consumption / capacity, in % per km); the
    # dispatcher passes each drone's own.
    default_pct_per_km: float = 2.5


@dataclass(frozen=True, slots=True)
class DockedDrone:
    drone_id: str
    battery_pct: float
    pct_per_km: float | None = None  # its spec's, when known


@dataclass(frozen=True, slots=True)
class StationOutlook:
    code: str
    lat: float
    lon: float
    pads: int
    forecast: float  # orders expected in the next hour
    docked: tuple[DockedDrone, ...] = ()  # idle drones on its pads
    incoming: int = 0  # drones already flying there (earlier moves, returns)


@dataclass(frozen=True, slots=True)
class Move:
    drone_id: str
    from_station: str
    to_station: str
    km: float
    reason: str


@dataclass(slots=True)
class _Station:
    s: StationOutlook
    free: list[DockedDrone] = field(default_factory=list)  # movable, best battery first
    present: int = 0  # docked + incoming, as the plan goes

    @property
    def need(self) -> int:
        return math.ceil(self.s.forecast - 1e-9) - self.present

    def spare(self, keep: int) -> int:
        """Drones it can give: beyond its own forecast, and beyond ``keep``."""
        wanted = max(math.ceil(self.s.forecast - 1e-9), keep)
        return min(len(self.free), self.present - wanted)


def plan(
    stations: Sequence[StationOutlook],
    policy: RebalancePolicy,
    cooling: Mapping[str, object] | None = None,
) -> list[Move]:
    """The moves of one pass. ``cooling``: drones moved too recently to move again."""
    cooling = cooling or {}
    state = {
        s.code: _Station(
            s,
            sorted(
                (d for d in s.docked if d.drone_id not in cooling),
                key=lambda d: (-d.battery_pct, d.drone_id),
            ),
            len(s.docked) + s.incoming,
        )
        for s in stations
    }
    moves: list[Move] = []
    while len(moves) < policy.max_moves:
        needy = [t for t in state.values() if t.need > 0 and t.present < t.s.pads]
        if not needy:
            break
        to = max(needy, key=lambda t: (t.need, t.s.forecast, t.s.code))
        found = _donor(to, state.values(), policy)
        if found is None:
            state.pop(to.s.code)  # nothing can reach it this pass; look at the others
            continue
        frm, drone, km = found
        frm.free.remove(drone)
        frm.present -= 1
        to.present += 1
        moves.append(
            Move(
                drone.drone_id,
                frm.s.code,
                to.s.code,
                round(km, 2),
                f"{to.s.code} expects {to.s.forecast:.1f} orders next hour with "
                f"{to.present - 1} drones there; {frm.s.code} keeps {frm.present} for "
                f"{frm.s.forecast:.1f}",
            )
        )
    return moves


def _donor(
    to: _Station, stations: Iterable[_Station], policy: RebalancePolicy
) -> tuple[_Station, DockedDrone, float] | None:
    """The nearest station with a spare drone that can make the hop, and that drone."""
    best: tuple[_Station, DockedDrone, float] | None = None
    for frm in stations:
        if frm is to or frm.spare(policy.keep) <= 0:
            continue
        km = haversine_m(frm.s.lat, frm.s.lon, to.s.lat, to.s.lon) / 1000.0
        if km > policy.max_km or (best is not None and km >= best[2]):
            continue
        for d in frm.free:
            per_km = d.pct_per_km or policy.default_pct_per_km
            if d.battery_pct >= policy.min_battery_pct and (
                d.battery_pct - km * per_km >= policy.reserve_pct
            ):
                best = (frm, d, km)
                break
    return best
