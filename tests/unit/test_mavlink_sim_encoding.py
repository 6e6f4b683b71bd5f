"""The MAVLink simulator's pure parts: units and messages out, the mission protocol in."""

from __future__ import annotations

import random

import pytest
from pymavlink.dialects.v20 import common as mav

from skyhive.domain.fleet import DroneSpec
from skyhive.domain.stations import bart_stations
from skyhive.simulator import mavlink_encode as enc
from skyhive.simulator.drone import Phase, SimDrone, make_fleet
from skyhive.simulator.mavlink_mission import (
    MissionReceiver,
    MissionRejected,
    delivery_command,
    delivery_route,
)
from skyhive.simulator.mavlink_runner import VehicleId, parse_endpoint, vehicle_ids

NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SYSID = 9
REL = mav.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT
A, B, C = bart_stations()[:3]


def drone() -> SimDrone:
    return make_fleet(1, NOW_MS, random.Random(3), autonomous_legs=False)[0]


def roundtrip(msg: mav.MAVLink_message) -> mav.MAVLink_message:
    """Packed and parsed again, as a ground station would see it."""
    out = mav.MAVLink(None, srcSystem=SYSID, srcComponent=1)
    decoded = mav.MAVLink(None).parse_buffer(msg.pack(out))
    assert decoded is not None and len(decoded) == 1
    return decoded[0]


def item(
    seq: int, cmd: int, lat: float, lon: float, alt: float = 60.0, frame: int = REL
) -> mav.MAVLink_mission_item_int_message:
    return mav.MAVLink_mission_item_int_message(
        SYSID, 1, seq, frame, cmd, 0, 1, 0, 0, 0, 0, round(lat * 1e7), round(lon * 1e7), alt
    )


def delivery_items() -> list[mav.MAVLink_mission_item_int_message]:
    return [
        item(0, mav.MAV_CMD_NAV_TAKEOFF, A.lat, A.lon, 90.0),
        item(1, mav.MAV_CMD_NAV_WAYPOINT, B.lat, B.lon),
        item(2, mav.MAV_CMD_NAV_LAND, B.lat, B.lon, 0.0),
        item(3, mav.MAV_CMD_NAV_LOITER_TIME, 37.80, -122.27, 15.0),
        item(4, mav.MAV_CMD_NAV_LAND, C.lat, C.lon, 0.0),
    ]


def test_units() -> None:
    assert enc.deg_e7(37.8044) == 378_044_000 and enc.deg_e7(-122.2712) == -1_222_712_000
    assert enc.px4_custom_mode(enc.PX4_AUTO_MISSION) == 0x04040000
    assert (enc.cell_mv(0.0), enc.cell_mv(50.0), enc.cell_mv(100.0)) == (3_500, 3_850, 4_200)
    assert enc.cell_mv(130.0) == 4_200  # clamped


def test_a_docked_drone_reports_disarmed_on_the_ground() -> None:
    d = drone()
    beat = roundtrip(enc.heartbeat(d))
    assert (beat.type, beat.autopilot, beat.system_status) == (
        mav.MAV_TYPE_QUADROTOR,
        mav.MAV_AUTOPILOT_PX4,
        mav.MAV_STATE_STANDBY,
    )
    assert not beat.base_mode & mav.MAV_MODE_FLAG_SAFETY_ARMED
    assert roundtrip(enc.extended_sys_state(d)).landed_state == mav.MAV_LANDED_STATE_ON_GROUND
    assert enc.velocity_ned_cms(d) == (0, 0, 0)
    battery = roundtrip(enc.battery_status(d))
    assert battery.voltages[:6] == [enc.cell_mv(d.battery.pct)] * 6
    assert battery.voltages[6:] == [enc.UINT16_MAX] * 4
    assert battery.current_battery == round(enc.IDLE_CURRENT_A * 100)
    assert battery.battery_remaining == round(d.battery.pct)
    status = roundtrip(enc.sys_status(d, degraded=False))
    assert status.voltage_battery == 6 * enc.cell_mv(d.battery.pct)


def test_position_in_mavlink_units() -> None:
    d = drone()
    d.phase, d.motion.speed_mps, d.motion.heading_deg = Phase.CRUISE, 15.0, 90.0
    reading = {"lat": 37.8044, "lon": -122.2712, "alt_m": 80.5, "heading_deg": 90.0}
    pos = roundtrip(enc.global_position(d, reading, boot_ms=1_234))
    assert (pos.lat, pos.lon, pos.relative_alt, pos.hdg) == (
        378_044_000,
        -1_222_712_000,
        80_500,
        9_000,
    )
    assert (pos.vx, pos.vy, pos.vz, pos.time_boot_ms) == (0, 1_500, 0, 1_234)
    beat = roundtrip(enc.heartbeat(d))
    assert (
        beat.base_mode & mav.MAV_MODE_FLAG_SAFETY_ARMED
        and beat.system_status == mav.MAV_STATE_ACTIVE
    )
    assert enc.battery_current_a(d) > 10.0  # 8 Wh/km at 54 km/h on ~24 V


