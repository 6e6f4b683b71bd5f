"""History buckets (``domain/history.py``): which bucket a reading lands in, the idempotent
update, the readings folded back out, and the archiver's buffer of held buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from skyhive.domain.history import (
    BUCKET_S,
    HeldBuckets,
    bucket_id,
    bucket_start,
    group_readings,
    in_window,
    unfold,
)
from skyhive.domain.telemetry import Telemetry, validate_telemetry

BASE = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def reading(drone: str, seq: int, at_ms: int, **extra: Any) -> Telemetry:
    ts = int(BASE.timestamp() * 1000) + at_ms
    return validate_telemetry(
        {"drone_id": drone, "seq": seq, "ts": ts, "battery_pct": 50.0, "lat": 37.8, "lon": -122.2}
        | extra
    )


def test_a_reading_lands_in_the_bucket_of_its_own_time() -> None:
    assert bucket_start(BASE + timedelta(milliseconds=4999)) == BASE
    assert bucket_start(BASE + timedelta(seconds=BUCKET_S)) == BASE + timedelta(seconds=BUCKET_S)
    assert bucket_start(BASE - timedelta(milliseconds=1)) == BASE - timedelta(seconds=BUCKET_S)
    assert bucket_id("d-1", BASE) == "d-1:2026-11-23T12:00:00Z"


def test_grouping_is_by_drone_and_span_and_a_repeated_seq_is_kept_once() -> None:
    rs = [
        reading("a", 1, 0),
        reading("a", 2, 4999),
        reading("a", 3, 5000),  # the next bucket
        reading("b", 1, 100),
        reading("a", 2, 4999),  # the same reading again
    ]
    buckets = {b.id: b for b in group_readings(rs, {"b": True})}
    assert set(buckets) == {
        "a:2026-11-23T12:00:00Z",
        "a:2026-11-23T12:00:05Z",
        "b:2026-11-23T12:00:00Z",
    }
    assert sorted(buckets["a:2026-11-23T12:00:00Z"].readings) == [1, 2]
    assert buckets["b:2026-11-23T12:00:00Z"].unregistered == {1}
    assert not buckets["a:2026-11-23T12:00:00Z"].unregistered


def test_the_update_sets_readings_by_seq_and_the_bucket_fields_on_insert_only() -> None:
    [b] = group_readings([reading("a", 7, 1234, wind=3), reading("a", 8, 2000)], {"a": True})
    update = b.update()
    assert set(update) == {"$set", "$setOnInsert"}  # no $push, no $inc: a replay is a no-op
    assert update["$setOnInsert"] == {
        "drone_id": "a",
        "start": BASE,
        "end": BASE + timedelta(seconds=BUCKET_S),
    }
    sets = update["$set"]
    assert sets["unregistered"] is True
    assert sets["r.7"] == {
        "battery_pct": 50.0,
        "lat": 37.8,
        "lon": -122.2,
        "emergency": False,
        "ts_ms": int(BASE.timestamp() * 1000) + 1234,
        "extra": {"wind": 3},
        "unregistered": True,
    }
    assert set(sets) == {"r.7", "r.8", "unregistered"}


def test_unfold_gives_back_the_per_reading_documents() -> None:
    [b] = group_readings([reading("a", 7, 1234, wind=3), reading("a", 8, 2000)])
    stored = {
        "_id": b.id,
        "drone_id": "a",
        "start": BASE,
        "r": {k.removeprefix("r."): v for k, v in b.update()["$set"].items()},
    }
    [eight, seven] = in_window(unfold(stored), None, None)
    assert seven == {
        "_id": "a:7",
        "drone_id": "a",
        "seq": 7,
        "ts": BASE + timedelta(milliseconds=1234),  # to the millisecond
        "battery_pct": 50.0,
        "lat": 37.8,
        "lon": -122.2,
        "emergency": False,
        "extra": {"wind": 3},
    }
    assert eight["seq"] == 8


def test_unfold_reads_an_old_per_reading_document() -> None:
    old = {"_id": "a:1", "drone_id": "a", "seq": 1, "ts": "2026-11-23 12:00:01", "location": {}}
    [r] = unfold(old)
    assert r["ts"] == BASE + timedelta(seconds=1) and "location" not in r


def test_window_is_since_inclusive_until_exclusive_newest_first_once_per_id() -> None:
    rs = [{"_id": f"a:{s}", "seq": s, "ts": BASE + timedelta(seconds=s)} for s in (1, 3, 2, 4, 3)]
    got = in_window(rs, BASE + timedelta(seconds=2), BASE + timedelta(seconds=4))
    assert [r["seq"] for r in got] == [3, 2]


def test_a_bucket_is_due_when_its_drone_moved_on_or_after_the_hold() -> None:
    held = HeldBuckets()
    held.add(reading("a", 1, 0), "e1", False, now=100.0)
    held.add(reading("b", 1, 0), "e2", False, now=100.0)
    held.add(reading("a", 2, 1000), "e3", False, now=101.0)
    assert held.readings == 3 and held.holds("e3")
    assert held.due(101.0, hold_s=5) == []
    held.add(reading("a", 3, 5000), "e4", False, now=102.0)  # a moved on to its next bucket
    assert held.due(102.0, hold_s=5) == ["a:2026-11-23T12:00:00Z"]
    assert sorted(held.due(105.0, hold_s=5)) == ["a:2026-11-23T12:00:00Z", "b:2026-11-23T12:00:00Z"]
    assert len(held.due(102.0, hold_s=5, everything=True)) == 3
    # A straggler for a bucket already written is due at once: its drone is past it.
    keys = held.due(102.0, hold_s=5)
    buckets, ids = held.peek(keys)
    assert [sorted(b.readings) for b in buckets] == [[1, 2]] and sorted(ids) == ["e1", "e3"]
    held.drop(keys)
    assert held.readings == 2 and not held.holds("e1")
    held.add(reading("a", 9, 10), "e5", False, now=103.0)
    assert "a:2026-11-23T12:00:00Z" in held.due(103.0, hold_s=5)


def test_held_entries_to_claim_again_and_a_redelivered_seq_counts_once() -> None:
    held = HeldBuckets()
    held.add(reading("a", 1, 0), "e1", False, now=100.0)
    held.add(reading("a", 1, 0), "e2", False, now=103.0)  # the same reading, another entry
    assert held.readings == 1
    assert held.held_since(101.0) == ["e1", "e2"]  # the bucket is held since 100
    assert held.held_since(99.0) == []
