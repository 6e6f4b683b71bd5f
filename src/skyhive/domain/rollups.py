"""A drone's history summed up per minute and per hour (rollups), so a month or a year is
charted and analysed without reading every reading, and raw readings can expire.

Pure: the figures of one period from that period's readings, the hour from its minutes.
A period's figure is always computed whole from what is stored (never incremented), so a
replayed reading, written twice into its bucket, is counted once, and computing a period
again gives the same document.

Each step between two consecutive readings of a drone belongs to the period of the later
reading: its time (to the status of the earlier one), its distance and battery used in
flight (when the earlier one was flying), its battery used. So a minute needs only its own
readings and the last reading before it (the previous minute's ``last``), and the hour is the
sum of its minutes. A step longer than the drone reports in its status (``max_gap_s``: a
minute in the air, a quarter of an hour on a pad, like the offline alert's thresholds) is not
counted: the drone was off the air, and what it did meanwhile is unknown. The fleet KPIs over
the archive (``domain/kpis.py``) count steps by the same rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from skyhive.domain.geo import haversine_m

Level = Literal["minute", "hour"]
LEVELS: tuple[Level, ...] = ("minute", "hour")
SPAN: dict[Level, timedelta] = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1)}
MAX_GAP_S = 60.0  # between two readings of a drone in the air (or of unknown status)
GROUNDED_GAP_S = 900.0  # between two readings of a drone on a pad, which reports less often
GROUNDED = ("idle", "charging")
FLYING = ("in_flight", "returning", "emergency")  # distance and flight energy count here
UNKNOWN_STATUS = "unknown"


def max_gap_s(status: str | None) -> float:
    """The longest step counted after a reading of ``status``."""
    return GROUNDED_GAP_S if status in GROUNDED else MAX_GAP_S


def period_start(ts: datetime, level: Level) -> datetime:
    """The start of the minute or hour holding ``ts`` (UTC)."""
    ts = ts.astimezone(UTC)
    if level == "minute":
        return ts.replace(second=0, microsecond=0)
    return ts.replace(minute=0, second=0, microsecond=0)


def rollup_id(drone_id: str, start: datetime) -> str:
    """``drone:2026-11-23T12:05Z`` (a minute) or ``drone:2026-11-23T12:00Z`` (an hour: its
    own collection)."""
    return f"{drone_id}:{start.strftime('%Y-%m-%dT%H:%MZ')}"


@dataclass(slots=True)
class Rollup:
    """The figures of one drone over one period."""

    drone_id: str
    level: Level
    start: datetime
    readings: int = 0
    distance_m: float = 0.0
    battery_used_pct: float = 0.0  # drops only; charging does not give it back
    flight_used_pct: float = 0.0  # the drops of steps in flight
    battery_min: float | None = None
    battery_sum: float = 0.0  # so hours average their minutes' readings exactly
    alt_max: float | None = None
    speed_max: float | None = None
    status_s: dict[str, float] = field(default_factory=dict)
    alerts: int = 0
    capacity_wh: float | None = None  # the drone's battery, when the registry knows it
    last: dict[str, Any] | None = None  # the period's last reading, the next one's first step

    @property
    def id(self) -> str:
        return rollup_id(self.drone_id, self.start)

    @property
    def end(self) -> datetime:
        return self.start + SPAN[self.level]

    def _wh(self, pct: float) -> float | None:
        return round(pct / 100.0 * self.capacity_wh, 3) if self.capacity_wh else None

    def document(self) -> dict[str, Any]:
        """As stored (and served): averages and energy derived, figures rounded."""
        doc: dict[str, Any] = {
            "drone_id": self.drone_id,
            "start": self.start,
            "end": self.end,
            "readings": self.readings,
            "distance_m": round(self.distance_m, 2),
            "battery_used_pct": round(self.battery_used_pct, 3),
            "flight_used_pct": round(self.flight_used_pct, 3),
            "energy_wh": self._wh(self.battery_used_pct),
            "flight_energy_wh": self._wh(self.flight_used_pct),
            "battery_min": self.battery_min,
            "battery_avg": round(self.battery_sum / self.readings, 3) if self.readings else None,
            "battery_sum": round(self.battery_sum, 6),
            "alt_max": self.alt_max,
            "speed_max": self.speed_max,
            "status_s": {k: round(v, 3) for k, v in sorted(self.status_s.items())},
            "alerts": self.alerts,
        }
        if self.capacity_wh:
            doc["capacity_wh"] = self.capacity_wh
        if self.last is not None:
            doc["last"] = self.last
        return doc


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _min(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _step(r: Rollup, a: Mapping[str, Any], b: Mapping[str, Any]) -> None:
    """The step from reading ``a`` to the next reading ``b`` (of ``r``'s period)."""
    dt = (b["ts"] - a["ts"]).total_seconds()
    status = a.get("status")
    if not 0 < dt <= max_gap_s(status):
        return
    key = status or UNKNOWN_STATUS
    r.status_s[key] = r.status_s.get(key, 0.0) + dt
    flying = status in FLYING
    if flying and None not in (a.get("lat"), a.get("lon"), b.get("lat"), b.get("lon")):
        r.distance_m += haversine_m(a["lat"], a["lon"], b["lat"], b["lon"])
    drop = max(0.0, float(a["battery_pct"]) - float(b["battery_pct"]))
    r.battery_used_pct += drop
    if flying:
        r.flight_used_pct += drop


def last_of(reading: Mapping[str, Any]) -> dict[str, Any]:
    """What a period keeps of its last reading for the next period's first step."""
    keep = ("ts", "battery_pct", "lat", "lon", "status")
    return {k: reading[k] for k in keep if reading.get(k) is not None}


def roll_minute(
    drone_id: str,
    start: datetime,
    readings: Iterable[Mapping[str, Any]],
    previous: Mapping[str, Any] | None,
    alerts: int = 0,
    capacity_wh: float | None = None,
) -> Rollup:
    """The minute starting at ``start`` from its readings (each once; any order) and the
    last reading before it (``previous``, or None)."""
    r = Rollup(drone_id, "minute", start, alerts=alerts, capacity_wh=capacity_wh)
    end = r.end
    mine = sorted(
        (x for x in readings if start <= x["ts"] < end), key=lambda x: (x["ts"], x.get("seq", 0))
    )
    before = previous if previous is not None and previous["ts"] < start else None
    for x in mine:
        battery = float(x["battery_pct"])
        r.readings += 1
        r.battery_sum += battery
        r.battery_min = _min(r.battery_min, battery)
        r.alt_max = _max(r.alt_max, x.get("alt_m"))
        r.speed_max = _max(r.speed_max, x.get("speed_mps"))
        if before is not None:
            _step(r, before, x)
        before = x
    if mine:
        r.last = last_of(mine[-1])
    return r


def merge(
    drone_id: str, level: Level, start: datetime, parts: Sequence[Mapping[str, Any]]
) -> Rollup:
    """A longer period (an hour) from the stored documents of its shorter ones (minutes)."""
    r = Rollup(drone_id, level, start)
    for p in sorted(parts, key=lambda p: p["start"]):
        r.readings += int(p["readings"])
        r.distance_m += float(p["distance_m"])
        r.battery_used_pct += float(p["battery_used_pct"])
        r.flight_used_pct += float(p.get("flight_used_pct", 0.0))
        r.battery_sum += float(p["battery_sum"])
        r.battery_min = _min(r.battery_min, p.get("battery_min"))
        r.alt_max = _max(r.alt_max, p.get("alt_max"))
        r.speed_max = _max(r.speed_max, p.get("speed_max"))
        r.alerts += int(p.get("alerts", 0))
        for status, s in (p.get("status_s") or {}).items():
            r.status_s[status] = r.status_s.get(status, 0.0) + float(s)
        r.capacity_wh = p.get("capacity_wh") or r.capacity_wh
    return r


# --- which level serves a window --------------------------------------------------------


def finest_level(
    since: datetime | None, now: datetime, raw_days: int, minute_days: int
) -> Literal["raw", "minute", "hour"]:
    """The finest level whose retention still covers a window starting at ``since`` (no
    ``since``: the newest readings, raw)."""
    if since is None or since >= now - timedelta(days=raw_days):
        return "raw"
    if since >= now - timedelta(days=minute_days):
        return "minute"
    return "hour"
