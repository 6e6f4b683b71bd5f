"""Network Remote ID: the active flights in a view and a flight's details, in the ASTM
F3411-22a data model (the ``uas-standards`` package's types), for a display provider.

Role: ``viewer``. A display provider is a read-only machine client: it gets an API key of
its own with the viewer role (``skyhive keys create --name dp --role viewer``), which cannot
write and which an admin can revoke alone. A dedicated role would be a new rung on the staff
ladder for two read operations, while a viewer already reads every drone's live position.
"""

from __future__ import annotations

from typing import Any

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from implicitdict import ImplicitDict
from implicitdict.jsonschema import SchemaVars, make_json_schema
from pydantic import Field
from uas_standards.astm.f3411.v22a import api as f3411

from skyhive.api.drones import GEO_MAX_LAT
from skyhive.api.errors import ApiError
from skyhive.api.fields import PathModel, QueryModel
from skyhive.api.operation import VIEWER, operation
from skyhive.api.responses import current_clients, json_response
from skyhive.domain.remote_id import MAX_VIEW_DIAGONAL_KM, parse_view
from skyhive.services.remote_id import RemoteIdFeed

JSON = "application/json"
bp = APIBlueprint(
    "remote_id", __name__, url_prefix="/api/v1/remote-id", abp_tags=[Tag(name="remote-id")]
)


def f3411_schema(t: type[ImplicitDict]) -> dict[str, Any]:
    """An F3411 type as an OpenAPI answer, its JSON schema generated from the package's own
    type and inlined (none of these types is recursive). An ``ImplicitDict`` leaves an
    absent optional field out rather than sending null, so the schema's nulls are dropped
    (and flask-openapi3 takes no list of types)."""
    repo: dict[str, Any] = {}
    make_json_schema(t, lambda x: SchemaVars(x.__name__, lambda a, _b: a.__name__), repo)

    def inline(node: Any) -> Any:
        if isinstance(node, list):
            return [inline(x) for x in node]
        if not isinstance(node, dict):
            return node
        if isinstance(node.get("$ref"), str):
            return inline(repo[node["$ref"]])
        one_of = [x for x in node.get("oneOf", ()) if x != {"type": "null"}]
        if len(one_of) == 1:  # an optional object
            return inline({**{k: v for k, v in node.items() if k != "oneOf"}, **one_of[0]})
        out = {k: inline(v) for k, v in node.items() if k not in ("$ref", "$schema")}
        if "properties" in out:  # implicitdict lists them from a set: a stable document
            out["properties"] = dict(sorted(out["properties"].items()))
        if isinstance(out.get("type"), list):  # an optional value
            (out["type"],) = (x for x in out["type"] if x != "null")
        return out

    schema = inline(repo[t.__name__])
    return {"description": schema.get("description", ""), "content": {JSON: {"schema": schema}}}


class FlightsQuery(QueryModel):
    bbox: str = Field(
        description="The view, F3411's two opposite corners: `lat1,lng1,lat2,lng2` (degrees, "
        f"WGS84). Its diagonal may be at most {MAX_VIEW_DIAGONAL_KM:g} km (F3411's "
        "NetMaxDisplayAreaDiagonal); a box across the antimeridian is refused as too large.",
        max_length=200,
    )


class FlightPath(PathModel):
    flight_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,200}$", description="A flight's `id`.")


def _feed() -> RemoteIdFeed:
    clients = current_clients()
    return RemoteIdFeed(clients.live, clients.fleet, clients.clock, clients.settings.remote_id)


@operation(bp.get, "/flights", access=VIEWER, ok=f3411_schema(f3411.GetFlightsResponse))
def remote_id_flights(query: FlightsQuery) -> Response:
    """F3411's `GetFlightsResponse`: the drones in the air or on a delivery inside `bbox`
    whose latest reading is at most `SKYHIVE_REMOTE_ID__MAX_AGE_S` (60 s) old, by flight id.
    A flight's `id` is the drone's, with its delivery's after a dot while it flies one. 400
    for a malformed or too large `bbox`."""
    try:
        view = parse_view(query.bbox, GEO_MAX_LAT)
    except ValueError as exc:
        raise ApiError(400, f"bbox: {exc}", "bbox") from None
    return json_response(_feed().flights(view))


@operation(
    bp.get,
    "/flights/<flight_id>/details",
    access=VIEWER,
    ok=f3411_schema(f3411.GetFlightDetailsResponse),
    errors=(404,),
)
def remote_id_flight_details(path: FlightPath) -> Response:
    """F3411's `GetFlightDetailsResponse`: the UAS ID and operator ID the registry holds for
    an active flight. 404 once the flight is over (or for an id never served)."""
    details = _feed().details(path.flight_id)
    if details is None:
        raise ApiError(404, f"no active flight {path.flight_id!r}", "flight_id")
    return json_response(details)
