"""Battery health: each drone's energy per km against its own baseline → ``maintenance_due``.

A battery that ages holds less than its rated capacity, so each km costs a larger share of
it; worn motors or propellers cost more energy per km. Either way the drone's energy per km
drifts up over weeks, long before a flight falls short. This model measures it from the
telemetry alone and raises a warning when it has drifted.

**Measured only where it means something**: between consecutive readings of a drone in level
cruise (``in_flight`` or ``returning``, climbing or sinking at most ``max_climb_mps``
(0.5 m/s), moving at least ``min_speed_mps`` (3 m/s) over the ground, at most ``max_gap_s``
(30 s) apart, battery not rising): the battery share lost times the registry's
``battery_capacity_wh`` over the great-circle distance flown. Climbing, descending and
hovering cost energy with little distance: counted, they would measure the missions, not the
drone. A drone not in the registry (no capacity) is not judged.

- **Segment** (``segment_km``, 0.5 km): cruise adds up until this far is flown, which gives
  one figure (Wh/km). An interrupted flight (landing, a gap, charging) drops its unfinished
  segment. At the 0.01 % battery resolution drones report, a 0.5 km segment of a 500 Wh
  battery (~4 Wh) is read to about 1 %.
- **Baseline** (``baseline_km``, 20 km): the median of the drone's segments over its first
  20 km. The drone's own, so models, routes and payload habits need no thresholds of their
  own; the median, so a windy hour among those km does not set it.
- **Recent** (``window_km``, 5 km): energy over distance of the latest segments covering at
  least 5 km (M in the issue): one headwind leg does not raise an alert.
- **Drift** (``drift_share``, 0.25): recent above 1.25 times the baseline → ``maintenance_due``
  (warning), counted again at each segment while it holds; at or under it again, cleared
  (the alert resolves itself). A fresh battery or a repair therefore resolves it; a new
  baseline is learnt only for a drone whose state is removed from ``model_state``.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from skyhive.domain.alert_rules import Finding
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.geo import haversine_m
from skyhive.domain.stream_models import FLYING, DroneFinding
from skyhive.domain.telemetry import Telemetry
from skyhive.models.config import BatteryHealthConfig

KIND = "maintenance_due"
# A pair of positions implying more than this is a GPS glitch (the gps_jump rule's default).
MAX_SPEED_MPS = 80.0


@dataclass(slots=True)
class _Drone:
    """One drone's progress; ``last``: (ts ms, lat, lon, alt m, battery %) of the previous
    cruise reading."""

    last: tuple[int, float, float, float | None, float] | None = None
    seg_km: float = 0.0
    seg_pct: float = 0.0
    base: list[float] = field(default_factory=list)  # Wh/km of the baseline's segments
    base_km: float = 0.0
    baseline: float | None = None  # Wh/km, once base_km reached baseline_km
    recent: list[tuple[float, float]] = field(default_factory=list)  # (km, Wh) per segment
    drifting: bool = False

    def encode(self) -> dict[str, Any]:
        return {
            "last": list(self.last) if self.last else None,
            "seg": [self.seg_km, self.seg_pct],
            "base": self.base,
            "base_km": self.base_km,
            "baseline": self.baseline,
            "recent": [list(r) for r in self.recent],
            "drifting": self.drifting,
        }

    @staticmethod
    def decode(raw: Mapping[str, Any]) -> _Drone:
        last = raw.get("last")
        seg_km, seg_pct = raw.get("seg") or (0.0, 0.0)
        return _Drone(
            (int(last[0]), last[1], last[2], last[3], last[4]) if last else None,
            float(seg_km),
            float(seg_pct),
            [float(x) for x in raw.get("base", [])],
            float(raw.get("base_km", 0.0)),
            None if raw.get("baseline") is None else float(raw["baseline"]),
            [(float(km), float(wh)) for km, wh in raw.get("recent", [])],
            bool(raw.get("drifting", False)),
        )


class BatteryHealth:
    name = "battery_health"

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.config = BatteryHealthConfig.model_validate(dict(options))
        self._drones: dict[str, _Drone] = {}

    def observe(
        self, readings: Sequence[Telemetry], specs: Mapping[str, DroneSpec]
    ) -> list[DroneFinding]:
        out: list[DroneFinding] = []
        for t in readings:
            spec = specs.get(t.drone_id)
            if spec is None:
                continue
            drone = self._drones.setdefault(t.drone_id, _Drone())
            segment = self._fly(drone, t)
            if segment is not None:
                found = self._judge(drone, segment, spec, t)
                if found is not None:
                    out.append((t.drone_id, found))
        return out

    def _fly(self, d: _Drone, t: Telemetry) -> tuple[float, float] | None:
        """Add the pair (previous reading, ``t``) to the segment; the segment's (km, battery
        %) when it is complete."""
        c = self.config
        prev, d.last = d.last, None
        if t.status not in FLYING or t.lat is None or t.lon is None:
            d.seg_km = d.seg_pct = 0.0
            return None
        d.last = (t.ts_ms, t.lat, t.lon, t.alt_m, t.battery_pct)
        if prev is None:
            return None
        ts_ms, lat, lon, alt, battery = prev
        dt = (t.ts_ms - ts_ms) / 1000.0
        spent = battery - t.battery_pct
        if dt <= 0 or dt > c.max_gap_s or spent < 0:  # a gap or charging: a new segment
            d.seg_km = d.seg_pct = 0.0
            return None
        km = haversine_m(lat, lon, t.lat, t.lon) / 1000.0
        climb = 0.0 if alt is None or t.alt_m is None else (t.alt_m - alt) / dt
        if not c.min_speed_mps <= km * 1000.0 / dt <= MAX_SPEED_MPS or abs(climb) > c.max_climb_mps:
            return None  # hovering, climbing, descending or a glitch: not cruise
        d.seg_km += km
        d.seg_pct += spent
        if d.seg_km < c.segment_km:
            return None
        done = (d.seg_km, d.seg_pct)
        d.seg_km = d.seg_pct = 0.0
        return done

    def _judge(
        self, d: _Drone, segment: tuple[float, float], spec: DroneSpec, t: Telemetry
    ) -> Finding | None:
        c = self.config
        km, pct = segment
        wh = pct / 100.0 * spec.battery_capacity_wh
        if d.baseline is None:
            d.base.append(wh / km)
            d.base_km += km
            if d.base_km >= c.baseline_km:
                d.baseline, d.base = statistics.median(d.base), []
        d.recent.append((km, wh))
        while d.recent and sum(k for k, _ in d.recent) - d.recent[0][0] >= c.window_km:
            d.recent.pop(0)
        window_km = sum(k for k, _ in d.recent)
        if d.baseline is None or window_km < c.window_km:
            return None
        recent = sum(w for _, w in d.recent) / window_km
        drift = recent / d.baseline - 1.0
        if drift <= c.drift_share:
            was, d.drifting = d.drifting, False
            return Finding(KIND, None, t.ts) if was else None
        d.drifting = True
        message = (
            f"energy per km {recent:.2f} Wh/km over the last {window_km:.1f} km is "
            f"{drift:.0%} above this drone's baseline of {d.baseline:.2f} Wh/km "
            f"(limit {c.drift_share:.0%}): check the battery and the motors"
        )
        return Finding(
            KIND,
            "warning",
            t.ts,
            {
                "message": message,
                "baseline_wh_per_km": round(d.baseline, 3),
                "recent_wh_per_km": round(recent, 3),
                "drift_share": round(drift, 4),
                "limit_share": c.drift_share,
                "window_km": round(window_km, 3),
                "battery_capacity_wh": spec.battery_capacity_wh,
                "battery_pct": t.battery_pct,
            },
        )

    def metrics(self) -> Mapping[str, float]:
        drones = self._drones.values()
        return {
            "drones": float(len(self._drones)),
            "baselined": float(sum(d.baseline is not None for d in drones)),
            "drifting": float(sum(d.drifting for d in drones)),
        }

    def state(self, drone_id: str) -> dict[str, Any] | None:
        d = self._drones.get(drone_id)
        return d.encode() if d is not None else None

    def restore(self, drone_id: str, state: Mapping[str, Any]) -> None:
        self._drones[drone_id] = _Drone.decode(state)
