"""Telemetry logs (``.tlog``, pymavlink's ``mavlogfile`` format: each frame preceded by its
8-byte big-endian time in microseconds since the epoch), read, written and replayed over
UDP to a gateway."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from skyhive.adapters.mavlink_codec import split_frames

STAMP = struct.Struct(">Q")


class BadTlog(ValueError):
    pass


def read_tlog(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(µs, frame) of each record; BadTlog at the first record that is not a frame."""
    i = 0
    while i < len(data):
        if i + STAMP.size >= len(data):
            raise BadTlog(f"truncated record at byte {i}")
        (us,) = STAMP.unpack_from(data, i)
        # A frame is at most 280 bytes: cut it out by its own header.
        frames, _ = split_frames(data[i + STAMP.size : i + STAMP.size + 280])
        if not frames:
            raise BadTlog(f"no MAVLink frame at byte {i + STAMP.size}")
        yield us, frames[0].raw
        i += STAMP.size + len(frames[0].raw)


def write_tlog(path: Path, records: Iterable[tuple[int, bytes]]) -> int:
    """Write (µs, frame) records; returns how many."""
    n = 0
    with path.open("wb") as f:
        for us, frame in records:
            f.write(STAMP.pack(us) + frame)
            n += 1
    return n


def replay(path: Path, host: str, port: int, speed: float = 1.0) -> int:
    """Send every frame of the log to ``host:port`` as a datagram each, paced by the log's
    times divided by ``speed`` (0: as fast as possible); returns the frames sent."""
    records = list(read_tlog(path.read_bytes()))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        start, first = time.monotonic(), records[0][0] if records else 0
        for us, frame in records:
            if speed > 0:
                wait = (us - first) / 1e6 / speed - (time.monotonic() - start)
                if wait > 0:
                    time.sleep(wait)
            sock.sendto(frame, (host, port))
    finally:
        sock.close()
    return len(records)
