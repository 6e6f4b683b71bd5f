"""Rollups from readings (``domain/rollups.py``): each step counts in the period of its later
reading, gaps are not counted, an hour is the sum of its minutes, and the level that serves
a window is the finest still kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from skyhive.domain.geo import haversine_m
from skyhive.domain.rollups import (
    MAX_GAP_S,
    finest_level,
    merge,
    period_start,
    roll_minute,
    rollup_id,
)

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def r(
    at_s: float, battery: float, lat: float = 37.8, lon: float = -122.27, **kw: Any
) -> dict[str, Any]:
    return {"ts": T0 + timedelta(seconds=at_s), "battery_pct": battery, "lat": lat, "lon": lon} | kw


def test_a_minute_counts_its_readings_steps_and_extremes() -> None:
    readings = [
        r(0, 90, status="in_flight", alt_m=50, speed_mps=10),
        r(10, 89, lat=37.801, status="in_flight", alt_m=80, speed_mps=12),
        r(20, 88.5, lat=37.802, status="idle", alt_m=0, speed_mps=0),
        r(30, 88.5, lat=37.803, status="idle"),  # GPS jitter on the ground: not flown
        r(40, 95, lat=37.803, status="charging"),  # charging gives nothing back
    ]
    m = roll_minute("d1", T0, reversed(readings), previous=None, alerts=2, capacity_wh=500)
    flown = haversine_m(37.8, -122.27, 37.801, -122.27) + haversine_m(
        37.801, -122.27, 37.802, -122.27
    )
    assert m.readings == 5 and m.alerts == 2
    assert m.distance_m == pytest.approx(flown)
    assert m.battery_used_pct == pytest.approx(1.5) and m.flight_used_pct == pytest.approx(1.5)
    assert m.status_s == {"in_flight": 20.0, "idle": 20.0}
    assert (m.battery_min, m.alt_max, m.speed_max) == (88.5, 80, 12)
    doc = m.document()
    assert doc["energy_wh"] == pytest.approx(7.5)  # 1.5 % of 500 Wh
    assert doc["battery_avg"] == pytest.approx((90 + 89 + 88.5 + 88.5 + 95) / 5, abs=1e-3)
    assert m.last is not None and m.last["ts"] == T0 + timedelta(seconds=40)
    assert m.id == "d1:2026-11-23T12:00Z"


def test_the_first_step_comes_from_the_minute_before_and_long_gaps_are_not_counted() -> None:
    start = T0 + timedelta(minutes=1)
    prev = r(55, 80, status="in_flight")
    m = roll_minute("d1", start, [r(65, 79, status="in_flight")], previous=prev)
    assert m.status_s == {"in_flight": 10.0} and m.battery_used_pct == pytest.approx(1)
    gap = r(60 - MAX_GAP_S - 1, 80, status="in_flight")
    lonely = roll_minute("d1", start, [r(60, 70)], previous=gap)
    assert lonely.status_s == {} and lonely.battery_used_pct == 0 and lonely.readings == 1


def test_a_drone_on_a_pad_may_report_seldom_and_its_drain_is_not_flight() -> None:
    start = T0 + timedelta(minutes=10)
    docked = r(0, 80, status="charging")  # ten minutes before: still counted on a pad
    m = roll_minute("d1", start, [r(600, 90, status="idle"), r(630, 89.5, status="idle")], docked)
    assert m.status_s == {"charging": 600.0, "idle": 30.0}
    assert m.battery_used_pct == pytest.approx(0.5) and m.flight_used_pct == 0
    assert m.distance_m == 0  # GPS jitter on the pad is not flown
    assert m.document()["flight_energy_wh"] is None  # capacity unknown


def test_readings_outside_the_minute_are_ignored_and_an_empty_minute_is_empty() -> None:
    m = roll_minute("d1", T0, [r(-1, 50), r(60, 50)], previous=None)
    assert m.readings == 0 and m.last is None and m.document()["battery_avg"] is None


def test_an_hour_is_the_sum_of_its_minutes() -> None:
    a = roll_minute(
        "d1",
        T0,
        [r(0, 90, status="in_flight", alt_m=10), r(30, 89, status="in_flight")],
        None,
        1,
        400,
    )
    b = roll_minute(
        "d1", T0 + timedelta(minutes=1), [r(70, 87, status="in_flight", alt_m=30)], a.last, 0, 400
    )
    h = merge("d1", "hour", T0, [b.document(), a.document()])
    assert h.readings == 3 and h.alerts == 1
    assert h.battery_used_pct == pytest.approx(3) and h.status_s == {"in_flight": 70.0}
    assert h.battery_min == 87 and h.alt_max == 30
    assert h.document()["battery_avg"] == pytest.approx((90 + 89 + 87) / 3, abs=1e-3)
    assert h.document()["energy_wh"] == pytest.approx(12)
    assert h.end == T0 + timedelta(hours=1)


def test_period_starts_and_ids_are_utc() -> None:
    at = datetime(2026, 11, 23, 13, 5, 7, 999, tzinfo=UTC)
    assert period_start(at, "minute") == datetime(2026, 11, 23, 13, 5, tzinfo=UTC)
    assert period_start(at, "hour") == datetime(2026, 11, 23, 13, tzinfo=UTC)
    assert rollup_id("x", period_start(at, "hour")) == "x:2026-11-23T13:00Z"


@pytest.mark.parametrize(
    ("age_days", "level"),
    [(None, "raw"), (1, "raw"), (7, "raw"), (8, "minute"), (90, "minute"), (91, "hour")],
)
def test_the_finest_level_still_kept_serves_a_window(age_days: int | None, level: str) -> None:
    since = None if age_days is None else T0 - timedelta(days=age_days)
    assert finest_level(since, T0, raw_days=7, minute_days=90) == level
