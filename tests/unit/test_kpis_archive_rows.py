"""The archive's pure rules (``domain/archive.py``): which days may be exported, and the rows
flattened from readings, deliveries and alerts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from skyhive.domain.alerts import Alert
from skyhive.domain.archive import (
    COLUMNS,
    ORDER,
    TABLES,
    NotClosed,
    alert_row,
    check_closed,
    day_bounds,
    days_between,
    delivery_row,
    epoch_ms,
    first_kept_day,
    last_closed_day,
    parse_day,
    reading_row,
    reason_kind,
    retained_days,
)
from skyhive.domain.deliveries import Delivery

DAY = date(2026, 11, 23)
MIDNIGHT = datetime(2026, 11, 24, tzinfo=UTC)  # the end of DAY


def test_a_day_closes_ten_minutes_after_its_midnight() -> None:
    assert last_closed_day(MIDNIGHT + timedelta(minutes=9)) == DAY - timedelta(days=1)
    assert last_closed_day(MIDNIGHT + timedelta(minutes=10)) == DAY
    check_closed(DAY, MIDNIGHT + timedelta(minutes=10))
    with pytest.raises(NotClosed, match="2026-11-24 00:10 UTC"):
        check_closed(DAY, MIDNIGHT + timedelta(minutes=9, seconds=59))
    with pytest.raises(NotClosed):
        check_closed(DAY + timedelta(days=1), MIDNIGHT + timedelta(hours=5))


def test_the_nightly_export_looks_at_the_closed_days_retention_still_keeps_whole() -> None:
    now = MIDNIGHT + timedelta(hours=3)  # 2026-11-24 03:00
    # Seven days kept: readings of 11-17 03:00 and later; 11-17 itself is already thinned.
    assert first_kept_day(now, 7) == date(2026, 11, 18)
    assert retained_days(now, 7) == days_between(date(2026, 11, 18), DAY)
    # Two days kept: DAY is exported in the first minutes it is closed and still whole...
    assert retained_days(MIDNIGHT + timedelta(minutes=10), 2) == [DAY]
    # ...the day before it no longer is by then.
    assert retained_days(MIDNIGHT + timedelta(minutes=1), 2) == []


def test_days_parse_and_ranges_run_forwards() -> None:
    assert parse_day("2026-11-23") == DAY
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_day("23/11/2026")
    with pytest.raises(ValueError, match="before it starts"):
        days_between(DAY, DAY - timedelta(days=1))
    assert day_bounds(DAY) == (MIDNIGHT - timedelta(days=1), MIDNIGHT)


def test_epoch_milliseconds_are_exact() -> None:
    at = datetime(2026, 11, 23, 8, 0, 0, 999_999, tzinfo=UTC)
    assert epoch_ms(at) == 1_795_420_800_999  # floor, never rounded up to the next ms
    assert epoch_ms(at.replace(tzinfo=None)) == epoch_ms(at)  # a naive time is UTC


def test_a_reading_row_keeps_unknown_fields_as_sorted_json() -> None:
    ts = datetime(2026, 11, 23, 8, tzinfo=UTC)
    row = reading_row(
        {
            "drone_id": "d-1",
            "seq": 7,
            "ts": ts,
            "battery_pct": 50.0,
            "extra": {"z": 1, "a": [1, 2]},
            "unregistered": True,
        }
    )
    assert set(row) == {name for name, _ in COLUMNS["telemetry"]}
    assert row["extra"] == '{"a": [1, 2], "z": 1}'
    assert (row["ts_ms"], row["emergency"], row["unregistered"]) == (epoch_ms(ts), False, True)
    assert reading_row({"drone_id": "d", "seq": 1, "ts": ts, "battery_pct": 1.0})["extra"] is None


@pytest.mark.parametrize(
    ("note", "drone", "kind"),
    [
        ("d-7 silent for 130 s with the package on board", "d-7", "drone silent for N s with the package on board"),
        ("d-7 reported failure: battery at 12.5%", "d-7", "drone reported failure: battery at N%"),
        ("cancelled by request", None, "cancelled by request"),
    ],
)  # fmt: skip
def test_a_reason_is_counted_without_its_ids_and_figures(
    note: str, drone: str | None, kind: str
) -> None:
    assert reason_kind(note, drone) == kind


def _delivery(**fields: object) -> Delivery:
    created = datetime(2026, 11, 23, 9, tzinfo=UTC)
    base = {
        "id": "dlv-1",
        "customer_id": "c",
        "pickup_station": "12TH",
        "pickup_location": {"lat": 37.8, "lon": -122.27},
        "destination": {"lat": 37.81, "lon": -122.27},
        "package": {"weight_kg": 1.0, "size": "small"},
        "status": "pending",
        "created_at": created,
        "timeline": [{"status": "pending", "at": created, "note": "order accepted"}],
    }
    return Delivery.model_validate(base | fields)


def test_a_delivery_row_has_its_first_steps_and_the_eta_given_at_assignment() -> None:
    t = datetime(2026, 11, 23, 9, tzinfo=UTC)
    timeline = [
        {"status": "pending", "at": t, "note": "order accepted"},
        {"status": "assigned", "at": t + timedelta(seconds=40), "note": "assigned to d-1"},
        {"status": "pending", "at": t + timedelta(seconds=90), "note": "d-1 silent; re-dispatching"},
        # The embedded server gives sub-document dates back as text, without a zone.
        {"status": "assigned", "at": "2026-11-23 09:02:00", "note": "assigned to d-2"},
        {"status": "picked_up", "at": t + timedelta(minutes=5), "note": "picked up"},
        {"status": "failed", "at": t + timedelta(minutes=9), "note": "d-2 reported failure: wind 21 m/s"},
    ]  # fmt: skip
    row = delivery_row(
        _delivery(
            status="failed",
            drone_id="d-2",
            timeline=timeline,
            dispatch={"drone_id": "d-2", "eta": "2026-11-23T09:20:00+00:00"},
            price_estimate=Decimal("7.90"),
        )
    )
    assert set(row) == {name for name, _ in COLUMNS["deliveries"]}
    assert row["assigned_at"] == t + timedelta(seconds=40) and row["wait_s"] == 40.0
    assert row["redispatches"] == 1
    assert row["promised_eta"] == datetime(2026, 11, 23, 9, 20, tzinfo=UTC)
    assert row["ended_at"] == t + timedelta(minutes=9) and row["delivered_at"] is None
    assert row["reason"] == "drone reported failure: wind N m/s"
    assert row["delivery_s"] is None and row["price_estimate"] == Decimal("7.90")


def test_a_delivery_without_an_eta_or_an_end_has_none() -> None:
    row = delivery_row(_delivery())
    assert (row["promised_eta"], row["assigned_at"], row["wait_s"], row["reason"]) == (
        None,
        None,
        None,
        None,
    )
    assert row["note"] == "order accepted" and row["redispatches"] == 0


def test_an_alert_row_has_every_column_and_every_table_a_file_order() -> None:
    at = datetime(2026, 11, 23, 9, tzinfo=UTC)
    alert = Alert(
        id="a", drone_id="d", type="offline", severity="warning", state="open", opened_at=at
    )
    row = alert_row(alert)
    assert set(row) == {name for name, _ in COLUMNS["alerts"]} and row["opened_at"] == at
    assert set(ORDER) == set(TABLES) == set(COLUMNS)
    assert all(set(keys) <= {n for n, _ in COLUMNS[t]} for t, keys in ORDER.items())
