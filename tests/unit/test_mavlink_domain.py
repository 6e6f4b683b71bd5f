"""The MAVLink vehicle state, its readings, the GPS and heartbeat rules, and the mission
exchange, without sockets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from skyhive.domain import mavlink as mav
from skyhive.domain.alert_config import Thresholds
from skyhive.domain.alert_rules import Context, Memory, evaluate
from skyhive.domain.commands import deliver_command, return_command
from skyhive.domain.mavlink_mission import (
    MAV_CMD_DO_REPOSITION,
    MAV_CMD_MISSION_START,
    MAV_CMD_NAV_LAND,
    MAV_CMD_NAV_LOITER_TIME,
    MAV_CMD_NAV_TAKEOFF,
    MAV_CMD_NAV_WAYPOINT,
    SendCommand,
    SendCount,
    SendItem,
    delivery_exchange,
    progress_event,
    return_exchange,
)
from skyhive.domain.stations import Station
from skyhive.domain.telemetry import validate_telemetry

T0 = 1_795_428_000_000  # ms
PICKUP = Station(code="12TH", name="12th St", lat=37.8036, lon=-122.2716)
HOME = Station(code="19TH", name="19th St", lat=37.8085, lon=-122.2687)


def _flying() -> mav.VehicleState:
    s = mav.VehicleState()
    mav.merge(s, "HEARTBEAT", {"base_mode": 128 | 1, "system_status": 4, "mode": "MISSION"}, T0)
    mav.merge(s, "EXTENDED_SYS_STATE", {"landed_state": 2, "vtol_state": 0}, T0)
    mav.merge(
        s,
        "SYS_STATUS",
        {"voltage_battery": 15_800, "current_battery": 1234, "battery_remaining": 77},
        T0,
    )
    mav.merge(s, "GPS_RAW_INT", {"fix_type": 3, "satellites_visible": 12, "eph": 90}, T0)
    return s


def _position(s: mav.VehicleState, now_ms: int = T0, boot_ms: int = 0) -> bool:
    fields = {
        "time_boot_ms": boot_ms,
        "lat": 378_036_000,
        "lon": -1_222_716_000,
        "alt": 95_500,
        "relative_alt": 60_250,
        "vx": 300,
        "vy": 400,
        "vz": -50,
        "hdg": 9_050,
    }
    return mav.merge(s, "GLOBAL_POSITION_INT", fields, now_ms)


def test_a_reading_converts_units_and_keeps_the_extra_fields() -> None:
    s = _flying()
    mav.merge(s, "STATUSTEXT", {"severity": 4, "text": "Low battery"}, T0)
    mav.merge(s, "STATUSTEXT", {"severity": 6, "text": "just info"}, T0)
    assert _position(s) and mav.reading_due(s, T0, 5.0)
    body = mav.reading(s, "d1", T0, "udp:0.0.0.0:14550", 7)
    t = validate_telemetry(body)
    assert (t.lat, t.lon, t.alt_m) == (pytest.approx(37.8036), pytest.approx(-122.2716), 60.25)
    assert (t.speed_mps, t.heading_deg, t.battery_pct) == (5.0, 90.5, 77.0)
    assert t.status == "in_flight"
    extra = t.model_extra or {}
    assert extra["gps"] == {"fix_type": 3, "satellites": 12, "eph": 0.9}
    link = extra["mavlink"]
    assert (link["voltage_v"], link["current_a"], link["armed"]) == (15.8, 12.34, True)
    assert (link["landed_state"], link["mode"], link["alt_amsl_m"]) == ("in_air", "MISSION", 95.5)
    assert extra["statustext"] == [{"severity": 4, "text": "Low battery"}]
    # Warnings are reported once.
    assert "statustext" not in mav.reading(s, "d1", T0 + 1000, "l", 7)


def test_status_follows_landed_state_mode_and_system_status() -> None:
    s = _flying()
    assert s.status == "in_flight"
    mav.merge(s, "HEARTBEAT", {"base_mode": 129, "system_status": 4, "mode": "RTL"}, T0)
    assert s.status == "returning"
    mav.merge(s, "EXTENDED_SYS_STATE", {"landed_state": 1}, T0)
    assert s.status == "idle"
    mav.merge(s, "HEARTBEAT", {"base_mode": 129, "system_status": 6, "mode": "LAND"}, T0)
    assert s.status == "emergency"


def test_heartbeats_of_other_components_are_ignored() -> None:
    s = _flying()
    companion = {"autopilot": mav.MAV_AUTOPILOT_INVALID, "base_mode": 0, "system_status": 0}
    assert not mav.merge(s, "HEARTBEAT", companion, T0 + 9000)
    assert (s.armed, s.status, s.last_heartbeat_ms) == (True, "in_flight", T0)


def test_readings_are_rate_limited_and_wait_for_a_battery_level() -> None:
    s = mav.VehicleState()
    _position(s)
    assert not mav.reading_due(s, T0, 5.0)  # no battery yet
    mav.merge(
        s,
        "BATTERY_STATUS",
        {"voltages": [4000, 4100, 65535], "current_battery": -1, "battery_remaining": 50},
        T0,
    )
    assert s.voltage_v == pytest.approx(8.1) and s.current_a is None
    mav.reading(s, "d1", T0, "l", 1)
    assert not mav.reading_due(s, T0 + 150, 5.0)
    assert mav.reading_due(s, T0 + 200, 5.0)


def test_heartbeat_loss_is_flagged_once_in_the_air_and_ends_with_the_next_heartbeat() -> None:
    s = _flying()
    assert not mav.heartbeat_lost(s, T0 + 5000, 5.0)
    assert mav.heartbeat_lost(s, T0 + 5001, 5.0)
    assert not mav.heartbeat_lost(s, T0 + 9000, 5.0)  # once
    assert mav.reading(s, "d1", T0 + 6000, "l", 1)["mavlink"]["heartbeat_lost_s"] == 6.0
    mav.merge(s, "HEARTBEAT", {"base_mode": 129, "system_status": 4}, T0 + 9000)
    assert mav.heartbeat_back(s) and not s.heartbeat_lost
    docked = mav.VehicleState()
    mav.merge(docked, "HEARTBEAT", {"base_mode": 0, "system_status": 3}, T0)
    assert not mav.heartbeat_lost(docked, T0 + 60_000, 5.0)  # on the ground: the timer's job


def test_endpoints_are_checked_at_start() -> None:
    assert mav.MavlinkConfig(listen="udp:0.0.0.0:14550, udp:127.0.0.1:0").endpoints == [
        "udp:0.0.0.0:14550",
        "udp:127.0.0.1:0",
    ]
    with pytest.raises(ValueError, match="UDP endpoint"):
        mav.MavlinkConfig(listen="tcp:1.2.3.4:5760")


def _findings(body: dict[str, object]) -> dict[str, object]:
    t = validate_telemetry(body)
    return {f.type: f for f in evaluate(t, Context(Thresholds()), Memory())}


def test_gps_degraded_on_fix_satellites_or_eph() -> None:
    base = {"drone_id": "d1", "ts": T0, "battery_pct": 80.0, "status": "in_flight"}
    good = _findings({**base, "gps": {"fix_type": 3, "satellites": 10, "eph": 0.8}})
    assert good["gps_degraded"].severity is None  # type: ignore[attr-defined]
    for gps, why in (
        ({"fix_type": 2, "satellites": 10, "eph": 0.8}, "fix type 2 < 3"),
        ({"fix_type": 3, "satellites": 4, "eph": 0.8}, "4 satellites < 6"),
        ({"fix_type": 4, "satellites": 10, "eph": 3.1}, "eph 3.1 > 2.5"),
    ):
        f = _findings({**base, "gps": gps})["gps_degraded"]
        assert f.severity == "warning" and f.details["why"] == [why]  # type: ignore[attr-defined]
    assert "gps_degraded" not in _findings(base)  # MQTT drones: not judged


def test_a_heartbeat_loss_reading_is_offline_at_once() -> None:
    base = {"drone_id": "d1", "ts": T0, "battery_pct": 80.0, "status": "in_flight"}
    lost = _findings({**base, "mavlink": {"heartbeat_lost_s": 5.2}})["offline"]
    assert lost.severity == "critical" and lost.details["silent_s"] == 5.2  # type: ignore[attr-defined]
    assert _findings({**base, "mavlink": {"armed": True}})["offline"].severity is None  # type: ignore[attr-defined]


def _deliver():  # type: ignore[no-untyped-def]
    at = datetime(2026, 11, 23, 12, tzinfo=UTC)
    return deliver_command("del-1", PICKUP, (37.81, -122.26), HOME, at, 1.5)


def test_a_deliver_is_a_mission_of_six_items() -> None:
    ex = delivery_exchange(_deliver(), 60.0, 30.0, 1.0, 2)
    assert [i.command for i in ex.items] == [
        MAV_CMD_NAV_TAKEOFF,
        MAV_CMD_NAV_WAYPOINT,
        MAV_CMD_NAV_LOITER_TIME,
        MAV_CMD_NAV_WAYPOINT,
        MAV_CMD_NAV_LOITER_TIME,
        MAV_CMD_NAV_LAND,
    ]
    assert (ex.items[1].x, ex.items[1].y) == (378_036_000, -1_222_716_000)
    assert ex.items[2].param1 == 30.0 and ex.items[5].x == 378_085_000
    assert {i.alt_m for i in ex.items} == {60.0}


def test_the_exchange_uploads_starts_and_retries() -> None:
    ex = delivery_exchange(_deliver(), 60.0, 30.0, 1.0, 2)
    assert ex.start(0.0) == [SendCount(6)]
    assert ex.tick(0.5) == []
    assert ex.tick(1.0) == [SendCount(6)]  # unanswered: sent again
    for seq in range(6):
        [item] = ex.on_request(seq, 1.1)
        assert isinstance(item, SendItem) and item.item.seq == seq
    assert ex.on_request(6, 1.2) == []  # out of range: ignored
    [start] = ex.on_mission_ack(0, "MAV_MISSION_ACCEPTED", 1.3)
    assert isinstance(start, SendCommand) and start.command == MAV_CMD_MISSION_START
    [again] = ex.tick(2.3)
    assert isinstance(again, SendCommand) and again.confirmation == 1
    assert ex.on_command_ack(MAV_CMD_MISSION_START, 5, "MAV_RESULT_IN_PROGRESS") == []
    assert ex.outcome is None
    ex.on_command_ack(MAV_CMD_MISSION_START, 0, "MAV_RESULT_ACCEPTED")
    assert (ex.outcome, ex.detail) == ("accepted", "accepted")


def test_refusals_and_silence_are_outcomes() -> None:
    refused = delivery_exchange(_deliver(), 60.0, 30.0, 1.0, 2)
    refused.start(0.0)
    refused.on_mission_ack(1, "MAV_MISSION_ERROR", 0.1)
    assert (refused.outcome, refused.detail) == ("refused", "mission refused: MAV_MISSION_ERROR")
    silent = delivery_exchange(_deliver(), 60.0, 30.0, 1.0, 2)
    silent.start(0.0)
    for now in (1.0, 2.0, 3.0):
        silent.tick(now)
    assert silent.outcome == "timed_out" and "3 tries" in silent.detail
    back = return_exchange(return_command(HOME, datetime(2026, 11, 23, tzinfo=UTC), "x"), 50, 1, 0)
    [cmd] = back.start(0.0)
    assert isinstance(cmd, SendCommand) and cmd.command == MAV_CMD_DO_REPOSITION
    assert cmd.params[4:] == (37.8085, -122.2687, 50)
    back.on_command_ack(MAV_CMD_DO_REPOSITION, 4, "MAV_RESULT_FAILED")
    assert back.outcome == "refused" and "MAV_RESULT_FAILED" in back.detail


def test_readings_are_timed_by_the_vehicles_clock_reset_by_a_reboot() -> None:
    s = _flying()
    _position(s, T0, boot_ms=60_000)  # first heard: its clock is set against the gateway's
    assert mav.reading(s, "d1", T0, "l", 7)["ts"] == T0
    # Two positions 200 ms apart by the autopilot, heard together (a router's buffering).
    _position(s, T0 + 900, boot_ms=60_200)
    assert mav.reading(s, "d1", T0 + 900, "l", 7)["ts"] == T0 + 200
    _position(s, T0 + 900, boot_ms=60_400)
    assert mav.reading(s, "d1", T0 + 900, "l", 7)["ts"] == T0 + 400
    # Silence is timed from the last position on: a heartbeat-loss reading later is later.
    assert mav.event_time(s, T0 + 5_900) == T0 + 5_400
    # A reboot (time since boot starts again) sets the clock again.
    _position(s, T0 + 10_000, boot_ms=1_000)
    assert mav.reading(s, "d1", T0 + 10_000, "l", 7)["ts"] == T0 + 10_000
    # A position without a boot time is timed when heard.
    _position(s, T0 + 11_000)
    assert mav.reading(s, "d1", T0 + 11_000, "l", 7)["ts"] == T0 + 11_000


def test_mission_progress_reports_pickup_and_drop_once_each() -> None:
    assert progress_event(0, -1) is None  # take-off
    assert progress_event(1, -1) is None  # at the pickup, not loaded yet
    assert progress_event(2, -1) == ("picked_up", 2)
    assert progress_event(2, 2) is None  # MISSION_ITEM_REACHED again over UDP
    assert progress_event(4, 2) == ("delivered", 4)
    # The pickup's report lost: reaching the drop still reports the delivery.
    assert progress_event(4, -1) == ("delivered", 4)
    assert progress_event(5, 4) is None
