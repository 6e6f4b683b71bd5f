"""Simulated demand for history: when and where customers order, hour by hour.

Orders at each station arrive as a Poisson process whose rate is the station's base rate
times a daily profile (morning and evening peaks on weekdays, a late-morning hump at
weekends) and a weekday factor (fewer orders on Saturday, fewer still on Sunday). Hours and
days are the Bay Area's local ones (``America/Los_Angeles``), where the BART stations are.

A station's base rate follows how dense the stations are around it (``station_weights``):
downtown San Francisco, Oakland and Berkeley, where stations are within 3 km of each other,
order several times more than a station at the end of a line. That is derived from the
station data alone, not from ridership figures.

Each hour's orders are drawn from an RNG seeded by (seed, hour), so the same seed gives the
same orders for an hour whatever window it is drawn in.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from skyhive.domain.deliveries import DeliveryRequest
from skyhive.domain.geo import destination_point, haversine_m
from skyhive.domain.stations import Station

LOCAL = ZoneInfo("America/Los_Angeles")
HOUR = timedelta(hours=1)
NEIGHBOUR_M = 3_000.0  # stations within this distance make a station "downtown"
DENSITY_EXPONENT = 1.5  # a station with 4 neighbours orders 5^1.5 ≈ 11 times a lone one

# Relative order rate per local hour, 0-23.
WEEKDAY_PROFILE = (
    0.10, 0.06, 0.04, 0.03, 0.04, 0.10, 0.30, 0.70, 1.00, 0.90, 0.75, 0.80,
    0.95, 0.90, 0.75, 0.75, 0.90, 1.15, 1.25, 1.05, 0.80, 0.55, 0.35, 0.20,
)  # fmt: skip
WEEKEND_PROFILE = (
    0.15, 0.10, 0.06, 0.04, 0.04, 0.06, 0.12, 0.25, 0.45, 0.65, 0.85, 1.00,
    1.05, 1.00, 0.95, 0.90, 0.90, 0.95, 1.00, 0.90, 0.70, 0.50, 0.35, 0.25,
)  # fmt: skip
# A day's orders against a weekday's, Monday first.
DAY_FACTOR = (1.0, 1.0, 1.0, 1.0, 1.05, 0.8, 0.65)
PATIENCE_S = (15 * 60.0, 60 * 60.0)  # how long a customer waits for a drone before cancelling
SIZES = ("small", "small", "medium", "large")


@dataclass(frozen=True, slots=True)
class HistoryOrder:
    """An order as a customer placed it; ``patience_s`` is how long they wait for a drone."""

    id: str
    created_at: datetime
    station: Station
    request: DeliveryRequest
    patience_s: float


def random_order(
    customer_id: str, stations: Sequence[Station], rng: random.Random
) -> dict[str, Any]:
    """A delivery request (the API's body) from a random one of ``stations`` to a point
    0.5-4 km away in a random direction, with a small package. The live order generator
    (``orders.py``) places these through the API; history orders them directly."""
    station = rng.choice(stations)
    lat, lon = destination_point(
        station.lat, station.lon, rng.uniform(0, 360), rng.uniform(500, 4000)
    )
    return {
        "customer_id": customer_id,
        "pickup_station": station.code,
        "destination": {"lat": round(lat, 6), "lon": round(lon, 6)},
        "package": {
            "weight_kg": round(rng.uniform(0.2, 2.5), 1),
            "size": rng.choice(SIZES),
        },
    }


def station_weights(stations: Sequence[Station]) -> dict[str, float]:
    """Each station's share of the demand (summing to 1): ``(1 + neighbours within 3 km)``
    to the power ``DENSITY_EXPONENT``."""
    raw = {
        s.code: (
            1
            + sum(
                1
                for o in stations
                if o.code != s.code and haversine_m(s.lat, s.lon, o.lat, o.lon) < NEIGHBOUR_M
            )
        )
        ** DENSITY_EXPONENT
        for s in stations
    }
    total = sum(raw.values())
    return {code: w / total for code, w in raw.items()}


def hourly_factor(hour_start: datetime) -> float:
    """The share of a weekday's orders placed in the local hour starting at ``hour_start``."""
    local = hour_start.astimezone(LOCAL)
    weekend = local.weekday() >= 5
    profile = WEEKEND_PROFILE if weekend else WEEKDAY_PROFILE
    return DAY_FACTOR[local.weekday()] * profile[local.hour] / sum(profile)


def poisson(lam: float, rng: random.Random) -> int:
    """A Poisson draw (Knuth's method; the rates here are a few per hour at most)."""
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def hour_orders(
    hour_start: datetime,
    stations: Sequence[Station],
    weights: dict[str, float],
    orders_per_day: float,
    customers: Sequence[str],
    seed: int,
) -> list[HistoryOrder]:
    """The orders placed in the hour starting at ``hour_start`` (UTC, on the hour), oldest
    first."""
    start_ms = int(hour_start.timestamp() * 1000)
    rng = random.Random(f"history-demand:{seed}:{start_ms}")
    factor = hourly_factor(hour_start)
    out = []
    for station in stations:
        n = poisson(orders_per_day * weights[station.code] * factor, rng)
        for at_ms in sorted({start_ms + rng.randrange(3_600_000) for _ in range(n)}):
            order = random_order(rng.choice(customers), [station], rng)
            out.append(
                HistoryOrder(
                    id=f"hist-{seed}-{station.code}-{at_ms}",
                    created_at=datetime.fromtimestamp(at_ms / 1000, UTC),
                    station=station,
                    request=DeliveryRequest.model_validate(order),
                    patience_s=rng.uniform(*PATIENCE_S),
                )
            )
    out.sort(key=lambda o: (o.created_at, o.id))
    return out


def hours(since: datetime, until: datetime) -> Iterator[datetime]:
    """The starts of the whole hours in ``[since, until)`` (``since`` rounded up)."""
    at = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if at < since:
        at += HOUR
    while at + HOUR <= until:
        yield at
        at += HOUR
