"""Geofences (no-fly zones) for the ``geofence`` alert rule: create, list, read, replace,
delete. The processor picks a change up within about a second (see ``GeofenceCache``).

An invalid polygon (unclosed ring, out-of-range position, self-intersection ...) is a 422
naming ``geometry`` with the reason, never a 500.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from pydantic import Field

from skyhive.adapters.geofences_repo import DuplicateGeofence
from skyhive.api.errors import ApiError
from skyhive.api.fields import Items, PathModel, QueryModel
from skyhive.api.operation import OPERATOR, VIEWER, operation
from skyhive.api.responses import current_clients, items_response, json_response
from skyhive.domain.geofence import ID_PATTERN, Geofence, GeofenceSpec

bp = APIBlueprint(
    "geofences", __name__, url_prefix="/api/v1/geofences", abp_tags=[Tag(name="geofences")]
)


class GeofencePath(PathModel):
    geofence_id: str = Field(pattern=ID_PATTERN)


class GeofencesQuery(QueryModel):
    active: Literal["true", "false"] | None = Field(
        default=None,
        description="`true`: only zones in force now (enabled and within their time windows); "
        "`false`: only the others. Default: every zone.",
    )


def serialize(zone: Geofence) -> dict[str, Any]:
    return {"id": zone.id, **zone.model_dump(exclude={"id"})}


def _not_found(geofence_id: str) -> ApiError:
    return ApiError(404, f"geofence {geofence_id!r} not found", "geofence_id")


@operation(bp.post, "", access=OPERATOR, ok=Geofence, status=201, errors=(409,))
def create_geofence(body: GeofenceSpec) -> Response:
    """Create a no-fly zone: 201 with the zone, `Location` its URL; `id` is generated
    (`gf-...`) unless the body gives one (409 when it is taken). A `geometry` that is not a
    valid polygon (ring not closed or under 4 positions, position out of range,
    self-intersection) is a 422 naming `geometry` with the reason."""
    try:
        zone = current_clients().geofences.create(body)
    except DuplicateGeofence:
        raise ApiError(409, f"geofence {body.id!r} already exists", "id") from None
    headers = {"Location": f"{bp.url_prefix}/{zone.id}"}
    return json_response(serialize(zone), status=201, headers=headers)


@operation(bp.get, "", access=VIEWER, ok=Items[Geofence])
def list_geofences(query: GeofencesQuery) -> Response:
    """No-fly zones, by id. `active=true`: only zones in force now (enabled and within their
    time windows); `active=false`: the others."""
    zones = current_clients().geofences.all()
    if query.active is not None:
        now = datetime.now(UTC)
        zones = [z for z in zones if z.in_force(now) == (query.active == "true")]
    return items_response([serialize(z) for z in zones])


@operation(bp.get, "/<geofence_id>", access=VIEWER, ok=Geofence, errors=(404,))
def get_geofence(path: GeofencePath) -> Response:
    zone = current_clients().geofences.get(path.geofence_id)
    if zone is None:
        raise _not_found(path.geofence_id)
    return json_response(serialize(zone))


@operation(bp.put, "/<geofence_id>", access=OPERATOR, ok=Geofence, errors=(404,))
def replace_geofence(path: GeofencePath, body: GeofenceSpec) -> Response:
    """Replace every field (those left out take their defaults); `created_at` is kept. An
    `id` in the body must match the URL (else 422)."""
    geofence_id = path.geofence_id
    if body.id is not None and body.id != geofence_id:
        raise ApiError(422, f"id {body.id!r} does not match the URL's {geofence_id!r}", "id")
    zone = current_clients().geofences.replace(geofence_id, body)
    if zone is None:
        raise _not_found(geofence_id)
    return json_response(serialize(zone))


@operation(bp.delete, "/<geofence_id>", access=OPERATOR, ok=None, status=204, errors=(404,))
def delete_geofence(path: GeofencePath) -> Response:
    if not current_clients().geofences.delete(path.geofence_id):
        raise _not_found(path.geofence_id)
    return Response(status=204)
