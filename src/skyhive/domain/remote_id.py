"""Network Remote ID (ASTM F3411-22a): who a drone is, and its flights as a display provider
reads them.

A drone's UAS ID and its operator's ID live in the fleet registry (``UasId``,
``OperatorId``); the live state becomes F3411's ``RIDFlight``, built from the
``uas-standards`` package's own v22a types so the answer is the standard's data model, not
a look-alike. Pure: the caller reads Redis and the registry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from uas_standards.ansi_cta_2063_a import SerialNumber
from uas_standards.astm.f3411.v22a import api as f3411
from uas_standards.astm.f3411.v22a import constants as f3411_limits

from skyhive.domain.geo import haversine_m

# F3411-22a's limits: a flights query's area, and how old a "current" position may be.
MAX_VIEW_DIAGONAL_KM = float(f3411_limits.NetMaxDisplayAreaDiagonalKm)  # 7 km
MAX_DATA_AGE_S = float(f3411_limits.NetMaxNearRealTimeDataPeriodSeconds)  # 60 s

# <ICAO nationality mark>.<CAA-assigned id>, uppercase letters, digits and dots (F3411's
# registration_id and operator_id), or the public EN 4709-002 operator number the EU's
# registries issue (3-letter country, 12 characters, a checksum character). Broadcast
# Remote ID carries 20 characters, so no id is longer.
_CAA_ID_RE = re.compile(r"^[A-Z0-9]{1,4}\.[A-Z0-9.]{1,15}$")
_EU_OPERATOR_RE = re.compile(r"^[A-Z]{3}[0-9a-z]{13}$")
_UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_HEX_RE = re.compile(r"^(?:[0-9a-fA-F]{2}){2,20}$")
# F3411 forbids \0 \t \r \n # % / : ? @ [ \ ] in a flight id; SkyHive's ids are narrower.
_FLIGHT_PART_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
AIRBORNE = frozenset({"in_flight", "returning"})


class RemoteIdConfig(BaseModel):
    """``SKYHIVE_REMOTE_ID__REQUIRED=true``: dispatch assigns only drones whose UAS ID and
    operator ID are in the registry. ``max_age_s``: a flight is served while its latest
    reading is at most this old (F3411 allows 60 s at most). ``simulated``: the fleet is
    simulated (each flight says so)."""

    model_config = ConfigDict(frozen=True)

    required: bool = False
    max_age_s: float = Field(default=MAX_DATA_AGE_S, gt=0, le=MAX_DATA_AGE_S)
    # F3411's ``simulated`` on every flight served: true for a simulated fleet (``skyhive
    # simulate``), so a display provider does not show test drones as real aircraft.
    simulated: bool = False


def _serial(value: str) -> str:
    if not SerialNumber(value).valid:
        raise ValueError(
            "must be an ANSI/CTA-2063-A serial number: 4-character manufacturer code, "
            "a length character 1-9 or A-F, then that many characters (0-9, A-Z but I and O)"
        )
    return value


def _caa_id(value: str) -> str:
    if not _CAA_ID_RE.fullmatch(value):
        raise ValueError("must read <nationality mark>.<CAA id> (A-Z, 0-9, dots; 20 at most)")
    return value


def _operator_id(value: str) -> str:
    if not (_CAA_ID_RE.fullmatch(value) or _EU_OPERATOR_RE.fullmatch(value)):
        raise ValueError(
            "must read <nationality mark>.<CAA id> (A-Z, 0-9, dots; 20 at most) or be an "
            "EN 4709-002 public operator number (e.g. FIN87astrdge12k8)"
        )
    return value


def _utm_id(value: str) -> str:
    if not _UUID_RE.fullmatch(value):
        raise ValueError("must be a UUID")
    return value.lower()


def _session_id(value: str) -> str:
    raw = value.replace("-", "")
    if not _HEX_RE.fullmatch(raw) or raw[:2] == "00":
        raise ValueError(
            "must be 2-20 bytes in hexadecimal, the first (the session id type) not 00"
        )
    return raw.lower()


OperatorId = Annotated[
    str,
    Field(description="The operator's CAA registration (F3411 `operator_id`)."),
    AfterValidator(_operator_id),
]


class UasId(BaseModel):
    """F3411-22a's ``UASID``: at least one of its fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    serial_number: Annotated[str, AfterValidator(_serial)] | None = Field(
        default=None, description="ANSI/CTA-2063-A serial number, e.g. `1ABC5A1B2C`."
    )
    registration_id: Annotated[str, AfterValidator(_caa_id)] | None = Field(
        default=None, description="CAA registration: `<nationality mark>.<CAA id>`."
    )
    utm_id: Annotated[str, AfterValidator(_utm_id)] | None = Field(
        default=None, description="A UTM-provided session UUID."
    )
    specific_session_id: Annotated[str, AfterValidator(_session_id)] | None = Field(
        default=None, description="Specific session id: type byte then id, in hexadecimal."
    )

    @model_validator(mode="after")
    def _one_at_least(self) -> UasId:
        if not self.model_dump(exclude_none=True):
            raise ValueError(f"give at least one of {', '.join(UasId.model_fields)}")
        return self


