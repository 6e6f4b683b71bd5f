"""A lean MQTT 3.1.1 QoS 1 publisher for load generation.

The ingest target is measured with the load generator on the same 2 cores, and paho spends
~300 µs of CPU per QoS 1 message (byte-wise reads, a callback per PUBACK). This publisher
writes pre-framed PUBLISH packets in bursts and counts PUBACKs in bulk, at a few µs each, so
the machine's CPU goes to SkyHive rather than to the load. Product code uses paho.
"""

from __future__ import annotations

import socket
import struct


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


PAD_OVERHEAD = len(b',"pad":""')


def pad_body(body: bytes, size: int) -> bytes:
    """A JSON object ``body`` grown to exactly ``size`` bytes with a ``"pad"`` string field (an
    unknown field: telemetry v1 keeps it, so history stores it too), as a fuller reading would
    be; unchanged when ``size`` leaves no room for the field."""
    room = size - len(body) - PAD_OVERHEAD
    if room < 0 or len(body) < 3 or not body.endswith(b"}"):
        return body
    return body[:-1] + b',"pad":"' + b"x" * room + b'"}'


def _utf8(s: str) -> bytes:
    b = s.encode()
    return struct.pack("!H", len(b)) + b


class LoadPublisher:
    def __init__(self, host: str, port: int, client_id: str, keepalive: int = 60) -> None:
        self._sock = socket.create_connection((host, port), timeout=10)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        var = _utf8("MQTT") + bytes([4, 0x02]) + struct.pack("!H", keepalive)  # clean session
        body = var + _utf8(client_id)
        self._sock.sendall(b"\x10" + _remaining_length(len(body)) + body)
        connack = self._recv_exact(4)
        if connack[0] != 0x20 or connack[3] != 0:
            raise ConnectionError(f"broker refused the connection (CONNACK {connack.hex()})")
        self._sock.setblocking(False)
        self._out = bytearray()
        self._in = bytearray()
        self._next_id = 0
        self.sent = 0
        self.acked = 0

    def _recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self._sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            buf += chunk
        return buf

    def publish(self, topic: str, payload: bytes) -> None:
        """Queue one QoS 1 PUBLISH; :meth:`pump` sends it."""
        self._next_id = self._next_id % 65535 + 1
        var = _utf8(topic) + struct.pack("!H", self._next_id)
        self._out += b"\x32" + _remaining_length(len(var) + len(payload)) + var + payload
        self.sent += 1

    def pump(self) -> None:
        """Send what is queued and count the PUBACKs that have arrived (non-blocking)."""
        while self._out:
            try:
                n = self._sock.send(self._out)
            except BlockingIOError:
                break
            del self._out[:n]
        try:
            while chunk := self._sock.recv(65536):
                self._in += chunk
        except BlockingIOError:
            pass
        # Only PUBACKs (0x40, length 2) arrive on this connection.
        whole = len(self._in) // 4 * 4
        self.acked += whole // 4
        del self._in[:whole]

    @property
    def in_flight(self) -> int:
        return self.sent - self.acked

    def close(self) -> None:
        try:
            self._sock.setblocking(True)
            self._sock.sendall(b"\xe0\x00")  # DISCONNECT
        finally:
            self._sock.close()
