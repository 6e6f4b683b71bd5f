"""Telemetry v1 validation: what is accepted, and the reason given for what is not."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from skyhive.domain.telemetry import InvalidTelemetry, drone_id_from_topic, parse_telemetry

BASE = {"drone_id": "d-1", "seq": 7, "ts": "2026-11-23T10:00:00.250Z", "battery_pct": 55.5}


def raw(**changes: object) -> bytes:
    body = {**BASE, **changes}
    return orjson.dumps({k: v for k, v in body.items() if v is not ...})


def reason(data: bytes, topic_id: str | None = None) -> str:
    with pytest.raises(InvalidTelemetry) as exc:
        parse_telemetry(data, topic_id)
    return exc.value.reason


def test_minimal_message_is_accepted_and_normalised_to_utc() -> None:
    t = parse_telemetry(raw(ts="2026-11-23T12:00:00+02:00"))
    assert t.ts == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert t.key == "d-1:7"
    assert t.lat is None and t.status is None and not t.is_emergency


def test_epoch_milliseconds_accepted() -> None:
    t = parse_telemetry(raw(ts=1795428000123))
    assert t.ts_ms == 1795428000123


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"ts": ...}, "missing required field 'ts'"),
        ({"battery_pct": ...}, "missing required field 'battery_pct'"),
        ({"lat": 200.0}, "lat: Input should be less than or equal to 90"),
        ({"lon": -181}, "lon: Input should be greater than or equal to -180"),
        ({"battery_pct": 140}, "battery_pct: Input should be less than or equal to 100"),
        ({"battery_pct": "55"}, "battery_pct: Input should be a valid number"),
        ({"battery_pct": True}, "battery_pct: Input should be a valid number"),
        ({"seq": "7"}, "seq: Input should be a valid integer"),
        ({"seq": -1}, "seq: Input should be greater than or equal to 0"),
        ({"status": "dancing"}, "status: Input should be"),
        ({"ts": 1795428000}, "timestamp out of range"),
        ({"ts": "2026-11-23T10:00:00"}, "needs a UTC offset"),
        ({"ts": "yesterday"}, "not an RFC 3339 timestamp"),
        ({"drone_id": "bad id!"}, "drone_id: String should match pattern"),
        ({"drone_id": "x" * 65}, "drone_id: String should match pattern"),
        ({"$where": 1}, "may not start with '$'"),
        ({"nested": {"a.b": 1}}, "may not start with '$' or contain '.'"),
    ],
)
def test_invalid_messages_have_a_clear_reason(changes: dict[str, object], expected: str) -> None:
    assert expected in reason(raw(**changes))


def test_not_json_not_object_and_oversize() -> None:
    assert reason(b"{nope").startswith("not JSON")
    assert reason(b"[1, 2]") == "not a JSON object: got list"
    big = raw(blob="x" * 20_000)
    assert reason(big).startswith("oversize: ")


def test_unknown_fields_are_kept_under_extra() -> None:
    t = parse_telemetry(raw(firmware="1.2.3", rotor={"rpm": [5000, 5100]}))
    doc = t.history_document()
    assert doc["extra"] == {"firmware": "1.2.3", "rotor": {"rpm": [5000, 5100]}}
    assert doc["_id"] == "d-1:7"


def test_extra_field_cannot_override_id() -> None:
    assert parse_telemetry(raw(_id="evil")).history_document()["_id"] == "d-1:7"


def test_topic_supplies_or_must_match_drone_id() -> None:
    body = orjson.dumps({k: v for k, v in BASE.items() if k != "drone_id"})
    assert parse_telemetry(body, "from-topic").drone_id == "from-topic"
    assert "does not match topic" in reason(raw(), "other")


def test_missing_seq_falls_back_to_event_time_in_ms() -> None:
    body = orjson.dumps({k: v for k, v in BASE.items() if k != "seq"})
    assert parse_telemetry(body).seq == 1795428000250


def test_geojson_is_lon_lat_and_live_fields_keep_last_position() -> None:
    t = parse_telemetry(raw(lat=37.8, lon=-122.27))
    assert t.history_document()["location"] == {"type": "Point", "coordinates": [-122.27, 37.8]}
    assert "lat" not in parse_telemetry(raw()).live_fields()


def test_emergency_flag_or_status() -> None:
    assert parse_telemetry(raw(emergency=True)).is_emergency
    assert parse_telemetry(raw(status="emergency")).is_emergency
    assert not parse_telemetry(raw(status="in_flight")).is_emergency


def test_ordering_by_event_time_then_seq() -> None:
    t = parse_telemetry(raw(ts=1795428000000, seq=5))
    assert t.newer_than(1795427999999, 99)
    assert t.newer_than(1795428000000, 4)
    assert not t.newer_than(1795428000000, 5)
    assert not t.newer_than(1795428000001, 0)


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("skyhive/drones/d1/telemetry", "d1"),
        ("skyhive/drones/bad id/telemetry", None),
        ("other/drones/d1/telemetry", None),
        ("skyhive/drones/d1", None),
    ],
)
def test_drone_id_from_topic(topic: str, expected: str | None) -> None:
    assert drone_id_from_topic(topic) == expected
