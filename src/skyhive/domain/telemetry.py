"""Telemetry message v1: parsing and validation.

One function, :func:`parse_telemetry`, turns raw bytes (from MQTT or HTTP) into a validated
:class:`Telemetry` or raises :class:`InvalidTelemetry` with a human-readable reason. The
gateway and the processor both call it, so a message that passed the gateway never fails
later for a different reason.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cached_property
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

DRONE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MIN_TS = datetime(2000, 1, 1, tzinfo=UTC)
_MAX_TS = datetime(2100, 1, 1, tzinfo=UTC)


DroneStatus = Literal["idle", "in_flight", "charging", "returning", "emergency"]


class InvalidTelemetry(ValueError):
    """A message that cannot be accepted; ``reason`` says why, for the dead-letter entry."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _parse_ts(value: object) -> datetime:
    if isinstance(value, bool):
        raise ValueError("must be an RFC 3339 string or epoch milliseconds")
    if isinstance(value, int | float):
        try:
            ts = datetime.fromtimestamp(value / 1000.0, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError("epoch milliseconds out of range") from None
    elif isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("not an RFC 3339 timestamp") from None
        if ts.tzinfo is None:
            raise ValueError("RFC 3339 timestamp needs a UTC offset (e.g. 'Z')")
        ts = ts.astimezone(UTC)
    else:
        raise ValueError("must be an RFC 3339 string or epoch milliseconds")
    if not _MIN_TS <= ts < _MAX_TS:
        raise ValueError("timestamp out of range (epoch seconds given instead of milliseconds?)")
    return ts


Timestamp = Annotated[datetime, BeforeValidator(_parse_ts)]


class Telemetry(BaseModel):
    """A validated telemetry reading. Unknown fields are kept (``model_extra``)."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    drone_id: str = Field(pattern=DRONE_ID_RE.pattern)
    seq: int = Field(ge=0, le=2**63 - 1)
    ts: Timestamp
    battery_pct: float = Field(ge=0, le=100)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    alt_m: float | None = Field(default=None, ge=-500, le=20_000)
    speed_mps: float | None = Field(default=None, ge=0, le=200)
    heading_deg: float | None = Field(default=None, ge=0, le=360)
    status: DroneStatus | None = None
    emergency: bool = False
    delivery_id: str | None = Field(default=None, max_length=128)
    payload_kg: float | None = Field(default=None, ge=0, le=1000)

    @cached_property  # asked several times per reading on the hot path
    def ts_ms(self) -> int:
        return int(self.ts.timestamp() * 1000)

    @property
    def key(self) -> str:
        """Idempotency key: one reading per (drone, seq)."""
        return f"{self.drone_id}:{self.seq}"

    @property
    def is_emergency(self) -> bool:
        return self.emergency or self.status == "emergency"

    def newer_than(self, ts_ms: int, seq: int) -> bool:
        """Ordering used for live state: event time first, sequence number to break ties."""
        return (self.ts_ms, self.seq) > (ts_ms, seq)

    def history_document(self) -> dict[str, Any]:
        """MongoDB history document with an idempotent ``_id``; GeoJSON is [lon, lat]."""
        doc: dict[str, Any] = self.model_dump(
            mode="python", exclude_none=True, exclude=set(self.model_extra or ())
        )
        if self.model_extra:
            doc["extra"] = self.model_extra
        doc["_id"] = self.key
        if self.lat is not None and self.lon is not None:
            doc["location"] = {"type": "Point", "coordinates": [self.lon, self.lat]}
        return doc

    def live_fields(self) -> dict[str, str]:
        """Flat string fields for the Redis live-state hash.

        Absent position fields are left out, so the hash keeps the last known position;
        absent delivery fields are written empty, since absence there means "none".
        """
        out = {
            "drone_id": self.drone_id,
            "seq": str(self.seq),
            "ts": self.ts.isoformat().replace("+00:00", "Z"),
            "ts_ms": str(self.ts_ms),
            "battery_pct": repr(self.battery_pct),
            "status": self.status or "",
            "emergency": "1" if self.is_emergency else "0",
            "delivery_id": self.delivery_id or "",
            "payload_kg": "" if self.payload_kg is None else repr(self.payload_kg),
        }
        for name in ("lat", "lon", "alt_m", "speed_mps", "heading_deg"):
            value = getattr(self, name)
            if value is not None:
                out[name] = repr(value)
        return out


def format_validation_error(err: ValidationError) -> str:
    """Up to five pydantic errors as one readable line: ``field: problem; ...``."""
    parts = []
    for e in err.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in e["loc"]) or "message"
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def parse_telemetry(
    raw: bytes | str, topic_drone_id: str | None = None, max_bytes: int = 16384
) -> Telemetry:
    """Decode and validate one message; ``topic_drone_id`` is the id from the MQTT topic."""
    if len(raw) > max_bytes:
        raise InvalidTelemetry(f"oversize: {len(raw)} bytes > {max_bytes}")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidTelemetry(f"not JSON: {exc}") from None
    return validate_telemetry(data, topic_drone_id)


def check_topic_identity(body_id: object, topic_drone_id: str) -> None:
    """A message on a drone's topic speaks for that drone only: the topic's id is the identity
    the broker authenticated, so a body naming another drone is refused, not believed."""
    if not DRONE_ID_RE.match(topic_drone_id):
        raise InvalidTelemetry(f"topic drone id {topic_drone_id!r} is not a valid drone id")
    if body_id is not None and body_id != topic_drone_id:
        raise InvalidTelemetry(
            f"drone_id {body_id!r} does not match topic drone id {topic_drone_id!r} "
            "(a drone may only report as itself)"
        )


def validate_telemetry(data: object, topic_drone_id: str | None = None) -> Telemetry:
    if not isinstance(data, dict):
        raise InvalidTelemetry(f"not a JSON object: got {type(data).__name__}")
    if topic_drone_id is not None:
        check_topic_identity(data.get("drone_id"), topic_drone_id)
        if data.get("drone_id") is None:
            data = {**data, "drone_id": topic_drone_id}
    for name in ("drone_id", "ts", "battery_pct"):
        if name not in data:
            raise InvalidTelemetry(f"missing required field {name!r}")
    if "seq" not in data:
        # A drone without a counter: its event time in ms is its sequence (documented).
        try:
            data = {**data, "seq": int(_parse_ts(data["ts"]).timestamp() * 1000)}
        except ValueError as exc:
            raise InvalidTelemetry(f"ts: {exc}") from None
    try:
        telemetry = Telemetry.model_validate(data)
    except ValidationError as exc:
        raise InvalidTelemetry(format_validation_error(exc)) from None
    if telemetry.model_extra:
        _check_field_names(telemetry.model_extra, "", 0)
    return telemetry


def _check_field_names(obj: object, path: str, depth: int) -> None:
    """Unknown fields are stored as given, so keep them to names a document store accepts."""
    if depth > 8:
        raise InvalidTelemetry(f"{path or 'message'}: nested too deeply")
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key.startswith("$") or "." in key or "\x00" in key:
                raise InvalidTelemetry(f"field name {key!r} may not start with '$' or contain '.'")
            _check_field_names(value, f"{path}.{key}" if path else key, depth + 1)
    elif isinstance(obj, list):
        for item in obj:
            _check_field_names(item, path, depth + 1)


DRONE_CHANNELS = frozenset({"telemetry", "events"})


def parse_drone_topic(topic: str) -> tuple[str | None, str]:
    """``skyhive/drones/{id}/{channel}`` → (id, channel); the id is None when the topic is
    not of that shape or the id is not a valid drone id (the message is then rejected)."""
    parts = topic.split("/")
    channel = parts[-1] if parts else ""
    if (
        len(parts) == 4
        and parts[0] == "skyhive"
        and parts[1] == "drones"
        and channel in DRONE_CHANNELS
        and DRONE_ID_RE.match(parts[2])
    ):
        return parts[2], channel
    return None, channel


def drone_id_from_topic(topic: str) -> str | None:
    """``skyhive/drones/{id}/telemetry`` → ``id`` (None when the topic has another shape)."""
    drone_id, channel = parse_drone_topic(topic)
    return drone_id if channel == "telemetry" else None
