"""The MAVLink gateway on real UDP sockets, the embedded Redis and MongoDB: frames built
with pymavlink's encoder (MAVLink 1 and 2, signed and unsigned) become readings on the bus,
alerts in the processor, dead letters with the raw frame; a deliver command becomes a
mission upload answered by a test-side vehicle; a .tlog replays into the gateway."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from pymavlink.dialects.v20 import common as mavlink

from cli_env import cli_env
from manual_clock import ManualClock
from polling import wait_for
from skyhive.adapters.mavlink_codec import signing_timestamp
from skyhive.adapters.mavlink_tlog import replay, write_tlog
from skyhive.adapters.mavlink_udp import UdpLinks
from skyhive.bench.mavlink import run_mavlink_bench
from skyhive.bootstrap import bootstrap
from skyhive.cli import cli
from skyhive.domain.commands import deliver_command
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.stations import Station
from skyhive.embedded import free_port
from skyhive.services.mavlink_commands import MavlinkCommands
from skyhive.services.mavlink_gateway import MavlinkGateway
from skyhive.settings import Settings
from skyhive.wiring import Clients
from skyhive.workers.mavlink import build_mavlink, run_mavlink
from skyhive.workers.processor import build_processor

KEY = bytes(range(32))
LINK = "udp:127.0.0.1:0"
START = datetime(2026, 11, 23, 12, tzinfo=UTC)
PICKUP = Station(code="12TH", name="12th St", lat=37.8036, lon=-122.2716)
HOME = Station(code="19TH", name="19th St", lat=37.8085, lon=-122.2687)


OPEN: list[socket.socket] = []  # the test vehicles' sockets, closed after each test


@pytest.fixture(autouse=True)
def _close_vehicles() -> Iterator[None]:
    yield
    while OPEN:
        OPEN.pop().close()


class Vehicle:
    """A test-side autopilot: pymavlink's encoder on a UDP socket of its own."""

    def __init__(
        self,
        sysid: int,
        to: tuple[str, int],
        key: bytes | None = None,
        clock: ManualClock | None = None,
    ) -> None:
        """``clock``: the vehicle's time since boot follows it (else it stands still)."""
        self.clock = clock
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        OPEN.append(self.sock)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.to = to
        self.mav = mavlink.MAVLink(None, sysid, 1)
        if key is not None:
            self.mav.signing.secret_key = key
            self.mav.signing.sign_outgoing = True
            self.mav.signing.timestamp = signing_timestamp(START.timestamp())
        self.items: list[Any] = []
        self.counts: list[int] = []

    def frame(self, msg: Any, v1: bool = False) -> bytes:
        data = bytes(msg.pack(self.mav, force_mavlink1=v1))
        self.mav.seq = (self.mav.seq + 1) % 256
        return data

    def send(self, msg: Any, v1: bool = False) -> bytes:
        data = self.frame(msg, v1)
        self.sock.sendto(data, self.to)
        return data

    def flying(self, battery: int = 80, fix: int = 3, sats: int = 12, v1: bool = False) -> None:
        m = mavlink
        armed = m.MAV_MODE_FLAG_SAFETY_ARMED | m.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
        px4_mission = (4 << 16) | (4 << 24)  # AUTO.MISSION
        self.send(m.MAVLink_heartbeat_message(2, 12, armed, px4_mission, 4, 3), v1)
        self.send(m.MAVLink_extended_sys_state_message(0, 2))
        self.send(m.MAVLink_sys_status_message(0, 0, 0, 500, 15_800, 1234, battery, 0, 0, 0, 0, 0, 0), v1)  # fmt: skip
        self.send(m.MAVLink_gps_raw_int_message(0, fix, 0, 0, 0, 90, 65535, 0, 0, sats), v1)
        self.send(m.MAVLink_statustext_message(4, b"Baro drift"), v1)
        self.position(v1)

    def position(self, v1: bool = False) -> None:
        boot_ms = 1000 + (
            int((self.clock.now() - START).total_seconds() * 1000) if self.clock else 0
        )
        msg = mavlink.MAVLink_global_position_int_message(
            boot_ms, 378_036_000, -1_222_716_000, 95_500, 60_250, 300, 400, -50, 9_050
        )
        self.send(msg, v1)

    def answer(self, refuse: int | None = None) -> None:
        """Answer what the gateway sent: ask for each item, accept (or refuse) the mission,
        accept MISSION_START."""
        parser = mavlink.MAVLink(None)
        if self.mav.signing.secret_key is not None:
            parser.signing.secret_key = self.mav.signing.secret_key
        while True:
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                return
            msg = parser.decode(bytearray(data))
            kind = msg.get_type()
            sysid, compid = msg.get_srcSystem(), msg.get_srcComponent()
            if kind == "MISSION_COUNT":
                self.counts.append(msg.count)
                self.items = []
                self.send(mavlink.MAVLink_mission_request_int_message(sysid, compid, 0))
            elif kind == "MISSION_ITEM_INT":
                self.items.append(msg)
                if msg.seq + 1 < self.counts[-1]:
                    nxt = mavlink.MAVLink_mission_request_int_message(sysid, compid, msg.seq + 1)
                    self.send(nxt)
                else:
                    result = mavlink.MAV_MISSION_ACCEPTED if refuse is None else refuse
                    self.send(mavlink.MAVLink_mission_ack_message(sysid, compid, result))
            elif kind == "COMMAND_LONG":
                ack = mavlink.MAVLink_command_ack_message(msg.command, mavlink.MAV_RESULT_ACCEPTED)
                self.send(ack)


