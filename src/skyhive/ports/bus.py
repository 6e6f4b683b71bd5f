"""The event-log port. Redis Streams implements it on one machine (`adapters/redis_streams.py`); Kafka at scale."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class BusMessage:
    id: str
    key: str
    value: bytes


class Bus(Protocol):
    def publish(self, stream: str, items: Sequence[tuple[str, bytes]]) -> list[str]:
        """Append ``(key, value)`` records durably, in order; returns their ids."""

    def ensure_group(self, stream: str, group: str) -> None:
        """Create the consumer group (from the start of the log) if it does not exist."""

    def consume(
        self,
        stream: str,
        group: str,
        consumer: str,
        count: int,
        block_ms: int,
        *,
        own_pending: bool = False,
    ) -> list[BusMessage]:
        """New records for this consumer, waiting up to ``block_ms`` (0: not at all); they
        stay pending until acknowledged.

        ``own_pending`` re-reads this consumer's unacknowledged records instead (after a
        failed batch), without blocking.
        """

    def claim_stale(
        self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[BusMessage]:
        """Take over records another consumer read but never acknowledged (it died)."""

    def keep_claimed(self, stream: str, group: str, consumer: str, ids: Sequence[str]) -> None:
        """Entries this consumer read and is still working on are claimed again, so another
        consumer does not take them for a dead one's (``claim_stale``); ids acknowledged
        meanwhile are ignored."""

    def ack(self, stream: str, group: str, ids: Sequence[str]) -> None:
        """Acknowledge these ids, in any order: each is done on its own."""

    def ping(self) -> bool: ...
