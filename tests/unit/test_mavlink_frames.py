"""MAVLink framing, the per-vehicle codec (signing, replays) and .tlog records, without
sockets: frames built with pymavlink's own encoder."""

from __future__ import annotations

from typing import Any

import pytest
from pymavlink.dialects.v20 import common as mavlink

from skyhive.adapters.mavlink_codec import (
    VehicleCodec,
    result_name,
    signing_timestamp,
    split_frames,
)
from skyhive.adapters.mavlink_tlog import BadTlog, read_tlog
from skyhive.domain.mavlink_mission import SendCommand, SendCount
from skyhive.ports.mavlink import FrameRefused

NOW_S = 1_795_428_000.0
KEY = b"k" * 32


def _frame(msg: Any, key: bytes | None = None, v1: bool = False, sysid: int = 7) -> bytes:
    mav = mavlink.MAVLink(None, sysid, 1)
    if key is not None:
        mav.signing.secret_key, mav.signing.sign_outgoing = key, True
        mav.signing.timestamp = signing_timestamp(NOW_S)
    return bytes(msg.pack(mav, force_mavlink1=v1))


HB = mavlink.MAVLink_heartbeat_message(2, 3, 128 | 1, 4, 4, 3)  # ArduCopter, armed, GUIDED


def test_a_datagram_is_cut_into_its_frames_and_what_is_left() -> None:
    one, two = _frame(HB, v1=True), _frame(HB, KEY, sysid=9)
    frames, rest = split_frames(one + two + b"\xfd\x09")
    assert [(f.version, f.sysid, f.signed) for f in frames] == [(1, 7, False), (2, 9, True)]
    assert frames[1].raw == two and rest == b"\xfd\x09"
    assert split_frames(b"junk" + one) == ([], b"junk" + one)


def test_the_codec_decodes_names_the_mode_and_checks_signatures() -> None:
    kind, fields = VehicleCodec(None, True, NOW_S).decode(split_frames(_frame(HB, v1=True))[0][0])
    assert kind == "HEARTBEAT" and fields["mode"] == "GUIDED"
    keyed = VehicleCodec(KEY, False, NOW_S)
    signed = split_frames(_frame(HB, KEY))[0][0]
    assert keyed.decode(signed)[0] == "HEARTBEAT"
    with pytest.raises(FrameRefused, match="replayed"):
        keyed.decode(signed)  # the same timestamp again
    with pytest.raises(FrameRefused, match="unsigned frame"):
        keyed.decode(split_frames(_frame(HB))[0][0])
    with pytest.raises(FrameRefused, match="bad signature"):
        VehicleCodec(KEY, False, NOW_S).decode(split_frames(_frame(HB, b"x" * 32))[0][0])
    with pytest.raises(FrameRefused, match="ALLOW_UNSIGNED"):
        VehicleCodec(None, False, NOW_S).decode(split_frames(_frame(HB))[0][0])
    broken = bytearray(_frame(HB))
    broken[-1] ^= 0xFF
    with pytest.raises(FrameRefused, match="undecodable"):
        VehicleCodec(None, True, NOW_S).decode(split_frames(bytes(broken))[0][0])


def test_what_the_gateway_sends_a_keyed_vehicle_is_signed_with_its_key() -> None:
    codec = VehicleCodec(KEY, False, NOW_S)
    frames = [codec.encode(SendCount(6), (7, 1)), codec.encode(SendCommand(300, (0,) * 7), (7, 1))]
    vehicle = mavlink.MAVLink(None, 7, 1)
    vehicle.signing.secret_key = KEY
    count, start = (vehicle.decode(bytearray(f)) for f in frames)
    assert (count.get_type(), count.count, count.target_system) == ("MISSION_COUNT", 6, 7)
    assert (start.command, start.get_srcSystem()) == (300, 255)
    assert result_name("MAV_RESULT", 4) == "MAV_RESULT_FAILED"
    assert result_name("MAV_RESULT", 200) == "MAV_RESULT(200)"


def test_a_tlog_is_read_record_by_record_and_a_broken_one_refused() -> None:
    frame = _frame(HB)
    log = (1).to_bytes(8, "big") + frame + (2).to_bytes(8, "big") + frame
    assert list(read_tlog(log)) == [(1, frame), (2, frame)]
    with pytest.raises(BadTlog, match="no MAVLink frame"):
        list(read_tlog((1).to_bytes(8, "big") + b"not a frame"))
    with pytest.raises(BadTlog, match="truncated"):
        list(read_tlog(log + b"\x00\x01"))