@pytest.fixture
def world(make_settings: Callable[..., Settings]) -> Iterator[tuple[Clients, ManualClock]]:
    settings = make_settings(mavlink={"listen": LINK})
    clients = Clients(settings)
    clients.__dict__["clock"] = clock = ManualClock(START)
    bootstrap(clients)
    fleet = clients.fleet
    keyed = {"mavlink_link": LINK, "mavlink_signing_key": KEY.hex()}
    fleet.register(DroneSpec(drone_id="m1", home_station="12TH", mavlink_sysid=7, **keyed))
    fleet.register(DroneSpec(drone_id="m2", home_station="12TH", mavlink_sysid=8))
    yield clients, clock
    clients.close()


@pytest.fixture
def gateway(world: tuple[Clients, ManualClock]) -> Iterator[tuple[MavlinkGateway, MavlinkCommands]]:
    clients, _ = world
    links = UdpLinks([LINK])
    gw, commands = build_mavlink(clients, links, "test-mavlink")
    gw.refresh()
    commands.setup()
    yield gw, commands
    links.close()


def addr(gw: MavlinkGateway) -> tuple[str, int]:
    return gw.links.address(LINK)  # type: ignore[attr-defined, no-any-return]


def pump(gw: MavlinkGateway, rounds: int = 5) -> None:
    for _ in range(rounds):
        gw.step(0.05)


def readings(clients: Clients) -> list[dict[str, Any]]:
    """The readings on the telemetry stream not yet read by this test."""
    bus, stream = clients.bus, clients.settings.telemetry_stream
    bus.ensure_group(stream, "test-read")
    return [orjson.loads(m.value) for m in bus.consume(stream, "test-read", "t", 1000, 0)]


def dead(clients: Clients) -> list[dict[str, Any]]:
    return clients.deadletters.list()


