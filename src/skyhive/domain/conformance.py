"""Conformance to the declared flight: the 4-D corridor a delivery declares, and the check
of each reading against it.

A dispatched delivery declares its flight (:func:`declare`): the polyline from the drone's
position at assignment through the pickup station, the destination and the return station,
a lateral buffer, an altitude band and a time window from assignment to the promised return
(with a margin). A reading is off it laterally, vertically or in time (:func:`check`), or
the drone is silent while the delivery is active (:func:`stale_breach`) — the checks Flight
Blender runs against a declared operational intent. :func:`judge` turns a drone's readings
into a ``conformance`` finding and the lifecycle step they call for: a breach makes the
delivery ``non_conforming`` (and it resumes when conforming again); one lasting past
``contingent_after_s`` makes it ``contingent`` and the alert critical (the alert engine then
sends the drone to the nearest station). Pure: the caller reads and writes the state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from skyhive.domain.alert_rules import Finding
from skyhive.domain.geo import EARTH_RADIUS_M

BreachKind = Literal["lateral", "vertical", "time_window", "stale"]
Move = Literal["non_conforming", "contingent", "resume"]
LonLat = tuple[float, float]
LatLon = tuple[float, float]
ALERT_TYPE = "conformance"


class ConformanceConfig(BaseModel):
    """``SKYHIVE_CONFORMANCE__*``: the corridor every delivery declares and how a breach is
    handled."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    buffer_m: float = Field(default=150.0, gt=0)  # either side of the declared polyline
    alt_min_m: float = Field(default=0.0, ge=-500)
    alt_max_m: float = Field(default=150.0, gt=0)
    # Added before the assignment and after the promised return: winds, queues at a pad.
    time_margin_s: float = Field(default=300.0, ge=0)
    stale_s: float = Field(default=15.0, gt=0)  # silence that breaches an active declaration
    contingent_after_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _band(self) -> ConformanceConfig:
        if self.alt_min_m >= self.alt_max_m:
            raise ValueError("alt_min_m must be below alt_max_m")
        return self


class Declaration(BaseModel):
    """A delivery's declared flight. ``corridor`` is [lon, lat] pairs, as GeoJSON has them."""

    model_config = ConfigDict(frozen=True)

    delivery_id: str
    drone_id: str
    corridor: list[LonLat] = Field(min_length=2)
    buffer_m: float
    alt_min_m: float
    alt_max_m: float
    start: datetime
    end: datetime
    declared_at: datetime


def declare(
    delivery_id: str,
    drone_id: str,
    waypoints: Sequence[LatLon | None],
    start: datetime,
    back_by: datetime,
    now: datetime,
    cfg: ConformanceConfig,
) -> Declaration:
    """The declaration of a delivery flying through ``waypoints`` (lat, lon: the drone's
    position if known, pickup, destination, return station) from ``start`` (its
    assignment) until ``back_by`` (the promised return), each widened by the margin."""
    corridor = [(p[1], p[0]) for p in waypoints if p is not None]
    margin = timedelta(seconds=cfg.time_margin_s)
    return Declaration(
        delivery_id=delivery_id,
        drone_id=drone_id,
        corridor=corridor,
        buffer_m=cfg.buffer_m,
        alt_min_m=cfg.alt_min_m,
        alt_max_m=cfg.alt_max_m,
        start=start - margin,
        end=back_by + margin,
        declared_at=now,
    )


def _segment_m(lat: float, lon: float, a: LonLat, b: LonLat) -> float:
    """Distance from (lat, lon) to segment a-b, on a local equirectangular plane (exact to
    well under a metre over a delivery's few kilometres)."""
    k = math.cos(math.radians(lat))
    ax, ay = (a[0] - lon) * k, a[1] - lat
    bx, by = (b[0] - lon) * k, b[1] - lat
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / length2))
    px, py = ax + t * dx, ay + t * dy
    return math.radians(math.hypot(px, py)) * EARTH_RADIUS_M


def off_corridor_m(corridor: Sequence[LonLat], lat: float, lon: float) -> float:
    """How far (lat, lon) is from the polyline ``corridor``, in metres."""
    return min(_segment_m(lat, lon, a, b) for a, b in pairwise(corridor))


