"""Geofences: validation of the zone model, :class:`GeofenceIndex` lookups at every edge
(boundary, holes, altitude band, absolute and daily windows), and :class:`GeofenceCache`
reloading against a fake source and a fake clock."""

from __future__ import annotations

import math
import random
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import shapely
from pydantic import ValidationError

from manual_clock import ManualClock
from skyhive.domain.geofence import Geofence, GeofenceIndex, GeofenceSpec
from skyhive.services.geofence_cache import GeofenceCache

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SQUARE = [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]
HOLE = [[4, 4], [6, 4], [6, 6], [4, 6], [4, 4]]


def polygon(*rings: list[list[float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": list(rings)}


def box(x: float, y: float, size: float) -> list[list[float]]:
    return [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]


def zone(zone_id: str = "z1", geometry: dict[str, Any] | None = None, **fields: Any) -> Geofence:
    spec = GeofenceSpec.model_validate(
        {"name": zone_id, "geometry": geometry or polygon(SQUARE), **fields}, strict=True
    )
    return Geofence.from_spec(spec, zone_id, created_at=NOW, now=NOW)


def hits(
    index: GeofenceIndex, lat: float, lon: float, alt: float | None = 50.0, at: datetime = NOW
) -> list[str]:
    return [z.id for z in index.violations(lat, lon, alt, at)]


def inside(
    z: Geofence, lat: float = 5, lon: float = 1, alt: float | None = 50.0, at: datetime = NOW
) -> bool:
    return hits(GeofenceIndex([z]), lat, lon, alt, at) == [z.id]


def reject(**fields: Any) -> tuple[str, str]:
    """The first error's field (dotted) and the whole message."""
    body = {"name": "zone", "geometry": polygon(SQUARE), **fields}
    with pytest.raises(ValidationError) as info:
        GeofenceSpec.model_validate(body, strict=True)
    err = info.value.errors(include_url=False)[0]
    return ".".join(str(p) for p in err["loc"]), str(info.value)


# --- position ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lat", "lon"),
    [(0, 0), (10, 10), (0, 5), (5, 0), (10, 5), (5, 10), (5, 5)],
    ids=["corner", "far-corner", "bottom-edge", "left-edge", "top-edge", "right-edge", "middle"],
)
def test_boundary_counts_as_inside(lat: float, lon: float) -> None:
    assert inside(zone(), lat=lat, lon=lon)


@pytest.mark.parametrize(
    ("lat", "lon"),
    [(5, 10 + 1e-9), (5, -1e-9), (10 + 1e-9, 5), (-1e-9, 5), (20, 20), (-5, -5)],
)
def test_just_outside_is_not_a_violation(lat: float, lon: float) -> None:
    assert not inside(zone(), lat=lat, lon=lon)


def test_coordinates_are_lon_lat() -> None:
    tall = zone(geometry=polygon([[0, 0], [1, 0], [1, 10], [0, 10], [0, 0]]))  # 1 wide, 10 high
    assert inside(tall, lat=8, lon=0.5)
    assert not inside(tall, lat=0.5, lon=8)


def test_hole_is_outside_but_its_edge_is_part_of_the_zone() -> None:
    z = zone(geometry=polygon(SQUARE, HOLE))
    assert not inside(z, lat=5, lon=5)  # in the hole
    assert inside(z, lat=4, lon=5)  # on the hole's edge: the zone's boundary
    assert inside(z, lat=2, lon=2)  # in the ring around the hole


def test_multipolygon_covers_each_part_and_not_the_gap() -> None:
    multi = {
        "type": "MultiPolygon",
        "coordinates": [[box(0, 0, 1)], [box(5, 5, 1), box(5.25, 5.25, 0.5)]],
    }
    z = zone(geometry=multi)
    assert inside(z, lat=0.5, lon=0.5)
    assert inside(z, lat=5.1, lon=5.1)
    assert inside(z, lat=6, lon=6)  # corner of the second part
    assert not inside(z, lat=3, lon=3)  # between the parts, inside their joint bounding box
    assert not inside(z, lat=5.5, lon=5.5)  # the second part's hole


def test_positions_may_carry_an_altitude() -> None:
    ring3d = [[x, y, 100] for x, y in SQUARE]
    assert inside(zone(geometry=polygon(ring3d)))


# --- altitude band: floor inclusive, ceiling exclusive ------------------------------------------


@pytest.mark.parametrize(
    ("alt", "expected"),
    [(49.999, False), (50.0, True), (80.0, True), (119.999, True), (120.0, False), (500.0, False)],
)
def test_altitude_band_edges(alt: float, expected: bool) -> None:
    assert inside(zone(floor_m=50.0, ceiling_m=120.0), alt=alt) is expected


def test_open_ended_bands() -> None:
    floor_only, ceiling_only = zone(floor_m=50.0), zone(ceiling_m=120.0)
    assert inside(floor_only, alt=10_000) and not inside(floor_only, alt=49.9)
    assert inside(ceiling_only, alt=-3) and not inside(ceiling_only, alt=120)
    assert inside(zone(), alt=10_000)  # no band: every altitude


def test_unknown_altitude_counts_as_inside_the_band() -> None:
    assert inside(zone(floor_m=50.0, ceiling_m=120.0), alt=None)


# --- time windows -------------------------------------------------------------------------------


def test_active_from_inclusive_until_exclusive() -> None:
    start, end = NOW, NOW + timedelta(hours=2)
    z = zone(active_from="2026-11-23T12:00:00Z", active_until="2026-11-23T14:00:00Z")
    assert (z.active_from, z.active_until) == (start, end)
    us = timedelta(microseconds=1)
    assert not inside(z, at=start - us)
    assert inside(z, at=start)
    assert inside(z, at=end - us)
    assert not inside(z, at=end)


def test_open_ended_windows() -> None:
    assert not inside(zone(active_from="2026-11-23T12:00:01Z"), at=NOW)
    assert inside(zone(active_from="2026-11-23T12:00:00Z"), at=NOW + timedelta(days=900))
    assert inside(zone(active_until="2026-11-23T12:00:01Z"), at=datetime(2000, 1, 1, tzinfo=UTC))
    assert not inside(zone(active_until="2026-11-23T12:00:00Z"), at=NOW)


def day_at(hh: int, mm: int, ss: int = 0, us: int = 0) -> datetime:
    return datetime(2026, 11, 23, hh, mm, ss, us, tzinfo=UTC)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (day_at(21, 59, 59, 999_999), False),
        (day_at(22, 0), True),
        (day_at(23, 59, 59), True),
        (day_at(0, 0), True),
        (day_at(5, 59, 59, 999_999), True),
        (day_at(6, 0), False),
        (day_at(12, 0), False),
    ],
)
def test_daily_window_wrapping_midnight(at: datetime, expected: bool) -> None:
    assert inside(zone(daily={"start": "22:00", "end": "06:00"}), at=at) is expected


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (day_at(8, 59, 59), False),
        (day_at(9, 0), True),
        (day_at(16, 59), True),
        (day_at(17, 0), False),
    ],
)
def test_daily_window_within_a_day(at: datetime, expected: bool) -> None:
    assert inside(zone(daily={"start": "09:00", "end": "17:00"}), at=at) is expected


