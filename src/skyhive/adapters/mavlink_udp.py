"""The gateway's UDP links: one socket per ``SKYHIVE_MAVLINK__LISTEN`` endpoint, read with
one ``select`` (a vehicle's address is whatever its datagrams come from)."""

from __future__ import annotations

import select
import socket

from skyhive.domain.mavlink import parse_endpoint
from skyhive.ports.mavlink import Datagram

MAX_DATAGRAM = 65535


class UdpLinks:
    def __init__(self, endpoints: list[str]) -> None:
        self._socks: dict[str, socket.socket] = {}
        try:
            for ep in endpoints:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self._socks[ep] = sock
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(parse_endpoint(ep))
                sock.setblocking(False)
        except BaseException:
            self.close()
            raise
        self._names = {s.fileno(): name for name, s in self._socks.items()}

    def address(self, link: str) -> tuple[str, int]:
        """Where ``link`` listens (its port when bound to port 0)."""
        host, port = self._socks[link].getsockname()[:2]
        return str(host), int(port)

    def recv(self, timeout_s: float) -> list[Datagram]:
        """What arrived within ``timeout_s`` (everything ready, once something is)."""
        ready, _, _ = select.select(list(self._socks.values()), [], [], timeout_s)
        out: list[Datagram] = []
        for sock in ready:
            link = self._names[sock.fileno()]
            while True:
                try:
                    data, addr = sock.recvfrom(MAX_DATAGRAM)
                except (BlockingIOError, InterruptedError):
                    break
                except ConnectionResetError:  # an ICMP unreachable of an earlier send
                    continue
                out.append(Datagram(link, data, (str(addr[0]), int(addr[1]))))
        return out

    def send(self, link: str, addr: tuple[str, int], data: bytes) -> None:
        self._socks[link].sendto(data, addr)

    def close(self) -> None:
        for sock in self._socks.values():
            sock.close()