@dataclass(frozen=True, slots=True)
class Breach:
    kind: BreachKind
    details: dict[str, Any] = field(default_factory=dict)


def check(
    d: Declaration, lat: float | None, lon: float | None, alt_m: float | None, at: datetime
) -> Breach | None:
    """The first way a reading is off its declaration, or None when it conforms. A part the
    reading does not report (no position, no altitude) is not judged."""
    if at < d.start or at > d.end:
        return Breach("time_window", {"start": d.start.isoformat(), "end": d.end.isoformat()})
    if lat is not None and lon is not None:
        off = off_corridor_m(d.corridor, lat, lon)
        if off > d.buffer_m:
            return Breach("lateral", {"off_corridor_m": round(off, 1), "buffer_m": d.buffer_m})
    if alt_m is not None and not d.alt_min_m <= alt_m <= d.alt_max_m:
        band = [d.alt_min_m, d.alt_max_m]
        return Breach("vertical", {"alt_m": alt_m, "band_m": band})
    return None


def stale_breach(silent_s: float, cfg: ConformanceConfig) -> Breach | None:
    """Silence while a declaration is active is a breach of its own (the drone cannot be
    shown to conform)."""
    if silent_s <= cfg.stale_s:
        return None
    return Breach("stale", {"silent_s": round(silent_s, 1), "limit_s": cfg.stale_s})


@dataclass(slots=True)
class Watch:
    """What is remembered of a drone's conformance between batches (kept in Redis)."""

    delivery_id: str
    ts_ms: int = -1  # the newest reading judged (event time, then seq)
    seq: int = -1
    breach: BreachKind | None = None
    since_ms: int | None = None  # when the current breach began
    contingent: bool = False
    position: LatLon | None = None  # the last reported, for the nearest station
    # Its last reading said it was in the air: only then is silence a breach (a drone
    # waiting on a pad for take-off reports at its docked pace; the tracker's silent-drone
    # policy watches it there).
    airborne: bool = False

    def encode(self) -> dict[str, Any]:
        return {
            "d": self.delivery_id,
            "t": self.ts_ms,
            "s": self.seq,
            "b": self.breach,
            "f": self.since_ms,
            "c": self.contingent,
            "p": self.position,
            "a": self.airborne,
        }

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Watch:
        p = raw.get("p")
        position = (float(p[0]), float(p[1])) if p else None
        airborne = bool(raw.get("a", False))
        return cls(raw["d"], raw["t"], raw["s"], raw["b"], raw["f"], raw["c"], position, airborne)

    def is_newer(self, ts_ms: int, seq: int) -> bool:
        return (ts_ms, seq) > (self.ts_ms, self.seq)


@dataclass(frozen=True, slots=True)
class Step:
    """What one judgement calls for: the finding for the alert engine, and the delivery's
    lifecycle step (None: it stays as it is)."""

    finding: Finding | None
    move: Move | None = None


def step(
    watch: Watch,
    breach: Breach | None,
    at: datetime,
    cfg: ConformanceConfig,
    station: str | None,
) -> Step:
    """Advance ``watch`` by one judgement at ``at``. ``station``: the nearest station, where
    a contingent drone is sent. A contingent delivery stays contingent: its drone is on its
    way to a station, whatever it does next."""
    at_ms = int(at.timestamp() * 1000)
    if breach is None:
        if watch.breach is None:
            return Step(None)
        watch.breach, watch.since_ms = None, None
        move: Move | None = None if watch.contingent else "resume"
        return Step(Finding(ALERT_TYPE, None, at, {"delivery_id": watch.delivery_id}), move)
    move = None
    if watch.breach is None:
        watch.since_ms = at_ms
        move = None if watch.contingent else "non_conforming"
    watch.breach = breach.kind
    lasting_s = max(0.0, (at_ms - (watch.since_ms or at_ms)) / 1000.0)
    details: dict[str, Any] = {
        "delivery_id": watch.delivery_id,
        "breach": breach.kind,
        "lasting_s": round(lasting_s, 1),
        **breach.details,
    }
    critical = lasting_s > cfg.contingent_after_s
    if critical and not watch.contingent:
        watch.contingent, move = True, "contingent"
    if critical and station is not None:
        details["station"] = station
    return Step(Finding(ALERT_TYPE, "critical" if critical else "warning", at, details), move)
