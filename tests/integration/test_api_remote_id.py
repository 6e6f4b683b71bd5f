"""Remote ID against the embedded servers: the registry's UAS ID and operator ID stored and
served, dispatch refusing drones without them when required, and the F3411 flights and
details read from Redis's live state and GEO index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import delivery_wiring as wire
import jsonschema
import pytest
from api_asserts import assert_error, body
from click.testing import CliRunner
from customer_seed import add_customers
from flask.testing import FlaskClient

from auth_helpers import api_client
from cli_env import cli_env
from manual_clock import ManualClock
from skyhive.bootstrap import bootstrap
from skyhive.cli import cli
from skyhive.domain.deliveries import DeliveryRequest
from skyhive.domain.fleet import DroneSpec, DroneSpecPatch
from skyhive.domain.remote_id import RemoteIdConfig, UasId
from skyhive.domain.stations import bart_stations
from skyhive.domain.telemetry import validate_telemetry
from skyhive.wiring import Clients

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
STATION = next(s for s in bart_stations() if s.code == "12TH")
SERIAL = "1ABC5A1B2C"
# A view of about 2.2 x 2.2 km around 12th Street.
LAT0, LNG0, LAT1, LNG1 = 37.795, -122.283, 37.815, -122.258
BBOX = f"{LAT0},{LNG0},{LAT1},{LNG1}"
FLIGHTS = "/api/v1/remote-id/flights"


@pytest.fixture
def world(clients: Clients) -> Clients:
    clients.__dict__["clock"] = ManualClock(NOW)  # before anything is built with it
    bootstrap(clients)
    return clients


def place(clients: Clients, drone: str, lat: float, lon: float, age_s: float, **extra: Any) -> None:
    """A live state as the processor writes it, its reading ``age_s`` old."""
    ts = NOW - timedelta(seconds=age_s)
    reading = {
        "drone_id": drone,
        "seq": 1,
        "ts": ts.isoformat().replace("+00:00", "Z"),
        "lat": lat,
        "lon": lon,
        "alt_m": 100.0,
        "speed_mps": 12.0,
        "heading_deg": 90.0,
        "battery_pct": 80.0,
        **extra,
    }
    clients.live.apply([validate_telemetry(reading)], NOW.isoformat())


def answer_schema(client: FlaskClient, path: str) -> dict[str, Any]:
    doc = body(client.get("/api/v1/openapi.json"))
    op = doc["paths"][path]["get"]
    assert op["x-skyhive-role"] == "viewer"
    return dict(op["responses"]["200"]["content"]["application/json"]["schema"])


# --- the registry ----------------------------------------------------------------------


def test_the_registry_stores_and_serves_remote_id(world: Clients) -> None:
    admin = api_client(world, "admin")
    new = {
        "drone_id": "rid-1",
        "home_station": "12TH",
        "uas_id": {"serial_number": SERIAL},
        "operator_id": "N.OP42",
    }
    resp = admin.post("/api/v1/fleet/drones", json=new)
    assert resp.status_code == 201, resp.data[:300]
    assert body(resp)["uas_id"] == {"serial_number": SERIAL}
    assert body(resp)["operator_id"] == "N.OP42"
    doc = world.db["drones"].find_one({"_id": "rid-1"})
    assert doc is not None and doc["uas_id"] == {"serial_number": SERIAL}
    assert doc["operator_id"] == "N.OP42"

    got = body(admin.get("/api/v1/fleet/drones/rid-1"))
    assert got["uas_id"] == {"serial_number": SERIAL} and got["operator_id"] == "N.OP42"
    session = "01-0a0b0c0d0e0f"
    resp = admin.patch(
        "/api/v1/fleet/drones/rid-1", json={"uas_id": {"specific_session_id": session}}
    )
    assert resp.status_code == 200, resp.data[:300]
    assert body(resp)["uas_id"] == {"specific_session_id": "010a0b0c0d0e0f"}  # replaced whole
    assert body(resp)["operator_id"] == "N.OP42"  # left as it was
    spec = world.fleet.get("rid-1")
    assert spec is not None and spec.uas_id == UasId(specific_session_id="010a0b0c0d0e0f")

    # A drone registered without them still works, and says nothing of them.
    assert (
        admin.post(
            "/api/v1/fleet/drones", json={"drone_id": "old-1", "home_station": "12TH"}
        ).status_code
        == 201
    )
    old = body(admin.get("/api/v1/fleet/drones/old-1"))
    assert "uas_id" not in old and "operator_id" not in old
    listed = {d["drone_id"]: d for d in body(admin.get("/api/v1/fleet/drones"))["items"]}
    assert listed["rid-1"]["operator_id"] == "N.OP42" and "uas_id" not in listed["old-1"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"uas_id": {"serial_number": "1ABC5A1B2"}}, "uas_id.serial_number"),
        ({"uas_id": {}}, "uas_id"),
        ({"operator_id": "op 42"}, "operator_id"),
    ],
)
def test_a_malformed_remote_id_is_refused_with_a_json_error(
    world: Clients, fields: dict[str, Any], field: str
) -> None:
    admin = api_client(world, "admin")
    new = {"drone_id": "bad-1", "home_station": "12TH", **fields}
    assert_error(admin.post("/api/v1/fleet/drones", json=new), 422, field)
    assert world.fleet.get("bad-1") is None
    admin.post("/api/v1/fleet/drones", json={"drone_id": "ok-1", "home_station": "12TH"})
    assert_error(admin.patch("/api/v1/fleet/drones/ok-1", json=fields), 422, field)


def test_the_cli_registers_shows_and_sets_remote_id(world: Clients) -> None:
    env, runner = cli_env(world.settings), CliRunner()
    args = ["drones", "register", "cli-1", "--home-station", "12TH", "--no-credentials"]
    done = runner.invoke(
        cli, [*args, "--serial-number", SERIAL, "--operator-id", "N.OP42"], env=env
    )
    assert done.exit_code == 0, done.output
    spec = world.fleet.get("cli-1")
    assert spec is not None and spec.uas_id == UasId(serial_number=SERIAL)
    assert spec.operator_id == "N.OP42"
    shown = runner.invoke(cli, ["drones", "remote-id", "cli-1"], env=env)
    assert shown.exit_code == 0 and SERIAL in shown.output and "N.OP42" in shown.output
    reg = runner.invoke(
        cli, ["drones", "remote-id", "cli-1", "--registration-id", "N.123"], env=env
    )
    assert reg.exit_code == 0, reg.output
    spec = world.fleet.get("cli-1")
    assert spec is not None and spec.uas_id == UasId(registration_id="N.123")  # replaced whole
    bad = runner.invoke(cli, ["drones", "remote-id", "cli-1", "--serial-number", "XYZ"], env=env)
    assert bad.exit_code == 1 and "CTA-2063-A" in bad.output
    unknown = runner.invoke(cli, ["drones", "remote-id", "nobody", "--operator-id", "N.1"], env=env)
    assert unknown.exit_code == 1 and "not registered" in unknown.output


# --- dispatch --------------------------------------------------------------------------


def order(clients: Clients) -> str:
    req = DeliveryRequest.model_validate(
        {
            "customer_id": "c1",
            "pickup_station": "12TH",
            "destination": {"lat": STATION.lat + 0.02, "lon": STATION.lon + 0.01},
            "package": {"weight_kg": 1.0, "size": "small"},
        }
    )
    doc, _ = clients.delivery_service.create(req)
    return str(doc.id)


def test_dispatch_refuses_a_drone_without_remote_id_when_required(world: Clients) -> None:
    add_customers(world, "c1")
    world.fleet.register(DroneSpec(drone_id="bare", home_station="12TH"))
    place(world, "bare", STATION.lat, STATION.lon, 5, status="idle")
    required = world.settings.model_copy(update={"remote_id": RemoteIdConfig(required=True)})
    sent: list[tuple[str, bytes]] = []
    d = wire.dispatcher(world, lambda t, p: sent.append((t, p)), "t", required)
    d.setup()
    did = order(world)
    assert d.dispatch_pending() == 0
    d.recorder.drain()
    waiting = world.delivery_service.get(did).waiting_reason
    assert waiting is not None and "no Remote ID: uas_id and operator_id" in waiting
    assert not sent

    world.fleet.update(
        "bare", DroneSpecPatch(uas_id=UasId(serial_number=SERIAL), operator_id="N.OP42")
    )
    world.__dict__["clock"].advance(11)  # past the dispatcher's spec cache (10 s)
    d.refresh_specs()
    assert d.dispatch_pending(retry_all=True) == 1
    d.recorder.drain()
    assert world.delivery_service.get(did).drone_id == "bare"
    assert [t for t, _ in sent] == ["skyhive/drones/bare/commands"]


# --- the flights and their details -----------------------------------------------------


def test_flights_in_the_view_are_the_current_active_ones_in_f3411(world: Clients) -> None:
    world.fleet.register(
        DroneSpec(
            drone_id="air",
            home_station="12TH",
            uas_id=UasId(serial_number=SERIAL),
            operator_id="N.OP42",
        )
    )
    mid_lat, mid_lng = (LAT0 + LAT1) / 2, (LNG0 + LNG1) / 2
    place(world, "air", mid_lat, mid_lng, 2, status="in_flight", delivery_id="dlv-a")
    place(world, "pad", mid_lat, mid_lng + 0.001, 2, status="idle", delivery_id="dlv-p")
    place(world, "sos", LAT0 + 0.0005, LNG0 + 0.0005, 59, status="in_flight", emergency=True)
    place(world, "docked", mid_lat, mid_lng, 1, status="idle")  # not flying
    place(world, "charging", mid_lat, mid_lng, 1, status="charging")
    place(world, "stale", mid_lat, mid_lng, 61, status="in_flight")  # older than 60 s
    place(world, "east", mid_lat, LNG1 + 0.0002, 1, status="in_flight")  # ~18 m outside
    place(world, "far", STATION.lat + 0.2, STATION.lon, 1, status="in_flight")

    viewer = api_client(world, "viewer")
    resp = viewer.get(FLIGHTS, query_string={"bbox": BBOX})
    assert resp.status_code == 200, resp.data[:300]
    got = body(resp)
    jsonschema.validate(got, answer_schema(viewer, FLIGHTS))  # what the document declares
    assert got["timestamp"] == {"value": "2026-11-23T12:00:00Z", "format": "RFC3339"}
    flights = {f["id"]: f for f in got["flights"]}
    assert list(flights) == ["air.dlv-a", "pad.dlv-p", "sos"]
    status = {i: f["current_state"]["operational_status"] for i, f in flights.items()}
    assert status == {"air.dlv-a": "Airborne", "pad.dlv-p": "Ground", "sos": "Emergency"}
    air = flights["air.dlv-a"]
    assert air["aircraft_type"] == "Helicopter" and air["simulated"] is False
    assert air["current_state"]["position"]["lat"] == round(mid_lat, 7)
    assert air["current_state"]["timestamp"]["value"] == "2026-11-23T11:59:58Z"
    assert air["current_state"]["speed"] == 12.0 and air["current_state"]["track"] == 90

    # The corners may come in any order; a view elsewhere holds none of them.
    swapped = viewer.get(FLIGHTS, query_string={"bbox": f"{LAT1},{LNG1},{LAT0},{LNG0}"})
    assert [f["id"] for f in body(swapped)["flights"]] == list(flights)
    elsewhere = f"{LAT0 + 0.1},{LNG0},{LAT1 + 0.1},{LNG1}"
    assert body(viewer.get(FLIGHTS, query_string={"bbox": elsewhere}))["flights"] == []

    # Details: who flies it, while it flies.
    details = body(viewer.get(f"{FLIGHTS}/air.dlv-a/details"))["details"]
    assert details["id"] == "air.dlv-a"
    assert details["uas_id"]["serial_number"] == SERIAL and details["operator_id"] == "N.OP42"
    unregistered = body(viewer.get(f"{FLIGHTS}/sos/details"))["details"]
    assert "uas_id" not in unregistered
    for gone in ("stale", "docked", "air.dlv-old", "nobody"):
        assert_error(viewer.get(f"{FLIGHTS}/{gone}/details"), 404, "flight_id")
    world.__dict__["clock"].advance(59)  # air's reading is now 61 s old
    assert_error(viewer.get(f"{FLIGHTS}/air.dlv-a/details"), 404, "flight_id")
    assert [
        f["id"] for f in body(viewer.get(FLIGHTS, query_string={"bbox": BBOX}))["flights"]
    ] == []


@pytest.mark.parametrize(
    ("bbox", "says"),
    [
        (None, "bbox"),
        ("37.8,-122.27", "two opposite corners"),
        ("37.8,-122.27,north,-122.26", "four numbers"),
        ("37.70,-122.30,37.80,-122.20", "area too large"),
        ("86,0,86.01,0.01", "85.05"),
    ],
)
def test_a_bad_bbox_is_a_400_json_error(world: Clients, bbox: str | None, says: str) -> None:
    viewer = api_client(world, "viewer")
    query = {} if bbox is None else {"bbox": bbox}
    message = assert_error(viewer.get(FLIGHTS, query_string=query), 400, "bbox")
    assert says in message
