"""Drones: the live fleet (Redis), each drone's telemetry history (MongoDB), and commands
an operator sends one drone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from flask import Blueprint, Response
from pydantic import BaseModel, ConfigDict, Field

from skyhive.adapters.alerts_repo import serialize
from skyhive.api.errors import ApiError
from skyhive.api.params import (
    check_drone_id,
    float_param,
    json_body,
    limit_param,
    optional_int_param,
    time_window_params,
)
from skyhive.api.responses import current_clients, items_response, json_response
from skyhive.domain.downsample import downsample
from skyhive.services.drone_commands import DroneNotFound, StationNotFound, return_to_station

bp = Blueprint("drones", __name__, url_prefix="/api/v1/drones")

MAX_RADIUS_KM = 500.0
DEFAULT_RADIUS_KM = 5.0
MIN_RADIUS_KM = 0.001  # GEOSEARCH needs a positive radius; 1 m is below GPS precision anyway
# Downsampled history: the averaged fields, the widest bucket and the longest window (a day
# at 1 Hz is 86,400 readings to read and average).
CHART_FIELDS = ("battery_pct", "alt_m", "speed_mps")
MAX_BUCKET_S = 3600
MAX_BUCKETED_WINDOW = timedelta(hours=24)


class DroneCommand(BaseModel):
    """An operator's order to one drone."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    action: Literal["return_to_station"]
    station: str | None = Field(
        default=None, min_length=1, max_length=16, description="Default: the nearest station."
    )
    reason: str = Field(default="ordered by an operator", min_length=1, max_length=500)


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
    bucket_s = optional_int_param("bucket_s", 1, MAX_BUCKET_S)
    if bucket_s is not None:
        points = _bucketed(drone_id, since, until, limit, bucket_s)
        return items_response(points, drone_id=drone_id, bucket_s=bucket_s)
    docs = current_clients().telemetry.history(drone_id, since, until, limit)
    return items_response([serialize(d) for d in docs], drone_id=drone_id)


def _bucketed(
    drone_id: str, since: datetime | None, until: datetime | None, limit: int, bucket_s: int
) -> list[dict[str, Any]]:
    """The newest ``limit`` bucket averages, so a chart covers a long window with few points.
    ``since`` defaults to ``limit`` buckets before ``until`` (or now). The readings are read
    and averaged here, not by an aggregation: the embedded server evaluates a pipeline over the
    whole collection, while this ``find`` reads only the drone's window from its index."""
    end = until or datetime.now(UTC)
    since = since or end - timedelta(seconds=limit * bucket_s)
    if end - since > MAX_BUCKETED_WINDOW:
        raise ApiError(400, "with bucket_s the window (since to until) is at most 24 h", "since")
    readings = current_clients().telemetry.series(drone_id, since, until, CHART_FIELDS)
    return downsample(readings, bucket_s, CHART_FIELDS)[:limit]


@bp.post("/<drone_id>/commands")
def command_drone(drone_id: str) -> Response:
    """202: the command is queued for the dispatchers to relay to the drone over MQTT."""
    check_drone_id(drone_id)
    body = json_body(DroneCommand)
    try:
        cmd = return_to_station(current_clients(), drone_id, body.reason, body.station)
    except DroneNotFound:
        raise ApiError(404, f"drone {drone_id!r} not found", "drone_id") from None
    except StationNotFound as exc:
        raise ApiError(422, str(exc.args[0])[:120], "station") from None
    return json_response({"drone_id": drone_id, "command": cmd}, status=202)
