"""MAVLink vehicles as SkyHive sees them: a vehicle's state merged from its latest messages,
and the telemetry v1 reading built from it.

Pure: the gateway (``services/mavlink_gateway.py``) hands in each decoded message as its
type name and fields (pymavlink's ``to_dict``); the units are MAVLink's (degE7, mm, cm/s,
cdeg, mV, cA) and are converted here, once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# MAVLink enum values used here (common.xml).
MAV_MODE_FLAG_SAFETY_ARMED = 128
MAV_AUTOPILOT_INVALID = 8  # a heartbeat of a component that is no flight controller
MAV_STATE_CRITICAL, MAV_STATE_EMERGENCY = 5, 6
MAV_SEVERITY_WARNING = 4
LANDED_STATES = {0: "undefined", 1: "on_ground", 2: "in_air", 3: "takeoff", 4: "landing"}
UINT16_MAX = 65535
STATUSTEXT_KEPT = 5  # warnings a reading carries at most (the latest)
REBOOT_SLACK_MS = 5_000  # a time since boot this far behind the last one: a reboot


class MavlinkConfig(BaseModel):
    """The `mavlink` role (``SKYHIVE_MAVLINK__*``). ``listen``: UDP endpoints, comma
    separated (``udp:0.0.0.0:14550,udp:0.0.0.0:14551``), each a link a drone is registered
    on by name; empty: the role is off."""

    model_config = ConfigDict(frozen=True)

    listen: str = Field(default="", max_length=2000)
    heartbeat_loss_s: float = Field(default=5.0, gt=0, le=600)
    reading_hz: float = Field(default=5.0, gt=0, le=50)  # readings per vehicle at most
    batch_size: int = Field(default=500, ge=1)
    linger_ms: int = Field(default=20, ge=0, le=5000)  # how long a batch waits to fill
    # Frames from a drone without a signing key are refused unless this is true.
    allow_unsigned: bool = False
    registry_refresh_s: float = Field(default=5.0, gt=0, le=3600)  # (link, sysid) → drone
    mission_alt_m: float = Field(default=60.0, gt=0, le=500)  # cruise, above home
    mission_hold_s: float = Field(default=30.0, ge=0, le=3600)  # loiter at pickup, drop
    mission_timeout_s: float = Field(default=1.5, gt=0, le=60)  # per request/answer
    mission_retries: int = Field(default=5, ge=0, le=50)
    # A command older than this when the gateway reads it is not flown (a gateway's first
    # start reads the commands stream from its beginning).
    command_max_age_s: float = Field(default=120.0, gt=0)

    @field_validator("listen")
    @classmethod
    def _endpoints_parse(cls, value: str) -> str:
        for ep in split_endpoints(value):
            parse_endpoint(ep)  # ValueError: a config error at start
        return value

    @property
    def endpoints(self) -> list[str]:
        return split_endpoints(self.listen)


def split_endpoints(listen: str) -> list[str]:
    return [ep.strip() for ep in listen.split(",") if ep.strip()]


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """``udp:host:port`` (or ``udpin:``) → (host, port); ValueError otherwise."""
    scheme, _, rest = endpoint.strip().partition(":")
    host, _, port = rest.rpartition(":")
    if scheme not in ("udp", "udpin") or not host or not port.isdigit():
        raise ValueError(f"not a UDP endpoint (udp:HOST:PORT): {endpoint!r}")
    return host, int(port)


@dataclass(slots=True)
class VehicleState:
    """What the latest messages of one vehicle said (None: not heard yet)."""

    lat: float | None = None
    lon: float | None = None
    alt_m: float | None = None
    alt_amsl_m: float | None = None
    speed_mps: float | None = None
    climb_mps: float | None = None
    heading_deg: float | None = None
    battery_pct: float | None = None
    voltage_v: float | None = None
    current_a: float | None = None
    armed: bool | None = None
    mode: str | None = None
    system_status: int | None = None
    landed_state: str | None = None
    fix_type: int | None = None
    satellites: int | None = None
    eph: float | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)
    last_heartbeat_ms: int | None = None
    heartbeat_lost: bool = False
    last_reading_ms: int = -(10**12)
    # The vehicle's clock: its position's time since boot plus an offset fixed when first
    # heard (again after a reboot), so readings are timed by the autopilot, not by when a
    # datagram arrived (a router's buffering would make a steady flight look jerky).
    boot_offset_ms: int | None = None
    boot_ms: int = -1
    event_ms: int | None = None  # the latest position's time, by the vehicle's clock
    event_heard_ms: int = 0  # when the gateway heard it

    @property
    def status(self) -> str:
        """SkyHive's flight status: HEARTBEAT's system status and armed flag, the landed
        state of EXTENDED_SYS_STATE, and an RTL-like flight mode."""
        if self.system_status in (MAV_STATE_CRITICAL, MAV_STATE_EMERGENCY):
            return "emergency"
        if self.landed_state in ("in_air", "takeoff", "landing"):
            airborne = True
        elif self.landed_state == "on_ground":
            airborne = False
        else:
            airborne = bool(self.armed)
        if not airborne:
            return "idle"
        mode = (self.mode or "").upper()
        return "returning" if "RTL" in mode or "RETURN" in mode else "in_flight"


def merge(state: VehicleState, msg_type: str, f: dict[str, Any], now_ms: int) -> bool:
    """Merge one message into ``state``; True when it is a position (a reading is due).
    Heartbeats of other components of the vehicle (a camera, a companion computer, a GCS
    relayed by mavlink-router) say nothing of the flight and are ignored."""
    if msg_type == "HEARTBEAT":
        if not is_autopilot_heartbeat(msg_type, f):
            return False
        state.armed = bool(int(f["base_mode"]) & MAV_MODE_FLAG_SAFETY_ARMED)
        state.system_status = int(f["system_status"])
        state.mode = f.get("mode") or state.mode
        state.last_heartbeat_ms = now_ms
    elif msg_type == "GLOBAL_POSITION_INT":
        lat, lon = int(f["lat"]), int(f["lon"])
        if lat or lon:  # (0, 0): no position yet
            state.lat, state.lon = lat / 1e7, lon / 1e7
        state.alt_m = int(f["relative_alt"]) / 1000.0
        state.alt_amsl_m = int(f["alt"]) / 1000.0
        state.speed_mps = math.hypot(int(f["vx"]), int(f["vy"])) / 100.0
        state.climb_mps = -int(f["vz"]) / 100.0  # vz is positive down
        hdg = int(f["hdg"])
        state.heading_deg = None if hdg == UINT16_MAX else hdg / 100.0
        _clock(state, int(f.get("time_boot_ms", 0)), now_ms)
        return True
    elif msg_type in ("SYS_STATUS", "BATTERY_STATUS"):
        _battery(state, msg_type, f)
    elif msg_type == "GPS_RAW_INT":
        state.fix_type = int(f["fix_type"])
        sats, eph = int(f["satellites_visible"]), int(f["eph"])
        state.satellites = None if sats == 255 else sats
        state.eph = None if eph == UINT16_MAX else eph / 100.0
    elif msg_type == "EXTENDED_SYS_STATE":
        state.landed_state = LANDED_STATES.get(int(f["landed_state"]), "undefined")
    elif msg_type == "STATUSTEXT" and int(f["severity"]) <= MAV_SEVERITY_WARNING:
        text = f["text"]
        text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
        state.warnings = [*state.warnings, {"severity": int(f["severity"]), "text": text}][
            -STATUSTEXT_KEPT:
        ]
    return False


def _clock(state: VehicleState, boot_ms: int, now_ms: int) -> None:
    if boot_ms <= 0:  # no boot time: the time heard stands
        state.event_ms, state.event_heard_ms = now_ms, now_ms
        return
    if state.boot_offset_ms is None or boot_ms < state.boot_ms - REBOOT_SLACK_MS:
        state.boot_offset_ms = now_ms - boot_ms  # first heard, or rebooted (or wrapped)
    state.boot_ms = boot_ms
    state.event_ms, state.event_heard_ms = boot_ms + state.boot_offset_ms, now_ms


def event_time(state: VehicleState, now_ms: int) -> int:
    """The vehicle's time now (ms since the epoch): its last position's time by its own
    clock, plus what the gateway's clock says has passed since it was heard."""
    if state.event_ms is None:
        return now_ms
    return state.event_ms + (now_ms - state.event_heard_ms)


