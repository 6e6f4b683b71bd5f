"""Remote ID's pure rules: the registry's UAS ID and operator ID, the flights query's view,
the live state mapped to ASTM F3411-22a, and dispatch refusing drones without Remote ID."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from implicitdict import ImplicitDict
from pydantic import ValidationError
from uas_standards.astm.f3411.v22a import api as f3411

from skyhive.domain.dispatch import Candidate, DispatchPolicy, Trip, judge
from skyhive.domain.fleet import DroneSpec, DroneSpecPatch
from skyhive.domain.remote_id import (
    RemoteIdConfig,
    UasId,
    drone_of,
    flight_details,
    flight_id,
    flights_response,
    is_current,
    is_flying,
    missing_remote_id,
    operational_status,
    parse_view,
    rid_flight,
)

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
SERIAL = "1ABC5A1B2C"  # manufacturer 1ABC, length 5, serial A1B2C


def state(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "drone_id": "d1",
        "ts": "2026-11-23T11:59:30Z",
        "lat": 37.8036123456,
        "lon": -122.2716,
        "alt_m": 110.4,
        "speed_mps": 14.9,
        "heading_deg": 359.6,
        "status": "in_flight",
        "emergency": False,
        "delivery_id": "dlv-1",
    }
    return {**base, **over}


# --- the registry's fields -------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"serial_number": SERIAL},
        {"serial_number": "MFR1F123456789ABCDEF"},  # length F: 15 characters
        {"registration_id": "N.123456789"},
        {"utm_id": "3F2504E0-4F89-11D3-9A0C-0305E82C3301"},
        {"specific_session_id": "01-0203040506"},
    ],
)
def test_a_well_formed_uas_id_is_kept(fields: dict[str, str]) -> None:
    uas = UasId.model_validate(fields, strict=True)
    assert uas.model_dump(exclude_none=True).keys() == fields.keys()


def test_ids_are_stored_in_one_spelling() -> None:
    uas = UasId(utm_id="3F2504E0-4F89-11D3-9A0C-0305E82C3301", specific_session_id="01-AB-CD")
    assert uas.utm_id == "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    assert uas.specific_session_id == "01abcd"


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"serial_number": "1ABC5A1B2"}, "CTA-2063-A"),  # says 5, has 4
        ({"serial_number": "1ABCGA1B2C"}, "CTA-2063-A"),  # G is no length code
        ({"serial_number": "1ABO5A1B2C"}, "CTA-2063-A"),  # O is not a code point
        ({"serial_number": "1abc5a1b2c"}, "CTA-2063-A"),
        ({"registration_id": "n.123"}, "nationality mark"),
        ({"registration_id": "N123"}, "nationality mark"),
        ({"utm_id": "not-a-uuid"}, "UUID"),
        ({"specific_session_id": "00ab"}, "hexadecimal"),  # type 0 is reserved
        ({"specific_session_id": "01" + "ab" * 20}, "hexadecimal"),  # 21 bytes
        ({}, "at least one"),
        ({"serial_number": SERIAL, "color": "red"}, "Extra inputs"),
    ],
)
def test_a_malformed_uas_id_is_refused_saying_why(fields: dict[str, str], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        UasId.model_validate(fields, strict=True)


@pytest.mark.parametrize("operator", ["N.OP123", "FIN87astrdge12k8"])
def test_operator_ids_of_a_caa_or_an_eu_registry_are_kept(operator: str) -> None:
    spec = DroneSpec(drone_id="d1", home_station="12TH", operator_id=operator)
    assert spec.operator_id == operator


@pytest.mark.parametrize("operator", ["", "op 1", "N.", "fin87astrdge12k8", "N." + "1" * 19])
def test_a_malformed_operator_id_is_refused(operator: str) -> None:
    with pytest.raises(ValidationError, match="operator_id"):
        DroneSpecPatch(operator_id=operator)


def test_a_spec_without_remote_id_stores_as_before_and_reads_back_with_it() -> None:
    plain = DroneSpec(drone_id="d1", home_station="12TH")
    assert "uas_id" not in plain.to_document() and "operator_id" not in plain.to_document()
    full = DroneSpec(
        drone_id="d1", home_station="12TH", uas_id=UasId(serial_number=SERIAL), operator_id="N.X1"
    )
    doc = full.to_document()
    assert doc["uas_id"] == {"serial_number": SERIAL}
    assert DroneSpec.from_document(doc) == full


def test_missing_remote_id_names_what_is_missing() -> None:
    uas = UasId(serial_number=SERIAL)
    assert missing_remote_id(uas, "N.X1") is None
    assert missing_remote_id(uas, None) == "operator_id"
    assert missing_remote_id(None, None) == "uas_id and operator_id"


# --- dispatch --------------------------------------------------------------------------


def verdict(spec: DroneSpec, required: bool) -> tuple[bool, str]:
    policy = DispatchPolicy(require_remote_id=required)
    v = judge(Candidate(spec, 90.0, "idle", 0.5), Trip(0.5, 2.0, 2.0), 1.0, policy)
    return v.eligible, v.reason


def test_dispatch_refuses_a_drone_without_remote_id_only_when_required() -> None:
    bare = DroneSpec(drone_id="bare", home_station="12TH", uas_id=UasId(serial_number=SERIAL))
    assert verdict(bare, required=False)[0]
    assert verdict(bare, required=True) == (
        False,
        "no Remote ID: operator_id not in the registry",
    )
    full = bare.model_copy(update={"operator_id": "N.X1"})
    assert verdict(full, required=True)[0]


# --- the view --------------------------------------------------------------------------


def test_a_view_is_two_corners_in_any_order() -> None:
    view = parse_view("37.81,-122.27,37.80,-122.28")
    assert (view.lat_min, view.lng_min, view.lat_max, view.lng_max) == (
        37.80,
        -122.28,
        37.81,
        -122.27,
    )
    assert view.contains(37.805, -122.275) and not view.contains(37.805, -122.265)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("37.8,-122.2", "two opposite corners"),
        ("37.8,-122.2,37.9,x", "four numbers"),
        ("37.8,-122.2,37.9,nan", "finite"),
        ("91,0,90.9,0.01", "latitudes"),
        ("0,180.5,0.01,180.4", "longitudes"),
        ("37.80,-122.30,37.85,-122.25", "area too large"),  # ~7.0 km diagonal and more
        ("0,179.99,0.01,-179.99", "area too large"),  # across the antimeridian
    ],
)
def test_a_bad_view_is_refused_saying_why(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_view(text)


def test_the_view_stays_within_the_latitudes_asked() -> None:
    with pytest.raises(ValueError, match=r"85\.05"):
        parse_view("85.06,0,85.07,0.01", max_lat=85.05)


def test_the_largest_view_f3411_allows_is_accepted() -> None:
    view = parse_view("37.800,-122.300,37.835,-122.260")
    assert 5.0 < view.diagonal_km <= 7.0


# --- live state → F3411 ----------------------------------------------------------------


def as_json(value: ImplicitDict) -> Any:
    return orjson.loads(orjson.dumps(value))


def test_a_live_state_becomes_an_f3411_flight() -> None:
    flight = rid_flight(state())
    assert isinstance(flight, f3411.RIDFlight)
    got = as_json(flight)
    assert got["id"] == "d1.dlv-1" and got["aircraft_type"] == "Helicopter"
    assert got["simulated"] is False
    current = got["current_state"]
    assert current["timestamp"] == {"value": "2026-11-23T11:59:30Z", "format": "RFC3339"}
    assert current["operational_status"] == "Airborne"
    assert current["track"] == 0  # 359.6 rounds to 360, which is north again
    assert current["speed"] == 15.0  # 0.25 m/s resolution
    assert current["speed_accuracy"] == "SAUnknown"
    position = current["position"]
    assert position["lat"] == 37.8036123 and position["lng"] == -122.2716  # 1e-7 degrees
    assert position["alt"] == -1000  # geodetic altitude unknown: telemetry's is above take-off
    assert position["height"] == {"distance": 110, "reference": "TakeoffLocation"}
    assert position["accuracy_h"] == "HAUnknown" and position["accuracy_v"] == "VAUnknown"
    # The package's own parser reads what we send back as the same type.
    assert ImplicitDict.parse(got, f3411.RIDFlight) == flight


def test_unknown_values_take_f3411_special_values() -> None:
    got = as_json(rid_flight(state(alt_m=None, speed_mps=None, heading_deg=None)))
    current = got["current_state"]
    assert current["speed"] == 255 and current["track"] == 361
    assert current["position"]["height"]["distance"] == -1000
    hovering = as_json(rid_flight(state(speed_mps=0.0, heading_deg=90.0)))
    assert hovering["current_state"]["track"] == 361  # not moving: no ground track
    fast = as_json(rid_flight(state(speed_mps=300.0)))
    assert fast["current_state"]["speed"] == 254.25
    assert as_json(rid_flight(state(), simulated=True))["simulated"] is True


@pytest.mark.parametrize(
    ("over", "status"),
    [
        ({"status": "in_flight"}, "Airborne"),
        ({"status": "returning"}, "Airborne"),
        ({"status": "emergency"}, "Emergency"),
        ({"status": "in_flight", "emergency": True}, "Emergency"),
        ({"status": "idle"}, "Ground"),
        ({"status": None}, "Undeclared"),
    ],
)
def test_operational_status(over: dict[str, Any], status: str) -> None:
    assert operational_status(state(**over)).value == status


@pytest.mark.parametrize(
    ("over", "flying"),
    [
        ({"status": "in_flight", "delivery_id": None}, True),
        ({"status": "returning", "delivery_id": None}, True),
        ({"status": "emergency", "delivery_id": None}, True),
        ({"status": "idle", "delivery_id": "dlv-1"}, True),  # on a pad, on a delivery
        ({"status": "idle", "delivery_id": None}, False),
        ({"status": "charging", "delivery_id": None}, False),
    ],
)
def test_which_drones_are_flights(over: dict[str, Any], flying: bool) -> None:
    assert is_flying(state(**over)) is flying


def test_a_flight_is_current_for_max_age_seconds() -> None:
    max_age = RemoteIdConfig().max_age_s
    assert max_age == 60
    assert is_current(state(ts="2026-11-23T11:59:00Z"), NOW, max_age)
    assert not is_current(state(ts="2026-11-23T11:58:59.900Z"), NOW, max_age)
    assert not is_current(state(lat=None), NOW, max_age)  # never placed


def test_the_age_limit_is_f3411s_at_most() -> None:
    with pytest.raises(ValidationError):
        RemoteIdConfig(max_age_s=61)


def test_flight_ids_carry_the_delivery_and_lead_back_to_the_drone() -> None:
    assert flight_id(state()) == "d1.dlv-1"
    assert flight_id(state(delivery_id=None)) == "d1"
    assert flight_id(state(delivery_id="a/b#c")) == "d1"  # characters F3411 forbids
    assert drone_of("d1.dlv-1") == drone_of("d1") == "d1"


def test_the_flights_answer_and_the_details_are_f3411s() -> None:
    answer = as_json(flights_response([rid_flight(state())], NOW))
    assert answer["timestamp"]["value"] == "2026-11-23T12:00:00Z"
    assert [f["id"] for f in answer["flights"]] == ["d1.dlv-1"]
    details = as_json(flight_details("d1.dlv-1", UasId(serial_number=SERIAL), "N.X1"))
    assert details["details"]["id"] == "d1.dlv-1"
    assert details["details"]["uas_id"]["serial_number"] == SERIAL
    assert details["details"]["operator_id"] == "N.X1"
    assert ImplicitDict.parse(details, f3411.GetFlightDetailsResponse)["details"]["id"]
    unknown = as_json(flight_details("d2", None, None))
    assert "uas_id" not in unknown["details"] and unknown["details"]["operator_id"] == ""