def test_mavlink_1_and_2_frames_become_readings_with_units_converted(
    world: tuple[Clients, ManualClock], gateway: tuple[MavlinkGateway, MavlinkCommands]
) -> None:
    clients, _clock = world
    gw, _ = gateway
    signed = Vehicle(7, addr(gw), KEY)
    signed.flying()
    unsigned_v1 = Vehicle(8, addr(gw))
    unsigned_v1.flying(v1=True)
    pump(gw)
    # m2 has no key and unsigned frames are not allowed: refused, never telemetry.
    got = {r["drone_id"]: r for r in readings(clients)}
    assert set(got) == {"m1"}
    r = got["m1"]
    assert (r["lat"], r["lon"], r["alt_m"], r["speed_mps"]) == (37.8036, -122.2716, 60.25, 5.0)
    assert (r["heading_deg"], r["battery_pct"], r["status"]) == (90.5, 80.0, "in_flight")
    assert r["gps"] == {"fix_type": 3, "satellites": 12, "eph": 0.9}
    assert r["mavlink"]["mode"] == "MISSION" and r["mavlink"]["voltage_v"] == 15.8
    assert r["statustext"] == [{"severity": 4, "text": "Baro drift"}]
    assert r["ts"] == "2026-11-23T12:00:00Z"
    reasons = {d["reason"] for d in dead(clients)}
    assert any("m2: drone has no signing key" in x for x in reasons)