def test_times_are_compared_in_utc() -> None:
    night = zone(daily={"start": "22:00", "end": "06:00"})
    cest = timezone(timedelta(hours=2))
    assert not inside(night, at=datetime(2026, 11, 23, 23, 30, tzinfo=cest))  # 21:30 UTC
    assert inside(night, at=datetime(2026, 11, 24, 0, 30, tzinfo=cest))  # 22:30 UTC
    assert inside(night, at=datetime(2026, 11, 23, 22, 30))  # naive means UTC
    assert not inside(zone(active_until="2026-11-23T12:00:00Z"), at=datetime(2026, 11, 23, 12, 0))


def test_all_conditions_must_hold_together() -> None:
    z = zone(floor_m=0, ceiling_m=100, daily={"start": "10:00", "end": "14:00"})
    assert inside(z, alt=99, at=NOW)
    assert not inside(z, alt=100, at=NOW)
    assert not inside(z, alt=99, at=day_at(14, 0))
    assert not inside(z, lat=50, alt=99, at=NOW)


# --- the index ----------------------------------------------------------------------------------


def test_empty_and_disabled_zones_never_match() -> None:
    assert hits(GeofenceIndex([]), 5, 5) == []
    index = GeofenceIndex([zone("off", enabled=False), zone("on")])
    assert len(index) == 1
    assert hits(index, 5, 5) == ["on"]


def test_overlapping_zones_come_back_in_build_order() -> None:
    index = GeofenceIndex(
        [
            zone("b"),
            zone("a", geometry=polygon(box(5, 5, 10))),
            zone("c", geometry=polygon(box(50, 50, 1))),
        ]
    )
    assert hits(index, 7, 7) == ["b", "a"]
    assert hits(index, 12, 12) == ["a"]
    assert hits(index, 1, 1) == ["b"]


