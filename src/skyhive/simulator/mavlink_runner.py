"""Run a simulated fleet as MAVLink vehicles over UDP: the I/O half of ``--protocol mavlink``.

Each drone is a PX4 autopilot behind its own mavlink-router: one UDP socket, its own system
id (component 1), MAVLink 2 (or 1) frames signed with its key when it has one. It sends
GLOBAL_POSITION_INT at the telemetry rate and HEARTBEAT, SYS_STATUS, BATTERY_STATUS,
GPS_RAW_INT and EXTENDED_SYS_STATE once a second (at each reading when the rate is lower),
STATUSTEXT on events, all to the ``--mavlink-to`` endpoint; it answers the mission protocol
and commands to whichever address sent them. The same paced loop, state machine and flight
model as the MQTT simulator (``runner.FleetLoop``); only the wire differs.

A signed vehicle refuses unsigned or wrongly signed frames (counted as ``bad_commands``), as
PX4 does with signing on. During a radio outage (the ``offline`` fault) nothing is sent and
what arrives is lost, as over a real radio.
"""

from __future__ import annotations

import logging
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from pymavlink.dialects.v20 import common as mav

from skyhive.domain.commands import return_command
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.stations import Station, bart_stations
from skyhive.simulator import mavlink_encode as enc
from skyhive.simulator.drone import Event, SimDrone
from skyhive.simulator.mavlink_mission import (
    DeliveryRoute,
    MissionReceiver,
    Order,
    command_ack,
    delivery_command,
    station_at,
)
from skyhive.simulator.runner import FleetLoop, SimStats, SimulatorConfig, wall_ms

log = logging.getLogger(__name__)

COMPONENT_ID = mav.MAV_COMP_ID_AUTOPILOT1
SLOW_PERIOD_MS = 1_000  # HEARTBEAT and the other 1 Hz messages
SIGNING_EPOCH_S = 1_420_070_400  # MAVLink 2 signing timestamps count from 2015-01-01
MAX_DATAGRAM = 65_535


@dataclass(frozen=True, slots=True)
class VehicleId:
    """How a drone appears on MAVLink: its system id and, if it signs, its 32-byte key."""

    sysid: int
    signing_key: bytes | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.sysid <= 255:
            raise ValueError(f"MAVLink system id must be 1-255, got {self.sysid}")
        if self.signing_key is not None and len(self.signing_key) != 32:
            raise ValueError("a MAVLink signing key is 32 bytes")


@dataclass(frozen=True, slots=True)
class MavlinkLink:
    """Where frames go (``udp:host:port``), which MAVLink, and the ``.tlog`` to keep."""

    target: tuple[str, int]
    version: int = 2
    tlog: Path | None = None

    def __post_init__(self) -> None:
        if self.version not in (1, 2):
            raise ValueError(f"MAVLink version is 1 or 2, got {self.version}")


def parse_endpoint(url: str) -> tuple[str, int]:
    """``udp:HOST:PORT`` (or ``udpout:``, as mavutil writes it) → (host, port)."""
    scheme, _, rest = url.partition(":")
    host, _, port = rest.rpartition(":")
    if scheme not in ("udp", "udpout") or not host or not port.isdigit():
        raise ValueError(f"expected udp:HOST:PORT, got {url!r}")
    if not 0 < int(port) < 65_536:
        raise ValueError(f"port out of range in {url!r}")
    return host, int(port)


def vehicle_ids(specs: Sequence[DroneSpec], key: bytes | None = None) -> dict[str, VehicleId]:
    """Each drone's system id and key: from its registry spec (``mavlink_sysid``,
    ``mavlink_signing_key``) when it has them, else the lowest free ids in fleet order and no
    signing. ``key`` (the fleet-wide override) signs every drone."""
    free = iter(sorted(set(range(1, 256)) - {s.mavlink_sysid for s in specs if s.mavlink_sysid}))
    ids = {}
    for s in specs:
        sysid = s.mavlink_sysid or next(free, None)
        if sysid is None:
            raise ValueError("MAVLink has 255 system ids: simulate at most 255 drones")
        own = bytes.fromhex(s.mavlink_signing_key) if s.mavlink_signing_key else None
        ids[s.drone_id] = VehicleId(sysid, key or own)
    return ids


def run_mavlink_simulator(
    config: SimulatorConfig,
    link: MavlinkLink,
    stop_event: threading.Event | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    identify: Callable[[list[DroneSpec]], Mapping[str, VehicleId]] = vehicle_ids,
) -> SimStats:
    """Fly the fleet as MAVLink vehicles until ``duration_s`` elapses or ``stop_event`` is
    set. ``identify`` is called once, before the first frame, with the fleet's specs and
    returns each drone's :class:`VehicleId` (system ids must be distinct). ``published``
    counts frames sent; ``commands``/``bad_commands`` the commands applied and refused."""
    stop = stop_event if stop_event is not None else threading.Event()
    stats = SimStats()
    tlog = link.tlog.open("ab") if link.tlog is not None else None
    try:
        loop = _MavlinkLoop(config, stats, link, identify, tlog)
        try:
            loop.run(stop, progress, loop.pump)
        finally:
            loop.close()
    finally:
        if tlog is not None:
            tlog.close()
    return stats


