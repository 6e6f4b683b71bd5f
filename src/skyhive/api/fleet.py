"""The fleet registry (MongoDB): register drones, list them, read and edit their specs.

This is what each drone *is* (payload, battery, speed); its live state is under
``/api/v1/drones``.
"""

from __future__ import annotations

from typing import Any, get_args

from flask import Blueprint, Response

from skyhive.adapters.fleet_repo import DuplicateDrone
from skyhive.adapters.stations_repo import get_station
from skyhive.api.errors import ApiError
from skyhive.api.params import MAX_LIMIT, check_drone_id, choice_param, json_body, limit_param
from skyhive.api.responses import current_clients, items_response, json_response
from skyhive.domain.fleet import DroneSpec, DroneSpecPatch, RegistryStatus

bp = Blueprint("fleet", __name__, url_prefix="/api/v1/fleet/drones")

REGISTRY_STATUSES: tuple[str, ...] = get_args(RegistryStatus)


def spec_view(spec: DroneSpec) -> dict[str, Any]:
    """The spec as registered, plus the derived battery cost of a kilometre."""
    return {**spec.model_dump(), "pct_per_km": round(spec.pct_per_km, 4)}


def _require_station(code: str) -> None:
    if get_station(current_clients().db, code) is None:
        raise ApiError(422, f"unknown station {code!r}", "home_station")


@bp.post("")
def register_drone() -> Response:
    spec = json_body(DroneSpec)
    _require_station(spec.home_station)
    try:
        current_clients().fleet.register(spec)
    except DuplicateDrone:
        raise ApiError(409, f"drone {spec.drone_id!r} is already registered", "drone_id") from None
    headers = {"Location": f"{bp.url_prefix}/{spec.drone_id}"}
    return json_response(spec_view(spec), status=201, headers=headers)


@bp.get("")
def list_registered() -> Response:
    """By drone id; ``status`` filters on the registry status."""
    status = choice_param("status", REGISTRY_STATUSES)
    limit = limit_param(default=MAX_LIMIT)
    specs = current_clients().fleet.list(status=status, limit=limit)
    return items_response([spec_view(s) for s in specs])


def _not_registered(drone_id: str) -> ApiError:
    return ApiError(404, f"drone {drone_id!r} is not registered", "drone_id")


def _get_or_404(drone_id: str) -> DroneSpec:
    spec = current_clients().fleet.get(drone_id)
    if spec is None:
        raise _not_registered(drone_id)
    return spec


@bp.get("/<drone_id>")
def get_registered(drone_id: str) -> Response:
    check_drone_id(drone_id)
    return json_response(spec_view(_get_or_404(drone_id)))


@bp.patch("/<drone_id>")
def patch_drone(drone_id: str) -> Response:
    """Change some fields; the others keep their values. ``null`` means "leave as is"."""
    check_drone_id(drone_id)
    patch = json_body(DroneSpecPatch)
    if not patch.model_dump(exclude_none=True):
        fields = ", ".join(DroneSpecPatch.model_fields)
        raise ApiError(400, f"nothing to change: send at least one of {fields}")
    _get_or_404(drone_id)
    if patch.home_station is not None:
        _require_station(patch.home_station)
    updated = current_clients().fleet.update(drone_id, patch)
    if updated is None:  # removed between the check and the update (no API deletes)
        raise _not_registered(drone_id)
    return json_response(spec_view(updated))
