"""`skyhive simulate --protocol mavlink` against a minimal ground station on a real UDP socket.

The ground station is written here with pymavlink (not SkyHive's gateway): it decodes what the
simulated vehicles send (MAVLink 2 signed, MAVLink 1), uploads a mission through the mission
protocol, starts it, watches the vehicle fly towards its first waypoint, and commands RTL.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from pymavlink import mavutil
from pymavlink.dialects.v20 import common as mav

from cli_env import cli_env
from skyhive.cli import cli
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.geo import haversine_m
from skyhive.domain.stations import bart_stations
from skyhive.simulator.mavlink_runner import MavlinkLink, VehicleId, run_mavlink_simulator
from skyhive.simulator.runner import SimStats, SimulatorConfig
from skyhive.wiring import Clients

KEY = bytes(range(32))
WRONG_KEY = bytes(32)
SYSIDS = (42, 43)
WAIT_S = 10.0  # generous: the machine may be busy; a passing wait ends at once


class GroundStation:
    """A UDP endpoint speaking MAVLink as system 255; replies go to the address a vehicle
    sent from."""

    def __init__(self, key: bytes | None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.mav = mav.MAVLink(self, srcSystem=255, srcComponent=mav.MAV_COMP_ID_MISSIONPLANNER)
        self.mav.robust_parsing = True
        if key is not None:
            self.mav.signing.secret_key = key
            self.mav.signing.sign_outgoing = True
            self.mav.signing.link_id = 1
            self.mav.signing.timestamp = int((time.time() - 1_420_070_400) * 100_000)
        self.peers: dict[int, tuple[str, int]] = {}
        self.datagrams: list[bytes] = []
        self._to: tuple[str, int] = ("127.0.0.1", 0)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def write(self, frame: bytes) -> None:
        self.sock.sendto(frame, self._to)

    def send(self, sysid: int, msg: mav.MAVLink_message, signed: bool = True) -> None:
        self._to = self.peers[sysid]
        sign = self.mav.signing.sign_outgoing
        self.mav.signing.sign_outgoing = sign and signed
        try:
            self.mav.send(msg)
        finally:
            self.mav.signing.sign_outgoing = sign

    def expect(
        self, match: Callable[[mav.MAVLink_message], bool], timeout: float = WAIT_S
    ) -> mav.MAVLink_message:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data, addr = self.sock.recvfrom(65_535)
            except TimeoutError:
                continue
            self.datagrams.append(data)
            for msg in self.mav.parse_buffer(data) or ():
                if msg.get_type() == "BAD_DATA":
                    continue
                self.peers[msg.get_srcSystem()] = addr
                if match(msg):
                    return msg
        raise AssertionError("the expected MAVLink message did not come")

    def close(self) -> None:
        self.sock.close()


def of(kind: str, sysid: int) -> Callable[[mav.MAVLink_message], bool]:
    return lambda m: bool(m.get_type() == kind and m.get_srcSystem() == sysid)


class Flight:
    """A two-drone simulator run on a thread, sending to its own ground station."""

    def __init__(self, tlog: Path, version: int, key: bytes | None) -> None:
        self.gcs = GroundStation(key)
        self.tlog = tlog
        self.stats = SimStats()
        self._stop = threading.Event()
        config = SimulatorConfig(
            drones=2, rate_hz=10.0, seed=7, autonomous_legs=False, time_scale=20.0
        )
        link = MavlinkLink(("127.0.0.1", self.gcs.port), version=version, tlog=tlog)

        def identify(specs: list[DroneSpec]) -> dict[str, VehicleId]:
            return {s.drone_id: VehicleId(i, key) for s, i in zip(specs, SYSIDS, strict=True)}

        def run() -> None:
            self.stats = run_mavlink_simulator(config, link, self._stop, identify=identify)

        self._thread = threading.Thread(target=run)
        self._thread.start()

    def stop(self) -> None:
        """Stop the simulator (its tlog then complete) and close the ground station."""
        self._stop.set()
        self._thread.join(10)
        self.gcs.close()
        assert not self._thread.is_alive()


@pytest.fixture
def fly(tmp_path: Path) -> Iterator[Callable[..., Flight]]:
    """Start simulator runs; every one is stopped at teardown."""
    flights: list[Flight] = []

    def start(version: int = 2, key: bytes | None = None) -> Flight:
        flights.append(Flight(tmp_path / f"sim-v{version}.tlog", version, key))
        return flights[-1]

    yield start
    for flight in flights:
        flight.stop()


def first_in_tlog(path: Path, kind: str) -> mav.MAVLink_message:
    """The first ``kind`` message of a .tlog, read as any MAVLink tool reads one."""
    log = mavutil.mavlink_connection(str(path))
    try:
        msg = log.recv_match(type=kind)
    finally:
        log.close()
    assert msg is not None, f"no {kind} in {path}"
    return msg


def mission(home: tuple[float, float]) -> tuple[list[mav.MAVLink_message], tuple[float, float]]:
    """Take off, pickup (a waypoint and a landing there), drop at a loiter, land back home.
    Returns the items and the pickup's (lat, lon)."""
    others = [s for s in bart_stations() if 2_000 < haversine_m(*home, s.lat, s.lon) < 6_000]
    pickup = others[0]
    drop = (pickup.lat + 0.01, pickup.lon + 0.01)
    rel = mav.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT

    def item(seq: int, cmd: int, lat: float, lon: float, alt: float, p1: float = 0.0):  # type: ignore[no-untyped-def]
        return mav.MAVLink_mission_item_int_message(
            SYSIDS[0], 1, seq, rel, cmd, 0, 1, p1, 0, 0, 0, round(lat * 1e7), round(lon * 1e7), alt
        )

    items = [
        item(0, mav.MAV_CMD_NAV_TAKEOFF, *home, 80.0),
        item(1, mav.MAV_CMD_NAV_WAYPOINT, pickup.lat, pickup.lon, 80.0),
        item(2, mav.MAV_CMD_NAV_LAND, pickup.lat, pickup.lon, 0.0),
        item(3, mav.MAV_CMD_NAV_LOITER_TIME, *drop, 15.0, p1=5.0),
        item(4, mav.MAV_CMD_NAV_LAND, *home, 0.0),
    ]
    return items, (pickup.lat, pickup.lon)


