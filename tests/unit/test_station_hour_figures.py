"""Station hours from delivery timelines, worked out by hand (``domain/station_rollups.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from skyhive.domain.station_rollups import (
    DeliveryTrace,
    hour_ceil,
    hour_floor,
    hour_key,
    hours_between,
    station_hours,
)

H10 = datetime(2026, 10, 12, 10, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return H10 + timedelta(minutes=minutes)


def trace(station: str, created: float, *steps: tuple[str, float]) -> DeliveryTrace:
    timeline = (("pending", at(created)), *((s, at(m)) for s, m in steps))
    return DeliveryTrace(station, at(created), timeline)


TRACES = [
    # Ordered 10:05, assigned 10:20 (waited 15 min), picked up 10:30, delivered 11:10.
    trace("A", 5, ("assigned", 20), ("picked_up", 30), ("delivered", 70)),
    # Ordered 10:50, assigned 11:05 (10 min), sent back 11:10, assigned again 11:20 (not a
    # second wait), picked up 11:30, failed 11:40.
    trace(
        "A",
        50,
        ("assigned", 65),
        ("pending", 70),
        ("assigned", 80),
        ("picked_up", 90),
        ("failed", 100),
    ),
    # Ordered 09:30, before the window: its assignment at 10:01 (31 min) still counts.
    trace("A", -30, ("assigned", 1)),
    # Another station: ordered 10:10, cancelled 10:15 before any drone.
    trace("B", 10, ("cancelled", 15)),
    # Delivered at 12:05, after the window: only its order and assignment count.
    trace("B", 40, ("assigned", 45), ("picked_up", 50), ("delivered", 125)),
    # Still waiting.
    trace("B", 119),
]


def test_every_event_counts_in_its_hour_at_its_pickup_station() -> None:
    got = {(h.station_id, h.hour): h for h in station_hours(TRACES, H10, H10 + timedelta(hours=2))}
    h11 = H10 + timedelta(hours=1)
    assert sorted(got) == [("A", H10), ("A", h11), ("B", H10), ("B", h11)]

    a10 = got[("A", H10)]
    assert (a10.orders, a10.assignments, a10.pickups, a10.deliveries) == (2, 2, 1, 0)
    assert a10.wait_sum_s == 15 * 60 + 31 * 60
    assert a10.wait_max_s == 31 * 60
    assert a10.mean_wait_s == 23 * 60

    a11 = got[("A", h11)]
    assert (a11.orders, a11.assignments, a11.redispatches) == (0, 1, 1)
    assert (a11.pickups, a11.deliveries, a11.failures) == (1, 1, 1)
    assert a11.wait_sum_s == 15 * 60  # the 10:50 order's first assignment, 11:05
    assert a11.delivery_time_sum_s == 65 * 60  # 10:05 → 11:10

    b10 = got[("B", H10)]
    assert (b10.orders, b10.cancellations, b10.assignments, b10.pickups) == (2, 1, 1, 1)
    b11 = got[("B", h11)]
    assert (b11.orders, b11.deliveries, b11.assignments) == (1, 0, 0)
    assert b11.mean_wait_s is None


def test_figures_are_the_whole_record_and_the_key_sorts_by_station_then_hour() -> None:
    [a10, *_] = station_hours(TRACES, H10, H10 + timedelta(hours=1))
    assert a10.key == "A:2026-10-12T10Z" == hour_key("A", H10)
    figures = a10.figures()
    assert "station_id" not in figures and "hour" not in figures
    assert figures["orders"] == 2 and figures["mean_wait_s"] == 23 * 60
    assert sorted(figures) == sorted(
        [
            "orders", "assignments", "redispatches", "pickups", "deliveries", "failures",
            "cancellations", "wait_sum_s", "wait_max_s", "delivery_time_sum_s", "mean_wait_s",
        ]
    )  # fmt: skip


def test_the_window_is_widened_to_whole_hours_and_nothing_outside_counts() -> None:
    inside = station_hours(TRACES, at(30), at(31))  # hour 10 whole
    assert {(h.station_id, h.hour) for h in inside} == {("A", H10), ("B", H10)}
    assert station_hours(TRACES, at(-120), at(-60)) == []
    again = station_hours(TRACES, H10, H10 + timedelta(hours=1))
    assert [h.figures() for h in inside] == [h.figures() for h in again]


def test_hours() -> None:
    assert hour_floor(at(59.9)) == H10
    assert hour_ceil(H10) == H10 and hour_ceil(at(0.01)) == at(60)
    assert hours_between(H10, at(180)) == [H10, at(60), at(120)]
    assert hours_between(H10, H10) == []