def random_zones(n: int, seed: int) -> list[Geofence]:
    rnd = random.Random(seed)
    zones = []
    for i in range(n):
        x, y, size = rnd.uniform(0, 10), rnd.uniform(0, 10), rnd.uniform(0.1, 2)
        # Every third a triangle: half of its bounding box is outside it.
        triangle = [[x, y], [x + size, y], [x, y + size], [x, y]]
        ring = triangle if i % 3 == 0 else box(x, y, size)
        zones.append(zone(f"z{i:04d}", geometry=polygon(ring)))
    return zones


@pytest.mark.parametrize("n", [40, GeofenceIndex.TREE_FROM + 10], ids=["scan", "strtree"])
def test_index_agrees_with_a_plain_covers_check(n: int) -> None:
    """Both lookup paths (box scan, STRtree) against shapely's ``covers`` zone by zone, at
    random points and at every zone's vertices (on the boundary)."""
    zones = random_zones(n, seed=n)
    index = GeofenceIndex(zones)
    assert (index._tree is not None) is (n >= GeofenceIndex.TREE_FROM)
    rnd = random.Random(7)
    points = [(rnd.uniform(-1, 12), rnd.uniform(-1, 12)) for _ in range(2000)]
    points += [(y, x) for z in zones[:30] for x, y in z.geometry.coordinates[0]]
    shapes = [z.geometry.shape for z in zones]
    matched = 0
    for lat, lon in points:
        covers = shapely.covers(shapes, shapely.Point(lon, lat))
        expected = [z.id for z, yes in zip(zones, covers, strict=True) if yes]
        assert hits(index, lat, lon) == expected, (lat, lon)
        matched += bool(expected)
    assert matched > 100  # the comparison is not vacuous


def test_lookup_is_fast_enough_for_every_reading() -> None:
    """50 zones, 20,000 readings: well under the 1,000 µs a reading has at 1,000 msg/s (the
    bound is loose for slow CI; measured ~3 µs)."""
    index = GeofenceIndex(random_zones(50, seed=1))
    rnd = random.Random(3)
    points = [(rnd.uniform(-1, 12), rnd.uniform(-1, 12)) for _ in range(20_000)]
    started = time.perf_counter()
    found = sum(len(index.violations(lat, lon, 50.0, NOW)) for lat, lon in points)
    per_reading_us = (time.perf_counter() - started) / len(points) * 1e6
    assert found > 0
    assert per_reading_us < 100, per_reading_us


# --- validation ---------------------------------------------------------------------------------


