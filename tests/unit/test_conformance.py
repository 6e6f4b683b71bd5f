"""The declared flight and the check of a reading against it (domain/conformance.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from skyhive.domain.conformance import (
    ConformanceConfig,
    Declaration,
    Watch,
    check,
    declare,
    off_corridor_m,
    stale_breach,
    step,
)
from skyhive.domain.deliveries import can_transition, resumed_status
from skyhive.domain.geo import bearing_deg, destination_point

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
CFG = ConformanceConfig(buffer_m=150, alt_min_m=0, alt_max_m=150, time_margin_s=60)
DRONE = (37.80, -122.27)
PICKUP = (37.8044, -122.2712)  # 12th St Oakland City Center
DEST = (37.8100, -122.2600)
BACK = (37.7975, -122.2654)  # Lake Merritt


def declared() -> Declaration:
    return declare(
        "dlv-1", "D1", [DRONE, PICKUP, DEST, BACK], T0, T0 + timedelta(minutes=10), T0, CFG
    )


def test_a_declaration_runs_drone_pickup_destination_return_in_lon_lat_with_a_widened_window() -> (
    None
):
    d = declare("dlv-1", "D1", [None, PICKUP, DEST, BACK], T0, T0 + timedelta(minutes=10), T0, CFG)
    assert d.corridor == [(PICKUP[1], PICKUP[0]), (DEST[1], DEST[0]), (BACK[1], BACK[0])]
    assert d.start == T0 - timedelta(seconds=60)
    assert d.end == T0 + timedelta(minutes=11)
    assert (d.buffer_m, d.alt_min_m, d.alt_max_m) == (150, 0, 150)


def test_distance_to_the_corridor_is_measured_to_the_nearest_segment() -> None:
    corridor = [(PICKUP[1], PICKUP[0]), (DEST[1], DEST[0])]
    assert off_corridor_m(corridor, *PICKUP) == pytest.approx(0, abs=0.01)
    # 300 m at right angles off the middle of the leg.
    mid = ((PICKUP[0] + DEST[0]) / 2, (PICKUP[1] + DEST[1]) / 2)
    lat, lon = destination_point(*mid, bearing_deg(*PICKUP, *DEST) - 90.0, 300.0)
    assert off_corridor_m(corridor, lat, lon) == pytest.approx(300, rel=0.01)
    # Beyond the end: the distance to the end point.
    lat, lon = destination_point(*DEST, 0.0, 500.0)
    assert off_corridor_m(corridor, lat, lon) == pytest.approx(500, rel=0.01)


def test_a_reading_on_the_corridor_in_the_band_and_window_conforms() -> None:
    d = declared()
    assert check(d, *PICKUP, 90.0, T0 + timedelta(minutes=1)) is None


def test_each_way_off_the_declaration_is_its_own_breach() -> None:
    d = declared()
    at = T0 + timedelta(minutes=1)
    lat, lon = destination_point(*PICKUP, 315.0, 400.0)
    lateral = check(d, lat, lon, 90.0, at)
    assert lateral is not None and lateral.kind == "lateral"
    assert lateral.details["off_corridor_m"] > 150
    vertical = check(d, *PICKUP, 151.0, at)
    assert vertical is not None and vertical.kind == "vertical"
    late = check(d, *PICKUP, 90.0, T0 + timedelta(minutes=12))
    assert late is not None and late.kind == "time_window"
    # What a reading does not report is not judged.
    assert check(d, None, None, None, at) is None


def test_silence_past_the_limit_is_a_stale_breach() -> None:
    assert stale_breach(15.0, CFG) is None
    found = stale_breach(15.5, CFG)
    assert found is not None and found.kind == "stale" and found.details["limit_s"] == 15


def test_a_breach_flags_then_turns_contingent_after_the_limit_and_stays_so() -> None:
    w = Watch("dlv-1")
    off = check(declared(), *PICKUP, 200.0, T0)
    first = step(w, off, T0, CFG, "LAKE")
    assert first.move == "non_conforming"
    assert first.finding is not None and first.finding.severity == "warning"
    assert "station" not in first.finding.details
    again = step(w, off, T0 + timedelta(seconds=30), CFG, "LAKE")
    assert again.move is None and again.finding is not None
    assert again.finding.severity == "warning"  # 30 s is not past the limit
    lasting = step(w, off, T0 + timedelta(seconds=31), CFG, "LAKE")
    assert lasting.move == "contingent"
    assert lasting.finding is not None and lasting.finding.severity == "critical"
    assert lasting.finding.details["station"] == "LAKE"
    back = step(w, None, T0 + timedelta(seconds=40), CFG, "LAKE")
    assert back.move is None  # contingent stays contingent
    assert back.finding is not None and back.finding.severity is None  # the alert resolves


def test_conforming_again_resumes_and_clears_once() -> None:
    w = Watch("dlv-1")
    off = check(declared(), *PICKUP, 200.0, T0)
    step(w, off, T0, CFG, None)
    back = step(w, None, T0 + timedelta(seconds=5), CFG, None)
    assert back.move == "resume" and back.finding is not None and back.finding.severity is None
    assert step(w, None, T0 + timedelta(seconds=6), CFG, None).finding is None


def test_the_watch_round_trips_and_orders_readings_by_event_time_then_seq() -> None:
    w = Watch("dlv-1", 1000, 5, "lateral", 900, True, (37.8, -122.27))
    assert Watch.decode(w.encode()) == w
    assert w.is_newer(1000, 6) and w.is_newer(1001, 0)
    assert not w.is_newer(1000, 5) and not w.is_newer(999, 99)


def test_a_delivery_off_its_flight_leaves_and_resumes_its_lifecycle() -> None:
    for status in ("assigned", "picked_up", "in_transit"):
        assert can_transition(status, "non_conforming")
    assert can_transition("non_conforming", "contingent")
    assert can_transition("contingent", "delivered")  # and bills as delivered
    assert not can_transition("contingent", "in_transit")
    assert not can_transition("pending", "non_conforming")
    assert resumed_status(["pending", "assigned", "picked_up", "non_conforming"]) == "picked_up"
    assert resumed_status(["pending", "non_conforming"]) == "assigned"


def test_the_altitude_band_must_be_a_band() -> None:
    with pytest.raises(ValueError, match="alt_min_m"):
        ConformanceConfig(alt_min_m=100, alt_max_m=100)