def test_signed_mavlink2_vehicle_takes_a_mission_and_rtl(
    fly: Callable[..., Flight],
) -> None:
    flight = fly(version=2, key=KEY)
    gcs = flight.gcs
    sysid = SYSIDS[0]

    beat = gcs.expect(of("HEARTBEAT", sysid))
    assert (beat.type, beat.autopilot) == (mav.MAV_TYPE_QUADROTOR, mav.MAV_AUTOPILOT_PX4)
    assert beat.get_signed() and not beat.base_mode & mav.MAV_MODE_FLAG_SAFETY_ARMED
    assert gcs.expect(of("HEARTBEAT", SYSIDS[1])).get_signed()
    gps = gcs.expect(of("GPS_RAW_INT", sysid))
    assert (gps.fix_type, gps.satellites_visible) == (mav.GPS_FIX_TYPE_3D_FIX, 12)
    battery = gcs.expect(of("BATTERY_STATUS", sysid))
    assert 3_500 <= battery.voltages[0] <= 4_200 and 0 <= battery.battery_remaining <= 100
    landed = gcs.expect(of("EXTENDED_SYS_STATE", sysid))
    assert landed.landed_state == mav.MAV_LANDED_STATE_ON_GROUND
    at = gcs.expect(of("GLOBAL_POSITION_INT", sysid))
    home = (at.lat / 1e7, at.lon / 1e7)
    assert 37.0 < home[0] < 38.5 and -123.0 < home[1] < -121.5  # the Bay Area, degE7 decoded

    # A receiver with the wrong key refuses every frame it was sent.
    wrong = mav.MAVLink(None)
    wrong.robust_parsing = True
    wrong.signing.secret_key = WRONG_KEY
    decoded = [m for d in gcs.datagrams for m in wrong.parse_buffer(d) or ()]
    assert decoded and all(m.get_type() == "BAD_DATA" for m in decoded)

    # An unsigned upload is refused: no MISSION_REQUEST_INT comes back.
    items, pickup = mission(home)
    gcs.send(sysid, mav.MAVLink_mission_count_message(sysid, 1, len(items)), signed=False)
    with pytest.raises(AssertionError):
        gcs.expect(of("MISSION_REQUEST_INT", sysid), timeout=0.5)

    gcs.send(sysid, mav.MAVLink_mission_count_message(sysid, 1, len(items)))
    for expected in range(len(items)):
        request = gcs.expect(of("MISSION_REQUEST_INT", sysid))
        assert request.seq == expected
        gcs.send(sysid, items[request.seq])
    ack = gcs.expect(of("MISSION_ACK", sysid))
    assert ack.type == mav.MAV_MISSION_ACCEPTED

    start = mav.MAVLink_command_long_message(
        sysid, 1, mav.MAV_CMD_MISSION_START, 0, 0, 0, 0, 0, 0, 0, 0
    )
    gcs.send(sysid, start)
    started = gcs.expect(of("COMMAND_ACK", sysid))
    assert (started.command, started.result) == (mav.MAV_CMD_MISSION_START, mav.MAV_RESULT_ACCEPTED)

    before = haversine_m(*home, *pickup)
    armed = gcs.expect(
        lambda m: of("HEARTBEAT", sysid)(m) and bool(m.base_mode & mav.MAV_MODE_FLAG_SAFETY_ARMED)
    )
    assert armed.custom_mode >> 24 == 4  # PX4 AUTO.MISSION
    moved = gcs.expect(
        lambda m: (
            of("GLOBAL_POSITION_INT", sysid)(m)
            and haversine_m(m.lat / 1e7, m.lon / 1e7, *pickup) < before - 200.0
        )
    )
    assert moved.relative_alt > 10_000  # mm: cruising, not on the pad

    rtl = mav.MAVLink_command_long_message(
        sysid, 1, mav.MAV_CMD_NAV_RETURN_TO_LAUNCH, 0, 0, 0, 0, 0, 0, 0, 0
    )
    gcs.send(sysid, rtl)
    back = gcs.expect(of("COMMAND_ACK", sysid))
    assert (back.command, back.result) == (
        mav.MAV_CMD_NAV_RETURN_TO_LAUNCH,
        mav.MAV_RESULT_ACCEPTED,
    )
    aborted = gcs.expect(of("STATUSTEXT", sysid))
    assert aborted.text == "Mission aborted: recalled"
    flight.stop()
    assert flight.stats.commands == 2 and flight.stats.bad_commands == 1  # the unsigned one
    beat = first_in_tlog(flight.tlog, "HEARTBEAT")
    frame = bytes(beat.get_msgbuf())
    assert frame[0] == 0xFD and frame[2] & mav.MAVLINK_IFLAG_SIGNED  # kept as sent: signed


