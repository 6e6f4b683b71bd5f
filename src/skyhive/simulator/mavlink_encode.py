"""What a simulated drone says over MAVLink: its state as PX4 would report it.

Pure: each function turns a :class:`SimDrone` (and the reading it just made) into pymavlink
message objects; the runner (``mavlink_runner.py``) packs and sends them. Units are MAVLink's:
degE7 for coordinates, mm for altitude, cm/s for velocity (NED), cdeg for heading, mV and cA
for the battery. Altitude AMSL is reported equal to the height above the pad: the Bay Area
stations are close enough to sea level for a simulation, and the simulator has no terrain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pymavlink.dialects.v20 import common as mav

from skyhive.simulator.battery import HOVER_DRAIN_PCT_PER_S
from skyhive.simulator.drone import Phase, SimDrone
from skyhive.simulator.faults import Reading
from skyhive.simulator.flight import CLIMB_RATE_MPS, DESCENT_RATE_MPS

CELLS = 6  # a 6S LiPo, the usual pack of a delivery multicopter
CELL_EMPTY_MV, CELL_FULL_MV = 3_500, 4_200
IDLE_CURRENT_A = 0.5  # on the pad: the flight controller and radios
UINT16_MAX = 0xFFFF
INT16_MAX = 0x7FFF

# PX4's custom_mode: main mode in bits 16-23, sub mode in bits 24-31 (px4_custom_mode.h).
PX4_MAIN_AUTO = 4
PX4_AUTO_LOITER, PX4_AUTO_MISSION, PX4_AUTO_RTL, PX4_AUTO_LAND, PX4_AUTO_TAKEOFF = 3, 4, 5, 6, 2

# GPS quality: a healthy 3D fix, and what a glitch (the gps_jump fault) looks like.
GPS_OK = (mav.GPS_FIX_TYPE_3D_FIX, 12, 80, 800)  # fix, satellites, eph (HDOP x 100), h_acc mm
GPS_DEGRADED = (mav.GPS_FIX_TYPE_2D_FIX, 5, 450, 15_000)

_SENSORS = (
    mav.MAV_SYS_STATUS_SENSOR_3D_GYRO
    | mav.MAV_SYS_STATUS_SENSOR_3D_ACCEL
    | mav.MAV_SYS_STATUS_SENSOR_3D_MAG
    | mav.MAV_SYS_STATUS_SENSOR_ABSOLUTE_PRESSURE
    | mav.MAV_SYS_STATUS_SENSOR_GPS
    | mav.MAV_SYS_STATUS_SENSOR_BATTERY
)


def deg_e7(degrees: float) -> int:
    return round(degrees * 1e7)


def px4_custom_mode(sub_mode: int, main_mode: int = PX4_MAIN_AUTO) -> int:
    return (main_mode << 16) | (sub_mode << 24)


def cell_mv(pct: float) -> int:
    """Resting cell voltage, linear between empty and full: good enough for a dashboard."""
    return round(CELL_EMPTY_MV + (CELL_FULL_MV - CELL_EMPTY_MV) * min(max(pct, 0.0), 100.0) / 100)


def battery_current_a(drone: SimDrone) -> float:
    """The current the energy model implies: cruise costs ``consumption_wh_per_km``, vertical
    flight and hovering ``HOVER_DRAIN_PCT_PER_S``, charging flows in (negative)."""
    spec, volts = drone.spec, CELLS * cell_mv(drone.battery.pct) / 1000.0
    capacity_wh = spec.battery_capacity_wh
    if drone.phase is Phase.CHARGING:
        return -drone.battery.charge_rate_pct_per_s / 100.0 * capacity_wh * 3600.0 / volts
    if not drone.airborne:
        return IDLE_CURRENT_A
    if drone.phase is Phase.CRUISE:
        watts = spec.consumption_wh_per_km * drone.motion.speed_mps * 3.6
    else:
        watts = HOVER_DRAIN_PCT_PER_S / 100.0 * capacity_wh * 3600.0
    return watts / volts


def velocity_ned_cms(drone: SimDrone) -> tuple[int, int, int]:
    """(north, east, down) in cm/s: climbing and descending are vertical (a gust excepted),
    cruising horizontal along the heading."""
    m, phase = drone.motion, drone.phase
    horizontal = m.speed_mps if phase is Phase.CRUISE else 0.0
    down = 0.0
    if phase is Phase.CLIMB:
        down = -CLIMB_RATE_MPS
        horizontal = m.gust_speed_mps if m.gust_left_s > 0.0 else 0.0
    elif phase is Phase.DESCENT:
        down = DESCENT_RATE_MPS
    heading = math.radians(m.heading_deg)
    return (
        round(horizontal * math.cos(heading) * 100),
        round(horizontal * math.sin(heading) * 100),
        round(down * 100),
    )


def landed_state(drone: SimDrone) -> int:
    phase = drone.phase
    if phase is Phase.CLIMB and drone.motion.alt_m < drone.motion.cruise_alt_m:
        return int(mav.MAV_LANDED_STATE_TAKEOFF)
    if phase is Phase.DESCENT:
        return int(mav.MAV_LANDED_STATE_LANDING)
    return int(mav.MAV_LANDED_STATE_IN_AIR if drone.airborne else mav.MAV_LANDED_STATE_ON_GROUND)


def _sub_mode(drone: SimDrone) -> int:
    if drone.emergency_left_s > 0.0 or not drone.airborne:
        return PX4_AUTO_LOITER  # PX4 "Hold"
    if drone.mission is not None:
        return PX4_AUTO_MISSION
    if drone.returning:
        return PX4_AUTO_RTL
    return PX4_AUTO_LAND if drone.phase is Phase.DESCENT else PX4_AUTO_MISSION


def heartbeat(drone: SimDrone) -> mav.MAVLink_heartbeat_message:
    base = mav.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | mav.MAV_MODE_FLAG_AUTO_ENABLED
    if drone.airborne:
        base |= mav.MAV_MODE_FLAG_SAFETY_ARMED
    if drone.emergency_left_s > 0.0:
        state = mav.MAV_STATE_EMERGENCY
    elif drone.battery.low:
        state = mav.MAV_STATE_CRITICAL
    else:
        state = mav.MAV_STATE_ACTIVE if drone.airborne else mav.MAV_STATE_STANDBY
    return mav.MAVLink_heartbeat_message(
        mav.MAV_TYPE_QUADROTOR,
        mav.MAV_AUTOPILOT_PX4,
        base,
        px4_custom_mode(_sub_mode(drone)),
        state,
        3,  # the MAVLink version field of HEARTBEAT is always 3
    )


def global_position(
    drone: SimDrone, reading: Reading, boot_ms: int
) -> mav.MAVLink_global_position_int_message:
    """From the reading (so a GPS glitch shows here as it does in telemetry v1)."""
    alt_mm = round(reading["alt_m"] * 1000)
    vn, ve, vd = velocity_ned_cms(drone)
    return mav.MAVLink_global_position_int_message(
        boot_ms % 2**32,
        deg_e7(reading["lat"]),
        deg_e7(reading["lon"]),
        alt_mm,
        alt_mm,
        vn,
        ve,
        vd,
        round(reading["heading_deg"] * 100) % 36_000,
    )


def gps_raw(
    drone: SimDrone, reading: Reading, time_usec: int, degraded: bool
) -> mav.MAVLink_gps_raw_int_message:
    fix, satellites, eph, h_acc = GPS_DEGRADED if degraded else GPS_OK
    return mav.MAVLink_gps_raw_int_message(
        time_usec,
        fix,
        deg_e7(reading["lat"]),
        deg_e7(reading["lon"]),
        round(reading["alt_m"] * 1000),
        eph,
        120,  # epv, VDOP x 100
        round(drone.motion.speed_mps * 100),
        round(reading["heading_deg"] * 100) % 36_000,
        satellites,
        h_acc=h_acc,
        v_acc=2 * h_acc,
    )


def _charge_state(drone: SimDrone) -> int:
    if drone.phase is Phase.CHARGING:
        return int(mav.MAV_BATTERY_CHARGE_STATE_CHARGING)
    low = drone.battery.low
    return int(mav.MAV_BATTERY_CHARGE_STATE_LOW if low else mav.MAV_BATTERY_CHARGE_STATE_OK)


def sys_status(drone: SimDrone, degraded: bool) -> mav.MAVLink_sys_status_message:
    healthy = _SENSORS & ~mav.MAV_SYS_STATUS_SENSOR_GPS if degraded else _SENSORS
    pct = drone.battery.pct
    return mav.MAVLink_sys_status_message(
        _SENSORS,
        _SENSORS,
        healthy,
        300,  # load, per mille
        CELLS * cell_mv(pct),
        round(battery_current_a(drone) * 100),
        round(pct),
        0,
        0,
        0,
        0,
        0,
        0,
    )


def battery_status(drone: SimDrone) -> mav.MAVLink_battery_status_message:
    pct = drone.battery.pct
    cells = [cell_mv(pct)] * CELLS + [UINT16_MAX] * (10 - CELLS)
    return mav.MAVLink_battery_status_message(
        0,
        mav.MAV_BATTERY_FUNCTION_ALL,
        mav.MAV_BATTERY_TYPE_LIPO,
        INT16_MAX,  # temperature unknown
        cells,
        round(battery_current_a(drone) * 100),
        -1,  # consumed mAh: not estimated
        -1,  # consumed energy: not estimated
        round(pct),
        charge_state=_charge_state(drone),
    )


def extended_sys_state(drone: SimDrone) -> mav.MAVLink_extended_sys_state_message:
    return mav.MAVLink_extended_sys_state_message(mav.MAV_VTOL_STATE_MC, landed_state(drone))


def status_text(severity: int, text: str) -> mav.MAVLink_statustext_message:
    return mav.MAVLink_statustext_message(severity, text[:50].encode())


@dataclass(slots=True)
class Announcer:
    """STATUSTEXT on what changed since the last look: low battery, emergency, GPS glitch."""

    low: bool = False
    emergency: bool = False

    def news(self, drone: SimDrone, gps_glitch: bool) -> list[mav.MAVLink_statustext_message]:
        out = []
        low, emergency = drone.battery.low, drone.emergency_left_s > 0.0
        if low and not self.low:
            out.append(status_text(mav.MAV_SEVERITY_WARNING, "Low battery, return advised"))
        if emergency and not self.emergency:
            out.append(status_text(mav.MAV_SEVERITY_EMERGENCY, "Emergency: holding position"))
        if gps_glitch:
            out.append(status_text(mav.MAV_SEVERITY_CRITICAL, "GPS glitch detected"))
        self.low, self.emergency = low, emergency
        return out