def missing_remote_id(uas_id: UasId | None, operator_id: str | None) -> str | None:
    """What the registry lacks for the drone to fly under Remote ID, None if nothing."""
    missing = [name for name, v in (("uas_id", uas_id), ("operator_id", operator_id)) if not v]
    return " and ".join(missing) or None


# --- the flights query ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class View:
    """A flights query's area: F3411's two corners, normalised to south-west/north-east."""

    lat_min: float
    lng_min: float
    lat_max: float
    lng_max: float

    @property
    def diagonal_km(self) -> float:
        return haversine_m(self.lat_min, self.lng_min, self.lat_max, self.lng_max) / 1000.0

    def contains(self, lat: float, lng: float) -> bool:
        return self.lat_min <= lat <= self.lat_max and self.lng_min <= lng <= self.lng_max


def parse_view(text: str, max_lat: float = 90.0) -> View:
    """``lat1,lng1,lat2,lng2`` (two opposite corners, F3411's ``view``); ValueError when
    malformed, out of range, or larger than F3411's 7 km diagonal. A box across the
    antimeridian counts as the long way round, so it is refused as too large."""
    parts = text.split(",")
    if len(parts) != 4:
        raise ValueError("must be lat1,lng1,lat2,lng2 (two opposite corners)")
    try:
        lat1, lng1, lat2, lng2 = (float(p) for p in parts)
    except ValueError:
        raise ValueError("must be four numbers: lat1,lng1,lat2,lng2") from None
    if not all(math.isfinite(x) for x in (lat1, lng1, lat2, lng2)):
        raise ValueError("must be four finite numbers")
    if max(abs(lat1), abs(lat2)) > max_lat or max(abs(lng1), abs(lng2)) > 180:
        raise ValueError(f"latitudes must be within ±{max_lat:g}, longitudes within ±180")
    view = View(min(lat1, lat2), min(lng1, lng2), max(lat1, lat2), max(lng1, lng2))
    if view.lng_max - view.lng_min > 180:  # the corners are near; the box is not
        raise ValueError("area too large: the box goes the long way round (antimeridian)")
    if view.diagonal_km > MAX_VIEW_DIAGONAL_KM:
        raise ValueError(
            f"area too large: diagonal {view.diagonal_km:.1f} km > "
            f"{MAX_VIEW_DIAGONAL_KM:g} km (ASTM F3411)"
        )
    return view


# --- live state → F3411 ---------------------------------------------------------------


def flight_id(state: Mapping[str, Any]) -> str:
    """The drone's id, with its delivery's (``drone.delivery``) while it flies one: a new
    flight id per delivery, and the drone recoverable from it."""
    drone, delivery = str(state["drone_id"]), state.get("delivery_id")
    if delivery and _FLIGHT_PART_RE.fullmatch(delivery):
        return f"{drone}.{delivery}"
    return drone


def drone_of(flight: str) -> str:
    return flight.split(".", 1)[0]