def test_vertical_flight_and_landing_states() -> None:
    d = drone()
    d.phase, d.motion.cruise_alt_m, d.motion.alt_m = Phase.CLIMB, 80.0, 10.0
    assert enc.velocity_ned_cms(d) == (0, 0, -300)  # NED: up is negative
    assert enc.landed_state(d) == mav.MAV_LANDED_STATE_TAKEOFF
    d.phase = Phase.DESCENT
    assert enc.velocity_ned_cms(d) == (0, 0, 200)
    assert enc.landed_state(d) == mav.MAV_LANDED_STATE_LANDING
    d.phase = Phase.CHARGING
    assert enc.battery_current_a(d) < 0.0  # charging flows in
    assert roundtrip(enc.battery_status(d)).charge_state == mav.MAV_BATTERY_CHARGE_STATE_CHARGING


def test_gps_quality_degrades_on_a_glitch() -> None:
    d = drone()
    reading = {"lat": 37.8, "lon": -122.2, "alt_m": 0.0, "heading_deg": 0.0}
    good = roundtrip(enc.gps_raw(d, reading, NOW_MS * 1000, degraded=False))
    assert (good.fix_type, good.satellites_visible, good.eph) == (mav.GPS_FIX_TYPE_3D_FIX, 12, 80)
    bad = roundtrip(enc.gps_raw(d, reading, NOW_MS * 1000, degraded=True))
    assert bad.fix_type < mav.GPS_FIX_TYPE_3D_FIX and bad.satellites_visible < 6 and bad.eph > 200
    health = roundtrip(enc.sys_status(d, degraded=True)).onboard_control_sensors_health
    assert not health & mav.MAV_SYS_STATUS_SENSOR_GPS


def test_statustext_once_per_change() -> None:
    d, news = drone(), enc.Announcer()
    assert news.news(d, gps_glitch=False) == []
    d.battery.pct = 10.0
    [low] = news.news(d, gps_glitch=False)
    assert low.severity == mav.MAV_SEVERITY_WARNING
    assert roundtrip(low).text == "Low battery, return advised"
    assert news.news(d, gps_glitch=False) == []  # still low: said already


def test_mission_upload_is_requested_item_by_item_and_accepted() -> None:
    rx, items = MissionReceiver(SYSID), delivery_items()
    count = mav.MAVLink_mission_count_message(SYSID, 1, len(items))
    replies, order = rx.handle(count)
    assert order is None and [(r.get_type(), r.seq) for r in replies] == [
        ("MISSION_REQUEST_INT", 0)
    ]
    replies, _ = rx.handle(items[0])
    assert replies[0].seq == 1
    replies, _ = rx.handle(items[3])  # out of sequence: asked again for the one expected
    assert replies[0].seq == 1
    for it in items[1:4]:
        rx.handle(it)
    [ack], _ = rx.handle(items[4])
    assert (ack.get_type(), ack.type) == ("MISSION_ACK", mav.MAV_MISSION_ACCEPTED)
    start = mav.MAVLink_command_long_message(
        SYSID, 1, mav.MAV_CMD_MISSION_START, 0, 0, 0, 0, 0, 0, 0, 0
    )
    replies, order = rx.handle(start)
    assert replies == [] and order is not None and order.kind == "mission"
    assert order.route is not None and order.route.pickup.seq == 2  # the landing at the pickup


def test_commands() -> None:
    rx = MissionReceiver(SYSID)

    def long(cmd: int, target: int = SYSID) -> mav.MAVLink_command_long_message:
        return mav.MAVLink_command_long_message(target, 1, cmd, 0, 0, 0, 0, 0, 0, 0, 0)

    [nack], order = rx.handle(long(mav.MAV_CMD_MISSION_START))
    assert order is None and nack.result == mav.MAV_RESULT_DENIED  # no mission uploaded
    [nack], _ = rx.handle(long(mav.MAV_CMD_COMPONENT_ARM_DISARM))
    assert nack.result == mav.MAV_RESULT_UNSUPPORTED
    assert rx.handle(long(mav.MAV_CMD_NAV_RETURN_TO_LAUNCH, target=SYSID + 1)) == ([], None)
    _, rtl = rx.handle(long(mav.MAV_CMD_NAV_RETURN_TO_LAUNCH))
    assert rtl is not None and rtl.kind == "rtl"
    reposition = mav.MAVLink_command_int_message(
        SYSID, 1, REL, mav.MAV_CMD_DO_REPOSITION, 0, 0, -1, 0, 0, 0, 378_044_000, -1_222_712_000, 60
    )
    _, moved = rx.handle(reposition)
    assert moved is not None and moved.point == pytest.approx((37.8044, -122.2712))


