"""MAVLink gateway benchmark: frames decoded per second by one gateway process.

A fleet of ``vehicles`` autopilots is simulated for ``seconds`` at the rates PX4 streams to a
ground station over a telemetry link: HEARTBEAT, SYS_STATUS and EXTENDED_SYS_STATE at 1 Hz,
GPS_RAW_INT and GLOBAL_POSITION_INT at 5 Hz (13 frames a second a vehicle), each frame a
datagram, encoded with pymavlink beforehand (not timed; signed with a key per vehicle with
``signed``). Timed: the gateway's ``handle`` (framing, decoding and the signature check,
mapping to the drone, merging the state, building readings) and the readings' validation and
encoding as ingest does them; with ``bus``, end to end instead: the same with the writes to
the bus (``Ingest.submit``) of the configured servers, in the gateway's batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from pymavlink.dialects.v20 import common as mavlink

from skyhive.adapters.mavlink_codec import VehicleCodec, signing_timestamp, split_frames
from skyhive.domain.mavlink import MavlinkConfig
from skyhive.ports.bus import Bus
from skyhive.ports.deadletters import DeadLetter
from skyhive.ports.mavlink import Datagram, MavlinkVehicle
from skyhive.services.ingest import Ingest, encode_for_bus
from skyhive.services.mavlink_gateway import MavlinkGateway

START = datetime(2026, 1, 1, tzinfo=UTC)
LINK = "udp:127.0.0.1:14550"


@dataclass
class MavlinkBenchReport:
    vehicles: int
    seconds: int
    signed: bool
    frames: int
    readings: int
    refused: int
    frames_per_s: float
    readings_per_s: float
    to_bus: bool


class _Clock:
    """The simulated second the frames being handled belong to."""

    def __init__(self) -> None:
        self.at = START

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return (self.at - START).total_seconds()


class _Registry:
    def __init__(self, vehicles: list[MavlinkVehicle]) -> None:
        self._v = vehicles

    def mavlink_vehicles(self) -> list[MavlinkVehicle]:
        return self._v


class _NoLinks:
    def recv(self, timeout_s: float) -> list[Datagram]:
        return []

    def send(self, link: str, addr: tuple[str, int], data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


class _Dead:
    def __init__(self) -> None:
        self.count = 0

    def add(self, letters: Sequence[DeadLetter]) -> None:
        self.count += len(letters)


def _second(mav: mavlink.MAVLink, i: int, s: int) -> list[bytes]:
    """One second of one vehicle's stream (it flies east along a line)."""
    m = mavlink
    out = [
        m.MAVLink_heartbeat_message(2, 12, 129, (4 << 16) | (4 << 24), 4, 3),
        m.MAVLink_sys_status_message(0, 0, 0, 500, 15_800, 1234, max(5, 100 - s), 0, 0, 0, 0, 0, 0),
        m.MAVLink_extended_sys_state_message(0, 2),
    ]
    for k in range(5):
        out.append(m.MAVLink_gps_raw_int_message(0, 3, 0, 0, 0, 90, 65535, 0, 0, 12))
        lon = -1_222_700_000 + (s * 5 + k) * 200
        out.append(
            m.MAVLink_global_position_int_message(
                s * 1000 + k * 200, 378_000_000 + i * 1000, lon, 90_000, 60_000, 1500, 0, 0, 9000
            )
        )
    frames = []
    for msg in out:
        frames.append(bytes(msg.pack(mav)))
        mav.seq = (mav.seq + 1) % 256
    return frames


def run_mavlink_bench(
    vehicles: int,
    seconds: int,
    signed: bool,
    ingest: Ingest | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> MavlinkBenchReport:
    """Frames per second through one gateway (``ingest``: end to end to its bus)."""
    keys = [bytes([i % 256]) * 32 if signed else None for i in range(vehicles)]
    fleet = [MavlinkVehicle(f"mav-{i}", LINK, i % 255 + 1, keys[i]) for i in range(vehicles)]
    if vehicles > 255:
        raise ValueError("at most 255 vehicles on one link (MAVLink system ids)")
    encoders = []
    for i in range(vehicles):
        enc = mavlink.MAVLink(None, i % 255 + 1, 1)
        if keys[i] is not None:
            enc.signing.secret_key, enc.signing.sign_outgoing = keys[i], True
            enc.signing.timestamp = signing_timestamp(START.timestamp())
        encoders.append(enc)
    progress(f"encoding {seconds} s of {vehicles} vehicles' frames ...")
    timeline = []  # per second, the vehicles' frames interleaved as they would arrive
    for s in range(seconds):
        per_vehicle = [_second(encoders[i], i, s) for i in range(vehicles)]
        timeline.append(
            [
                Datagram(LINK, frames[k], ("127.0.0.1", 14550 + i))
                for k in range(len(per_vehicle[0]))
                for i, frames in enumerate(per_vehicle)
            ]
        )
    clock = _Clock()
    cfg = MavlinkConfig(listen=LINK, allow_unsigned=not signed)
    dead = _Dead()
    local = ingest or Ingest(cast(Bus, None), dead, "telemetry", 16384)  # never writes
    gw = MavlinkGateway(
        cfg, local, dead, _Registry(fleet), _NoLinks(), VehicleCodec, split_frames, clock
    )
    gw.refresh()
    progress("timing ...")
    readings = 0
    started = time.perf_counter()
    for s, datagrams in enumerate(timeline):
        clock.at = START + timedelta(seconds=s)
        for d in datagrams:
            clock.at += timedelta(milliseconds=1000 / len(datagrams) * 0.999)
            gw.handle(d)
        if ingest is not None:
            before = gw.readings
            gw.flush()
            readings += gw.readings - before
        else:
            taken = gw.take_readings()
            for raw in taken:  # what ingest does with each, short of writing it
                encode_for_bus(local.validate(raw))
            readings += len(taken)
    elapsed = time.perf_counter() - started
    return MavlinkBenchReport(
        vehicles, seconds, signed, gw.frames, readings, gw.refused,
        round(gw.frames / elapsed), round(readings / elapsed), ingest is not None,
    )  # fmt: skip
