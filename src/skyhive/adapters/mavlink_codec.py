"""MAVLink frames on pymavlink (dialect ``common``, MAVLink 2; it decodes MAVLink 1 too).

A UDP datagram may carry several frames, from vehicles with different signing keys, so it is
first cut into frames by their headers (:func:`split_frames`); each frame is then decoded by
its vehicle's own :class:`VehicleCodec`, which holds that vehicle's key and the timestamps
pymavlink's signing checks replays against.
"""

from __future__ import annotations

from typing import Any

from pymavlink import mavutil
from pymavlink.dialects.v20 import common as mavlink

from skyhive.domain.mavlink_mission import MissionItem, Send, SendCommand, SendCount, SendItem
from skyhive.ports.mavlink import Frame, FrameRefused

V1, V2 = 0xFE, 0xFD
SIGNATURE_LEN = 13
GCS_SYSID, GCS_COMPID = 255, 190  # the gateway speaks as a ground station
SIGNING_EPOCH_S = 1420070400  # MAVLink signing timestamps count 10 µs since 2015-01-01
DECODED = frozenset(
    {
        "HEARTBEAT",
        "GLOBAL_POSITION_INT",
        "SYS_STATUS",
        "BATTERY_STATUS",
        "GPS_RAW_INT",
        "EXTENDED_SYS_STATE",
        "STATUSTEXT",
        "MISSION_REQUEST",
        "MISSION_REQUEST_INT",
        "MISSION_ACK",
        "COMMAND_ACK",
    }
)


def split_frames(data: bytes) -> tuple[list[Frame], bytes]:
    """The whole frames in ``data`` (by their headers' lengths), and what could not be
    framed: bytes before a frame start or a truncated frame (b"": nothing)."""
    frames: list[Frame] = []
    i = 0
    while i < len(data):
        magic = data[i]
        if magic == V2 and i + 10 <= len(data):
            signed = bool(data[i + 2] & mavlink.MAVLINK_IFLAG_SIGNED)
            size = 10 + data[i + 1] + 2 + (SIGNATURE_LEN if signed else 0)
            sysid, compid, version = data[i + 5], data[i + 6], 2
        elif magic == V1 and i + 6 <= len(data):
            signed, size = False, 6 + data[i + 1] + 2
            sysid, compid, version = data[i + 3], data[i + 4], 1
        else:
            break
        if i + size > len(data):
            break
        frames.append(Frame(bytes(data[i : i + size]), sysid, compid, signed, version))
        i += size
    return frames, bytes(data[i:])


def signing_timestamp(now_s: float) -> int:
    return int(max(now_s - SIGNING_EPOCH_S, 0) * 100_000)


class VehicleCodec:
    """One vehicle's decoder and encoder. With a ``key``, only frames signed with it are
    accepted (pymavlink refuses a timestamp not newer than the last on its stream: a
    replay), and what the gateway sends the vehicle is signed with it too."""

    def __init__(self, key: bytes | None, allow_unsigned: bool, now_s: float) -> None:
        self.key = key
        self._allow_unsigned = allow_unsigned
        self._mav = mavlink.MAVLink(None, GCS_SYSID, GCS_COMPID)
        if key is not None:
            self._mav.signing.secret_key = key
            self._mav.signing.sign_outgoing = True
            # A new stream more than a minute behind this clock is refused (pymavlink): a
            # replay of frames captured before the gateway started.
            self._mav.signing.timestamp = signing_timestamp(now_s)

    def decode(self, frame: Frame) -> tuple[str, dict[str, Any]]:
        """(type, fields) of a frame; raises :class:`FrameRefused`. HEARTBEAT's fields get
        ``mode``: the flight mode's name (PX4 or ArduPilot custom mode)."""
        if self.key is not None and not frame.signed:
            raise FrameRefused("unsigned frame from a drone with a signing key")
        if self.key is None and not self._allow_unsigned:
            raise FrameRefused(
                "drone has no signing key and SKYHIVE_MAVLINK__ALLOW_UNSIGNED is not set"
            )
        try:
            msg = self._mav.decode(bytearray(frame.raw))
        except mavlink.MAVError as exc:
            text = str(exc)
            if "signature" in text:
                raise FrameRefused("bad signature (or a replayed timestamp)") from None
            raise FrameRefused(f"undecodable MAVLink frame: {text[:200]}") from None
        kind = msg.get_type()
        fields = msg.to_dict()
        if kind == "HEARTBEAT":
            fields["mode"] = mavutil.mode_string_v10(msg)
        return kind, fields

    def encode(self, send: Send, target: tuple[int, int]) -> bytes:
        """The frame of what the mission protocol (``domain/mavlink_mission.py``) sends."""
        sysid, compid = target
        mission_type = mavlink.MAV_MISSION_TYPE_MISSION
        msg: Any
        if isinstance(send, SendCount):
            msg = mavlink.MAVLink_mission_count_message(sysid, compid, send.count, mission_type)
        elif isinstance(send, SendItem):
            msg = _item_message(send.item, sysid, compid)
        else:
            assert isinstance(send, SendCommand)
            msg = mavlink.MAVLink_command_long_message(
                sysid, compid, send.command, send.confirmation, *send.params
            )
        frame = bytes(msg.pack(self._mav))
        self._mav.seq = (self._mav.seq + 1) % 256
        return frame


def _item_message(item: MissionItem, sysid: int, compid: int) -> Any:
    first = 1 if item.seq == 0 else 0
    return mavlink.MAVLink_mission_item_int_message(
        sysid,
        compid,
        item.seq,
        mavlink.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT,
        item.command,
        first,  # current
        1,  # autocontinue
        item.param1,
        0.0,
        0.0,
        float("nan"),
        item.x,
        item.y,
        item.alt_m,
        mavlink.MAV_MISSION_TYPE_MISSION,
    )


def result_name(enum: str, value: int) -> str:
    """``MAV_RESULT`` / ``MAV_MISSION_RESULT`` value → its name (e.g. MAV_RESULT_DENIED)."""
    entry = mavlink.enums.get(enum, {}).get(value)
    return entry.name if entry is not None else f"{enum}({value})"