def test_unsigned_frames_are_taken_when_allowed(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(mavlink={"listen": LINK, "allow_unsigned": True})
    clients = Clients(settings)
    links = UdpLinks([LINK])
    try:
        bootstrap(clients)
        clients.fleet.register(DroneSpec(drone_id="m2", home_station="12TH", mavlink_sysid=8))
        gw, _ = build_mavlink(clients, links, "t")
        gw.refresh()
        Vehicle(8, addr(gw)).flying(battery=55, v1=True)
        pump(gw)
        [r] = readings(clients)
        assert (r["drone_id"], r["battery_pct"]) == ("m2", 55.0)
    finally:
        links.close()
        clients.close()


def test_unknown_garbage_spoofed_and_badly_signed_frames_are_dead_letters(
    world: tuple[Clients, ManualClock], gateway: tuple[MavlinkGateway, MavlinkCommands]
) -> None:
    clients, _ = world
    gw, _ = gateway
    to = addr(gw)
    stranger = Vehicle(99, to).send(mavlink.MAVLink_heartbeat_message(2, 12, 0, 0, 3, 3))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.sendto(b"\x00garbage bytes", to)
    sock.close()
    # A spoofed BATTERY_STATUS for the keyed drone m1, unsigned: could force a landing.
    spoof = Vehicle(7, to)
    spoofed = spoof.send(
        mavlink.MAVLink_battery_status_message(0, 0, 0, 0, [3000] * 10, -1, -1, -1, 3)
    )
    wrong = Vehicle(7, to, key=b"\x01" * 32)
    wrong.flying()
    pump(gw)
    assert readings(clients) == []
    letters = {d["reason"].split(" (raw")[0]: d for d in dead(clients)}
    unknown = letters["unknown vehicle: system id 99 on link udp:127.0.0.1:0"]
    assert bytes.fromhex(unknown["raw"]) == stranger
    assert letters["undecodable bytes: no MAVLink frame"]["raw"] == b"\x00garbage bytes".hex()
    spoof_letter = letters["m1: unsigned frame from a drone with a signing key"]
    assert bytes.fromhex(spoof_letter["raw"]) == spoofed
    assert "m1: bad signature (or a replayed timestamp)" in letters
    # A replayed signed frame is refused too.
    good = Vehicle(7, to, KEY)
    frame = good.send(mavlink.MAVLink_heartbeat_message(2, 12, 0, 0, 3, 3))
    pump(gw)
    before = gw.refused
    good.sock.sendto(frame, to)
    pump(gw)
    assert gw.refused == before + 1


def test_heartbeat_loss_raises_offline_and_gps_degradation_a_warning(
    world: tuple[Clients, ManualClock], gateway: tuple[MavlinkGateway, MavlinkCommands]
) -> None:
    clients, clock = world
    gw, _ = gateway
    processor = build_processor(clients, "test-proc")
    processor.setup()
    v = Vehicle(7, addr(gw), KEY, clock)  # its clock runs with the gateway's
    v.flying(fix=2, sats=4)
    pump(gw)
    clock.advance(5.5)
    pump(gw, 2)
    while processor.poll():
        pass
    alerts = {a.type: a for a in clients.alerts.list(drone_id="m1", state="open")}
    assert alerts["gps_degraded"].severity == "warning"
    assert alerts["offline"].severity == "critical"
    clock.advance(1)
    v.flying()  # its heartbeat ends the loss: a reading at once
    pump(gw)
    clock.advance(1)
    v.position()  # the next one carries the good fix
    pump(gw)
    while processor.poll():
        pass
    still = {a.type for a in clients.alerts.list(drone_id="m1", state="open")}
    assert "offline" not in still and "gps_degraded" not in still


def _deliver_on_stream(clients: Clients, delivery_id: str) -> None:
    clients.db["deliveries"].insert_one(
        {"_id": delivery_id, "status": "assigned", "version": 1, "timeline": []}
    )
    cmd = deliver_command(delivery_id, PICKUP, (37.81, -122.26), HOME, START, 1.5)
    clients.bus.publish(clients.settings.commands_stream, [("m1", cmd.to_json())])


def _run(gw: MavlinkGateway, commands: MavlinkCommands, v: Vehicle, **answer: Any) -> None:
    for _ in range(40):
        gw.step(0.02)
        commands.step()
        v.answer(**answer)
        if commands.outcomes:
            return


def test_a_deliver_is_uploaded_as_a_mission_and_started(
    world: tuple[Clients, ManualClock], gateway: tuple[MavlinkGateway, MavlinkCommands]
) -> None:
    clients, _ = world
    gw, commands = gateway
    v = Vehicle(7, addr(gw), KEY)
    v.flying()
    pump(gw, 2)
    _deliver_on_stream(clients, "del-1")
    _run(gw, commands, v)
    assert commands.outcomes == [("m1", "accepted", "accepted")]
    assert v.counts == [6]
    assert [i.command for i in v.items] == [22, 16, 19, 16, 19, 21]
    assert (v.items[1].x, v.items[1].y) == (378_036_000, -1_222_716_000)
    [note] = clients.db["deliveries"].find_one({"_id": "del-1"})["timeline"]
    assert note["status"] == "assigned" and "accepted" in note["note"]


def test_a_refused_mission_lands_on_the_delivery_timeline(
    world: tuple[Clients, ManualClock], gateway: tuple[MavlinkGateway, MavlinkCommands]
) -> None:
    clients, _ = world
    gw, commands = gateway
    v = Vehicle(7, addr(gw), KEY)
    v.flying()
    pump(gw, 2)
    _deliver_on_stream(clients, "del-2")
    _run(gw, commands, v, refuse=mavlink.MAV_MISSION_NO_SPACE)
    [(_, outcome, detail)] = commands.outcomes
    assert (outcome, detail) == ("refused", "mission refused: MAV_MISSION_NO_SPACE")
    [note] = clients.db["deliveries"].find_one({"_id": "del-2"})["timeline"]
    assert "MAV_MISSION_NO_SPACE" in note["note"]


def test_a_tlog_replays_into_the_gateway(
    tmp_path: Path,
    world: tuple[Clients, ManualClock],
    gateway: tuple[MavlinkGateway, MavlinkCommands],
) -> None:
    clients, _clock = world
    gw, _ = gateway
    v = Vehicle(7, addr(gw), KEY)
    m = mavlink
    msgs = [
        m.MAVLink_heartbeat_message(2, 12, m.MAV_MODE_FLAG_SAFETY_ARMED, 0, 4, 3),
        m.MAVLink_sys_status_message(0, 0, 0, 500, 15_800, 1234, 64, 0, 0, 0, 0, 0, 0),
        m.MAVLink_global_position_int_message(
            1, 378_000_000, -1_222_000_000, 0, 10_000, 0, 0, 0, 0
        ),
    ]
    path = tmp_path / "flight.tlog"
    t0 = int(START.timestamp() * 1e6)
    write_tlog(path, [(t0 + i * 1000, v.frame(msg)) for i, msg in enumerate(msgs)])
    assert replay(path, *addr(gw), speed=0) == 3
    pump(gw)
    [r] = readings(clients)
    assert (r["drone_id"], r["battery_pct"], r["lat"], r["alt_m"]) == ("m1", 64.0, 37.8, 10.0)


def test_the_cli_registers_a_mavlink_identity_and_replays_a_tlog(
    tmp_path: Path,
    world: tuple[Clients, ManualClock],
    gateway: tuple[MavlinkGateway, MavlinkCommands],
) -> None:
    clients, _ = world
    gw, _ = gateway
    env, runner = cli_env(clients.settings), CliRunner()
    key = "ab" * 32
    reg = runner.invoke(
        cli,
        ["drones", "register", "c1", "--home-station", "12TH", "--no-credentials",
         "--mavlink-sysid", "20", "--mavlink-link", LINK],
        env={**env, "SKYHIVE_MAVLINK_SIGNING_KEY": key},
    )  # fmt: skip
    assert reg.exit_code == 0, reg.output
    spec = clients.fleet.get("c1")
    assert spec is not None and (spec.mavlink_sysid, spec.mavlink_signing_key) == (20, key)
    shown = runner.invoke(cli, ["drones", "mavlink", "c1"], env=env)
    assert f"system id 20 on link {LINK}, a signing key" in shown.output and key not in shown.output
    taken = runner.invoke(cli, ["drones", "mavlink", "c1", "--mavlink-sysid", "7"], env=env)
    assert taken.exit_code != 0 and "already drone m1" in taken.output
    path = tmp_path / "one.tlog"
    v = Vehicle(7, addr(gw), KEY)
    write_tlog(path, [(0, v.frame(mavlink.MAVLink_heartbeat_message(2, 12, 0, 0, 3, 3)))])
    host, port = addr(gw)
    sent = runner.invoke(cli, ["mavlink", "replay", str(path), "--to", f"udp:{host}:{port}"])
    assert sent.exit_code == 0 and "1 frames sent" in sent.output
    pump(gw)
    assert gw.states["m1"].armed is False
    bad = runner.invoke(cli, ["mavlink", "replay", str(path), "--to", "tcp:x:1"])
    assert bad.exit_code != 0 and "not a UDP endpoint" in bad.output


def test_the_benchmark_runs_end_to_end_on_a_tiny_fleet(
    world: tuple[Clients, ManualClock],
) -> None:
    clients, _ = world
    report = run_mavlink_bench(2, 2, True, clients.ingest)
    assert (report.frames, report.refused, report.to_bus) == (52, 0, True)
    assert report.readings >= 8 and len(readings(clients)) == report.readings


def test_the_mavlink_role_runs_on_its_own_endpoint(make_settings: Callable[..., Settings]) -> None:
    port = free_port()
    link = f"udp:127.0.0.1:{port}"
    settings = make_settings(mavlink={"listen": link, "allow_unsigned": True})
    clients = Clients(settings)
    bootstrap(clients)
    clients.fleet.register(DroneSpec(drone_id="r1", home_station="12TH", mavlink_sysid=3))
    stop = threading.Event()
    role = threading.Thread(target=run_mavlink, args=(settings, stop))
    role.start()
    try:
        v = Vehicle(3, ("127.0.0.1", port))
        got: list[dict[str, Any]] = []

        def heard() -> bool:
            v.flying(battery=42)
            got.extend(readings(clients))
            return bool(got)

        wait_for(heard, "a reading from the role", timeout=10, every=0.2)
        assert (got[0]["drone_id"], got[0]["battery_pct"]) == ("r1", 42.0)
    finally:
        stop.set()
        role.join(10)
        clients.close()
    assert not role.is_alive()
