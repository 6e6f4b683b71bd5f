"""The geofences API and the alert stream against the real embedded MongoDB and Redis,
through Flask's test client (and, for a client that hangs up, a real HTTP server)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from api_asserts import assert_error, body, frames
from customer_seed import add_customers
from flask.testing import FlaskClient
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

from auth_helpers import api_client, make_key
from manual_clock import ManualClock
from redis_access import subscribers as subscribers_of
from skyhive.adapters.geofences_repo import VERSION_KEY
from skyhive.adapters.live_state import ALERTS_LIVE
from skyhive.api import create_app, stream
from skyhive.services.geofence_cache import GeofenceCache
from skyhive.wiring import Clients

URL = "/api/v1/geofences"
STREAM_URL = "/api/v1/stream/alerts"
# Around Oakland's 12th St station, [lon, lat].
RING = [[-122.28, 37.80], [-122.26, 37.80], [-122.26, 37.81], [-122.28, 37.81], [-122.28, 37.80]]
BOW_TIE = [[-122.28, 37.80], [-122.26, 37.81], [-122.26, 37.80], [-122.28, 37.81], [-122.28, 37.80]]


def zone_body(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "Lake Merritt",
        "geometry": {"type": "Polygon", "coordinates": [RING]},
        "floor_m": 0,
        "ceiling_m": 120.5,
        **overrides,
    }


@pytest.fixture
def client(clients: Clients) -> FlaskClient:
    return api_client(clients, "operator")


def create(client: FlaskClient, **overrides: Any) -> dict[str, Any]:
    resp = client.post(URL, json=zone_body(**overrides))
    assert resp.status_code == 201, resp.data
    created: dict[str, Any] = body(resp)
    return created


def listed(client: FlaskClient, query: str = "") -> list[str]:
    got = body(client.get(f"{URL}?{query}"))
    assert got["count"] == len(got["items"])
    return [z["id"] for z in got["items"]]


def version(clients: Clients) -> int:
    raw = clients.redis_text.get(VERSION_KEY)
    return int(raw) if raw is not None else 0


# --- CRUD -----------------------------------------------------------------------------------


def test_create_read_replace_delete(client: FlaskClient, clients: Clients) -> None:
    resp = client.post(URL, json=zone_body(daily={"start": "22:00", "end": "06:00"}))
    assert resp.status_code == 201, resp.data
    created = body(resp)
    zid = created["id"]
    assert zid.startswith("gf-") and len(zid) > 6
    assert resp.headers["Location"] == f"{URL}/{zid}"
    assert created["name"] == "Lake Merritt"
    assert created["geometry"] == {"type": "Polygon", "coordinates": [RING]}
    assert (created["floor_m"], created["ceiling_m"]) == (0, 120.5)
    assert created["daily"] == {"start": "22:00", "end": "06:00"}
    assert created["enabled"] is True and created["active_from"] is None
    assert created["created_at"] == created["updated_at"] and created["created_at"].endswith("Z")
    assert body(client.get(f"{URL}/{zid}")) == created
    assert listed(client) == [zid]

    replacement = zone_body(name="Lake Merritt (event)", active_until="2030-01-01T00:00:00Z")
    resp = client.put(f"{URL}/{zid}", json=replacement)
    assert resp.status_code == 200, resp.data
    replaced = body(resp)
    assert replaced["id"] == zid and replaced["name"] == "Lake Merritt (event)"
    assert replaced["daily"] is None  # a replace, not a patch
    assert replaced["active_until"] == "2030-01-01T00:00:00Z"
    assert replaced["created_at"] == created["created_at"]
    # As instants: RFC 3339 text leaves out a zero fraction, so strings do not sort.
    updated = [datetime.fromisoformat(z["updated_at"]) for z in (created, replaced)]
    assert updated[1] >= updated[0]
    assert body(client.get(f"{URL}/{zid}")) == replaced

    resp = client.delete(f"{URL}/{zid}")
    assert resp.status_code == 204 and resp.data == b""
    assert zid in assert_error(client.get(f"{URL}/{zid}"), 404, "geofence_id")
    assert_error(client.delete(f"{URL}/{zid}"), 404, "geofence_id")
    assert listed(client) == []
    assert clients.db.geofences.count_documents({}) == 0


def test_stored_as_given_with_real_dates(client: FlaskClient, clients: Clients) -> None:
    """The GeoJSON is stored untouched, and dates stay dates after a replace (the embedded
    server would turn dates written by ``$set`` into text)."""
    multi = {"type": "MultiPolygon", "coordinates": [[RING], [[[x + 1, y] for x, y in RING]]]}
    zid = create(client, id="lake", geometry=multi)["id"]
    assert zid == "lake"
    resp = client.put(
        f"{URL}/lake", json=zone_body(geometry=multi, active_from="2026-01-01T00:00:00Z")
    )
    assert resp.status_code == 200, resp.data
    doc = clients.db.geofences.find_one({"_id": "lake"})
    assert doc is not None
    assert doc["geometry"] == multi
    for name in ("created_at", "updated_at", "active_from"):
        assert isinstance(doc[name], datetime), (name, doc[name])
    assert doc["active_from"] == datetime(2026, 1, 1, tzinfo=UTC)


def test_given_id_twice_is_409(client: FlaskClient, clients: Clients) -> None:
    create(client, id="no-fly-1")
    assert "no-fly-1" in assert_error(client.post(URL, json=zone_body(id="no-fly-1")), 409, "id")
    assert clients.db.geofences.count_documents({}) == 1


def test_list_by_id_and_active_filter(client: FlaskClient) -> None:
    now = datetime.now(UTC)
    hour = timedelta(hours=1)
    create(client, id="b-always")
    create(client, id="a-off", enabled=False)
    create(client, id="c-past", active_until=(now - hour).isoformat())
    create(
        client,
        id="d-now",
        active_from=(now - hour).isoformat(),
        active_until=(now + hour).isoformat(),
    )
    create(client, id="e-later", active_from=(now + hour).isoformat())
    assert listed(client) == ["a-off", "b-always", "c-past", "d-now", "e-later"]
    assert listed(client, "active=true") == ["b-always", "d-now"]
    assert listed(client, "active=false") == ["a-off", "c-past", "e-later"]
    assert_error(client.get(f"{URL}?active=yes"), 400, "active")


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("coordinates", "expected"),
    [
        ([BOW_TIE], "Self-intersection"),
        ([RING[:-1]], "ring 0 is not closed"),
        ([[RING[0], RING[1], RING[0]]], "a ring needs at least 4"),
        (
            [[[37.80, -122.28], [37.80, -122.26], [37.81, -122.26], [37.80, -122.28]]],
            "latitude -122.28",
        ),
        ([[[-200, 37.8], [-122.26, 37.80], [-122.26, 37.81], [-200, 37.8]]], "longitude -200"),
    ],
    ids=["bow-tie", "unclosed", "too-few", "lat-lon-swapped", "lon-range"],
)
def test_invalid_polygons_are_422_naming_geometry(
    client: FlaskClient, clients: Clients, coordinates: list[Any], expected: str
) -> None:
    geometry = {"type": "Polygon", "coordinates": coordinates}
    msg = assert_error(client.post(URL, json=zone_body(geometry=geometry)), 422, "geometry")
    assert expected in msg
    zid = create(client)["id"]
    before = version(clients)
    assert expected in assert_error(
        client.put(f"{URL}/{zid}", json=zone_body(geometry=geometry)), 422, "geometry"
    )
    assert clients.db.geofences.count_documents({}) == 1
    assert version(clients) == before  # a refused write changes nothing


def test_self_intersection_message_says_so(client: FlaskClient) -> None:
    geometry = {"type": "Polygon", "coordinates": [BOW_TIE]}
    msg = assert_error(client.post(URL, json=zone_body(geometry=geometry)), 422, "geometry")
    assert "not a valid Polygon: Self-intersection[" in msg
    assert "cross itself" in msg


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"geometry": {"type": "Point", "coordinates": [-122.27, 37.8]}}, "geometry.type"),
        ({"geometry": "lake"}, "geometry"),
        ({"floor_m": 200}, "ceiling_m"),
        ({"ceiling_m": "120"}, "ceiling_m"),
        ({"name": ""}, "name"),
        ({"active_from": "2026-01-01T00:00:00"}, "active_from"),
        ({"daily": {"start": "22:00"}}, "daily.end"),
        ({"enabled": "yes"}, "enabled"),
        ({"id": "no spaces please"}, "id"),
        ({"radius_m": 300}, "radius_m"),
    ],
)
def test_schema_errors_are_422_naming_the_field(
    client: FlaskClient, clients: Clients, overrides: dict[str, Any], field: str
) -> None:
    assert_error(client.post(URL, json=zone_body(**overrides)), 422, field)
    assert clients.db.geofences.count_documents({}) == 0


def test_malformed_requests(client: FlaskClient, clients: Clients) -> None:
    assert_error(client.post(URL, data=b"{nope", content_type="application/json"), 400)
    assert_error(client.post(URL, data=b"[]", content_type="application/json"), 400)
    assert_error(client.post(URL, data=orjson.dumps(zone_body()), content_type="text/plain"), 415)
    assert_error(client.get(f"{URL}/has%20space"), 400, "geofence_id")
    assert_error(client.put(f"{URL}/nope", json=zone_body()), 404, "geofence_id")
    zid = create(client)["id"]
    assert_error(client.put(f"{URL}/{zid}", json=zone_body(id="other")), 422, "id")
    assert body(client.get(f"{URL}/{zid}"))["name"] == "Lake Merritt"
    assert_error(client.patch(f"{URL}/{zid}", json={}), 405)


# --- who may do what --------------------------------------------------------------------------


def test_geofences_need_a_key(clients: Clients) -> None:
    anonymous = create_app(clients.settings, clients).test_client()
    for resp in (
        anonymous.get(URL),
        anonymous.get(f"{URL}/lake"),
        anonymous.post(URL, json=zone_body()),
        anonymous.put(f"{URL}/lake", json=zone_body()),
        anonymous.delete(f"{URL}/lake"),
    ):
        assert_error(resp, 401)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer ")
    assert clients.db.geofences.count_documents({}) == 0


def test_viewers_read_zones_and_operators_manage_them(
    client: FlaskClient, clients: Clients
) -> None:
    zid = create(client, id="lake")["id"]  # an operator creates
    viewer = api_client(clients, "viewer")
    assert [z["id"] for z in body(viewer.get(URL))["items"]] == [zid]
    assert body(viewer.get(f"{URL}/{zid}"))["name"] == "Lake Merritt"
    for resp in (
        viewer.post(URL, json=zone_body(id="other")),
        viewer.put(f"{URL}/{zid}", json=zone_body(name="renamed")),
        viewer.delete(f"{URL}/{zid}"),
    ):
        assert "viewer" in assert_error(resp, 403)
    add_customers(clients, "cust-1")
    customer = api_client(clients, "customer", "cust-1")
    assert_error(customer.get(URL), 403)
    assert_error(customer.get(f"{URL}/{zid}"), 403)
    assert_error(customer.delete(f"{URL}/{zid}"), 403)
    assert body(client.get(f"{URL}/{zid}"))["name"] == "Lake Merritt"  # unchanged
    assert client.delete(f"{URL}/{zid}").status_code == 204  # an operator deletes


# --- version counter and the processor's cache ----------------------------------------------------


def test_every_write_bumps_the_version(client: FlaskClient, clients: Clients) -> None:
    repo = clients.geofences
    assert repo.version() == 0
    zid = create(client)["id"]
    assert repo.version() == 1
    assert client.put(f"{URL}/{zid}", json=zone_body(name="renamed")).status_code == 200
    assert repo.version() == 2
    client.get(f"{URL}/{zid}")
    client.get(URL)
    client.delete(f"{URL}/nope")
    assert repo.version() == 2  # reads and misses are not writes
    assert client.delete(f"{URL}/{zid}").status_code == 204
    assert repo.version() == 3 == version(clients)


def test_cache_follows_changes_made_through_the_api(client: FlaskClient, clients: Clients) -> None:
    clock = ManualClock()
    reads = [0]
    repo = clients.geofences
    real_all_enabled = repo.all_enabled

    def counting_all_enabled() -> list[Any]:
        reads[0] += 1
        return real_all_enabled()

    repo.all_enabled = counting_all_enabled  # type: ignore[method-assign]
    cache = GeofenceCache(repo, clock)
    lat, lon, at = 37.805, -122.27, datetime.now(UTC)

    assert cache.current().violations(lat, lon, 50.0, at) == []
    zid = create(client, ceiling_m=120)["id"]
    assert cache.current().violations(lat, lon, 50.0, at) == []  # checked < 1 s ago
    clock.advance(1.0)
    hits = cache.current().violations(lat, lon, 50.0, at)
    assert [z.id for z in hits] == [zid] and cache.version == 1
    assert cache.current().violations(lat, lon, 150.0, at) == []  # above the ceiling
    clock.advance(1.0)
    cache.current()
    assert reads[0] == 2  # the version did not move: MongoDB was not read again

    client.put(f"{URL}/{zid}", json=zone_body(enabled=False))
    clock.advance(1.0)
    assert cache.current().violations(lat, lon, 50.0, at) == []
    client.put(f"{URL}/{zid}", json=zone_body())
    clock.advance(1.0)
    assert len(cache.current().violations(lat, lon, 50.0, at)) == 1
    client.delete(f"{URL}/{zid}")
    clock.advance(1.0)
    assert len(cache.current()) == 0 and cache.version == 4 and reads[0] == 5


# --- the alert stream ---------------------------------------------------------------------------


def subscribers(clients: Clients) -> int:
    return subscribers_of(clients.redis_text, ALERTS_LIVE)


def wait_for(check: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


@pytest.fixture
def open_stream(
    client: FlaskClient,
) -> Iterator[Callable[[], tuple[TestResponse, Iterator[bytes]]]]:
    """Opens streams (unbuffered) and closes whatever the test left open."""
    opened: list[TestResponse] = []

    def open_one() -> tuple[TestResponse, Iterator[bytes]]:
        resp = client.get(STREAM_URL, buffered=False)
        opened.append(resp)
        return resp, iter(resp.response)

    yield open_one
    for resp in reversed(opened):
        resp.close()


def test_stream_sends_published_alerts_as_events(
    clients: Clients, open_stream: Callable[[], tuple[TestResponse, Iterator[bytes]]]
) -> None:
    resp, chunks = open_stream()
    assert resp.status_code == 200
    assert resp.mimetype == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["X-Accel-Buffering"] == "no"
    assert next(chunks) == b"retry: 3000\n\n"
    assert subscribers(clients) == 1

    alerts = [
        {"id": "d1:geofence", "drone_id": "d1", "type": "geofence", "severity": "critical"},
        {"id": "d2:low_battery", "drone_id": "d2", "type": "low_battery", "note": "ä\nb"},
    ]
    assert clients.redis_text.publish(ALERTS_LIVE, orjson.dumps(alerts)) == 1
    assert frames(next(chunks)) == [("alert", alerts[0]), ("alert", alerts[1])]

    # Garbage on the channel is skipped; the stream goes on.
    clients.redis_text.publish(ALERTS_LIVE, b"not json")
    clients.redis_text.publish(ALERTS_LIVE, orjson.dumps([{"id": "d3:emergency"}]))
    assert frames(next(chunks)) == [("alert", {"id": "d3:emergency"})]

    resp.close()
    assert subscribers(clients) == 0  # the pubsub is closed with the response


def test_stream_sends_keepalives_when_idle(
    clients: Clients,
    open_stream: Callable[[], tuple[TestResponse, Iterator[bytes]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stream, "KEEPALIVE_S", 0.1)
    _, chunks = open_stream()
    assert next(chunks) == b"retry: 3000\n\n"
    started = time.monotonic()
    assert next(chunks) == b": keepalive\n\n"
    assert next(chunks) == b": keepalive\n\n"
    assert time.monotonic() - started >= 0.15
    clients.redis_text.publish(ALERTS_LIVE, orjson.dumps([{"id": "a1"}]))
    assert frames(next(chunks)) == [("alert", {"id": "a1"})]


def test_stream_clients_are_capped(clients: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    """Streams opened from one thread are closed last-first: each holds its request context
    (``stream_with_context``) until it is closed. The server serves one per thread."""
    monkeypatch.setattr(stream, "MAX_STREAM_CLIENTS", 2)
    client = api_client(clients, "viewer")
    first = client.get(STREAM_URL, buffered=False)
    try:
        second = client.get(STREAM_URL, buffered=False)
        try:
            assert (first.status_code, second.status_code) == (200, 200)
            full = client.get(STREAM_URL)
            assert "at most 2" in assert_error(full, 503)
            assert full.headers["Retry-After"] == "5"
            assert subscribers(clients) == 2
        finally:
            second.close()  # gives its slot back
        assert subscribers(clients) == 1
        third = client.get(STREAM_URL, buffered=False)
        third.close()
        assert third.status_code == 200
    finally:
        first.close()
    assert subscribers(clients) == 0


def test_head_requests_do_not_leak_streams(
    clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A HEAD answer has no body, so the stream is never iterated: only closing the response
    can give back its Redis subscription and its slot."""
    monkeypatch.setattr(stream, "MAX_STREAM_CLIENTS", 1)
    client = api_client(clients, "viewer")
    for _ in range(3):
        resp = client.head(STREAM_URL, buffered=True)
        assert resp.status_code == 200 and resp.data == b""
        assert resp.mimetype == "text/event-stream"
    assert subscribers(clients) == 0
    resp = client.get(STREAM_URL, buffered=False)
    resp.close()
    assert resp.status_code == 200