def is_autopilot_heartbeat(msg_type: str, f: dict[str, Any]) -> bool:
    return msg_type == "HEARTBEAT" and int(f.get("autopilot", 0)) != MAV_AUTOPILOT_INVALID


def _battery(state: VehicleState, msg_type: str, f: dict[str, Any]) -> None:
    if msg_type == "SYS_STATUS":
        mv = int(f["voltage_battery"])
        if mv != UINT16_MAX:
            state.voltage_v = mv / 1000.0
    else:  # cells in mV, unused ones UINT16_MAX
        cells = [int(v) for v in f["voltages"] if int(v) != UINT16_MAX]
        if cells:
            state.voltage_v = sum(cells) / 1000.0
    ca = int(f["current_battery"])
    if ca != -1:
        state.current_a = ca / 100.0
    remaining = int(f["battery_remaining"])
    if 0 <= remaining <= 100:
        state.battery_pct = float(remaining)


def reading_due(state: VehicleState, now_ms: int, hz: float) -> bool:
    """A position arrived: is a reading due (at most ``hz`` per vehicle, and only once the
    battery is known — it is a required field of telemetry v1)? One per slot of 1/hz s, so
    a vehicle streaming at ``hz`` with jitter still makes ``hz`` readings, not half."""
    period_ms = 1000.0 / hz
    slot = now_ms // period_ms
    return state.battery_pct is not None and slot > state.last_reading_ms // period_ms


