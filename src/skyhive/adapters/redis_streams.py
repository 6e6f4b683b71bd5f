"""Bus on Redis Streams: consumer groups, acknowledgement, re-claim of dead consumers' work."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from skyhive.adapters.bus import BusMessage

_KEY = b"k"
_VALUE = b"v"


def _decode(entries: Sequence[Any]) -> list[BusMessage]:
    out = []
    for entry_id, fields in entries:
        if fields is None:  # entry trimmed away while pending
            continue
        eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        key = fields.get(_KEY, b"")
        out.append(
            BusMessage(
                eid, key.decode() if isinstance(key, bytes) else key, fields.get(_VALUE, b"")
            )
        )
    return out


class RedisStreamsBus:
    def __init__(self, client: redis.Redis, maxlen: int = 2_000_000) -> None:
        self._r: Any = client  # redis-py's response types are too loose to be useful here
        self._maxlen = maxlen

    def publish(self, stream: str, items: Sequence[tuple[str, bytes]]) -> list[str]:
        if not items:
            return []
        pipe = self._r.pipeline(transaction=False)
        for key, value in items:
            pipe.xadd(stream, {_KEY: key, _VALUE: value}, maxlen=self._maxlen, approximate=True)
        return [i.decode() if isinstance(i, bytes) else str(i) for i in pipe.execute()]

    def ensure_group(self, stream: str, group: str) -> None:
        try:
            self._r.xgroup_create(stream, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

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
        if own_pending:
            resp = self._r.xreadgroup(group, consumer, {stream: "0"}, count=count)
        else:
            # Redis reads BLOCK 0 as "forever"; the Bus contract reads 0 as "don't wait".
            block = block_ms if block_ms > 0 else None
            resp = self._r.xreadgroup(group, consumer, {stream: ">"}, count=count, block=block)
        if not resp:
            return []
        return _decode(resp[0][1])

    def claim_stale(
        self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[BusMessage]:
        resp = self._r.xautoclaim(stream, group, consumer, min_idle_ms, start_id="0-0", count=count)
        return _decode(resp[1])

    def ack(self, stream: str, group: str, ids: Sequence[str]) -> None:
        if ids:
            self._r.xack(stream, group, *ids)

    def ping(self) -> bool:
        return bool(self._r.ping())

    def pending_count(self, stream: str, group: str) -> int:
        info = self._r.xpending(stream, group)
        return int(info["pending"]) if info else 0