def test_stream_is_released_when_the_client_hangs_up(
    clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over a real HTTP server: the server notices the hang-up at the next write (a
    keepalive), closes the response, and the pubsub and the slot are given back."""
    monkeypatch.setattr(stream, "KEEPALIVE_S", 0.05)
    monkeypatch.setattr(stream, "MAX_STREAM_CLIENTS", 1)
    app = create_app(clients.settings, clients)
    key = make_key(clients, "viewer")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=5) as sock:
            request = (
                f"GET {STREAM_URL} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {key}\r\n\r\n"
            )
            sock.sendall(request.encode())
            received = b""
            while b"retry: 3000" not in received:
                received += sock.recv(4096)
            assert b" 200 " in received.split(b"\r\n", 1)[0]
            assert subscribers(clients) == 1
            assert client_status(app, key) == 503  # the one slot is taken
        assert wait_for(lambda: subscribers(clients) == 0)
        assert wait_for(lambda: client_status(app, key) == 200)
    finally:
        server.shutdown()
        serving.join(timeout=5)


def client_status(app: Any, key: str) -> int:
    client = app.test_client()
    resp = client.get(STREAM_URL, buffered=False, headers={"Authorization": f"Bearer {key}"})
    try:
        return int(resp.status_code)
    finally:
        resp.close()


def test_stream_without_redis_is_503_and_frees_its_slot(
    make_settings: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from skyhive.embedded import free_port

    monkeypatch.setattr(stream, "MAX_STREAM_CLIENTS", 1)
    settings = make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    down = Clients(settings)
    try:
        client = api_client(down, "viewer")
        for _ in range(2):  # the second would be "too many streams" had the slot leaked
            assert "Redis" in assert_error(client.get(STREAM_URL), 503)
    finally:
        down.close()
