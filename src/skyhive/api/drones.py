"""Drones: the live fleet (Redis), each drone's telemetry history (MongoDB), and commands
an operator sends one drone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field

from skyhive.adapters.alerts_repo import serialize
from skyhive.api.errors import ApiError
from skyhive.api.fields import DroneId, Finite, Items, LimitQuery, Open, PathModel, WindowQuery
from skyhive.api.operation import OPERATOR, VIEWER, operation
from skyhive.api.responses import current_clients, items_response, json_response
from skyhive.domain.commands import ReturnCommand
from skyhive.domain.rollups import finest_level
from skyhive.services.drone_commands import DroneCommands, DroneNotFound, StationNotFound

bp = APIBlueprint("drones", __name__, url_prefix="/api/v1/drones", abp_tags=[Tag(name="drones")])

MAX_RADIUS_KM = 500.0
DEFAULT_RADIUS_KM = 5.0
MIN_RADIUS_KM = 0.001  # GEOSEARCH needs a positive radius; 1 m is below GPS precision anyway
GEO_MAX_LAT = 85.05112878  # Redis GEO (Web Mercator) indexes nothing nearer the poles
# Downsampled history: the averaged fields, the widest bucket and the longest window (a day
# at 1 Hz is 86,400 readings to read and average).
CHART_FIELDS = ("battery_pct", "alt_m", "speed_mps")
MAX_BUCKET_S = 3600
MAX_BUCKETED_WINDOW = timedelta(hours=24)

DroneStatus = Literal["idle", "in_flight", "charging", "returning", "emergency"]


class DroneState(Open):
    """The latest reading of a drone (by event time, then seq)."""

    drone_id: str
    emergency: bool
    seq: int | None = Field(default=None, description="Sequence number of the reading.")
    ts: datetime | None = Field(default=None, description="Event time.")
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    alt_m: float | None = Field(default=None, description="Altitude, metres.")
    speed_mps: float | None = Field(default=None, description="Ground speed, m/s.")
    heading_deg: float | None = Field(default=None, description="Degrees from north.")
    battery_pct: float | None = Field(default=None, ge=0, le=100)
    payload_kg: float | None = None
    status: DroneStatus | None = None
    delivery_id: str | None = None
    updated_at: datetime | None = Field(
        default=None, description="When the platform applied the reading (processing time)."
    )
    grounded_by: list[str] | None = Field(
        default=None,
        description="Present when the drone is grounded (never dispatched): the critical "
        "alerts that ground it, until a person clears them.",
    )


class NearbyDrone(DroneState):
    distance_km: float = Field(ge=0)


class NearbyDrones(Items[NearbyDrone]):
    radius_km: float


class TelemetryRecord(Open):
    """A stored reading. Fields not in telemetry v1 are under ``extra``."""

    id: str = Field(description="`{drone_id}:{seq}`.")
    drone_id: str
    seq: int
    ts: datetime
    battery_pct: float | None = None
    extra: dict[str, Any] | None = None


class TelemetryBucket(BaseModel):
    """The mean of each charted field over one bucket of readings."""

    ts: datetime = Field(description="The bucket's start (aligned to the epoch).")
    readings: int = Field(ge=1)
    battery_pct: float | None
    alt_m: float | None
    speed_mps: float | None


class TelemetryRollup(BaseModel):
    """A drone's figures over one minute or hour (``domain/rollups.py``): each step between
    two readings counts in the period of the later one; gaps over a minute are not counted."""

    start: datetime
    end: datetime
    readings: int = Field(ge=1)
    distance_m: float = Field(ge=0, description="Flown (not counted while idle or charging).")
    battery_used_pct: float = Field(ge=0, description="Battery drops; charging not netted.")
    energy_wh: float | None = Field(description="battery_used_pct of the drone's capacity.")
    battery_min: float | None
    battery_avg: float | None
    alt_max: float | None
    speed_max: float | None
    status_s: dict[str, float] = Field(description="Seconds in each reported status.")
    alerts: int = Field(ge=0, description="Alerts opened in the period.")


class TelemetryHistory(BaseModel):
    items: list[TelemetryRecord] | list[TelemetryBucket] | list[TelemetryRollup] = Field(
        description="Readings, or with `bucket_s` bucket averages, or minute or hour "
        "rollups (`level`); newest first."
    )
    count: int = Field(ge=0)
    drone_id: str
    level: Literal["raw", "minute", "hour"] = Field(
        description="The level served: the finest whose retention covers the window."
    )
    bucket_s: int | None = None


class DronePath(PathModel):
    drone_id: DroneId


class NearbyQuery(LimitQuery):
    lat: Finite = Field(ge=-GEO_MAX_LAT, le=GEO_MAX_LAT, description="Redis GEO's range.")
    lon: Finite = Field(ge=-180, le=180)
    radius_km: Finite = Field(default=DEFAULT_RADIUS_KM, ge=MIN_RADIUS_KM, le=MAX_RADIUS_KM)


class HistoryQuery(WindowQuery):
    bucket_s: int | None = Field(
        default=None,
        ge=1,
        le=MAX_BUCKET_S,
        description="Average the readings per bucket of this many seconds (aligned to the "
        "epoch); the window is then at most 24 h, and `since` defaults to `limit` buckets "
        "before `until` (or now).",
    )
    level: Literal["auto", "raw", "minute", "hour"] = Field(
        default="auto",
        description="`auto`: the finest level whose retention still covers `since` (raw "
        "readings for SKYHIVE_HISTORY__RAW_DAYS, minute rollups for "
        "SKYHIVE_HISTORY__MINUTE_DAYS, hourly rollups for ever). `bucket_s` applies to raw "
        "readings only.",
    )


class DroneCommand(BaseModel):
    """An operator's order to one drone."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    action: Literal["return_to_station"]
    station: str | None = Field(
        default=None, min_length=1, max_length=16, description="Default: the nearest station."
    )
    reason: str = Field(default="ordered by an operator", min_length=1, max_length=500)


