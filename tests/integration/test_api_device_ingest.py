"""HTTP telemetry ingest with a drone's own credential: the password registration issued,
as HTTP Basic; the drone may send only its own readings, and a rotated or retired drone's
old password stops working."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from api_asserts import assert_error, body
from flask import Flask
from flask.testing import FlaskClient

from auth_helpers import api_client
from manual_clock import ManualClock
from skyhive.api import create_app
from skyhive.bootstrap import bootstrap
from skyhive.settings import Settings
from skyhive.wiring import Clients

URL = "/api/v1/telemetry"
REFRESH_S = 0.2


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(credentials_refresh_s=REFRESH_S)


@pytest.fixture
def app(clients: Clients) -> Flask:
    bootstrap(clients)
    return create_app(clients.settings, clients)


@pytest.fixture
def admin(clients: Clients, app: Flask) -> FlaskClient:
    return api_client(clients, app=app)


def register(admin: FlaskClient, drone_id: str) -> str:
    resp = admin.post("/api/v1/fleet/drones", json={"drone_id": drone_id, "home_station": "12TH"})
    assert resp.status_code == 201, resp.data
    password: str = body(resp)["credentials"]["mqtt_password"]
    return password


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def reading(drone_id: str | None, seq: int) -> dict[str, Any]:
    r: dict[str, Any] = {"seq": seq, "ts": 1_800_000_000_000 + seq, "battery_pct": 80.0}
    if drone_id is not None:
        r["drone_id"] = drone_id
    return r


def test_a_drone_sends_its_own_readings_and_no_one_elses(
    app: Flask, admin: FlaskClient, clients: Clients
) -> None:
    password = register(admin, "hd1")
    register(admin, "hd2")
    drone = app.test_client()
    batch = [reading("hd1", 1), reading(None, 2), reading("hd2", 3)]
    resp = drone.post(URL, json=batch, headers=basic("hd1", password))
    assert resp.status_code == 202, resp.data
    result = body(resp)
    assert result["accepted"] == 2 and result["rejected"] == 1
    [error] = result["errors"]
    assert error["index"] == 2 and "does not match" in error["reason"]
    # The impostor reading is dead-lettered with that reason; the others are on the bus.
    letters = clients.deadletters.list(limit=10)
    assert any("does not match" in str(d.get("reason")) for d in letters)
    entries = clients.redis_bytes.xrange(clients.settings.telemetry_stream)
    assert len(entries) == 2 and all(b"hd1" in b"".join(fields.values()) for _, fields in entries)


def test_wrong_unknown_or_service_credentials_are_401(app: Flask, admin: FlaskClient) -> None:
    password = register(admin, "hd1")
    client = app.test_client()
    for headers in (
        basic("hd1", password + "x"),
        basic("nobody", password),
        basic("skyhive.gateway", password),
    ):
        resp = client.post(URL, json=[reading("hd1", 1)], headers=headers)
        assert_error(resp, 401)
        assert password not in resp.get_data(as_text=True)


def test_a_drone_credential_opens_nothing_else(app: Flask, admin: FlaskClient) -> None:
    password = register(admin, "hd1")
    client = app.test_client()
    assert_error(client.get("/api/v1/drones", headers=basic("hd1", password)), 401)
    assert_error(client.get("/api/v1/fleet/drones/hd1", headers=basic("hd1", password)), 401)


def test_rotation_and_retirement_end_the_old_password(
    app: Flask, admin: FlaskClient, clients: Clients
) -> None:
    clock = ManualClock(datetime.now(UTC))
    clients.clock = clock  # type: ignore[misc]  # before a device request builds the verifier
    old = register(admin, "hd1")
    client = app.test_client()
    assert client.post(URL, json=[reading("hd1", 1)], headers=basic("hd1", old)).status_code == 202
    rotated = admin.post("/api/v1/fleet/drones/hd1/credentials")
    assert rotated.status_code == 200
    new = body(rotated)["mqtt_password"]
    clock.advance(REFRESH_S)  # the verifier's cache holds a checked password this long
    assert_error(client.post(URL, json=[reading("hd1", 2)], headers=basic("hd1", old)), 401)
    assert client.post(URL, json=[reading("hd1", 3)], headers=basic("hd1", new)).status_code == 202
    assert admin.patch("/api/v1/fleet/drones/hd1", json={"status": "retired"}).status_code == 200
    clock.advance(REFRESH_S)
    assert_error(client.post(URL, json=[reading("hd1", 4)], headers=basic("hd1", new)), 401)
    assert_error(admin.post("/api/v1/fleet/drones/ghost/credentials"), 404, "drone_id")
