"""Drones: the live fleet (Redis) and each drone's telemetry history (MongoDB)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from skyhive.adapters.alerts_repo import serialize
from skyhive.api.errors import ApiError
from skyhive.api.params import (
    check_drone_id,
    float_param,
    limit_param,
    time_window_params,
)
from skyhive.api.responses import current_clients, items_response, json_response

bp = Blueprint("drones", __name__, url_prefix="/api/v1/drones")

MAX_RADIUS_KM = 500.0
DEFAULT_RADIUS_KM = 5.0
MIN_RADIUS_KM = 0.001  # GEOSEARCH needs a positive radius; 1 m is below GPS precision anyway


@bp.get("")
def list_drones() -> Response:
    return items_response(current_clients().live.all())


# Registered before ``/<drone_id>``; werkzeug also ranks static segments above converters,
# so "nearby" is never taken for a drone id.
@bp.get("/nearby")
def nearby() -> Response:
    lat = float_param("lat", -90.0, 90.0)
    lon = float_param("lon", -180.0, 180.0)
    radius_km = float_param("radius_km", MIN_RADIUS_KM, MAX_RADIUS_KM, DEFAULT_RADIUS_KM)
    limit = limit_param()
    live = current_clients().live
    hits = live.nearby(lat, lon, radius_km, limit)
    states = live.get_many([drone_id for drone_id, _ in hits])
    items: list[dict[str, Any]] = [
        {**state, "distance_km": round(distance_km, 4)}
        for (_, distance_km), state in zip(hits, states, strict=True)
        if state is not None  # a GEO member whose hash is gone: skip it
    ]
    return items_response(items, radius_km=radius_km)


@bp.get("/<drone_id>")
def get_drone(drone_id: str) -> Response:
    check_drone_id(drone_id)
    state = current_clients().live.get(drone_id)
    if state is None:
        raise ApiError(404, f"drone {drone_id!r} not found", "drone_id")
    return json_response(state)


@bp.get("/<drone_id>/telemetry")
def telemetry_history(drone_id: str) -> Response:
    """Newest first. A drone without history gives an empty list, not 404: history and
    live state live in different stores and may be retained differently."""
    check_drone_id(drone_id)
    since, until = time_window_params()
    limit = limit_param()
    docs = current_clients().telemetry.history(drone_id, since, until, limit)
    return items_response([serialize(d) for d in docs], drone_id=drone_id)
