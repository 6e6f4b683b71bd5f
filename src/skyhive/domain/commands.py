"""Messages between SkyHive and drones beyond telemetry.

Commands go to ``skyhive/drones/{id}/commands`` (QoS 1); drones report delivery events on
``skyhive/drones/{id}/events`` (QoS 1).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from skyhive.domain.stations import Station
from skyhive.domain.telemetry import (
    DRONE_ID_RE,
    InvalidTelemetry,
    Timestamp,
    check_topic_identity,
    format_validation_error,
)

EventType = Literal["picked_up", "delivered", "failed"]


def commands_topic(drone_id: str) -> str:
    return f"skyhive/drones/{drone_id}/commands"


def _station(s: Station) -> dict[str, Any]:
    return {"station": s.code, "lat": s.lat, "lon": s.lon}


def deliver_command(
    delivery_id: str,
    pickup: Station,
    destination: tuple[float, float],
    return_station: Station,
    issued_at: datetime,
    payload_kg: float,
) -> dict[str, Any]:
    """Fly to ``pickup``, collect the ``payload_kg`` package, fly to ``destination``
    (lat, lon), drop, land at ``return_station`` and charge."""
    return {
        "type": "deliver",
        "delivery_id": delivery_id,
        "payload_kg": payload_kg,
        "pickup": _station(pickup),
        "destination": {"lat": destination[0], "lon": destination[1]},
        "return_station": _station(return_station),
        "issued_at": issued_at.isoformat().replace("+00:00", "Z"),
    }


def return_command(station: Station, issued_at: datetime, reason: str) -> dict[str, Any]:
    """Abandon whatever the drone is doing and land at ``station``."""
    return {
        "type": "return_to_station",
        "return_station": _station(station),
        "reason": reason,
        "issued_at": issued_at.isoformat().replace("+00:00", "Z"),
    }


class DroneEvent(BaseModel):
    """A delivery event reported by a drone."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    drone_id: str = Field(pattern=DRONE_ID_RE.pattern)
    delivery_id: str = Field(min_length=1, max_length=128)
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
