"""The fleet registry: what each drone is and can do (payload, battery, speed, consumption)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from skyhive.domain.remote_id import OperatorId, UasId
from skyhive.domain.telemetry import DRONE_ID_RE


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


RegistryStatus = Literal["active", "maintenance", "retired"]
MavlinkSysid = Annotated[int, Field(ge=1, le=255)]
MavlinkLink = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\s]+$")]
# 32 bytes as 64 hex digits; kept as given (lower case), never shown by the API.
MavlinkKey = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$"), BeforeValidator(_lower)]


class DroneSpec(BaseModel):
    """A registered drone. ``status`` is the registry's (can it be dispatched at all), not the
    flight status reported in telemetry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    drone_id: str = Field(pattern=DRONE_ID_RE.pattern)
    model: str = Field(default="skyhive-x4", min_length=1, max_length=64)
    home_station: str = Field(min_length=1, max_length=16)
    max_payload_kg: float = Field(default=2.5, gt=0, le=50)
    battery_capacity_wh: float = Field(default=500.0, gt=0, le=10_000)
    cruise_speed_mps: float = Field(default=15.0, gt=0, le=60)
    consumption_wh_per_km: float = Field(default=8.0, gt=0, le=1_000)
    status: RegistryStatus = "active"
    # Remote ID (domain/remote_id.py): required for dispatch when SKYHIVE_REMOTE_ID__REQUIRED.
    uas_id: UasId | None = None
    operator_id: OperatorId | None = None
    # MAVLink (domain/mavlink.py): the autopilot's system id on its link (an endpoint of
    # SKYHIVE_MAVLINK__LISTEN; absent or "any": every link) and its MAVLink 2 signing key.
    mavlink_sysid: MavlinkSysid | None = None
    mavlink_link: MavlinkLink | None = None
    mavlink_signing_key: MavlinkKey | None = None

    @property
    def pct_per_km(self) -> float:
        """Battery percentage one kilometre of cruise costs."""
        return self.consumption_wh_per_km / self.battery_capacity_wh * 100.0

    def to_document(self) -> dict[str, Any]:
        doc = self.model_dump(exclude_none=True)
        doc["_id"] = doc.pop("drone_id")
        return doc

    @staticmethod
    def from_document(doc: dict[str, Any]) -> DroneSpec:
        fields = {k: v for k, v in doc.items() if k in DroneSpec.model_fields and k != "drone_id"}
        return DroneSpec(drone_id=str(doc["_id"]), **fields)


class DroneSpecPatch(BaseModel):
    """Fields an operator may change after registration."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, min_length=1, max_length=64)
    home_station: str | None = Field(default=None, min_length=1, max_length=16)
    max_payload_kg: float | None = Field(default=None, gt=0, le=50)
    battery_capacity_wh: float | None = Field(default=None, gt=0, le=10_000)
    cruise_speed_mps: float | None = Field(default=None, gt=0, le=60)
    consumption_wh_per_km: float | None = Field(default=None, gt=0, le=1_000)
    status: RegistryStatus | None = None
    uas_id: UasId | None = None
    operator_id: OperatorId | None = None
    mavlink_sysid: MavlinkSysid | None = None
    mavlink_link: MavlinkLink | None = None
    mavlink_signing_key: MavlinkKey | None = None
