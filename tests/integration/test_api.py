"""The REST API against real servers: embedded Redis, the MongoDB-wire server and an MQTT
broker (from conftest). Data is seeded through the real adapters, requests go through
Flask's test client, and every error is checked to be JSON."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from functools import cached_property
from typing import Any, cast

import orjson
import pytest
from customer_seed import add_customers
from flask import Flask
from flask.testing import FlaskClient
from pymongo import MongoClient
from werkzeug.test import TestResponse

from auth_helpers import api_client
from skyhive.adapters import mongo
from skyhive.adapters.stations_repo import seed_stations
from skyhive.api import MAX_BODY_BYTES, create_app
from skyhive.api.operation import PUBLIC, declare
from skyhive.domain.alert_config import AlertConfig
from skyhive.domain.alert_lifecycle import fold
from skyhive.domain.alert_rules import Context, Memory, evaluate
from skyhive.domain.history import group_readings
from skyhive.domain.stations import bart_stations
from skyhive.domain.telemetry import Telemetry, validate_telemetry
from skyhive.embedded import free_port
from skyhive.settings import Settings
from skyhive.wiring import Clients

BASE = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
BASE_MS = int(BASE.timestamp() * 1000)
OAKLAND = (37.8044, -122.2712)


def reading(drone: str, seq: int, battery: float = 80.0, **extra: Any) -> dict[str, Any]:
    lat, lon = OAKLAND
    return {
        "drone_id": drone,
        "seq": seq,
        "ts": BASE_MS + seq * 1000,
        "battery_pct": battery,
        "lat": lat,
        "lon": lon,
        "status": "in_flight",
        **extra,
    }


def telemetry(drone: str, seq: int, battery: float = 80.0, **extra: Any) -> Telemetry:
    return validate_telemetry(reading(drone, seq, battery, **extra))


def seed_live(clients: Clients, *readings: Telemetry) -> None:
    clients.live.apply(readings, "2026-11-23T12:00:30Z")


@pytest.fixture
def app(clients: Clients) -> Flask:
    return create_app(clients.settings, clients)


@pytest.fixture
def client(app: Flask, clients: Clients) -> FlaskClient:
    return api_client(clients, app=app)


def body(resp: TestResponse) -> Any:
    assert resp.mimetype == "application/json", resp.data[:200]
    return orjson.loads(resp.data)


def assert_error(resp: TestResponse, status: int, field: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.data[:300]
    err: dict[str, Any] = body(resp)["error"]
    assert err["code"] == status and isinstance(err["message"], str) and err["message"]
    if field is not None:
        assert err.get("field") == field, err
    return err


# --- drones -----------------------------------------------------------------------------


@pytest.fixture
def fleet(clients: Clients) -> None:
    """d1 at Oakland, d2 ~1.1 km north, far-1 in Sacramento (~110 km away)."""
    lat = OAKLAND[0]
    seed_live(
        clients,
        telemetry("d1", 1, battery=90),
        telemetry("d1", 2, battery=88, alt_m=120.0, speed_mps=12.5, heading_deg=270.0),
        telemetry("d2", 7, battery=55, lat=lat + 0.01, emergency=True),
        telemetry("far-1", 3, lat=38.5816, lon=-121.4944, status="idle"),
    )


@pytest.mark.usefixtures("fleet")
def test_list_drones_gives_live_state_of_every_drone(client: FlaskClient) -> None:
    resp = client.get("/api/v1/drones")
    assert resp.status_code == 200
    data = body(resp)
    assert data["count"] == 3
    by_id = {d["drone_id"]: d for d in data["items"]}
    assert set(by_id) == {"d1", "d2", "far-1"}
    d1 = by_id["d1"]
    assert d1["seq"] == 2 and d1["battery_pct"] == 88.0 and d1["alt_m"] == 120.0
    assert d1["speed_mps"] == 12.5 and d1["heading_deg"] == 270.0
    assert d1["status"] == "in_flight" and d1["emergency"] is False
    assert d1["ts"] == "2026-11-23T12:00:02Z" and d1["updated_at"] == "2026-11-23T12:00:30Z"
    assert by_id["d2"]["emergency"] is True


def test_list_drones_empty_fleet(client: FlaskClient) -> None:
    assert body(client.get("/api/v1/drones")) == {"items": [], "count": 0}


@pytest.mark.usefixtures("fleet")
def test_get_drone(client: FlaskClient) -> None:
    resp = client.get("/api/v1/drones/d1")
    assert resp.status_code == 200
    d1 = body(resp)
    assert d1["drone_id"] == "d1" and d1["seq"] == 2 and d1["lat"] == OAKLAND[0]


def test_unknown_drone_is_404_json(client: FlaskClient) -> None:
    err = assert_error(client.get("/api/v1/drones/nope-1"), 404, "drone_id")
    assert "nope-1" in err["message"]


@pytest.mark.parametrize("bad_id", ["bad.id", "x" * 65, "sp%20ace", "%C3%A9t%C3%A9"])
def test_invalid_drone_id_is_400(client: FlaskClient, bad_id: str) -> None:
    assert_error(client.get(f"/api/v1/drones/{bad_id}"), 400, "drone_id")
    assert_error(client.get(f"/api/v1/drones/{bad_id}/telemetry"), 400, "drone_id")


@pytest.mark.usefixtures("fleet")
def test_nearby_gives_nearest_first_with_distance(client: FlaskClient) -> None:
    lat, lon = OAKLAND
    resp = client.get(f"/api/v1/drones/nearby?lat={lat}&lon={lon}")  # default radius 5 km
    assert resp.status_code == 200
    data = body(resp)
    assert [d["drone_id"] for d in data["items"]] == ["d1", "d2"]
    assert data["count"] == 2 and data["radius_km"] == 5.0
    d1, d2 = data["items"]
    assert d1["distance_km"] < 0.01 and 1.0 < d2["distance_km"] < 1.2
    assert d2["battery_pct"] == 55.0 and d2["emergency"] is True  # full live state included

    wide = body(client.get(f"/api/v1/drones/nearby?lat={lat}&lon={lon}&radius_km=500"))
    assert [d["drone_id"] for d in wide["items"]] == ["d1", "d2", "far-1"]
    one = body(client.get(f"/api/v1/drones/nearby?lat={lat}&lon={lon}&radius_km=500&limit=1"))
    assert [d["drone_id"] for d in one["items"]] == ["d1"]
    none = body(client.get("/api/v1/drones/nearby?lat=0&lon=0&radius_km=1"))
    assert none["items"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("lon=-122.27", "lat"),
        ("lat=37.8", "lon"),
        ("lat=91&lon=0", "lat"),
        ("lat=north&lon=0", "lat"),
        ("lat=nan&lon=0", "lat"),
        ("lat=0&lon=-180.5", "lon"),
        ("lat=0&lon=0&radius_km=0", "radius_km"),
        ("lat=0&lon=0&radius_km=501", "radius_km"),
        ("lat=0&lon=0&radius_km=inf", "radius_km"),
        ("lat=0&lon=0&limit=0", "limit"),
        ("lat=0&lon=0&limit=1001", "limit"),
        ("lat=0&lon=0&limit=ten", "limit"),
        ("lat=0&lon=0&limit=1.5", "limit"),
    ],
)
def test_nearby_bad_params_are_400(client: FlaskClient, query: str, field: str) -> None:
    assert_error(client.get(f"/api/v1/drones/nearby?{query}"), 400, field)


# --- telemetry history --------------------------------------------------------------------


@pytest.fixture
def history(clients: Clients) -> None:
    clients.telemetry.store(
        group_readings(
            [telemetry("h1", seq, battery=100 - seq, extra_field="x") for seq in range(1, 6)]
            + [telemetry("h2", 1)]
        )
    )


@pytest.mark.usefixtures("history")
def test_telemetry_history_newest_first(client: FlaskClient) -> None:
    resp = client.get("/api/v1/drones/h1/telemetry")
    assert resp.status_code == 200
    data = body(resp)
    assert data["drone_id"] == "h1" and data["count"] == 5
    assert [r["seq"] for r in data["items"]] == [5, 4, 3, 2, 1]
    newest = data["items"][0]
    assert newest["id"] == "h1:5" and "_id" not in newest and "location" not in newest
    assert re.fullmatch(r"2026-11-23T12:00:05(\.0+)?Z", newest["ts"]), newest["ts"]
    assert newest["battery_pct"] == 95.0 and newest["extra"] == {"extra_field": "x"}


@pytest.mark.usefixtures("history")
def test_telemetry_history_window_and_limit(client: FlaskClient) -> None:
    def seqs(query: str) -> list[int]:
        resp = client.get(f"/api/v1/drones/h1/telemetry?{query}")
        assert resp.status_code == 200, resp.data
        return [r["seq"] for r in body(resp)["items"]]

    assert seqs("limit=2") == [5, 4]
    # since is inclusive, until exclusive; RFC 3339 (Z or %2B offset) and epoch ms agree.
    assert seqs("since=2026-11-23T12:00:02Z&until=2026-11-23T12:00:04Z") == [3, 2]
    assert seqs("since=2026-11-23T13:00:02%2B01:00") == [5, 4, 3, 2]
    assert seqs(f"since={BASE_MS + 2000}&until={BASE_MS + 4000}") == [3, 2]
    assert seqs(f"until={BASE_MS + 2000}") == [1]
    assert seqs("since=2027-01-01T00:00:00Z") == []


def test_telemetry_history_of_unknown_drone_is_empty(client: FlaskClient) -> None:
    assert body(client.get("/api/v1/drones/ghost/telemetry"))["items"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=yesterday", "since"),
        ("since=2026-11-23T12:00:00", "since"),  # no offset
        ("until=2026-11-23T12:00:00 01:00", "until"),  # unencoded '+'
        ("since=2026-11-23T12:00:05Z&until=2026-11-23T12:00:01Z", "since"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
    ],
)
def test_telemetry_history_bad_params_are_400(client: FlaskClient, query: str, field: str) -> None:
    assert_error(client.get(f"/api/v1/drones/h1/telemetry?{query}"), 400, field)


# --- alerts --------------------------------------------------------------------------------


@pytest.fixture
def alerts(clients: Clients) -> None:
    readings = [
        telemetry("a1", 1, battery=20),  # low_battery warning
        telemetry("a1", 2, battery=19),
        telemetry("a2", 1, battery=60, status="emergency"),  # emergency critical
        telemetry("a3", 1, battery=5),  # low_battery critical, resolved below
    ]
    cfg = AlertConfig()
    found = [
        (t.drone_id, f) for t in readings for f in evaluate(t, Context(cfg.defaults), Memory())
    ]
    updates, _ = fold(found, {}, cfg.resolves_itself)
    clients.alerts.apply(updates)
    clients.db.alerts.update_one({"drone_id": "a3"}, {"$set": {"state": "resolved"}})


@pytest.mark.usefixtures("alerts")
def test_alerts_page_on_with_before(client: FlaskClient) -> None:
    everything = [a["id"] for a in body(client.get("/api/v1/alerts"))["items"]]
    first = body(client.get("/api/v1/alerts?limit=2"))["items"]
    rest = body(client.get(f"/api/v1/alerts?limit=2&before={first[-1]['id']}"))["items"]
    assert [a["id"] for a in first + rest] == everything and len(everything) == 3
    assert_error(client.get("/api/v1/alerts?before=no-such-alert"), 400, "before")


@pytest.mark.usefixtures("alerts")
def test_alerts_filtered_by_state_and_drone(client: FlaskClient) -> None:
    all_alerts = body(client.get("/api/v1/alerts"))
    assert all_alerts["count"] == 3

    open_ = body(client.get("/api/v1/alerts?state=open"))
    by_drone = {a["drone_id"]: a for a in open_["items"]}
    assert set(by_drone) == {"a1", "a2"}
    a1 = by_drone["a1"]
    assert set(a1) >= {"id", "drone_id", "type", "severity", "state", "opened_at", "last_seen"}
    assert a1["type"] == "low_battery" and a1["severity"] == "warning" and a1["count"] == 2
    assert a1["state"] == "open" and a1["details"]["battery_pct"] == 19.0
    assert a1["opened_at"].startswith("2026-11-23T12:00:01") and a1["opened_at"].endswith("Z")
    assert a1["last_seen"].startswith("2026-11-23T12:00:02")
    assert by_drone["a2"]["type"] == "emergency" and by_drone["a2"]["severity"] == "critical"

    resolved = body(client.get("/api/v1/alerts?state=resolved"))["items"]
    assert [a["drone_id"] for a in resolved] == ["a3"]
    only_a2 = body(client.get("/api/v1/alerts?drone_id=a2&state=open"))["items"]
    assert [a["id"] for a in only_a2] == [by_drone["a2"]["id"]]
    assert body(client.get("/api/v1/alerts?state=acknowledged"))["items"] == []
    assert len(body(client.get("/api/v1/alerts?limit=1"))["items"]) == 1
    assert body(client.get("/api/v1/alerts?drone_id=&limit=5"))["count"] == 3  # empty = absent


@pytest.mark.parametrize(
    ("query", "field"),
    [("state=closed", "state"), ("drone_id=no.dots", "drone_id"), ("limit=-1", "limit")],
)
def test_alerts_bad_params_are_400(client: FlaskClient, query: str, field: str) -> None:
    assert_error(client.get(f"/api/v1/alerts?{query}"), 400, field)


# --- who may call what (alerts, stations, dead letters; health and metrics below) -----------

VIEWER_READS = (
    "/api/v1/alerts",
    "/api/v1/alerts/a1:low_battery:1",
    "/api/v1/stations",
    "/api/v1/deadletters",
)
OPERATOR_WRITES = ("/api/v1/alerts/a1:low_battery:1/ack", "/api/v1/alerts/a1:low_battery:1/resolve")


def assert_unauthorized(resp: TestResponse) -> None:
    assert_error(resp, 401)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer ")


@pytest.mark.parametrize("path", VIEWER_READS)
def test_reads_need_a_staff_key(app: Flask, clients: Clients, path: str) -> None:
    assert_unauthorized(app.test_client().get(path))
    add_customers(clients, "cust-1")
    assert_error(api_client(clients, "customer", "cust-1", app=app).get(path), 403)
    resp = api_client(clients, "viewer", app=app).get(path)
    assert resp.status_code in (200, 404), resp.data  # past the door: the alert is unknown
    assert resp.mimetype == "application/json"


@pytest.mark.parametrize("path", OPERATOR_WRITES)
def test_alert_actions_need_an_operator(app: Flask, clients: Clients, path: str) -> None:
    assert_unauthorized(app.test_client().post(path, json={}))
    add_customers(clients, "cust-1")
    for role, customer in (("viewer", None), ("customer", "cust-1")):
        err = assert_error(api_client(clients, role, customer, app=app).post(path, json={}), 403)
        assert role in err["message"]
    resp = api_client(clients, "operator", app=app).post(path, json={})
    assert_error(resp, 404, "alert_id")  # past the door: the alert is unknown


# --- stations ------------------------------------------------------------------------------


def test_stations_from_geojson(client: FlaskClient, clients: Clients) -> None:
    stations = bart_stations()
    seed_stations(clients.db, clients.live, stations)
    data = body(client.get("/api/v1/stations"))
    assert data["count"] == len(stations) == 50
    first = min(stations, key=lambda s: s.code)
    item = data["items"][0]
    assert item == {
        "code": first.code,
        "name": first.name,
        "lat": first.lat,
        "lon": first.lon,
        "pads": first.pads,
        "chargers": first.chargers,
    }
    assert all(37 < s["lat"] < 38.1 and -123 < s["lon"] < -121.5 for s in data["items"])


# --- ingest and dead letters ---------------------------------------------------------------


def post_json(client: FlaskClient, payload: Any) -> TestResponse:
    return client.post(
        "/api/v1/telemetry", data=orjson.dumps(payload), content_type="application/json"
    )


def test_ingest_json_array_splits_good_and_bad(client: FlaskClient, clients: Clients) -> None:
    items = [
        reading("i1", 1),
        {"drone_id": "i1", "seq": 2, "ts": BASE_MS},  # no battery_pct
        reading("i2", 1),
        "not an object",
        reading("i1", 3, battery=140),  # out of range
    ]
    resp = post_json(client, items)
    assert resp.status_code == 202, resp.data
    result = body(resp)
    assert (result["accepted"], result["rejected"]) == (2, 3)
    assert [e["index"] for e in result["errors"]] == [1, 3, 4]
    reasons = [e["reason"] for e in result["errors"]]
    assert "battery_pct" in reasons[0] and "not a JSON object" in reasons[1]
    assert "battery_pct" in reasons[2] and result["errors_truncated"] is False

    stream = clients.settings.telemetry_stream
    assert clients.redis_bytes.xlen(stream) == 2
    entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", clients.redis_bytes.xrange(stream))
    assert [f[b"k"] for _, f in entries] == [b"i1", b"i2"]
    assert orjson.loads(entries[0][1][b"v"])["seq"] == 1

    dead = body(client.get("/api/v1/deadletters"))
    assert dead["total"] == 3 and dead["count"] == 3 and dead["next_before"] is None
    assert {d["source"] for d in dead["items"]} == {"http"}
    assert sorted(d["reason"] for d in dead["items"]) == sorted(reasons)
    newest = dead["items"][0]  # newest first: the last rejected item
    assert orjson.loads(newest["raw"])["battery_pct"] == 140
    assert newest["raw_bytes"] == len(newest["raw"]) and newest["received_at"].endswith("Z")
    assert set(newest) == {"id", "reason", "source", "received_at", "raw", "raw_bytes"}


def test_deadletters_paging(client: FlaskClient) -> None:
    post_json(client, [{"n": i} for i in range(5)])
    first = body(client.get("/api/v1/deadletters?limit=2"))
    assert first["count"] == 2 and first["total"] == 5
    second = body(client.get(f"/api/v1/deadletters?limit=2&before={first['next_before']}"))
    third = body(client.get(f"/api/v1/deadletters?limit=2&before={second['next_before']}"))
    ns = [orjson.loads(d["raw"])["n"] for page in (first, second, third) for d in page["items"]]
    assert ns == [4, 3, 2, 1, 0]
    assert third["next_before"] is None
    assert_error(client.get("/api/v1/deadletters?before=abc"), 400, "before")
    assert_error(client.get("/api/v1/deadletters?limit=5000"), 400, "limit")


def test_ingest_ndjson_rejects_bad_lines_individually(
    client: FlaskClient, clients: Clients
) -> None:
    lines = [
        orjson.dumps(reading("n1", 1)),
        b"",  # blank lines are skipped
        b"{this is not json",
        orjson.dumps(reading("n1", 2)) + b"\r",  # CRLF line endings are fine
    ]
    resp = client.post(
        "/api/v1/telemetry", data=b"\n".join(lines) + b"\n", content_type="application/x-ndjson"
    )
    assert resp.status_code == 202, resp.data
    result = body(resp)
    assert (result["accepted"], result["rejected"]) == (2, 1)
    [err] = result["errors"]
    assert err["index"] == 1 and err["line"] == 3 and err["reason"].startswith("not JSON")
    assert clients.redis_bytes.xlen(clients.settings.telemetry_stream) == 2
    [dead] = body(client.get("/api/v1/deadletters"))["items"]
    assert dead["raw"] == "{this is not json" and dead["reason"].startswith("not JSON")


def test_ingest_lists_at_most_100_errors(client: FlaskClient) -> None:
    result = body(post_json(client, [{"bad": i} for i in range(150)]))
    assert result["rejected"] == 150 and len(result["errors"]) == 100
    assert result["errors_truncated"] is True


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        (b"", "application/json", 400),
        (b"  \n", "application/x-ndjson", 400),
        (b"[]", "application/json", 400),
        (b'{"drone_id": "x"}', "application/json", 400),  # an object, not an array
        (b"[1, 2", "application/json", 400),
        (b"\n\n", "application/x-ndjson", 400),
        (b"[]", "text/plain", 415),
    ],
)
def test_ingest_bad_bodies(
    client: FlaskClient, clients: Clients, data: bytes, content_type: str, status: int
) -> None:
    resp = client.post("/api/v1/telemetry", data=data, content_type=content_type)
    assert_error(resp, status)
    assert clients.redis_bytes.xlen(clients.settings.telemetry_stream) == 0


def test_ingest_oversize_body_is_413(client: FlaskClient) -> None:
    data = b"[" + b" " * MAX_BODY_BYTES + b"]"
    assert_error(client.post("/api/v1/telemetry", data=data, content_type="application/json"), 413)


def test_ingest_too_many_items_is_413(client: FlaskClient, clients: Clients) -> None:
    assert_error(post_json(client, [{}] * 10_001), 413)
    ndjson = b"{}\n" * 10_001
    resp = client.post("/api/v1/telemetry", data=ndjson, content_type="application/x-ndjson")
    assert_error(resp, 413)
    assert clients.deadletters.count() == 0  # nothing half-processed


# --- generic errors ------------------------------------------------------------------------


def test_unknown_route_and_wrong_method_are_json(client: FlaskClient) -> None:
    assert_error(client.get("/api/v1/nope"), 404)
    assert_error(client.get("/nope"), 404)  # "/" is the dashboard
    resp = client.delete("/api/v1/drones")
    assert_error(resp, 405)
    assert "GET" in resp.headers["Allow"]
    assert_error(client.get("/api/v1/telemetry"), 405)


def test_unexpected_exception_is_500_json(clients: Clients) -> None:
    app = create_app(clients.settings, clients)

    @declare(PUBLIC)
    def boom() -> str:
        raise RuntimeError("kaboom")

    app.add_url_rule("/boom", view_func=boom)
    err = assert_error(app.test_client().get("/boom"), 500)
    assert "kaboom" not in err["message"]  # internals stay in the log


def test_a_route_that_declares_no_access_is_refused(clients: Clients) -> None:
    app = create_app(clients.settings, clients)
    app.add_url_rule("/forgotten", view_func=lambda: "open by accident?")
    client = api_client(clients, app=app)
    assert_error(client.get("/forgotten"), 403)


class ShortTimeoutClients(Clients):
    """Real clients, with a short MongoDB server-selection timeout so outages show fast."""

    @cached_property
    def mongo_client(self) -> MongoClient[mongo.Document]:
        return mongo.connect(self.settings.mongo_uri_or_default(), timeout_ms=300)


@pytest.fixture
def dead_stores(make_settings: Callable[..., Settings], clients: Clients) -> Iterator[Flask]:
    """An app whose MongoDB and Redis ports have nothing listening; only its API keys are
    read from the live stores (``clients``), so that a request gets past authentication to
    meet the dead store in its view."""
    s = make_settings(
        mongodb_uri=f"mongodb://127.0.0.1:{free_port()}",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        mqtt_url=f"mqtt://127.0.0.1:{free_port()}",
    )
    c = ShortTimeoutClients(s)
    c.api_keys = clients.api_keys  # type: ignore[misc]
    yield create_app(s, c)  # creating the app must not connect
    c.close()


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/stations",
        "/api/v1/alerts",
        "/api/v1/drones/d1/telemetry",
        "/api/v1/drones",
        "/api/v1/drones/d1",
        "/api/v1/deadletters",
    ],
)
def test_unreachable_store_is_503_json(dead_stores: Flask, clients: Clients, path: str) -> None:
    resp = api_client(clients, "viewer", app=dead_stores).get(path)
    assert_error(resp, 503)
    assert resp.headers["Retry-After"]


def test_unreachable_redis_on_ingest_is_503(dead_stores: Flask, clients: Clients) -> None:
    resp = api_client(clients, app=dead_stores).post(
        "/api/v1/telemetry", data=orjson.dumps([reading("x", 1)]), content_type="application/json"
    )
    assert_error(resp, 503)


# --- health, metrics, openapi --------------------------------------------------------------


def test_healthz_always_ok(app: Flask, dead_stores: Flask) -> None:
    """Public: no key needed (nor read, so it answers with every store down)."""
    assert body(app.test_client().get("/healthz")) == {"status": "ok"}
    assert body(dead_stores.test_client().get("/healthz")) == {"status": "ok"}


@pytest.mark.mqtt
def test_readyz_ok_when_everything_answers(app: Flask) -> None:
    resp = app.test_client().get("/readyz")  # public: no key
    data = body(resp)
    assert resp.status_code == 200, data
    assert data == {
        "status": "ok",
        "checks": {"mongodb": "ok", "redis": "ok", "mqtt": "ok", "bus": "ok"},
        "warnings": [],
    }


@pytest.mark.mqtt
def test_readyz_says_so_when_devices_are_insecure(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings(insecure_devices=True)
    c = Clients(s)
    try:
        data = body(create_app(s, c).test_client().get("/readyz"))
    finally:
        c.close()
    assert data["status"] == "ok"
    [warning] = data["warnings"]
    assert "insecure devices" in warning and "without a password" in warning


def test_readyz_503_when_mqtt_broker_is_down(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings(mqtt_url=f"mqtt://127.0.0.1:{free_port()}")
    c = Clients(s)
    try:
        resp = create_app(s, c).test_client().get("/readyz")
    finally:
        c.close()
    data = body(resp)
    assert resp.status_code == 503
    assert data["status"] == "unavailable"
    checks = data["checks"]
    assert checks["mongodb"] == checks["redis"] == checks["bus"] == "ok"
    # Public: the kind of failure, not the address it failed to reach (that is logged).
    assert checks["mqtt"] == "error: ConnectionRefusedError"


def test_readyz_503_fast_when_everything_is_down(dead_stores: Flask) -> None:
    started = time.monotonic()
    resp = dead_stores.test_client().get("/readyz")
    elapsed = time.monotonic() - started
    data = body(resp)
    assert resp.status_code == 503 and data["status"] == "unavailable"
    assert all(v.startswith("error: ") for v in data["checks"].values()), data
    assert set(data["checks"]) == {"mongodb", "redis", "mqtt", "bus"}
    assert elapsed < 2.0


def test_metrics_count_requests_per_endpoint(app: Flask, client: FlaskClient) -> None:
    client.get("/api/v1/drones")
    client.get("/api/v1/drones/nope")
    client.get("/no/such/route")
    resp = app.test_client().get("/metrics")  # public: no key
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    text = resp.data.decode()
    key = client.environ_base["HTTP_AUTHORIZATION"].removeprefix("Bearer ")
    assert key not in text and "shk_" not in text and "/api/v1/drones/nope" not in text

    def counter(endpoint: str, status: int) -> float:
        m = re.search(
            rf'^skyhive_api_requests_total\{{endpoint="{re.escape(endpoint)}",method="GET",'
            rf'status="{status}"\}} (\S+)$',
            text,
            re.MULTILINE,
        )
        assert m, f"no counter for {endpoint} {status}"
        return float(m.group(1))

    assert counter("drones.list_drones", 200) >= 1
    assert counter("drones.get_drone", 404) >= 1
    assert counter("unmatched", 404) >= 1
    assert "skyhive_api_request_duration_seconds_bucket{" in text


def test_metrics_work_across_app_instances(clients: Clients) -> None:
    """Collectors are process-wide; a second app must neither fail nor double-register."""
    for _ in range(2):
        assert (
            create_app(clients.settings, clients).test_client().get("/metrics").status_code == 200
        )


def openapi_path(rule: str) -> str:
    """Flask's ``/drones/<drone_id>`` as OpenAPI's ``/drones/{drone_id}``."""
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


def test_openapi_describes_every_api_route(client: FlaskClient, app: Flask) -> None:
    """Generated from the declarations: every route under /api/ (and the health checks) is
    in it, with its role; the pages and static files declare their access outside it."""
    resp = client.get("/api/v1/openapi.json")
    assert resp.status_code == 200
    doc = body(resp)
    assert doc["openapi"] == "3.1.0"
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(("/api/", "/healthz", "/readyz", "/metrics")):
            if rule.rule == "/api/v1/openapi.json":
                continue
            methods = {m.lower() for m in rule.methods or ()} - {"head", "options"}
            routes.setdefault(openapi_path(rule.rule), set()).update(methods)
    assert {path: set(item) for path, item in doc["paths"].items()} == routes
    for item in doc["paths"].values():
        for op in item.values():
            assert op["operationId"] and op["responses"] and op["x-skyhive-role"]
            assert bool(op.get("security")) == (op["x-skyhive-role"] != "public")
    upload = doc["paths"]["/api/v1/telemetry"]["post"]["requestBody"]["content"]
    telemetry_schema = upload["application/json"]["schema"]["items"]
    assert {"drone_id", "ts", "battery_pct"} <= set(telemetry_schema["required"])
    for name in ("ErrorBody", "DroneState", "TelemetryRecord", "Alert", "Station", "DeadLetter"):
        assert name in doc["components"]["schemas"]


def test_openapi_needs_a_key(app: Flask) -> None:
    assert_error(app.test_client().get("/api/v1/openapi.json"), 401)


def test_openapi_is_a_valid_31_document(client: FlaskClient) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(body(client.get("/api/v1/openapi.json")))


def test_create_app_without_settings_does_not_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYHIVE_MONGODB_URI", f"mongodb://127.0.0.1:{free_port()}")
    monkeypatch.setenv("SKYHIVE_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    app = create_app()
    clients: Clients = app.extensions["skyhive"]
    assert clients.settings.mongodb_uri.startswith("mongodb://127.0.0.1:")
    assert "mongo_client" not in clients.__dict__ and "redis_text" not in clients.__dict__
    assert app.test_client().get("/healthz").status_code == 200


def test_timestamps_in_window_are_utc(client: FlaskClient, clients: Clients) -> None:
    """A reading stored at an offset comes back in UTC with 'Z'."""
    local = (BASE + timedelta(seconds=1)).astimezone(timezone(timedelta(hours=2))).isoformat()
    assert local.endswith("+02:00")
    clients.telemetry.store(group_readings([validate_telemetry({**reading("tz", 1), "ts": local})]))
    [item] = body(client.get("/api/v1/drones/tz/telemetry"))["items"]
    assert item["ts"].startswith("2026-11-23T12:00:01") and item["ts"].endswith("Z")
