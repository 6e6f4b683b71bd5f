"""The fleet registry (MongoDB): register drones, list them, read and edit their specs.

This is what each drone *is* (payload, battery, speed); its live state is under
``/api/v1/drones``. Anyone on the staff reads it; only admins change it.
"""

from __future__ import annotations

from typing import Any

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from skyhive.adapters.fleet_repo import DuplicateDrone, DuplicateMavlinkId
from skyhive.adapters.stations_repo import get_station
from skyhive.api.errors import ApiError
from skyhive.api.fields import MAX_LIMIT, DroneId, Items, Limit, PathModel, QueryModel
from skyhive.api.operation import ADMIN, VIEWER, operation
from skyhive.api.responses import current_clients, items_response, json_response
from skyhive.domain.fleet import DroneSpec, DroneSpecPatch, RegistryStatus
from skyhive.domain.remote_id import OperatorId, UasId
from skyhive.services.device_credentials import (
    UnknownDrone,
    issue_drone_password,
    revoke_drone_password,
)

bp = APIBlueprint(
    "fleet", __name__, url_prefix="/api/v1/fleet/drones", abp_tags=[Tag(name="fleet")]
)


class RegisteredDrone(BaseModel):
    """A registered drone's spec. `status` is the registry's (may it be dispatched at all),
    not the flight status reported in telemetry."""

    drone_id: DroneId
    model: str
    home_station: str = Field(description="Station code.")
    max_payload_kg: float
    battery_capacity_wh: float
    cruise_speed_mps: float
    consumption_wh_per_km: float
    status: RegistryStatus
    pct_per_km: float = Field(
        description="Battery percentage one km of cruise costs (consumption over capacity), "
        "to 4 decimals."
    )
    uas_id: UasId | None = Field(
        default=None, description="Remote ID: F3411's UASID (absent when not registered)."
    )
    operator_id: OperatorId | None = Field(
        default=None, description="Remote ID: the operator's id (absent when not registered)."
    )
    mavlink_sysid: int | None = Field(
        default=None, description="MAVLink system id (absent: the drone speaks MQTT)."
    )
    mavlink_link: str | None = Field(
        default=None, description='MAVLink link (a listen endpoint) the id is on; absent: "any".'
    )
    has_signing_key: bool = Field(
        description="Whether a MAVLink 2 signing key is registered (the key is never shown)."
    )


class FleetPath(PathModel):
    drone_id: DroneId


class FleetQuery(QueryModel):
    status: RegistryStatus | None = Field(
        default=None, description="Only drones with this registry status (default: all)."
    )
    limit: Limit = MAX_LIMIT


def spec_view(spec: DroneSpec) -> dict[str, Any]:
    """The spec as registered, plus the derived battery cost of a kilometre."""
    return {
        **spec.model_dump(exclude_none=True, exclude={"mavlink_signing_key"}),
        "pct_per_km": round(spec.pct_per_km, 4),
        "has_signing_key": spec.mavlink_signing_key is not None,
    }


def _require_station(code: str) -> None:
    if get_station(current_clients().db, code) is None:
        raise ApiError(422, f"unknown station {code!r}", "home_station")


class DroneCredential(BaseModel):
    """A drone's MQTT login: its id and this password (shown once; only a hash is kept)."""

    username: str = Field(description="The drone's id.")
    mqtt_password: str = Field(description="Shown this once. Also the HTTP ingest password.")


class NewDrone(RegisteredDrone):
    credentials: DroneCredential


def _credential(drone_id: str, password: str) -> dict[str, str]:
    return {"username": drone_id, "mqtt_password": password}


@operation(bp.post, "", access=ADMIN, ok=NewDrone, status=201, errors=(409,))
def register_drone(body: DroneSpec) -> Response:
    """Register a drone and issue its MQTT password (in the answer, once); `Location` is its
    URL. Omitted fields take their defaults. 409 when `drone_id` is already registered, or
    its `mavlink_sysid` is another drone's on the same `mavlink_link`; 422
    for a `home_station` that is not a known station, or a malformed Remote ID `uas_id`
    (e.g. a serial number that is not ANSI/CTA-2063-A) or `operator_id`."""
    _require_station(body.home_station)
    clients = current_clients()
    try:
        clients.fleet.register(body)
    except DuplicateDrone:
        raise ApiError(409, f"drone {body.drone_id!r} is already registered", "drone_id") from None
    except DuplicateMavlinkId as exc:
        raise ApiError(409, str(exc), "mavlink_sysid") from None
    password = issue_drone_password(clients, body.drone_id)
    headers = {"Location": f"{bp.url_prefix}/{body.drone_id}", "Cache-Control": "no-store"}
    answer = {**spec_view(body), "credentials": _credential(body.drone_id, password)}
    return json_response(answer, status=201, headers=headers)


@operation(bp.post, "/<drone_id>/credentials", access=ADMIN, ok=DroneCredential, errors=(404,))
def rotate_drone_credentials(path: FleetPath) -> Response:
    """Issue a new MQTT password (the old one stops working at once for new connections,
    within seconds for open ones); in the answer, once."""
    drone_id = path.drone_id
    try:
        password = issue_drone_password(current_clients(), drone_id)
    except UnknownDrone:
        raise _not_registered(drone_id) from None
    return json_response(_credential(drone_id, password), headers={"Cache-Control": "no-store"})


@operation(bp.get, "", access=VIEWER, ok=Items[RegisteredDrone])
def list_fleet(query: FleetQuery) -> Response:
    """Registered drones, by drone id; `status` filters on the registry status."""
    specs = current_clients().fleet.list(status=query.status, limit=query.limit)
    return items_response([spec_view(s) for s in specs])


def _not_registered(drone_id: str) -> ApiError:
    return ApiError(404, f"drone {drone_id!r} is not registered", "drone_id")


def _get_or_404(drone_id: str) -> DroneSpec:
    spec = current_clients().fleet.get(drone_id)
    if spec is None:
        raise _not_registered(drone_id)
    return spec


@operation(bp.get, "/<drone_id>", access=VIEWER, ok=RegisteredDrone, errors=(404,))
def get_registered_drone(path: FleetPath) -> Response:
    """One registered drone's spec."""
    return json_response(spec_view(_get_or_404(path.drone_id)))


@operation(bp.patch, "/<drone_id>", access=ADMIN, ok=RegisteredDrone, errors=(404, 409))
def patch_drone(path: FleetPath, body: DroneSpecPatch) -> Response:
    """Change some fields; the others keep their values. `null` means "leave as is"; a
    `uas_id` replaces the registered one whole. 400 for a body with nothing to change; 409
    for a `mavlink_sysid` another drone has on the same link; 422
    for an unknown `home_station` or a malformed `uas_id` or `operator_id`. Retiring a drone
    withdraws its MQTT password."""
    drone_id = path.drone_id
    if not body.model_dump(exclude_none=True):
        fields = ", ".join(DroneSpecPatch.model_fields)
        raise ApiError(400, f"nothing to change: send at least one of {fields}")
    _get_or_404(drone_id)
    if body.home_station is not None:
        _require_station(body.home_station)
    clients = current_clients()
    try:
        updated = clients.fleet.update(drone_id, body)
    except DuplicateMavlinkId as exc:
        raise ApiError(409, str(exc), "mavlink_sysid") from None
    if updated is None:  # removed between the check and the update (no API deletes)
        raise _not_registered(drone_id)
    if updated.status == "retired":  # a retired drone may not fly for SkyHive any more
        revoke_drone_password(clients, drone_id)
    return json_response(spec_view(updated))
