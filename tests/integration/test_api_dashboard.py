"""The dashboard's server side against the real embedded MongoDB and Redis: the page, its
assets, the live stream (drone batches and alerts on one connection) and drone commands."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from api_asserts import assert_error, body, frames
from customer_seed import add_customers
from flask.testing import FlaskClient

from auth_helpers import api_client
from skyhive.adapters.live_state import ALERTS_LIVE, FLEET_UPDATES
from skyhive.api import create_app, dashboard, stream
from skyhive.bootstrap import bootstrap
from skyhive.domain.telemetry import validate_telemetry
from skyhive.settings import Settings
from skyhive.wiring import Clients

LIVE_URL = "/api/v1/stream/live"


@pytest.fixture
def client(clients: Clients) -> FlaskClient:
    """Signed in as an operator (the drone commands below need one)."""
    bootstrap(clients)
    return api_client(clients, "operator")


def put_drone(clients: Clients, drone_id: str, lat: float, lon: float) -> None:
    """A live state as the processor writes it."""
    t = validate_telemetry(
        {
            "drone_id": drone_id,
            "seq": 1,
            "ts": 1_700_000_000_000,
            "lat": lat,
            "lon": lon,
            "battery_pct": 50.0,
            "status": "in_flight",
        }
    )
    clients.live.apply([t], "2026-01-01T00:00:00Z")


# --- the page ----------------------------------------------------------------------------------


def test_dashboard_page_and_assets_are_served(client: FlaskClient) -> None:
    resp = client.get("/")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    assert '<script type="module" src="/dashboard/static/js/main.js">' in html
    assert "/dashboard/static/vendor/leaflet/leaflet.js" in html
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)  # nothing from another host
    config = html.split('<script id="dashboard-config" type="application/json">')[1]
    assert orjson.loads(config.split("</script>")[0])["tilesUrl"].startswith("https://")
    for path in ("js/main.js", "js/map.js", "dashboard.css", "vendor/chart.js/chart.umd.js"):
        asset = client.get(f"/dashboard/static/{path}")
        assert asset.status_code == 200, path
        asset.close()
    assert client.get("/dashboard/static/js/nope.js").status_code == 404


def test_the_page_needs_a_signed_in_viewer(clients: Clients) -> None:
    anonymous = create_app(clients.settings, clients).test_client()
    resp = anonymous.get("/")
    assert resp.status_code == 303 and resp.headers["Location"] == "/login"
    asset = anonymous.get("/dashboard/static/js/main.js")  # the assets hold no data
    assert asset.status_code == 200
    asset.close()
    assert api_client(clients, "viewer").get("/").status_code == 200
    add_customers(clients, "cust-1")
    assert_error(api_client(clients, "customer", "cust-1").get("/"), 403)


def test_tiles_can_be_turned_off(make_settings: Callable[..., Settings]) -> None:
    clients = Clients(make_settings(dashboard={"tiles_url": ""}))
    try:
        html = api_client(clients, "viewer").get("/").get_data(as_text=True)
    finally:
        clients.close()
    assert '"tilesUrl": ""' in html


def test_missing_vendor_files_are_explained(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(dashboard, "STATIC_DIR", tmp_path)
    html = client.get("/").get_data(as_text=True)
    assert "make install" in html
    assert "vendor/leaflet/leaflet.js" in html  # named as missing
    assert "<script" not in html  # nothing that would fail to load


# --- the live stream ---------------------------------------------------------------------------


@pytest.fixture
def live(client: FlaskClient) -> Iterator[Iterator[bytes]]:
    resp = client.get(LIVE_URL, buffered=False)
    assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
    chunks = iter(resp.response)
    assert next(chunks) == b"retry: 3000\n\n"
    yield chunks
    resp.close()


def test_live_stream_sends_one_typed_frame_per_drone_batch_and_the_alerts(
    clients: Clients, live: Iterator[bytes]
) -> None:
    t = validate_telemetry(
        {
            "drone_id": "d1",
            "seq": 7,
            "ts": 1_700_000_000_000,
            "lat": 37.8,
            "lon": -122.27,
            "battery_pct": 81.5,
            "status": "returning",
        }
    )
    batch = [
        {**t.live_fields(), "updated_at": "2026-01-01T00:00:01Z"},
        {
            "drone_id": "d2",
            "seq": "1",
            "ts": "2023-11-14T22:13:20Z",
            "battery_pct": "9.0",
            "emergency": "1",
        },
    ]
    assert clients.redis_text.publish(FLEET_UPDATES, orjson.dumps(batch)) == 1
    [(event, states)] = frames(next(live))
    assert event == "drones"
    assert [s["drone_id"] for s in states] == ["d1", "d2"]
    assert states[0]["seq"] == 7 and states[0]["battery_pct"] == 81.5
    assert states[0]["status"] == "returning" and states[0]["emergency"] is False
    assert states[0]["updated_at"] == "2026-01-01T00:00:01Z"
    assert states[1]["emergency"] is True and states[1]["lat"] is None

    # Garbage is skipped; alerts come on the same connection.
    clients.redis_text.publish(FLEET_UPDATES, b"not json")
    clients.redis_text.publish(FLEET_UPDATES, b'{"drone_id": "d1"}')
    clients.redis_text.publish(ALERTS_LIVE, orjson.dumps([{"id": "d1:emergency"}]))
    assert frames(next(live)) == [("alert", {"id": "d1:emergency"})]


def test_live_and_alert_streams_share_the_slots(
    clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "MAX_STREAM_CLIENTS", 1)
    client = api_client(clients, "viewer")
    first = client.get(LIVE_URL, buffered=False)
    try:
        assert first.status_code == 200
        assert "at most 1" in assert_error(client.get("/api/v1/stream/alerts"), 503)
        assert "at most 1" in assert_error(client.get(LIVE_URL), 503)
    finally:
        first.close()
    again = client.get(LIVE_URL, buffered=False)
    again.close()
    assert again.status_code == 200


# --- drone commands ----------------------------------------------------------------------------


def queued(clients: Clients) -> list[tuple[str, dict[str, object]]]:
    entries = clients.bus.consume(clients.settings.commands_stream, "t", "t", 100, 1)
    return [(m.key, orjson.loads(m.value)) for m in entries]


def test_return_to_station_goes_to_the_nearest_station(
    client: FlaskClient, clients: Clients
) -> None:
    clients.bus.ensure_group(clients.settings.commands_stream, "t")
    put_drone(clients, "d1", 37.8050, -122.2720)  # beside 12th St. Oakland City Center
    resp = client.post(
        "/api/v1/drones/d1/commands", json={"action": "return_to_station", "reason": "storm"}
    )
    assert resp.status_code == 202
    out = body(resp)
    assert out["drone_id"] == "d1"
    assert out["command"]["type"] == "return_to_station"
    assert out["command"]["return_station"]["station"] == "12TH"
    assert out["command"]["reason"] == "storm"
    [(key, cmd)] = queued(clients)
    assert key == "d1" and cmd == out["command"]

    # A station may be named.
    resp = client.post(
        "/api/v1/drones/d1/commands", json={"action": "return_to_station", "station": "MONT"}
    )
    assert body(resp)["command"]["return_station"]["station"] == "MONT"


def test_bad_commands_are_4xx(client: FlaskClient, clients: Clients) -> None:
    put_drone(clients, "d1", 37.8, -122.27)
    url = "/api/v1/drones/d1/commands"
    assert_error(
        client.post("/api/v1/drones/ghost/commands", json={"action": "return_to_station"}),
        404,
        "drone_id",
    )
    assert_error(client.post(url, json={"action": "self_destruct"}), 422, "action")
    assert_error(
        client.post(url, json={"action": "return_to_station", "station": "XXX"}), 422, "station"
    )
    assert_error(client.post(url, json={"action": "return_to_station", "extra": 1}), 422, "extra")
    # A valid body, so that the id is what is wrong (the body is checked first).
    bad_id = client.post("/api/v1/drones/bad%20id/commands", json={"action": "return_to_station"})
    assert_error(bad_id, 400, "drone_id")
    assert queued_count(clients) == 0


def queued_count(clients: Clients) -> int:
    return int(clients.redis_bytes.xlen(clients.settings.commands_stream))
