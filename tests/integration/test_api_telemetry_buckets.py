"""Downsampled telemetry history (``?bucket_s=``) against the embedded MongoDB: an hour at
1 Hz comes back as bucket averages equal to the averages computed in Python."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from statistics import fmean
from typing import Any

import pytest
from api_asserts import assert_error, body
from flask.testing import FlaskClient

from auth_helpers import api_client
from skyhive.domain.history import group_readings
from skyhive.domain.telemetry import validate_telemetry
from skyhive.wiring import Clients

START = datetime(2026, 11, 23, 11, 0, 0, tzinfo=UTC)
HOUR_S = 3600


def reading(seq: int) -> dict[str, Any]:
    """Battery falls, altitude climbs; speed is missing from every 7th reading."""
    r: dict[str, Any] = {
        "drone_id": "b1",
        "seq": seq,
        "ts": int((START + timedelta(seconds=seq)).timestamp() * 1000),
        "lat": 37.8,
        "lon": -122.27,
        "battery_pct": 100 - seq / 100,
        "alt_m": float(seq % 120),
    }
    if seq % 7:
        r["speed_mps"] = float(seq % 15)
    return r


@pytest.fixture
def client(clients: Clients) -> FlaskClient:
    readings = [reading(seq) for seq in range(HOUR_S)]
    clients.telemetry.store(group_readings(validate_telemetry(r) for r in readings))
    return api_client(clients, "viewer")


def ok(resp: Any) -> Any:
    assert resp.status_code == 200, resp.data[:300]
    return body(resp)


def python_buckets(bucket_s: int) -> list[dict[str, Any]]:
    out = []
    for first in range(0, HOUR_S, bucket_s):
        rs = [reading(seq) for seq in range(first, min(first + bucket_s, HOUR_S))]
        speeds = [r["speed_mps"] for r in rs if "speed_mps" in r]
        out.append(
            {
                "ts": (START + timedelta(seconds=first)).isoformat().replace("+00:00", "Z"),
                "readings": len(rs),
                "battery_pct": fmean(r["battery_pct"] for r in rs),
                "alt_m": fmean(r["alt_m"] for r in rs),
                "speed_mps": fmean(speeds) if speeds else None,
            }
        )
    return out[::-1]  # newest first, like the readings


def test_an_hour_in_10_s_buckets(client: FlaskClient) -> None:
    until = START + timedelta(hours=1)
    got = ok(
        client.get(
            "/api/v1/drones/b1/telemetry?bucket_s=10&limit=1000"
            f"&since=2026-11-23T11:00:00Z&until={until.isoformat().replace('+00:00', 'Z')}"
        )
    )
    assert got["bucket_s"] == 10 and got["drone_id"] == "b1"
    want = python_buckets(10)
    assert got["count"] == len(want) == 360
    for g, w in zip(got["items"], want, strict=True):
        assert g["ts"] == w["ts"] and g["readings"] == w["readings"]
        for name in ("battery_pct", "alt_m", "speed_mps"):
            assert g[name] == pytest.approx(w[name]), (g, w)


def test_limit_keeps_the_newest_buckets_and_since_defaults_to_limit_buckets(
    client: FlaskClient,
) -> None:
    # No since: the 6 buckets of 60 s before until.
    got = ok(
        client.get("/api/v1/drones/b1/telemetry?bucket_s=60&limit=6&until=2026-11-23T12:00:00Z")
    )
    assert [i["ts"] for i in got["items"]] == [
        f"2026-11-23T11:{m:02d}:00Z" for m in range(59, 53, -1)
    ]
    assert all(i["readings"] == 60 for i in got["items"])
    # A window wider than limit buckets: the newest limit of them.
    got = ok(
        client.get(
            "/api/v1/drones/b1/telemetry?bucket_s=600&limit=2"
            "&since=2026-11-23T11:00:00Z&until=2026-11-23T12:00:00Z"
        )
    )
    assert [i["ts"] for i in got["items"]] == ["2026-11-23T11:50:00Z", "2026-11-23T11:40:00Z"]
    # A bucket as wide as the window: one point averaging everything.
    got = ok(
        client.get(
            "/api/v1/drones/b1/telemetry?bucket_s=3600"
            "&since=2026-11-23T11:00:00Z&until=2026-11-23T12:00:00Z"
        )
    )
    [whole] = got["items"]
    assert whole["readings"] == HOUR_S
    assert whole["battery_pct"] == pytest.approx(fmean(100 - s / 100 for s in range(HOUR_S)))


def test_unknown_drone_gives_no_buckets(client: FlaskClient) -> None:
    assert ok(client.get("/api/v1/drones/ghost/telemetry?bucket_s=10"))["items"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("bucket_s=0", "bucket_s"),
        ("bucket_s=3601", "bucket_s"),
        ("bucket_s=1.5", "bucket_s"),
        ("bucket_s=ten", "bucket_s"),
        ("bucket_s=60&since=2026-11-20T00:00:00Z&until=2026-11-23T00:00:00Z", "since"),
        ("bucket_s=3600&limit=25&until=2026-11-23T00:00:00Z", "since"),  # 25 h by default
        ("bucket_s=10&since=2026-11-23T12:00:00Z&until=2026-11-23T11:00:00Z", "since"),
    ],
)
def test_bad_bucket_params_are_400(client: FlaskClient, query: str, field: str) -> None:
    assert_error(client.get(f"/api/v1/drones/b1/telemetry?{query}"), 400, field)
