"""Geofences (no-fly zones) for the ``geofence`` alert rule: the zone model with its
validation, and :class:`GeofenceIndex`, the per-reading lookup. Pure: shapely and pydantic,
no I/O.

Coordinates are GeoJSON's ``[lon, lat]``. A zone applies to a reading when the position is
inside or on the boundary, the altitude is within the band and the time within the windows;
every bound is inclusive at its start and exclusive at its end (``floor_m <= alt < ceiling_m``,
``active_from <= t < active_until``, ``start <= time of day < end``), so adjacent bands and
windows never overlap. Polygons crossing the antimeridian are not supported: split them
into a MultiPolygon, as RFC 7946 asks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, time
from typing import Any, Literal

import shapely
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
HHMM_PATTERN = r"^(?:[01]\d|2[0-3]):[0-5]\d$"
MAX_ALT_M = 20_000.0
# A zone is checked against every reading: keep one from costing more than a few
# milliseconds to build and a few microseconds to test.
MAX_POSITIONS = 10_000


def utc_datetime(value: Any) -> Any:
    """RFC 3339 text (with an offset: a zone's local time is not ours to guess) or a datetime,
    as UTC cut to milliseconds, the precision MongoDB stores. Anything else is left for
    pydantic to reject."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"must be an RFC 3339 timestamp, got {value[:40]!r}") from None
        if value.tzinfo is None:
            raise ValueError("needs a UTC offset (e.g. 'Z')")
    if isinstance(value, datetime):
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    return value


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _ring(raw: object, where: str) -> list[tuple[float, float]]:
    """A linear ring: closed, at least 4 positions, each ``[lon, lat]`` (or with altitude)."""
    if not isinstance(raw, list):
        raise ValueError(f"{where} must be an array of positions")
    points: list[tuple[float, float]] = []
    for i, p in enumerate(raw):
        if not isinstance(p, list) or not 2 <= len(p) <= 3 or not all(map(_is_number, p)):
            raise ValueError(f"{where}, position {i}: expected [lon, lat], got {str(p)[:60]}")
        lon, lat = float(p[0]), float(p[1])
        if not -180 <= lon <= 180:
            raise ValueError(f"{where}, position {i}: longitude {lon:g} is outside -180..180")
        if not -90 <= lat <= 90:
            raise ValueError(
                f"{where}, position {i}: latitude {lat:g} is outside -90..90 "
                "(positions are [lon, lat])"
            )
        points.append((lon, lat))
    if len(points) < 4:
        raise ValueError(f"{where} has {len(points)} positions; a ring needs at least 4")
    if [float(x) for x in raw[0]] != [float(x) for x in raw[-1]]:
        raise ValueError(f"{where} is not closed: its last position must equal its first")
    return points


def _polygon(raw: object, where: str) -> shapely.Polygon:
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{where} must be a non-empty array of rings (exterior, then holes)")
    prefix = f"{where}, " if where else ""
    rings = [_ring(r, f"{prefix}ring {i}") for i, r in enumerate(raw)]
    return shapely.Polygon(rings[0], rings[1:])


def _depth(coordinates: list[Any]) -> int:
    """Nesting depth of the first element (Polygon 3, MultiPolygon 4), to catch a mixed-up
    type early with a clear message."""
    depth, node = 0, coordinates
    while isinstance(node, list) and node:
        depth, node = depth + 1, node[0]
    return depth


def _positions(node: list[Any], depth: int) -> Iterable[object]:
    """The items ``depth`` arrays down: the positions of Polygon coordinates at depth 2."""
    if depth == 1:
        yield from node
        return
    for child in node:
        if isinstance(child, list):
            yield from _positions(child, depth - 1)


class GeoJsonGeometry(BaseModel):
    """A GeoJSON Polygon or MultiPolygon with [lon, lat] positions, stored as given."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["Polygon", "MultiPolygon"]
    coordinates: list[Any] = Field(
        description="Polygon: rings of [lon, lat] positions, the exterior first, then holes; "
        "each ring closed (last position equals the first), at least 4 positions. "
        "MultiPolygon: an array of Polygon coordinates."
    )

    _shape: BaseGeometry = PrivateAttr()

    @model_validator(mode="after")
    def _valid(self) -> GeoJsonGeometry:
        wanted = 3 if self.type == "Polygon" else 4
        if _depth(self.coordinates) != wanted:
            raise ValueError(
                f"coordinates of a {self.type} nest {wanted} arrays deep "
                f"({'[[[lon, lat], ...]]' if wanted == 3 else '[[[[lon, lat], ...]]]'})"
            )
        count = sum(1 for _ in _positions(self.coordinates, wanted - 1))
        if count > MAX_POSITIONS:
            raise ValueError(f"{count} positions; at most {MAX_POSITIONS} are allowed")
        shape: BaseGeometry
        if self.type == "Polygon":
            shape = _polygon(self.coordinates, "")
        else:
            shape = shapely.MultiPolygon(
                [_polygon(p, f"polygon {i}") for i, p in enumerate(self.coordinates)]
            )
        if not shapely.is_valid(shape):
            raise ValueError(
                f"not a valid {self.type}: {explain_validity(shape)} "
                "(a ring may not cross itself or another ring; holes must lie inside)"
            )
        self._shape = shape
        return self

    @property
    def shape(self) -> BaseGeometry:
        return self._shape


class DailyWindow(BaseModel):
    """A daily window in UTC; ``end`` before ``start`` wraps midnight (22:00-06:00)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str = Field(pattern=HHMM_PATTERN, description="HH:MM UTC, inclusive.")
    end: str = Field(pattern=HHMM_PATTERN, description="HH:MM UTC, exclusive.")

    _start: time = PrivateAttr()
    _end: time = PrivateAttr()

    @model_validator(mode="after")
    def _parsed(self) -> DailyWindow:
        if self.start == self.end:
            raise ValueError("start and end must differ (leave out daily for all day)")
        self._start, self._end = time.fromisoformat(self.start), time.fromisoformat(self.end)
        return self

    def contains(self, t: time) -> bool:
        """``t`` is a naive UTC time of day."""
        if self._start < self._end:
            return self._start <= t < self._end
        return t >= self._start or t < self._end


class _ZoneFields(BaseModel):
    """What an operator says about a zone; shared by the request body and the stored zone."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    geometry: GeoJsonGeometry
    floor_m: float | None = Field(
        default=None, ge=0, le=MAX_ALT_M, description="Metres above ground, inclusive."
    )
    ceiling_m: float | None = Field(
        default=None, gt=0, le=MAX_ALT_M, description="Metres above ground, exclusive."
    )
    active_from: datetime | None = Field(default=None, description="UTC, inclusive.")
    active_until: datetime | None = Field(default=None, description="UTC, exclusive.")
    daily: DailyWindow | None = None
    enabled: bool = True

    @field_validator("active_from", "active_until", mode="before")
    @classmethod
    def _utc(cls, value: Any) -> Any:
        return utc_datetime(value)

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    # Checked on the later field (validated after the earlier one) so that an error names it.
    @field_validator("ceiling_m")
    @classmethod
    def _above_floor(cls, value: float | None, info: ValidationInfo) -> float | None:
        floor = info.data.get("floor_m")
        if value is not None and floor is not None and floor >= value:
            raise ValueError(f"must be above floor_m ({floor:g})")
        return value

    @field_validator("active_until")
    @classmethod
    def _after_from(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        since = info.data.get("active_from")
        if value is not None and since is not None and since >= value:
            raise ValueError("must be after active_from")
        return value

    def in_band(self, alt_m: float | None) -> bool:
        """Unknown altitude counts as in the band: a missed violation costs more than a
        false alarm."""
        if alt_m is None:
            return True
        if self.floor_m is not None and alt_m < self.floor_m:
            return False
        return self.ceiling_m is None or alt_m < self.ceiling_m

    def in_force(self, at: datetime) -> bool:
        """Enabled and within its windows at ``at`` (aware, or naive meaning UTC)."""
        if not self.enabled:
            return False
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
        if self.active_from is not None and at < self.active_from:
            return False
        if self.active_until is not None and at >= self.active_until:
            return False
        return self.daily is None or self.daily.contains(at.astimezone(UTC).time())


class GeofenceSpec(_ZoneFields):
    """A zone as created or replaced through the API; without ``id`` one is generated."""

    id: str | None = Field(default=None, pattern=ID_PATTERN)


class Geofence(_ZoneFields):
    """A stored zone."""

    id: str = Field(pattern=ID_PATTERN)
    created_at: datetime
    updated_at: datetime

    @field_validator("created_at", "updated_at", mode="before")
    @classmethod
    def _utc_stamps(cls, value: Any) -> Any:
        return utc_datetime(value)

    @staticmethod
    def from_spec(
        spec: GeofenceSpec, geofence_id: str, created_at: datetime, now: datetime
    ) -> Geofence:
        fields = {k: getattr(spec, k) for k in _ZoneFields.model_fields}
        return Geofence(id=geofence_id, created_at=created_at, updated_at=now, **fields)

    def to_document(self) -> dict[str, Any]:
        doc = self.model_dump()
        doc["_id"] = doc.pop("id")
        return doc

    @staticmethod
    def from_document(doc: dict[str, Any]) -> Geofence:
        fields = {k: v for k, v in doc.items() if k != "_id"}
        return Geofence.model_validate({**fields, "id": str(doc["_id"])})


class GeofenceIndex:
    """The enabled zones of a snapshot, for :meth:`violations` on every reading.

    A reading is first matched against bounding boxes, then the cheap altitude and time
    checks, and only then the (prepared) polygon. Below ``TREE_FROM`` zones the boxes are a
    plain list: measured at 50 zones, a scan costs ~3 µs a reading against ~15-20 µs with an
    ``STRtree`` (building the query point alone costs ~6 µs); the tree wins past ~500.
    """

    TREE_FROM = 512

    def __init__(self, geofences: Iterable[Geofence]) -> None:
        self.geofences: tuple[Geofence, ...] = tuple(g for g in geofences if g.enabled)
        shapes = [g.geometry.shape for g in self.geofences]
        for shape in shapes:
            shapely.prepare(shape)  # idempotent; the polygon tests reuse it
        self._shapes = shapes
        self._boxes = [(*s.bounds, i) for i, s in enumerate(shapes)]
        self._tree = shapely.STRtree(shapes) if len(shapes) >= self.TREE_FROM else None

    def __len__(self) -> int:
        return len(self.geofences)

    def violations(
        self, lat: float, lon: float, alt_m: float | None, at: datetime
    ) -> list[Geofence]:
        """Zones in force at ``at`` (aware, or naive meaning UTC) whose polygon covers the
        position (the boundary counts as inside) and whose band holds ``alt_m``; in the
        order the index was built."""
        if not self._boxes:
            return []
        if self._tree is not None:
            found = self._tree.query(shapely.Point(lon, lat))
            found.sort()
            hits: list[int] = found.tolist()
        else:
            hits = [
                i
                for minx, miny, maxx, maxy, i in self._boxes
                if minx <= lon <= maxx and miny <= lat <= maxy
            ]
        if not hits:
            return []
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        out = []
        for i in hits:
            zone = self.geofences[i]
            # For a point, "intersects" is "covers": inside or on the boundary, and the
            # coordinate form needs no Point object.
            if (
                zone.in_band(alt_m)
                and zone.in_force(at)
                and shapely.intersects_xy(self._shapes[i], lon, lat)
            ):
                out.append(zone)
        return out