class _Vehicle:
    """One drone's MAVLink end: its socket, encoder state and mission receiver. pymavlink
    writes each packed (and signed) frame through :meth:`write`."""

    def __init__(
        self,
        drone: SimDrone,
        ident: VehicleId,
        link: MavlinkLink,
        tlog: BinaryIO | None,
        stats: SimStats,
    ) -> None:
        self.drone = drone
        self.target = link.target
        self.mavlink1 = link.version == 1
        self.tlog = tlog
        self.stats = stats
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((_bind_host(link.target[0]), 0))
        self.sock.setblocking(False)
        self.mav = mav.MAVLink(self, srcSystem=ident.sysid, srcComponent=COMPONENT_ID)
        self.mav.robust_parsing = True  # a bad frame becomes BAD_DATA rather than an exception
        if ident.signing_key is not None:
            signing = self.mav.signing
            signing.secret_key = ident.signing_key
            signing.sign_outgoing = True
            signing.link_id = 0
            signing.timestamp = int((time.time() - SIGNING_EPOCH_S) * 100_000)
        self.receiver = MissionReceiver(ident.sysid)
        self.announcer = enc.Announcer()
        self.flying: tuple[str, DeliveryRoute] | None = None  # (delivery id, route) flown
        self.inbox: list[tuple[mav.MAVLink_message, tuple[str, int]]] = []
        self.next_slow_ms = 0
        self._dest = link.target

    def write(self, frame: bytes) -> None:
        try:
            self.sock.sendto(frame, self._dest)
        except OSError as exc:  # nobody listening yet, or no route: UDP loses it
            self.stats.dropped += 1
            log.debug("MAVLink frame to %s lost: %s", self._dest, exc)
            return
        self.stats.published += 1
        if self.tlog is not None:
            self.tlog.write(struct.pack(">Q", time.time_ns() // 1000) + frame)

    def send(self, msg: mav.MAVLink_message, to: tuple[str, int] | None = None) -> None:
        self._dest = self.target if to is None else to
        self.mav.send(msg, force_mavlink1=self.mavlink1)

    def receive(self) -> None:
        """Read every datagram waiting; frames for this vehicle go to the inbox."""
        while True:
            try:
                data, addr = self.sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. an ICMP error reported on the socket
                log.debug("MAVLink receive on %s: %s", self.drone.drone_id, exc)
                return
            for msg in self.mav.parse_buffer(data) or ():
                if msg.get_type() == "BAD_DATA":
                    self.stats.bad_commands += 1  # undecodable, unsigned or wrongly signed
                else:
                    self.inbox.append((msg, addr))


class _MavlinkLoop(FleetLoop):
    def __init__(
        self,
        config: SimulatorConfig,
        stats: SimStats,
        link: MavlinkLink,
        identify: Callable[[list[DroneSpec]], Mapping[str, VehicleId]],
        tlog: BinaryIO | None,
    ) -> None:
        super().__init__(config, stats)
        ids = identify([d.spec for d in self.fleet])
        sysids = [ids[d.drone_id].sysid for d in self.fleet]
        if len(set(sysids)) != len(sysids):
            raise ValueError("two simulated drones have the same MAVLink system id")
        if link.version == 1 and any(ids[d.drone_id].signing_key for d in self.fleet):
            raise ValueError("MAVLink signing needs MAVLink 2: drop --mavlink-version 1")
        self.vehicles: list[_Vehicle] = []
        self.selector = selectors.DefaultSelector()
        try:
            for d in self.fleet:
                v = _Vehicle(d, ids[d.drone_id], link, tlog, stats)
                self.vehicles.append(v)
                self.selector.register(v.sock, selectors.EVENT_READ, v)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.selector.close()
        for v in self.vehicles:
            v.sock.close()

    def pump(self, timeout: float) -> None:
        """Wait up to ``timeout`` for frames and answer them at once: a mission upload is a
        round trip per item, which must not wait for the drone's next slot."""
        for key, _ in self.selector.select(timeout):
            key.data.receive()
            self._handle(key.data, wall_ms())

    def _apply_commands(self) -> None:
        now_ms = wall_ms()
        for v in self.vehicles:
            self._handle(v, now_ms)

    def _handle(self, v: _Vehicle, now_ms: int) -> None:
        inbox, v.inbox = v.inbox, []
        if v.drone.is_silent(now_ms):
            return  # lost in the radio outage
        for msg, addr in inbox:
            replies, order = v.receiver.handle(msg)
            for reply in replies:
                v.send(reply, addr)
            if order is not None:
                result, events = self._obey(v, order, now_ms)
                v.send(command_ack(order.command, result), addr)
                self._announce_events(v, events)

    def _obey(self, v: _Vehicle, order: Order, now_ms: int) -> tuple[int, list[Event]]:
        """Apply ``order`` through the drone's own commands: the COMMAND_ACK result, and the
        delivery events it caused."""
        drone = v.drone
        if order.kind == "mission":
            assert order.route is not None
            delivery_id = f"mavlink-{drone.drone_id}-{now_ms}"
            cmd = delivery_command(order.route, _home(drone), delivery_id, now_ms)
            events = drone.command(cmd, now_ms, self.rng)
            if drone.delivery_id != delivery_id:  # refused: busy, or not enough battery
                self.stats.bad_commands += 1
                return int(mav.MAV_RESULT_DENIED), events
            v.flying = (delivery_id, order.route)
            if order.route.cruise_alt_m:
                drone.motion.cruise_alt_m = order.route.cruise_alt_m
        else:
            if order.kind == "rtl":
                station = _home(drone)
            else:
                assert order.point is not None
                station = station_at(*order.point, "reposition")
            issued = datetime.fromtimestamp(now_ms / 1000.0, UTC)
            events = drone.command(return_command(station, issued, order.kind), now_ms, self.rng)
        self.stats.commands += 1
        return int(mav.MAV_RESULT_ACCEPTED), events

    def _announce_events(self, v: _Vehicle, events: list[Event]) -> None:
        """Delivery events as PX4 reports mission progress: MISSION_ITEM_REACHED (for the
        mission flown) and a STATUSTEXT."""
        for event in events:
            self.stats.events += 1
            kind = event["event"]
            flown = v.flying is not None and v.flying[0] == event["delivery_id"]
            if kind == "failed":
                reason = event.get("reason", "")
                v.send(enc.status_text(mav.MAV_SEVERITY_WARNING, f"Mission aborted: {reason}"))
                if flown:
                    v.flying = None
                continue
            if flown and v.flying is not None:
                route = v.flying[1]
                stop = route.pickup if kind == "picked_up" else route.destination
                v.send(mav.MAVLink_mission_item_reached_message(stop.seq))
            v.send(enc.status_text(mav.MAV_SEVERITY_INFO, kind.replace("_", " ").capitalize()))

    def _flush_held(self) -> None:
        """Nothing is held: the message faults (duplicates, reordering) are MQTT's only."""

    def _publish_slots(self, first: int, end: int) -> None:
        now_ms = wall_ms()
        n = len(self.fleet)
        sim_s_per_ms = self.config.time_scale / 1000.0
        for slot in range(first, end):
            i = slot % n
            v = self.vehicles[i]
            drone = v.drone
            events = drone.step(now_ms, max(now_ms - self.last_ms[i], 0) * sim_s_per_ms, self.rng)
            self.last_ms[i] = now_ms
            glitch = drone.glitch is not None
            message_ms = self._message_ms(now_ms)
            reading = drone.reading(message_ms)
            if drone.is_silent(now_ms):
                self.stats.silent += 1
                continue
            self._announce_events(v, events)
            v.send(
                enc.global_position(drone, reading, message_ms - self.started_ms)
            )  # its clock runs at time_scale
            if glitch or now_ms >= v.next_slow_ms:
                if now_ms >= v.next_slow_ms:
                    v.next_slow_ms = now_ms + SLOW_PERIOD_MS
                self._send_slow(v, reading, message_ms * 1000, glitch)

    def _send_slow(
        self, v: _Vehicle, reading: dict[str, Any], time_usec: int, glitch: bool
    ) -> None:
        drone = v.drone
        for msg in (
            enc.heartbeat(drone),
            enc.sys_status(drone, glitch),
            enc.battery_status(drone),
            enc.gps_raw(drone, reading, time_usec, glitch),
            enc.extended_sys_state(drone),
            *v.announcer.news(drone, glitch),
        ):
            v.send(msg)


def _home(drone: SimDrone) -> Station:
    """Where RTL goes: the drone's home station (else the one it last docked at)."""
    code = drone.spec.home_station
    return next((s for s in bart_stations() if s.code == code), drone.station)


def _bind_host(target_host: str) -> str:
    """Listen on loopback only when talking to this machine; else on every interface."""
    try:
        loopback = socket.gethostbyname(target_host).startswith("127.")
    except OSError:
        loopback = False
    return "127.0.0.1" if loopback else "0.0.0.0"