def test_mavlink1_frames_and_a_tlog_mavutil_reads(
    fly: Callable[..., Flight],
) -> None:
    flight = fly(version=1)
    gcs = flight.gcs
    beat = gcs.expect(of("HEARTBEAT", SYSIDS[1]))
    assert beat.get_header().mlen > 0 and not beat.get_signed()
    gcs.expect(of("GLOBAL_POSITION_INT", SYSIDS[0]))
    assert all(d[0] == 0xFE for d in gcs.datagrams)  # MAVLink 1 magic, every frame

    flight.stop()
    first = first_in_tlog(flight.tlog, "HEARTBEAT")
    assert first.get_srcSystem() in SYSIDS and not first.get_signed()
    assert first._timestamp > 1.0e9  # the tlog's own timestamp, epoch seconds
    assert first_in_tlog(flight.tlog, "GLOBAL_POSITION_INT").lat != 0


def test_the_command_flies_registered_drones_with_their_system_id_and_key(
    clients: Clients,
) -> None:
    station = bart_stations()[0].code
    clients.fleet.register(
        DroneSpec(
            drone_id="mav-0001",
            home_station=station,
            mavlink_sysid=77,
            mavlink_signing_key=KEY.hex(),
        )
    )
    gcs = GroundStation(KEY)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        args = ["simulate", "--protocol", "mavlink", "--id-prefix", "mav", "--drones", "1"]
        args += ["--duration", "1.5", "--mavlink-to", f"udp:127.0.0.1:{gcs.port}"]
        done = CliRunner().invoke(cli, args, env=cli_env(clients.settings))
        assert done.exit_code == 0, done.output
        assert "mav-0001: MAVLink system 77 (signed)" in done.output
        beat = gcs.expect(of("HEARTBEAT", 77), timeout=1.0)  # queued on the socket meanwhile
        assert beat.get_signed()  # and verified with the registry's key
    finally:
        gcs.close()
        for sig, handler in handlers.items():  # the command took over SIGINT and SIGTERM
            signal.signal(sig, handler)
