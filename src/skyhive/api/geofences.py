"""Geofences (no-fly zones) for the ``geofence`` alert rule: create, list, read, replace,
delete. The processor picks a change up within about a second (see ``GeofenceCache``).

An invalid polygon (unclosed ring, out-of-range position, self-intersection ...) is a 422
naming ``geometry`` with the reason, never a 500.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response

from skyhive.adapters.geofences_repo import DuplicateGeofence
from skyhive.api.errors import ApiError
from skyhive.api.params import choice_param, json_body
from skyhive.api.responses import current_clients, items_response, json_response
from skyhive.domain.geofence import ID_PATTERN, Geofence, GeofenceSpec

bp = Blueprint("geofences", __name__, url_prefix="/api/v1/geofences")

ACTIVE_VALUES = ("true", "false")


def serialize(zone: Geofence) -> dict[str, Any]:
    return {"id": zone.id, **zone.model_dump(exclude={"id"})}


def _check_id(geofence_id: str) -> str:
    """A 400 for an id that can never exist, as for drone ids."""
    if not re.fullmatch(ID_PATTERN, geofence_id):
        raise ApiError(
            400, f"geofence_id must match {ID_PATTERN}, got {geofence_id[:80]!r}", "geofence_id"
        )
    return geofence_id


def _not_found(geofence_id: str) -> ApiError:
    return ApiError(404, f"geofence {geofence_id!r} not found", "geofence_id")


@bp.post("")
def create_geofence() -> Response:
    """201 with the zone; ``id`` is generated (``gf-…``) unless the body gives one."""
    spec = json_body(GeofenceSpec)
    try:
        zone = current_clients().geofences.create(spec)
    except DuplicateGeofence:
        raise ApiError(409, f"geofence {spec.id!r} already exists", "id") from None
    headers = {"Location": f"{bp.url_prefix}/{zone.id}"}
    return json_response(serialize(zone), status=201, headers=headers)


@bp.get("")
def list_geofences() -> Response:
    """By id. ``active=true``: only zones in force now (enabled and within their time
    windows); ``active=false``: the others."""
    active = choice_param("active", ACTIVE_VALUES)
    zones = current_clients().geofences.all()
    if active is not None:
        now = datetime.now(UTC)
        zones = [z for z in zones if z.in_force(now) == (active == "true")]
    return items_response([serialize(z) for z in zones])


@bp.get("/<geofence_id>")
def get_geofence(geofence_id: str) -> Response:
    zone = current_clients().geofences.get(_check_id(geofence_id))
    if zone is None:
        raise _not_found(geofence_id)
    return json_response(serialize(zone))


@bp.put("/<geofence_id>")
def replace_geofence(geofence_id: str) -> Response:
    """Replace every field (those left out take their defaults); ``created_at`` is kept."""
    _check_id(geofence_id)
    spec = json_body(GeofenceSpec)
    if spec.id is not None and spec.id != geofence_id:
        raise ApiError(422, f"id {spec.id!r} does not match the URL's {geofence_id!r}", "id")
    zone = current_clients().geofences.replace(geofence_id, spec)
    if zone is None:
        raise _not_found(geofence_id)
    return json_response(serialize(zone))


@bp.delete("/<geofence_id>")
def delete_geofence(geofence_id: str) -> Response:
    if not current_clients().geofences.delete(_check_id(geofence_id)):
        raise _not_found(geofence_id)
    return Response(status=204)