def is_flying(state: Mapping[str, Any]) -> bool:
    """In the air, in an emergency, or on a delivery (waiting on a pad included)."""
    return bool(
        state.get("status") in AIRBORNE
        or state.get("status") == "emergency"
        or state.get("emergency")
        or state.get("delivery_id")
    )


def is_current(state: Mapping[str, Any], now: datetime, max_age_s: float) -> bool:
    """Its reading is no older than ``max_age_s`` (a reading from the future counts)."""
    ts = state.get("ts")
    if not ts or state.get("lat") is None or state.get("lon") is None:
        return False
    return (now - datetime.fromisoformat(ts)).total_seconds() <= max_age_s


def operational_status(state: Mapping[str, Any]) -> f3411.RIDOperationalStatus:
    status = state.get("status")
    if state.get("emergency") or status == "emergency":
        return f3411.RIDOperationalStatus.Emergency
    if status in AIRBORNE:
        return f3411.RIDOperationalStatus.Airborne
    if status is None:
        return f3411.RIDOperationalStatus.Undeclared
    return f3411.RIDOperationalStatus.Ground


def _track(heading: float | None, speed: float | None) -> float:
    """F3411's track: whole degrees in [0, 360), 361 when unknown or not moving."""
    if heading is None or not speed:
        return 361
    return float(round(heading) % 360)


def _speed(speed: float | None) -> float:
    """Metres per second at 0.25 resolution, capped at 254.25; 255 when unknown."""
    if speed is None:
        return float(f3411_limits.SpecialSpeed)
    return min(round(speed * 4) / 4, float(f3411_limits.MaxSpeed))


def _time(value: str | datetime) -> f3411.Time:
    return f3411.Time(value=f3411.StringBasedDateTime(value, reformat=True))


def rid_flight(state: Mapping[str, Any], simulated: bool = False) -> f3411.RIDFlight:
    """A drone's live state as an F3411 flight. Telemetry's ``alt_m`` is height above the
    take-off point, so the geodetic altitude is unknown (-1000) and ``height`` carries it;
    accuracies are unknown (telemetry v1 does not report them)."""
    alt = state.get("alt_m")
    height = f3411.RIDHeight(
        distance=f3411_limits.SpecialHeight if alt is None else float(round(alt)),
        reference=f3411.RIDHeightReference.TakeoffLocation,
    )
    position = f3411.RIDAircraftPosition(
        lat=round(float(state["lat"]), 7),
        lng=round(float(state["lon"]), 7),
        alt=f3411_limits.SpecialHeight,
        accuracy_h=f3411.HorizontalAccuracy.HAUnknown,
        accuracy_v=f3411.VerticalAccuracy.VAUnknown,
        extrapolated=False,
        height=height,
    )
    speed = state.get("speed_mps")
    current = f3411.RIDAircraftState(
        timestamp=_time(state["ts"]),
        timestamp_accuracy=0,  # unknown
        operational_status=operational_status(state),
        position=position,
        track=_track(state.get("heading_deg"), speed),
        speed=_speed(speed),
        speed_accuracy=f3411.SpeedAccuracy.SAUnknown,
        vertical_speed=f3411_limits.SpecialVerticalSpeed,
    )
    return f3411.RIDFlight(
        id=flight_id(state),
        aircraft_type=f3411.UAType.Helicopter,  # F3411: "Helicopter includes multirotor"
        current_state=current,
        simulated=simulated,
    )


def flights_response(flights: list[f3411.RIDFlight], now: datetime) -> f3411.GetFlightsResponse:
    return f3411.GetFlightsResponse(timestamp=_time(now), flights=flights, no_isas_present=False)


def flight_details(
    flight: str, uas_id: UasId | None, operator_id: str | None
) -> f3411.GetFlightDetailsResponse:
    """F3411's details of a flight: who flies it (kept apart from the flights list, as the
    standard shows them only on a closer look)."""
    details = f3411.RIDFlightDetails(id=flight)
    if uas_id is not None:
        details.uas_id = f3411.UASID(**uas_id.model_dump(exclude_none=True))
    if operator_id:
        details.operator_id = operator_id
    return f3411.GetFlightDetailsResponse(details=details)
