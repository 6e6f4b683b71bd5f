"""Bus on Redis Streams: consumer groups, acknowledgement, re-claim of dead consumers' work.

Streams are trimmed by ``services/stream_trimmer.py`` to what every group has acknowledged;
the length cap given to every ``XADD`` (``MAXLEN ~``) is only a safety net far above the
backlog at which ingest is held back. Should an entry nevertheless vanish while pending (the
cap reached, a manual ``XTRIM``/``XDEL``), its id comes back without fields: it is then
logged, counted (``LOST_KEY``, shown in ``/metrics``), dead-lettered (its id, since its
content is gone) and acknowledged, so it neither passes unnoticed nor stays pending forever
(a pending entry holds back trimming).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import redis

from skyhive.adapters.deadletters import DeadLetters
from skyhive.adapters.redis_durability import Mode, check_waitaof, durability_mode
from skyhive.ports.bus import BusMessage
from skyhive.ports.deadletters import DeadLetter

log = logging.getLogger(__name__)

_KEY = b"k"
_VALUE = b"v"
LOST_KEY = "bus:lost"  # hash: "stream|group" → entries trimmed away before they were processed

# A batch appended in one command: a pipeline of XADDs costs the client ~8 µs and Redis
# ~7 µs per entry, this ~1 and ~3 (measured with 500-entry batches).
# KEYS[1]: the stream. ARGV: the length cap, then key, value, key, value, ...
_APPEND = """
local ids = {}
for i = 2, #ARGV, 2 do
  ids[#ids + 1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
                             'k', ARGV[i], 'v', ARGV[i + 1])
end
return ids
"""


def _decode(entries: Sequence[Any]) -> tuple[list[BusMessage], list[str | None]]:
    """The messages, and the ids of entries trimmed away while pending: no fields left (a
    real entry has at least one). Redis 6.2's XAUTOCLAIM does not even give their ids
    (None); XREADGROUP gives them with no fields."""
    out = []
    gone: list[str | None] = []
    for entry_id, fields in entries:
        eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        if not fields:
            gone.append(eid)
            continue
        key = fields.get(_KEY, b"")
        out.append(
            BusMessage(
                eid, key.decode() if isinstance(key, bytes) else key, fields.get(_VALUE, b"")
            )
        )
    return out, gone


class RedisStreamsBus:
    def __init__(
        self,
        client: redis.Redis,
        maxlen: int = 2_000_000,
        *,
        waitaof_timeout_ms: int = 5000,
        deadletters: DeadLetters | None = None,
    ) -> None:
        self._r: Any = client  # redis-py's response types are too loose to be useful here
        self._maxlen = maxlen
        self._waitaof_ms = waitaof_timeout_ms
        self._durability: Mode | None = None  # detected at the first publish
        self._dead = deadletters or DeadLetters(client, "deadletters", 100_000)
        self._append = client.register_script(_APPEND)

    def _received(
        self, stream: str, group: str, entries: Sequence[Any], consumer: str = ""
    ) -> list[BusMessage]:
        msgs, gone = _decode(entries)
        known = [i for i in gone if i is not None]
        if len(known) < len(gone):
            # Claimed without their ids (Redis 6.2): they are now this consumer's pending
            # entries, where XREADGROUP shows their ids.
            own = self._r.xreadgroup(group, consumer, {stream: "0"}, count=max(100, 2 * len(gone)))
            known = [i for i in _decode(own[0][1] if own else [])[1] if i is not None]
        if known:
            self._lost(stream, group, known)
        return msgs

    def _lost(self, stream: str, group: str, ids: list[str]) -> None:
        log.error(
            "%d entries of %s were trimmed away before group %s processed them (first %s); "
            "dead-lettered and acknowledged",
            len(ids), stream, group, ids[0],
        )  # fmt: skip
        reason = f"trimmed from {stream} before group {group} processed it"
        pipe = self._r.pipeline(transaction=False)
        pipe.hincrby(LOST_KEY, f"{stream}|{group}", len(ids))
        self._dead.queue_add(pipe, [DeadLetter(reason, b"", f"bus:{stream}:{i}") for i in ids])
        pipe.xack(stream, group, *ids)
        pipe.execute()

    def durability(self) -> Mode:
        """How a publish is made durable before it returns (adapters/redis_durability.py)."""
        if self._durability is None:
            self._durability = durability_mode(self._r)
        return self._durability

    def publish(self, stream: str, items: Sequence[tuple[str, bytes]]) -> list[str]:
        if not items:
            return []
        args: list[str | bytes | int] = [self._maxlen]
        for key, value in items:
            args += (key, value)
        # Durable before it returns (the caller then acknowledges): WAITAOF on the same
        # connection where the server has it, else the server's appendfsync.
        if self.durability() == "waitaof":
            pipe = self._r.pipeline(transaction=False)
            self._append(keys=[stream], args=args, client=pipe)
            pipe.execute_command("WAITAOF", 1, 0, self._waitaof_ms)
            ids, waited = pipe.execute()
            check_waitaof(waited)
        else:
            ids = self._append(keys=[stream], args=args)
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

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
        return self._received(stream, group, resp[0][1])

    def claim_stale(
        self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[BusMessage]:
        resp = self._r.xautoclaim(stream, group, consumer, min_idle_ms, start_id="0-0", count=count)
        return self._received(stream, group, resp[1], consumer)

    def keep_claimed(self, stream: str, group: str, consumer: str, ids: Sequence[str]) -> None:
        if ids:  # XCLAIM JUSTID resets the idle time, and skips entries no longer pending
            self._r.xclaim(stream, group, consumer, 0, list(ids), justid=True)

    def ack(self, stream: str, group: str, ids: Sequence[str]) -> None:
        if ids:
            self._r.xack(stream, group, *ids)

    def ping(self) -> bool:
        return bool(self._r.ping())

    def pending_count(self, stream: str, group: str) -> int:
        info = self._r.xpending(stream, group)
        return int(info["pending"]) if info else 0
