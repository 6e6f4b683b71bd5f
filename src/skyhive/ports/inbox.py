"""The device inbox port: messages from devices, each acknowledged to the broker only when
the receiver says so (``adapters/mqtt_subscriber.py``: MQTT, persistent session, QoS 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    mid: int  # the broker's message id, for the acknowledgement
    qos: int


class InboxLost(Exception):
    """The connection to the broker is gone; what was read and not acknowledged is
    redelivered to the session once reconnected. ``received``: what was read before."""

    def __init__(self, reason: str, received: list[Received]) -> None:
        super().__init__(reason)
        self.received = received


class Inbox(Protocol):
    @property
    def connected(self) -> bool:
        """Connected and subscribed: the broker queues for this session from then on."""

    def connect(self) -> None:
        """Connect and subscribe; raises OSError while the broker is unreachable."""

    def reconnect(self) -> None:
        """After ``InboxLost``; raises OSError while the broker is unreachable."""

    def read(self, room: int, linger_s: float) -> list[Received]:
        """Wait briefly for input, then take what is readable, lingering up to ``linger_s``
        for up to ``room`` messages; raises ``InboxLost``."""

    def ack(self, msg: Received) -> None: ...

    def close(self) -> None:
        """Send the last acknowledgements and disconnect; the session stays with the broker."""

    def leave(self) -> None:
        """Unsubscribe: the broker queues nothing more for this session (what it queued
        before is still delivered)."""

    def end_session(self) -> None:
        """After ``close``: have the broker forget the session (and anything it still holds)."""
