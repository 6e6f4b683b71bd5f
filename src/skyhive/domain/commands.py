"""Messages between SkyHive and drones beyond telemetry.

Commands go to ``skyhive/drones/{id}/commands`` (QoS 1) as the JSON of a :data:`Command`
model: built here (:func:`deliver_command`, :func:`return_command`) by the dispatcher, the
assignment recorder, the alerting engine and the API alike, serialized by their one
``to_json``, and read back by a drone (the simulator) with :func:`parse_command`. Drones
report delivery events on ``skyhive/drones/{id}/events`` (QoS 1).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    RootModel,
    ValidationError,
)

from skyhive.domain.stations import Station
from skyhive.domain.telemetry import (
    DRONE_ID_RE,
    InvalidTelemetry,
    Timestamp,
    check_topic_identity,
    format_validation_error,
)

EventType = Literal["picked_up", "delivered", "failed"]
DEFAULT_PAYLOAD_KG = 1.0  # what a deliver command that does not say weighs
MAX_DELIVERY_ID_LEN = 128  # in commands and events alike

Latitude = Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False)]
# RFC 3339, UTC as "Z": with the delivery, it tells a redelivery of a command from a new one.
IssuedAt = Annotated[
    datetime, PlainSerializer(lambda at: at.isoformat().replace("+00:00", "Z"), return_type=str)
]


class InvalidCommand(ValueError):
    """A command a drone cannot act on (not JSON, unknown type, missing or bad field)."""


def commands_topic(drone_id: str) -> str:
    return f"skyhive/drones/{drone_id}/commands"


class _Wire(BaseModel):
    """Strict: numbers only as JSON numbers (``"37.8"`` or ``true`` is refused). Fields a
    newer SkyHive adds are ignored, so drones need not be upgraded first."""

    model_config = ConfigDict(frozen=True, strict=True, extra="ignore")


class Point(_Wire):
    lat: Latitude
    lon: Longitude


class StationRef(_Wire):
    """A station as a command names it; its coordinates are where to land."""

    station: str = Field(min_length=1)
    lat: Latitude
    lon: Longitude

    @classmethod
    def of(cls, s: Station) -> StationRef:
        return cls(station=s.code, lat=s.lat, lon=s.lon)


class _Command(_Wire):
    def to_json(self) -> bytes:
        """The command as it goes on the commands stream and to the drone."""
        return self.model_dump_json().encode()


class DeliverCommand(_Command):
    """Fly to ``pickup``, collect the ``payload_kg`` package, fly to ``destination``, drop,
    land at ``return_station`` and charge."""

    type: Literal["deliver"] = "deliver"
    delivery_id: str = Field(min_length=1, max_length=MAX_DELIVERY_ID_LEN)
    payload_kg: float = Field(default=DEFAULT_PAYLOAD_KG, gt=0.0, le=1000.0)
    pickup: StationRef
    destination: Point
    return_station: StationRef
    issued_at: IssuedAt


class ReturnCommand(_Command):
    """Abandon whatever the drone is doing and land at ``return_station``."""

    type: Literal["return_to_station"] = "return_to_station"
    return_station: StationRef
    reason: str
    issued_at: IssuedAt


Command = Annotated[DeliverCommand | ReturnCommand, Field(discriminator="type")]


class _AnyCommand(RootModel[Command]):
    """The command of whichever model its ``type`` names."""


def deliver_command(
    delivery_id: str,
    pickup: Station,
    destination: tuple[float, float],
    return_station: Station,
    issued_at: datetime,
    payload_kg: float,
) -> DeliverCommand:
    """``destination`` is (lat, lon)."""
    return DeliverCommand(
        delivery_id=delivery_id,
        payload_kg=payload_kg,
        pickup=StationRef.of(pickup),
        destination=Point(lat=destination[0], lon=destination[1]),
        return_station=StationRef.of(return_station),
        issued_at=issued_at,
    )


def return_command(station: Station, issued_at: datetime, reason: str) -> ReturnCommand:
    return ReturnCommand(return_station=StationRef.of(station), reason=reason, issued_at=issued_at)


def parse_command(raw: bytes | str) -> Command:
    """A command as a drone receives it. Raises :class:`InvalidCommand` saying what is wrong
    (``destination.lat: ...``) when it is not one a drone can act on."""
    try:
        return _AnyCommand.model_validate_json(raw).root
    except ValidationError as exc:
        raise InvalidCommand(_command_error(exc)) from None


def _command_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        tag = first.get("ctx", {}).get("tag")
        return f"unknown command type {tag!r}"
    if first["type"] == "json_invalid":
        return f"not JSON: {first['msg']}"
    parts = []
    for e in errors[:5]:
        loc = ".".join(str(p) for p in e["loc"][1:])  # after the command type
        parts.append(f"{loc or 'command'}: {e['msg']}")
    return "; ".join(parts)


class DroneEvent(BaseModel):
    """A delivery event reported by a drone."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    drone_id: str = Field(pattern=DRONE_ID_RE.pattern)
    delivery_id: str = Field(min_length=1, max_length=MAX_DELIVERY_ID_LEN)
    event: EventType
    ts: Timestamp
    reason: str | None = Field(default=None, max_length=500)


def parse_event(data: object, topic_drone_id: str | None = None) -> DroneEvent:
    if not isinstance(data, dict):
        raise InvalidTelemetry(f"not a JSON object: got {type(data).__name__}")
    if topic_drone_id is not None:
        check_topic_identity(data.get("drone_id"), topic_drone_id)
        data = {**data, "drone_id": topic_drone_id}
    try:
        return DroneEvent.model_validate(data)
    except ValidationError as exc:
        raise InvalidTelemetry(format_validation_error(exc)) from None
