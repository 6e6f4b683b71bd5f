"""One ``Bus`` over two: most streams on the configured bus (Kafka at scale), a few kept on
Redis Streams whatever the bus is.

The ``commands`` stream stays on Redis because the dispatcher's assignment script appends a
drone's ``deliver`` command in the same atomic step as it claims the delivery
(``adapters/dispatch_queue.py``): the claim and the command cannot part. Every role keeps
one ``Bus`` to talk to and never needs to know where a stream lives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from skyhive.ports.bus import Bus, BusMessage


class RoutedBus:
    def __init__(self, default: Bus, routes: Mapping[str, Bus]) -> None:
        self._default = default
        self._routes = dict(routes)

    def on(self, stream: str) -> Bus:
        """The bus ``stream`` lives on."""
        return self._routes.get(stream, self._default)

    def publish(self, stream: str, items: Sequence[tuple[str, bytes]]) -> list[str]:
        return self.on(stream).publish(stream, items)

    def ensure_group(self, stream: str, group: str) -> None:
        self.on(stream).ensure_group(stream, group)

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
        bus = self.on(stream)
        return bus.consume(stream, group, consumer, count, block_ms, own_pending=own_pending)

    def claim_stale(
        self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[BusMessage]:
        return self.on(stream).claim_stale(stream, group, consumer, min_idle_ms, count)

    def keep_claimed(self, stream: str, group: str, consumer: str, ids: Sequence[str]) -> None:
        self.on(stream).keep_claimed(stream, group, consumer, ids)

    def ack(self, stream: str, group: str, ids: Sequence[str]) -> None:
        self.on(stream).ack(stream, group, ids)

    def ping(self) -> bool:
        buses = [self._default, *self._routes.values()]
        return all(bus.ping() for bus in {id(b): b for b in buses}.values())
