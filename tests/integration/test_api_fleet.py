"""The fleet registry API against the real embedded MongoDB and Redis, through Flask's
test client; stations come from the real bootstrap."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from api_asserts import assert_error, body
from customer_seed import add_customers
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from auth_helpers import api_client
from skyhive.adapters.fleet_repo import REGISTERED
from skyhive.bootstrap import bootstrap
from skyhive.wiring import Clients

URL = "/api/v1/fleet/drones"


@pytest.fixture
def client(clients: Clients) -> FlaskClient:
    bootstrap(clients)
    return api_client(clients)


def spec(drone_id: str = "d1", **overrides: Any) -> dict[str, Any]:
    return {"drone_id": drone_id, "home_station": "12TH", **overrides}


def register(client: FlaskClient, **kw: Any) -> TestResponse:
    return client.post(URL, json=spec(**kw))


def test_register_returns_the_full_spec_and_stores_it(
    client: FlaskClient, clients: Clients
) -> None:
    resp = register(client, max_payload_kg=3, battery_capacity_wh=400.0)
    assert resp.status_code == 201, resp.data
    assert resp.headers["Location"] == f"{URL}/d1"
    got = body(resp)
    credentials = got.pop("credentials")
    assert credentials["username"] == "d1" and len(credentials["mqtt_password"]) >= 24
    assert resp.headers["Cache-Control"] == "no-store"
    assert got == {
        "drone_id": "d1",
        "model": "skyhive-x4",
        "home_station": "12TH",
        "max_payload_kg": 3.0,
        "battery_capacity_wh": 400.0,
        "cruise_speed_mps": 15.0,
        "consumption_wh_per_km": 8.0,
        "status": "active",
        "pct_per_km": 2.0,  # 8 Wh/km of 400 Wh
        "has_signing_key": False,
    }
    stored = clients.fleet.get("d1")
    assert stored is not None and stored.max_payload_kg == 3.0
    assert clients.redis_text.sismember(REGISTERED, "d1")


def test_register_twice_is_409_and_keeps_the_first(client: FlaskClient, clients: Clients) -> None:
    assert register(client, model="first").status_code == 201
    msg = assert_error(register(client, model="second"), 409, "drone_id")
    assert "d1" in msg
    stored = clients.fleet.get("d1")
    assert stored is not None and stored.model == "first"


def test_register_unknown_home_station_is_422(client: FlaskClient, clients: Clients) -> None:
    msg = assert_error(register(client, home_station="NOPE"), 422, "home_station")
    assert "NOPE" in msg
    assert clients.fleet.get("d1") is None


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"home_station": "12TH"}, "drone_id"),
        (spec(drone_id="bad id!"), "drone_id"),
        (spec(max_payload_kg=0), "max_payload_kg"),
        (spec(max_payload_kg="2.5"), "max_payload_kg"),  # strict: no string coercion
        (spec(cruise_speed_mps=61), "cruise_speed_mps"),
        (spec(status="flying"), "status"),
        (spec(colour="red"), "colour"),
    ],
)
def test_register_invalid_spec_is_422_naming_the_field(
    client: FlaskClient, clients: Clients, payload: dict[str, Any], field: str
) -> None:
    assert_error(client.post(URL, json=payload), 422, field)
    assert clients.fleet.list() == []


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        (b'{"drone_id": ', "application/json", 400),
        (b"", "application/json", 400),
        (b'["d1"]', "application/json", 400),
        (b"null", "application/json", 400),
        (orjson.dumps(spec()), "text/plain", 415),
    ],
)
def test_register_malformed_body(
    client: FlaskClient, clients: Clients, data: bytes, content_type: str, status: int
) -> None:
    assert_error(client.post(URL, data=data, content_type=content_type), status)
    assert clients.fleet.list() == []


def test_list_filters_by_registry_status(client: FlaskClient) -> None:
    for drone_id, status in (("c", "active"), ("a", "maintenance"), ("b", "active")):
        assert register(client, drone_id=drone_id, status=status).status_code == 201
    everything = body(client.get(URL))
    assert everything["count"] == 3
    assert [d["drone_id"] for d in everything["items"]] == ["a", "b", "c"]
    assert all("pct_per_km" in d for d in everything["items"])
    active = body(client.get(f"{URL}?status=active"))
    assert [d["drone_id"] for d in active["items"]] == ["b", "c"]
    assert body(client.get(f"{URL}?status=retired")) == {"items": [], "count": 0}
    assert [d["drone_id"] for d in body(client.get(f"{URL}?limit=1"))["items"]] == ["a"]


@pytest.mark.parametrize(("query", "field"), [("status=flying", "status"), ("limit=0", "limit")])
def test_list_bad_params_are_400(client: FlaskClient, query: str, field: str) -> None:
    assert_error(client.get(f"{URL}?{query}"), 400, field)


def test_get_one_and_404s(client: FlaskClient) -> None:
    register(client, drone_id="d7", cruise_speed_mps=20)
    got = body(client.get(f"{URL}/d7"))
    assert got["drone_id"] == "d7" and got["cruise_speed_mps"] == 20.0
    assert_error(client.get(f"{URL}/ghost"), 404, "drone_id")
    assert_error(client.get(f"{URL}/{'x' * 65}"), 400, "drone_id")


def test_patch_changes_only_the_given_fields(client: FlaskClient, clients: Clients) -> None:
    register(client, model="x4", battery_capacity_wh=500.0)
    resp = client.patch(
        f"{URL}/d1", json={"status": "maintenance", "home_station": "19TH", "model": None}
    )
    assert resp.status_code == 200, resp.data
    got = body(resp)
    assert (got["status"], got["home_station"], got["model"]) == ("maintenance", "19TH", "x4")
    stored = clients.fleet.get("d1")
    assert stored is not None and stored.status == "maintenance" and stored.home_station == "19TH"
    # The derived value follows the change.
    got = body(client.patch(f"{URL}/d1", json={"battery_capacity_wh": 1000.0}))
    assert got["pct_per_km"] == 0.8


def test_patch_errors(client: FlaskClient, clients: Clients) -> None:
    register(client)
    assert_error(client.patch(f"{URL}/ghost", json={"status": "retired"}), 404, "drone_id")
    assert_error(client.patch(f"{URL}/d1", json={}), 400)
    assert_error(client.patch(f"{URL}/d1", json={"model": None}), 400)
    assert_error(client.patch(f"{URL}/d1", json={"max_payload_kg": -1}), 422, "max_payload_kg")
    assert_error(client.patch(f"{URL}/d1", json={"drone_id": "d2"}), 422, "drone_id")
    assert_error(client.patch(f"{URL}/d1", json={"home_station": "NOPE"}), 422, "home_station")
    assert_error(client.patch(f"{URL}/d1", data=b"[]", content_type="application/json"), 400)
    stored = clients.fleet.get("d1")
    assert stored is not None and stored.home_station == "12TH" and stored.max_payload_kg == 2.5


def test_the_staff_read_the_registry_and_only_admins_change_it(
    client: FlaskClient, clients: Clients
) -> None:
    register(client)
    add_customers(clients, "c1")
    app = client.application
    anonymous = app.test_client()
    for resp in (
        anonymous.post(URL, json=spec("d2")),
        anonymous.get(URL),
        anonymous.get(f"{URL}/d1"),
        anonymous.patch(f"{URL}/d1", json={"status": "retired"}),
    ):
        assert_error(resp, 401)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    viewer, operator, customer = (
        api_client(clients, role, customer, app=app)
        for role, customer in (("viewer", None), ("operator", None), ("customer", "c1"))
    )
    for who in (viewer, operator):
        assert [d["drone_id"] for d in body(who.get(URL))["items"]] == ["d1"]
        assert body(who.get(f"{URL}/d1"))["status"] == "active"
    assert_error(customer.get(URL), 403)
    assert_error(customer.get(f"{URL}/d1"), 403)
    for who in (viewer, operator, customer):
        assert_error(who.post(URL, json=spec("d2")), 403)
        assert_error(who.patch(f"{URL}/d1", json={"status": "retired"}), 403)
    assert [s.drone_id for s in clients.fleet.list()] == ["d1"]
    assert clients.fleet.get("d1").status == "active"  # type: ignore[union-attr]


KEY_HEX = "00112233445566778899aabbccddeeff" * 2


def test_mavlink_identity_is_registered_and_its_key_never_shown(client: FlaskClient) -> None:
    resp = register(
        client, mavlink_sysid=7, mavlink_link="udp:0.0.0.0:14550", mavlink_signing_key=KEY_HEX
    )
    assert resp.status_code == 201, resp.data
    got = body(client.get(f"{URL}/d1"))
    assert (got["mavlink_sysid"], got["mavlink_link"], got["has_signing_key"]) == (
        7,
        "udp:0.0.0.0:14550",
        True,
    )
    assert "mavlink_signing_key" not in got and KEY_HEX not in resp.get_data(as_text=True)
    # The same system id on the same link, or on "any", is another drone's: 409.
    same, other = "udp:0.0.0.0:14550", "udp:0.0.0.0:14551"
    assert register(client, drone_id="d2", mavlink_sysid=7, mavlink_link=same).status_code == 409
    assert register(client, drone_id="d3", mavlink_sysid=7).status_code == 409
    assert register(client, drone_id="d4", mavlink_sysid=7, mavlink_link=other).status_code == 201
    assert client.patch(f"{URL}/d4", json={"mavlink_link": "udp:0.0.0.0:14550"}).status_code == 409
    patched = client.patch(f"{URL}/d4", json={"mavlink_sysid": 9})
    assert patched.status_code == 200 and body(patched)["has_signing_key"] is False


@pytest.mark.parametrize(
    "bad",
    [
        {"mavlink_sysid": 0},
        {"mavlink_sysid": 256},
        {"mavlink_signing_key": "abc"},
        {"mavlink_signing_key": "zz" * 32},
        {"mavlink_link": "has space"},
    ],
)
def test_a_malformed_mavlink_identity_is_422(client: FlaskClient, bad: dict[str, Any]) -> None:
    assert register(client, **bad).status_code == 422
