"""Great-circle geometry on WGS84 coordinates (spherical approximation)."""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

EARTH_RADIUS_M = 6_371_008.8


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Distance in metres between two points."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def nearest(
    lat: float, lon: float, points: Sequence[T], where: Callable[[T], tuple[float, float]], k: int
) -> list[T]:
    """The ``k`` items of ``points`` nearest to (lat, lon), nearest first. Ranks by the
    equirectangular approximation: exact enough to order points a city apart, and several
    times cheaper than the haversine on a hot path."""
    kx = math.cos(math.radians(lat))

    def d2(item: T) -> float:
        plat, plon = where(item)
        return (plat - lat) ** 2 + ((plon - lon) * kx) ** 2

    return heapq.nsmallest(k, points, key=d2)


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial bearing from point 1 to point 2, degrees clockwise from north in [0, 360)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    x = math.sin(dl) * math.cos(p2)
    y = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return (math.degrees(math.atan2(x, y)) + 360.0) % 360.0


def destination_point(
    lat: float, lon: float, bearing: float, distance_m: float
) -> tuple[float, float]:
    """The point reached from (lat, lon) after ``distance_m`` on initial ``bearing``."""
    d = distance_m / EARTH_RADIUS_M
    b = math.radians(bearing)
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = l1 + math.atan2(
        math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    return math.degrees(p2), (math.degrees(l2) + 540.0) % 360.0 - 180.0


def point_lat_lon(point: dict[str, Any]) -> tuple[float, float]:
    """(lat, lon) of a GeoJSON point, whose coordinates are [lon, lat]."""
    lon, lat = point["coordinates"]
    return float(lat), float(lon)