def heartbeat_lost(state: VehicleState, now_ms: int, loss_s: float) -> bool:
    """True once when a vehicle in the air has sent no HEARTBEAT for ``loss_s``."""
    if state.heartbeat_lost or state.last_heartbeat_ms is None:
        return False
    if state.status == "idle" or now_ms - state.last_heartbeat_ms <= loss_s * 1000:
        return False
    state.heartbeat_lost = True
    return True


def heartbeat_back(state: VehicleState) -> bool:
    """A HEARTBEAT arrived: True when it ends a loss (a reading is due at once)."""
    if not state.heartbeat_lost:
        return False
    state.heartbeat_lost = False
    return True


def reading(
    state: VehicleState, drone_id: str, now_ms: int, link: str, sysid: int
) -> dict[str, Any]:
    """The telemetry v1 reading of the vehicle now (its event time by the vehicle's clock:
    :func:`event_time`). No ``seq``: the event time in ms is the sequence.
    Extra fields: ``gps`` (fix type, satellites, eph as HDOP), ``mavlink`` (link, armed,
    mode, landed state, voltage, current, and ``heartbeat_lost_s`` when the vehicle is
    silent), ``statustext`` (warnings since the last reading)."""
    state.last_reading_ms = now_ms
    ts = event_time(state, now_ms)
    out: dict[str, Any] = {"drone_id": drone_id, "ts": ts, "battery_pct": state.battery_pct}
    for name in ("lat", "lon", "alt_m", "speed_mps", "heading_deg"):
        value = getattr(state, name)
        if value is not None:
            out[name] = value
    out["status"] = state.status
    gps = {"fix_type": state.fix_type, "satellites": state.satellites, "eph": state.eph}
    if state.fix_type is not None:
        out["gps"] = {k: v for k, v in gps.items() if v is not None}
    link_fields = {
        "link": link,
        "sysid": sysid,
        "armed": state.armed,
        "mode": state.mode,
        "landed_state": state.landed_state,
        "voltage_v": state.voltage_v,
        "current_a": state.current_a,
        "alt_amsl_m": state.alt_amsl_m,
        "climb_mps": state.climb_mps,
    }
    if state.heartbeat_lost and state.last_heartbeat_ms is not None:
        link_fields["heartbeat_lost_s"] = round((now_ms - state.last_heartbeat_ms) / 1000.0, 1)
    out["mavlink"] = {k: v for k, v in link_fields.items() if v is not None}
    if state.warnings:
        out["statustext"], state.warnings = state.warnings, []
    return out
