"""The MAVLink gateway's ports: frames and their codec (``adapters/mavlink_codec.py``), the
UDP links (``adapters/mavlink_udp.py``) and the registry's vehicles
(``adapters/fleet_repo.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from skyhive.domain.mavlink_mission import Send


class FrameRefused(Exception):
    """A frame that is not turned into anything; ``reason`` goes on its dead letter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Frame:
    raw: bytes
    sysid: int
    compid: int
    signed: bool
    version: int  # 1 or 2


@dataclass(frozen=True, slots=True)
class MavlinkVehicle:
    """A registered drone's MAVLink identity: its link (an endpoint's name, or "any"), its
    system id and its signing key (None: none registered)."""

    drone_id: str
    link: str
    sysid: int
    key: bytes | None


@dataclass(frozen=True, slots=True)
class Datagram:
    link: str
    data: bytes
    addr: tuple[str, int]


class VehicleCodec(Protocol):
    def decode(self, frame: Frame) -> tuple[str, dict[str, Any]]:
        """(message type, fields); raises :class:`FrameRefused`."""

    def encode(self, send: Send, target: tuple[int, int]) -> bytes: ...


# (signing key, allow unsigned, now in epoch s: the signing clock) → a vehicle's codec.
CodecFactory = Callable[[bytes | None, bool, float], VehicleCodec]
# A datagram → its whole frames, and the bytes that could not be framed.
Framer = Callable[[bytes], tuple[list[Frame], bytes]]
# A MAVLink result enum's name and value → the value's name.
ResultNamer = Callable[[str, int], str]


class Links(Protocol):
    def recv(self, timeout_s: float) -> list[Datagram]: ...

    def send(self, link: str, addr: tuple[str, int], data: bytes) -> None: ...

    def close(self) -> None: ...


class MavlinkRegistry(Protocol):
    def mavlink_vehicles(self) -> list[MavlinkVehicle]:
        """Every registered drone with a MAVLink system id."""