class CommandAccepted(BaseModel):
    drone_id: str
    command: ReturnCommand = Field(description="The command as it is sent to the drone.")


@operation(bp.get, "", access=VIEWER, ok=Items[DroneState])
def list_drones() -> Response:
    """Every drone's live state."""
    clients = current_clients()
    states = clients.live.all()
    grounded = clients.grounding.all()
    return items_response([_grounded(s, grounded) for s in states])


# Registered before ``/<drone_id>``; werkzeug also ranks static segments above converters,
# so "nearby" is never taken for a drone id.
@operation(bp.get, "/nearby", access=VIEWER, ok=NearbyDrones)
def nearby_drones(query: NearbyQuery) -> Response:
    """Drones within `radius_km` of a point, nearest first."""
    live = current_clients().live
    hits = live.nearby(query.lat, query.lon, query.radius_km, query.limit)
    states = live.get_many([drone_id for drone_id, _ in hits])
    items: list[dict[str, Any]] = [
        {**state, "distance_km": round(distance_km, 4)}
        for (_, distance_km), state in zip(hits, states, strict=True)
        if state is not None  # a GEO member whose hash is gone: skip it
    ]
    return items_response(items, radius_km=query.radius_km)


@operation(bp.get, "/<drone_id>", access=VIEWER, ok=DroneState, errors=(404,))
def get_drone(path: DronePath) -> Response:
    clients = current_clients()
    state = clients.live.get(path.drone_id)
    if state is None:
        raise ApiError(404, f"drone {path.drone_id!r} not found", "drone_id")
    return json_response(_grounded(state, clients.grounding.of_many([path.drone_id])))


def _grounded(state: dict[str, Any], grounded: dict[str, list[str]]) -> dict[str, Any]:
    """The state, with the alerts grounding its drone if any."""
    by = grounded.get(str(state.get("drone_id")))
    return {**state, "grounded_by": by} if by else state


@operation(bp.get, "/<drone_id>/telemetry", access=VIEWER, ok=TelemetryHistory)
def drone_telemetry(path: DronePath, query: HistoryQuery) -> Response:
    """Newest first. A drone without history gives an empty list, not 404: history and
    live state live in different stores and may be retained differently."""
    drone_id = path.drone_id
    c = current_clients()
    level = query.level
    if level == "auto":
        h = c.settings.history
        days = (h.raw_days, h.minute_days) if h.expire else (36500, 36500)
        level = finest_level(query.since, c.clock.now(), *days)
    if level != "raw":
        rollups = c.rollup_store.series(drone_id, level, query.since, query.until, query.limit)
        return items_response(rollups, drone_id=drone_id, level=level)
    if query.bucket_s is not None:
        points = _bucketed(drone_id, query)
        return items_response(points, drone_id=drone_id, level=level, bucket_s=query.bucket_s)
    docs = c.telemetry.history(drone_id, query.since, query.until, query.limit)
    return items_response([serialize(d) for d in docs], drone_id=drone_id, level=level)


def _bucketed(drone_id: str, query: HistoryQuery) -> list[dict[str, Any]]:
    """The newest ``limit`` bucket averages, so a chart covers a long window with few points."""
    assert query.bucket_s is not None
    end = query.until or datetime.now(UTC)
    since = query.since or end - timedelta(seconds=query.limit * query.bucket_s)
    if end - since > MAX_BUCKETED_WINDOW:
        raise ApiError(400, "with bucket_s the window (since to until) is at most 24 h", "since")
    return current_clients().telemetry.downsampled(
        drone_id, since, query.until, query.bucket_s, CHART_FIELDS, query.limit
    )


@operation(
    bp.post,
    "/<drone_id>/commands",
    access=OPERATOR,
    ok=CommandAccepted,
    status=202,
    errors=(404, 422),
)
def command_drone(path: DronePath, body: DroneCommand) -> Response:
    """202: the command is queued for the dispatchers to relay to the drone over MQTT."""
    drone_id = path.drone_id
    try:
        c = current_clients()
        commands = DroneCommands(c.live, c.stations, c.bus, c.clock, c.settings.commands_stream)
        cmd = commands.return_to_station(drone_id, body.reason, body.station)
    except DroneNotFound:
        raise ApiError(404, f"drone {drone_id!r} not found", "drone_id") from None
    except StationNotFound as exc:
        raise ApiError(422, str(exc.args[0])[:120], "station") from None
    return json_response({"drone_id": drone_id, "command": cmd.model_dump(mode="json")}, status=202)
