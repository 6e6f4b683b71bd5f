"""The analytics rules (``domain/analytics.py``): windows, which rollups answer them, and the
shaping of utilisation, energy and the KPI rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from skyhive.domain.analytics import (
    Span,
    WindowError,
    alerts_by_type,
    energy_by_model,
    hour_rows,
    rollup_reads,
    split_overall,
    station_totals,
    utilisation,
    window,
)
from skyhive.domain.fleet import DroneSpec

NOW = datetime(2026, 11, 23, 12, 34, 56, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)


def at(hour: int, minute: int = 0, second: int = 0, day: int = 23) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)


def test_the_window_defaults_to_the_last_week_and_refuses_bad_ones() -> None:
    assert window(None, None, NOW) == Span(NOW - timedelta(days=7), NOW)
    assert window(None, at(10), NOW) == Span(at(10) - timedelta(days=7), at(10))
    assert window(at(1), None, NOW) == Span(at(1), NOW)
    assert window(NOW - timedelta(days=92), None, NOW).since == NOW - timedelta(days=92)
    for since, until, says in (
        (at(10), at(9), "since must be before until"),
        (at(10), at(10), "since must be before until"),
        (NOW + H, None, "since must be before until"),
        (NOW - timedelta(days=92, seconds=1), None, "at most 92 days; this one is 92.0"),
    ):
        with pytest.raises(WindowError, match=says) as refused:
            window(since, until, NOW)
        assert refused.value.field == "since"


def test_a_span_knows_its_days() -> None:
    assert Span(at(23), at(0, day=24)).days() == [date(2026, 11, 23)]
    assert Span(at(23), at(0, second=1, day=24)).days() == [date(2026, 11, 23), date(2026, 11, 24)]


def test_settled_whole_hours_come_from_hour_rollups_the_rest_from_minutes() -> None:
    reads = rollup_reads(Span(at(8, 30, 30), at(11, 15, 10)), NOW)
    assert reads.covered == Span(at(8, 31), at(11, 15))
    assert reads.hours == Span(at(9), at(11))
    assert reads.minutes == (Span(at(8, 31), at(9)), Span(at(11), at(11, 15)))

    aligned = rollup_reads(Span(at(0), at(12)), NOW)
    assert (aligned.hours, aligned.minutes) == (Span(at(0), at(12)), ())

    # Up to now: the current hour and the last one (it ended under 10 minutes ago at 12:05)
    # are read from their minutes.
    early = NOW.replace(minute=5, second=0)
    recent = rollup_reads(Span(at(6), early), early)
    assert recent.hours == Span(at(6), at(11))
    assert recent.minutes == (Span(at(11), at(12, 5)),)

    inside = rollup_reads(Span(at(9, 10), at(9, 50)), NOW)
    assert (inside.hours, inside.minutes) == (None, (Span(at(9, 10), at(9, 50)),))
    assert rollup_reads(Span(at(9, 10, 5), at(9, 10, 55)), NOW) == rollup_reads(
        Span(at(9, 10, 5), at(9, 11)), NOW
    )
    assert rollup_reads(Span(at(9, 10, 5), at(9, 10, 55)), NOW).covered is None


SPECS = {
    "a": DroneSpec(drone_id="a", model="x4", home_station="12TH", battery_capacity_wh=500),
    "b": DroneSpec(
        drone_id="b",
        model="x4",
        home_station="EMBR",
        battery_capacity_wh=1000,
        consumption_wh_per_km=10,
    ),
    "c": DroneSpec(drone_id="c", model="x8", home_station="EMBR"),
}


def period(drone: str, start: datetime, **fields: object) -> dict[str, object]:
    return {"drone_id": drone, "start": start, **fields}


def test_utilisation_sums_statuses_per_drone_and_day() -> None:
    periods = [
        period("a", at(9), status_s={"in_flight": 30.0, "returning": 10.0, "idle": 20.0}),
        period("a", at(10), status_s={"emergency": 5.0, "charging": 15.0, "unknown": 20.0}),
        period("a", at(1, day=24), status_s={"idle": 60.0}),
        period("z", at(9), status_s={}),  # not registered; one reading, no step
    ]
    days = [date(2026, 11, 22), date(2026, 11, 23), date(2026, 11, 24)]
    out = utilisation(periods, SPECS, days)
    [a23, z, a24] = out["drones"]  # by day, then drone
    assert a23 == {
        "day": date(2026, 11, 23),
        "drone_id": "a",
        "model": "x4",
        "home_station": "12TH",
        "flight_s": 45.0,
        "idle_s": 20.0,
        "charging_s": 15.0,
        "other_s": 20.0,
        "observed_s": 100.0,
        "flight_share": 0.45,
        "idle_share": 0.2,
        "charging_share": 0.15,
    }
    assert (a24["day"], a24["idle_share"], a24["flight_share"]) == (date(2026, 11, 24), 1.0, 0.0)
    assert (z["model"], z["observed_s"], z["flight_share"]) == (None, 0.0, None)
    fleet = out["fleet"]
    assert [f["day"] for f in fleet] == days
    assert (fleet[0]["drones"], fleet[0]["observed_s"], fleet[0]["flight_share"]) == (0, 0.0, None)
    assert (fleet[1]["drones"], fleet[1]["flight_s"], fleet[1]["observed_s"]) == (2, 45.0, 100.0)


def test_energy_is_battery_used_times_capacity_over_distance_by_model() -> None:
    periods = [
        period("a", at(9), distance_m=1000.0, flight_used_pct=2.0),  # 10 Wh
        period("a", at(10), distance_m=500.0, flight_used_pct=1.0),  # 5 Wh
        period("b", at(9), distance_m=2500.0, flight_used_pct=3.0),  # 30 Wh
        period("c", at(9), distance_m=0.0, flight_used_pct=0.0),
        period("z", at(9), distance_m=9000.0, flight_used_pct=9.0),  # not registered
    ]
    x4, x8 = energy_by_model(periods, SPECS)
    assert x4 == {
        "model": "x4",
        "drones": 2,
        "km": 4.0,
        "energy_wh": 45.0,
        "wh_per_km": 11.25,
        "rated_wh_per_km": 9.0,
    }
    assert (x8["model"], x8["km"], x8["wh_per_km"]) == ("x8", 0.0, None)


def test_kpi_rows_are_shaped_for_the_answers() -> None:
    hours = hour_rows(
        [
            {
                "station": "12TH",
                "day": "2026-11-23",
                "hour": 9,
                "orders": 2,
                "pickups_per_pad": 0.5,
            },
            {
                "station": "12TH",
                "day": "2026-11-23",
                "hour": 10,
                "orders": 1,
                "pickups_per_pad": 1.5,
            },
            {
                "station": "EMBR",
                "day": "2026-11-23",
                "hour": 9,
                "orders": 1,
                "pickups_per_pad": None,
            },
        ]
    )
    assert hours[0] == {
        "hour": "2026-11-23T09:00:00Z",
        "station": "12TH",
        "orders": 2,
        "pickups_per_pad": 0.5,
    }
    totals = station_totals([{"station": "12TH"}, {"station": "EMBR"}], hours)
    assert [t["peak_pickups_per_pad"] for t in totals] == [1.5, None]

    empty = {"delivered": 0}
    assert split_overall([], empty) == (empty, [])
    overall, stations = split_overall(
        [{"station": "*", "delivered": 3}, {"station": "12TH", "delivered": 3}], empty
    )
    assert (overall, stations) == ({"delivered": 3}, [{"station": "12TH", "delivered": 3}])

    rows = [
        {"type": "low_battery", "station": "12TH", "alerts": 1, "critical": 1},
        {"type": "offline", "station": "12TH", "alerts": 2, "critical": 0},
        {"type": "offline", "station": "?", "alerts": 1, "critical": 0},
    ]
    assert alerts_by_type(rows) == [
        {"type": "offline", "alerts": 3, "critical": 0},
        {"type": "low_battery", "alerts": 1, "critical": 1},
    ]