def test_bow_tie_is_rejected_with_the_reason() -> None:
    field, msg = reject(geometry=polygon([[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]))
    assert field == "geometry"
    assert "Self-intersection[0.5 0.5]" in msg


def test_hole_outside_the_shell_is_rejected() -> None:
    field, msg = reject(geometry=polygon(SQUARE, box(20, 20, 1)))
    assert field == "geometry" and "Hole lies outside shell" in msg


@pytest.mark.parametrize(
    ("geometry", "expected"),
    [
        (polygon([[0, 0], [1, 0], [1, 1], [0, 1]]), "ring 0 is not closed"),
        (polygon(SQUARE, [[4, 4], [6, 4], [6, 6], [4, 6]]), "ring 1 is not closed"),
        (polygon([[0, 0], [1, 0], [0, 0]]), "3 positions; a ring needs at least 4"),
        (polygon([[0, 0], [181, 0], [181, 1], [0, 0]]), "longitude 181 is outside -180..180"),
        (polygon([[0, 0], [1, 0], [1, -90.5], [0, 0]]), "latitude -90.5 is outside -90..90"),
        (polygon([[0, 0], [1, 0], [1, True], [0, 0]]), "position 2: expected [lon, lat]"),
        (polygon([[0, 0], [1, 0], [1], [0, 0]]), "position 2: expected [lon, lat]"),
        ({"type": "Polygon", "coordinates": []}, "nest 3 arrays deep"),
        ({"type": "Polygon", "coordinates": SQUARE}, "nest 3 arrays deep"),
        ({"type": "MultiPolygon", "coordinates": [SQUARE]}, "nest 4 arrays deep"),
        (
            {
                "type": "MultiPolygon",
                "coordinates": [[SQUARE], [[[0, 0], [1, 0], [1, 1], [0, 0], [9, 9]]]],
            },
            "polygon 1, ring 0 is not closed",
        ),
    ],
)
def test_malformed_rings_are_rejected(geometry: dict[str, Any], expected: str) -> None:
    field, msg = reject(geometry=geometry)
    assert field == "geometry"
    assert expected in msg


def test_oversized_geometry_is_rejected() -> None:
    n = 10_001
    circle = [[math.cos(2 * math.pi * i / n), math.sin(2 * math.pi * i / n)] for i in range(n)]
    field, msg = reject(geometry=polygon([*circle, circle[0]]))
    assert field == "geometry" and "10002 positions; at most 10000" in msg


def test_overlapping_multipolygon_parts_are_rejected() -> None:
    multi = {"type": "MultiPolygon", "coordinates": [[box(0, 0, 2)], [box(1, 1, 2)]]}
    field, msg = reject(geometry=multi)
    assert field == "geometry" and "not a valid MultiPolygon" in msg


@pytest.mark.parametrize(
    ("fields", "field", "expected"),
    [
        ({"geometry": {"type": "Point", "coordinates": [0, 0]}}, "geometry.type", "Polygon"),
        ({"floor_m": 120, "ceiling_m": 120}, "ceiling_m", "must be above floor_m (120)"),
        ({"floor_m": -1}, "floor_m", "greater than or equal to 0"),
        (
            {"active_from": "2026-11-23T12:00:00Z", "active_until": "2026-11-23T12:00:00Z"},
            "active_until",
            "must be after active_from",
        ),
        ({"active_from": "2026-11-23T12:00:00"}, "active_from", "needs a UTC offset"),
        ({"active_until": "next tuesday"}, "active_until", "RFC 3339"),
        ({"daily": {"start": "24:00", "end": "06:00"}}, "daily.start", "pattern"),
        ({"daily": {"start": "6:00", "end": "07:00"}}, "daily.start", "pattern"),
        ({"daily": {"start": "06:00", "end": "06:00"}}, "daily", "start and end must differ"),
        ({"name": "   "}, "name", "must not be blank"),
        ({"name": "x" * 101}, "name", "at most 100"),
        ({"id": "has space"}, "id", "pattern"),
        ({"colour": "red"}, "colour", "Extra inputs"),
    ],
)
def test_other_fields_are_validated(fields: dict[str, Any], field: str, expected: str) -> None:
    got_field, msg = reject(**fields)
    assert got_field == field
    assert expected in msg


def test_timestamps_are_utc_to_the_millisecond() -> None:
    z = zone(active_from="2026-11-23T14:00:00.123456+02:00")
    assert z.active_from == datetime(2026, 11, 23, 12, 0, 0, 123_000, tzinfo=UTC)


def test_document_round_trip_keeps_the_geojson_as_given() -> None:
    geometry = polygon([[x, y, 5] for x, y in SQUARE], HOLE)
    z = zone("gf-1", geometry=geometry, floor_m=10, daily={"start": "22:00", "end": "06:00"})
    doc = z.to_document()
    assert doc["_id"] == "gf-1" and "id" not in doc
    assert doc["geometry"] == geometry
    assert doc["daily"] == {"start": "22:00", "end": "06:00"}
    assert Geofence.from_document(doc) == z


# --- the cache ------------------------------------------------------------------------------------


class FakeSource:
    def __init__(self) -> None:
        self.zones: list[Geofence] = []
        self.counter = 0
        self.reads = 0
        self.fail = False

    def version(self) -> int:
        if self.fail:
            raise ConnectionError("redis down")
        return self.counter

    def all_enabled(self) -> list[Geofence]:
        self.reads += 1
        return list(self.zones)


def test_cache_rereads_only_when_the_version_moved_and_at_most_once_a_second() -> None:
    source, clock = FakeSource(), ManualClock()
    cache = GeofenceCache(source, clock)
    first = cache.current()
    assert (len(first), source.reads, cache.version) == (0, 1, 0)
    source.zones, source.counter = [zone("z1")], 1
    clock.advance(0.5)
    assert cache.current() is first  # checked less than a second ago
    clock.advance(0.5)
    second = cache.current()
    assert [z.id for z in second.geofences] == ["z1"] and source.reads == 2
    assert hits(second, 5, 5) == ["z1"]
    for _ in range(5):  # unchanged version: no re-read
        clock.advance(1.0)
        assert cache.current() is second
    assert source.reads == 2


def test_cache_rereads_after_max_age_even_without_a_version_change() -> None:
    source, clock = FakeSource(), ManualClock()
    cache = GeofenceCache(source, clock, max_age_s=60.0)
    cache.current()
    source.zones = [zone("z1")]  # written while the counter was lost: same version
    clock.advance(30)
    assert len(cache.current()) == 0
    clock.advance(30)
    assert len(cache.current()) == 1


def test_cache_keeps_the_last_zones_while_the_stores_fail() -> None:
    source, clock = FakeSource(), ManualClock()
    source.zones, source.counter = [zone("z1")], 1
    cache = GeofenceCache(source, clock)
    loaded = cache.current()
    source.fail = True
    source.counter = 2
    clock.advance(1.0)
    assert cache.current() is loaded  # no exception, the last zones
    source.fail = False
    source.zones = []
    clock.advance(1.0)
    assert len(cache.current()) == 0 and cache.version == 2
