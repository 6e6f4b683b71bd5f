from datetime import UTC, datetime, timedelta

from skyhive.domain.downsample import downsample

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def test_buckets_are_epoch_aligned_newest_first_and_skip_missing_values() -> None:
    readings = [
        {"ts": T0 + timedelta(seconds=12), "battery_pct": 50.0, "alt_m": None},
        {"ts": T0 + timedelta(seconds=3), "battery_pct": 90.0, "alt_m": 10.0},
        {"ts": T0 + timedelta(seconds=9, microseconds=999_999), "battery_pct": 80.0},
    ]
    assert downsample(readings, 10, ("battery_pct", "alt_m")) == [
        {"ts": T0 + timedelta(seconds=10), "readings": 1, "battery_pct": 50.0, "alt_m": None},
        {"ts": T0, "readings": 2, "battery_pct": 85.0, "alt_m": 10.0},
    ]


def test_no_readings_no_buckets() -> None:
    assert downsample([], 10, ("battery_pct",)) == []
