"""Alert rules over telemetry: what each reading says about each alert type.

A rule looks at one reading in its context (the drone's thresholds and registry spec, the
nearest station, the no-fly zones it is in) and its memory of the drone's previous readings,
and returns a :class:`Finding` per alert type it can judge: a severity (the condition holds)
or ``None`` (it does not). A rule that cannot judge (no position, no spec) says nothing, so
an open alert is left as it is. The lifecycle (``alert_lifecycle.py``) turns findings into
opened, escalated, de-escalated and resolved alerts.

Readings older than the last one judged (out of order, replayed) are not judged at all: they
are history, and must not move an alert back in time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from skyhive.domain.alert_config import Severity, Thresholds
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.geo import haversine_m
from skyhive.domain.telemetry import Telemetry

AIRBORNE = frozenset({"in_flight", "returning", "emergency"})
# Battery must climb this far above the warning threshold to clear low_battery: sensor noise
# around the threshold must not open and resolve alerts every second.
LOW_BATTERY_HYSTERESIS_PCT = 2.0
# Battery samples kept for battery_drop: at most one per this many seconds.
SAMPLE_SPACING_S = 5.0
# A position that jumped is not trusted as the next reference, unless this many in a row
# agree (the drone really is there: a GPS reset, a relocated drone).
JUMPS_TO_ACCEPT = 3


@dataclass(slots=True)
class Finding:
    type: str
    severity: Severity | None  # None: the condition does not hold
    ts: datetime
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Zone:
    """A no-fly zone the reading is in (from the geofence index)."""

    id: str
    name: str


@dataclass(slots=True)
class Context:
    thresholds: Thresholds
    spec: DroneSpec | None = None
    nearest_station: tuple[str, float] | None = None  # (code, km)
    zones: tuple[Zone, ...] | None = None  # None: not checked (no position)


@dataclass(slots=True)
class Memory:
    """What the rules remember of a drone between readings (kept in Redis)."""

    ts_ms: int = -1
    seq: int = -1
    lat: float | None = None
    lon: float | None = None
    samples: list[tuple[float, float]] = field(default_factory=list)  # (epoch s, battery %)
    jumps: int = 0  # consecutive positions that jumped
    pos_ts_ms: int = -1  # when (lat, lon) was reported

    def encode(self) -> dict[str, Any]:
        return {
            "t": self.ts_ms,
            "s": self.seq,
            "la": self.lat,
            "lo": self.lon,
            "b": self.samples,
            "j": self.jumps,
            "p": self.pos_ts_ms,
        }

    @staticmethod
    def decode(raw: dict[str, Any] | None) -> Memory:
        if not raw:
            return Memory()
        return Memory(
            int(raw.get("t", -1)),
            int(raw.get("s", -1)),
            raw.get("la"),
            raw.get("lo"),
            [(float(a), float(b)) for a, b in raw.get("b", [])],
            int(raw.get("j", 0)),
            int(raw.get("p", raw.get("t", -1))),
        )

    def is_newer(self, t: Telemetry) -> bool:
        return t.newer_than(self.ts_ms, self.seq)


def evaluate(t: Telemetry, ctx: Context, mem: Memory) -> list[Finding]:
    """Findings for one reading, and ``mem`` updated with it. Call only for readings newer
    than ``mem`` (:meth:`Memory.is_newer`), oldest first."""
    th = ctx.thresholds
    out = [
        _heard(t),
        _found("emergency", "critical" if t.is_emergency else None, t),
    ]
    gps = _gps_degraded(t, th)
    if gps is not None:
        out.append(gps)
    judged, low = _low_battery(t, th)
    if judged:
        out.append(_found("low_battery", low, t))
    reach = _cannot_reach(t, ctx)
    if reach is not None:
        out.append(reach)
    if ctx.zones is not None:
        zones = [{"id": z.id, "name": z.name} for z in ctx.zones]
        out.append(_found("geofence", "critical" if zones else None, t, zones=zones))
    if t.alt_m is not None:
        above = t.alt_m > th.altitude_ceiling_m
        out.append(
            _found("altitude", "warning" if above else None, t, ceiling_m=th.altitude_ceiling_m)
        )
    if t.speed_mps is not None:
        fast = t.speed_mps > th.overspeed_mps
        out.append(_found("overspeed", "warning" if fast else None, t, limit_mps=th.overspeed_mps))
    jump = _gps_jump(t, th, mem)
    if jump is not None:
        out.append(jump)
    drop = _battery_drop(t, th, mem)
    out.append(drop)
    _remember(t, th, mem, jumped=jump is not None and jump.severity is not None)
    if drop.severity is not None:
        # Judge later readings against the level after the drop: the drop is reported
        # once, and a person who resolves it does not see it reopen from the same samples.
        mem.samples = [(t.ts_ms / 1000.0, t.battery_pct)]
    return out


def _heard(t: Telemetry) -> Finding:
    """Any reading means the drone is heard again, unless the MAVLink gateway says its
    autopilot's HEARTBEAT stopped (``mavlink.heartbeat_lost_s``): offline at once, sooner
    than the timer of :func:`offline_finding` can tell."""
    link = (t.model_extra or {}).get("mavlink")
    lost = link.get("heartbeat_lost_s") if isinstance(link, dict) else None
    if not isinstance(lost, int | float):
        return Finding("offline", None, t.ts)
    airborne = t.status in AIRBORNE
    details = {"silent_s": lost, "heartbeat_lost": True, "last_status": t.status}
    return Finding("offline", "critical" if airborne else "warning", t.ts, details)


def _gps_degraded(t: Telemetry, th: Thresholds) -> Finding | None:
    """GPS integrity from the reading's ``gps`` (fix type, satellites, eph as HDOP): below a
    3D fix, too few satellites or too poor an eph is a warning. Readings without ``gps``
    (MQTT drones) are not judged."""
    gps = (t.model_extra or {}).get("gps")
    if not isinstance(gps, dict) or not isinstance(gps.get("fix_type"), int):
        return None
    why = []
    if gps["fix_type"] < th.gps_min_fix_type:
        why.append(f"fix type {gps['fix_type']} < {th.gps_min_fix_type}")
    sats = gps.get("satellites")
    if isinstance(sats, int) and sats < th.gps_min_satellites:
        why.append(f"{sats} satellites < {th.gps_min_satellites}")
    eph = gps.get("eph")
    if isinstance(eph, int | float) and eph > th.gps_max_eph:
        why.append(f"eph {eph:g} > {th.gps_max_eph:g}")
    return _found("gps_degraded", "warning" if why else None, t, gps=gps, why=why)


def _found(kind: str, severity: Severity | None, t: Telemetry, **extra: Any) -> Finding:
    """A finding; what the reading showed is kept only when the condition holds (a clear
    finding's details are never stored: they would only cost time on the hot path)."""
    return Finding(kind, severity, t.ts, {**_where(t), **extra} if severity else {})


def _where(t: Telemetry) -> dict[str, Any]:
    return {
        "battery_pct": t.battery_pct,
        "lat": t.lat,
        "lon": t.lon,
        "alt_m": t.alt_m,
        "seq": t.seq,
        "status": t.status,
        "speed_mps": t.speed_mps,
    }


def _low_battery(t: Telemetry, th: Thresholds) -> tuple[bool, Severity | None]:
    """(judged, severity): not judged inside the hysteresis band above the warning
    threshold, where an open alert stays as it is."""
    if t.battery_pct < th.low_battery_critical_pct:
        return True, "critical"
    if t.battery_pct < th.low_battery_warning_pct:
        return True, "warning"
    return t.battery_pct >= th.low_battery_warning_pct + LOW_BATTERY_HYSTERESIS_PCT, None


def energy_to_reach_pct(spec: DroneSpec, km: float) -> float:
    """Battery share (%) needed to fly ``km`` at the drone's consumption."""
    return km * spec.consumption_wh_per_km / spec.battery_capacity_wh * 100.0


def _cannot_reach(t: Telemetry, ctx: Context) -> Finding | None:
    """Critical when the battery left cannot carry the drone to the nearest station with the
    reserve to spare. Judged only in the air (a docked drone is at a station)."""
    if t.status is not None and t.status not in AIRBORNE:
        return Finding("cannot_reach_station", None, t.ts)
    if ctx.spec is None or ctx.nearest_station is None:
        return None
    code, km = ctx.nearest_station
    needed = energy_to_reach_pct(ctx.spec, km)
    short = t.battery_pct - needed < ctx.thresholds.reach_reserve_pct
    return _found(
        "cannot_reach_station",
        "critical" if short else None,
        t,
        station=code,
        distance_km=round(km, 3),
        needed_pct=round(needed, 1),
        reserve_pct=ctx.thresholds.reach_reserve_pct,
    )


def _gps_jump(t: Telemetry, th: Thresholds, mem: Memory) -> Finding | None:
    if t.lat is None or t.lon is None or mem.lat is None or mem.lon is None:
        return None
    dt = (t.ts_ms - mem.pos_ts_ms) / 1000.0
    if dt <= 0:
        return None
    metres = haversine_m(mem.lat, mem.lon, t.lat, t.lon)
    implied = metres / dt
    if implied <= th.gps_jump_mps:
        return Finding("gps_jump", None, t.ts)
    return _found(
        "gps_jump",
        "critical",
        t,
        **{"from": {"lat": mem.lat, "lon": mem.lon}},
        distance_m=round(metres, 1),
        seconds=round(dt, 3),
        implied_mps=round(implied, 1),
        limit_mps=th.gps_jump_mps,
    )


def _battery_drop(t: Telemetry, th: Thresholds, mem: Memory) -> Finding:
    now = t.ts_ms / 1000.0
    window = [(at, pct) for at, pct in mem.samples if now - at <= th.battery_drop_window_s]
    peak = max((pct for _, pct in window), default=t.battery_pct)
    drop = peak - t.battery_pct
    return _found(
        "battery_drop",
        "critical" if drop > th.battery_drop_pct else None,
        t,
        drop_pct=round(drop, 1),
        window_s=th.battery_drop_window_s,
        limit_pct=th.battery_drop_pct,
    )


def _remember(t: Telemetry, th: Thresholds, mem: Memory, jumped: bool) -> None:
    now = t.ts_ms / 1000.0
    mem.ts_ms, mem.seq = t.ts_ms, t.seq
    mem.jumps = mem.jumps + 1 if jumped else 0
    if t.lat is not None and t.lon is not None and mem.jumps in (0, JUMPS_TO_ACCEPT):
        # A jumped position is an outlier until it is confirmed: the next good reading is
        # compared with the last trusted one, so the jump back is not a second jump.
        mem.lat, mem.lon, mem.pos_ts_ms = t.lat, t.lon, t.ts_ms
        mem.jumps = 0
    kept = [(at, pct) for at, pct in mem.samples if now - at <= th.battery_drop_window_s]
    if not kept or now - kept[-1][0] >= SAMPLE_SPACING_S:
        kept.append((now, t.battery_pct))
    else:
        # Keep the window's peak: a sample replaced by a lower one could hide a drop.
        at, pct = kept[-1]
        kept[-1] = (at, max(pct, t.battery_pct))
    mem.samples = kept


def offline_finding(
    silent_s: float, airborne: bool, th: Thresholds, at: datetime, last_status: str | None
) -> Finding | None:
    """The offline rule, run by a timer rather than by a reading: in the air a drone must be
    heard every ``offline_in_flight_s``, docked every ``offline_docked_s``."""
    limit = th.offline_in_flight_s if airborne else th.offline_docked_s
    if silent_s <= limit:
        return None
    details = {"silent_s": round(silent_s, 1), "limit_s": limit, "last_status": last_status}
    return Finding("offline", "critical" if airborne else "warning", at, details)