@pytest.mark.parametrize(
    ("items", "code"),
    [
        (delivery_items()[:3], mav.MAV_MISSION_INVALID),  # no destination
        (
            [*delivery_items()[:4], item(4, mav.MAV_CMD_DO_SET_SERVO, 0, 0)],
            mav.MAV_MISSION_UNSUPPORTED,
        ),
        (
            [
                *delivery_items()[:4],
                item(4, mav.MAV_CMD_NAV_LAND, C.lat, C.lon, 0, mav.MAV_FRAME_LOCAL_NED),
            ],
            mav.MAV_MISSION_UNSUPPORTED_FRAME,
        ),
        (
            [*delivery_items()[:4], item(4, mav.MAV_CMD_NAV_WAYPOINT, C.lat, C.lon, 140.0)],
            mav.MAV_MISSION_INVALID_PARAM7,
        ),
        (
            [*delivery_items()[:4], item(4, mav.MAV_CMD_NAV_LAND, 95.0, C.lon, 0)],
            mav.MAV_MISSION_INVALID_PARAM5_X,
        ),
    ],
)
def test_missions_a_delivery_drone_cannot_fly(items: list[mav.MAVLink_message], code: int) -> None:
    with pytest.raises(MissionRejected) as caught:
        delivery_route(items)
    assert caught.value.code == code
    rx = MissionReceiver(SYSID)
    rx.handle(mav.MAVLink_mission_count_message(SYSID, 1, len(items)))
    for it in items[:-1]:
        rx.handle(it)
    [ack], _ = rx.handle(items[-1])
    assert ack.type == code and rx.route is None


def test_a_mission_becomes_the_simulators_deliver_command() -> None:
    route = delivery_route(delivery_items())
    assert route.cruise_alt_m == 90.0
    cmd = delivery_command(route, A, "mavlink-d-1", NOW_MS)
    assert (cmd.pickup.station, cmd.return_station.station) == (B.code, C.code)
    assert (cmd.destination.lat, cmd.destination.lon) == (37.80, -122.27)
    assert cmd.issued_at.isoformat() == "2026-01-01T00:00:00+00:00"
    home = [*delivery_items()[:4], item(4, mav.MAV_CMD_NAV_RETURN_TO_LAUNCH, 0, 0)]
    back = delivery_route(home)
    assert back.return_to is None
    assert delivery_command(back, A, "mavlink-d-2", NOW_MS).return_station.station == A.code
    off_station = [
        *delivery_items()[:1],
        item(1, mav.MAV_CMD_NAV_LAND, 37.5, -122.0),
        *delivery_items()[3:],
    ]
    assert delivery_command(delivery_route(off_station), A, "x", NOW_MS).pickup.station == "wp1"


def test_endpoints_and_system_ids() -> None:
    assert parse_endpoint("udp:127.0.0.1:14550") == ("127.0.0.1", 14550)
    assert parse_endpoint("udpout:gcs.local:14551") == ("gcs.local", 14551)
    for bad in ("tcp:127.0.0.1:5760", "udp:127.0.0.1", "udp::14550", "udp:h:70000"):
        with pytest.raises(ValueError):
            parse_endpoint(bad)
    key = "ab" * 32
    specs = [
        DroneSpec(drone_id="d-0", home_station=A.code),
        DroneSpec(drone_id="d-1", home_station=A.code, mavlink_sysid=1, mavlink_signing_key=key),
        DroneSpec(drone_id="d-2", home_station=A.code),
    ]
    ids = vehicle_ids(specs)
    assert [(v.sysid, v.signing_key) for v in ids.values()] == [
        (2, None),
        (1, bytes.fromhex(key)),
        (3, None),
    ]  # the registry's id kept, the others the lowest free
    override = bytes(range(32))
    assert {v.signing_key for v in vehicle_ids(specs, override).values()} == {override}
    with pytest.raises(ValueError):
        VehicleId(256)
    with pytest.raises(ValueError):
        VehicleId(1, b"short")
