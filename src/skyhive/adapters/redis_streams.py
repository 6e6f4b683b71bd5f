"""Bus on Redis Streams: consumer groups, acknowledgement, re-claim of dead consumers' work.

Streams are trimmed by ``services/stream_trimmer.py`` to what every group has acknowledged;
the length cap given to every ``XADD`` (``MAXLEN ~``) is only a safety net far above the
backlog at which ingest is held back. Should an entry nevertheless vanish while pending (the
cap reached, a manual ``XTRIM``/``XDEL``), its id comes back without fields: it is then
logged, counted (``LOST_KEY``, shown in ``/metrics``), dead-lettered (its id, since its
content is gone) and acknowledged, so it neither passes unnoticed nor stays pending forever
(a pending entry holds back trimming).

The telemetry streams may be split into partitions (``SKYHIVE_BUS_PARTITIONS``), each read by
one member of a group at a time: ``adapters/partitioned_streams.py``. With one partition (the
default) nothing of that runs, and a stream is one Redis stream as it always was.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from skyhive.adapters.deadletters import DeadLetters
from skyhive.adapters.partitioned_streams import PartitionedStreams
from skyhive.adapters.redis_client import LuaScript, RedisClient, is_cluster
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
_APPEND = LuaScript(
    """
local ids = {}
for i = 2, #ARGV, 2 do
  ids[#ids + 1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
                             'k', ARGV[i], 'v', ARGV[i + 1])
end
return ids
"""
)


def _decode(entries: Sequence[Any], prefix: str = "") -> tuple[list[BusMessage], list[str | None]]:
    """The messages (their ids after ``prefix``), and the ids of entries trimmed away while
    pending: no fields left (a real entry has at least one). Redis 6.2's XAUTOCLAIM does not
    even give their ids (None); XREADGROUP gives them with no fields."""
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
                prefix + eid,
                key.decode() if isinstance(key, bytes) else key,
                fields.get(_VALUE, b""),
            )
        )
    return out, gone


class RedisStreamsBus:
    def __init__(
        self,
        client: RedisClient,
        maxlen: int = 2_000_000,
        *,
        waitaof_timeout_ms: int = 5000,
        deadletters: DeadLetters | None = None,
        partitions: Mapping[str, int] | None = None,
        lease_ms: int = 5000,
    ) -> None:
        """``partitions``: the streams split into partitions (stream → how many, over 1), each
        read by one member of a group at a time, on leases of ``lease_ms``."""
        self._r: Any = client  # redis-py's response types are too loose to be useful here
        self._maxlen = maxlen
        self._waitaof_ms = waitaof_timeout_ms
        self._durability: Mode | None = None  # detected at the first publish
        self._dead = deadletters or DeadLetters(client, "deadletters", 100_000)
        parts = {s: n for s, n in (partitions or {}).items() if n > 1}
        self._parts = PartitionedStreams(self, client, parts, lease_ms) if parts else None

    def _partitioned(self, stream: str) -> PartitionedStreams | None:
        return self._parts if self._parts is not None and stream in self._parts else None

    def received(
        self,
        stream: str,
        group: str,
        entries: Sequence[Any],
        consumer: str = "",
        *,
        prefix: str = "",
        counted_as: str = "",
    ) -> list[BusMessage]:
        """The messages of entries read from ``stream`` (their ids after ``prefix``); those
        trimmed away meanwhile are dead-lettered and counted as lost from ``counted_as`` (the
        stream, or the one it is a partition of)."""
        msgs, gone = _decode(entries, prefix)
        known = [i for i in gone if i is not None]
        if len(known) < len(gone):
            # Claimed without their ids (Redis 6.2): they are now this consumer's pending
            # entries, where XREADGROUP shows their ids.
            own = self._r.xreadgroup(group, consumer, {stream: "0"}, count=max(100, 2 * len(gone)))
            known = [i for i in _decode(own[0][1] if own else [])[1] if i is not None]
        if known:
            self._lost(stream, group, known, counted_as or stream)
        return msgs

    def _lost(self, stream: str, group: str, ids: list[str], counted_as: str) -> None:
        log.error(
            "%d entries of %s were trimmed away before group %s processed them (first %s); "
            "dead-lettered and acknowledged",
            len(ids), stream, group, ids[0],
        )  # fmt: skip
        reason = f"trimmed from {stream} before group {group} processed it"
        pipe = self._r.pipeline(transaction=False)
        pipe.hincrby(LOST_KEY, f"{counted_as}|{group}", len(ids))
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
        if parts := self._partitioned(stream):
            return parts.publish(stream, items)
        [ids] = self.append([(stream, items)])
        return ids

    def append(self, batches: Sequence[tuple[str, Sequence[tuple[str, bytes]]]]) -> list[list[str]]:
        """Append each batch of records to its stream (one script call each, in one round
        trip), durably before it returns; their ids, batch by batch."""
        calls = []
        for stream, items in batches:
            args: list[str | bytes | int] = [self._maxlen]
            for key, value in items:
                args += (key, value)
            calls.append((stream, args))
        # Durable before it returns (the caller then acknowledges): WAITAOF on the same
        # connection where the server has it, else the server's appendfsync.
        waitaof = self.durability() == "waitaof"
        if len(calls) == 1 and not waitaof:
            [(stream, args)] = calls
            replies = [_APPEND(self._r, [stream], args)]
        else:
            replies = [None] * len(calls)
            for client, idx in self._pipelines(calls, waitaof):
                pipe = client.pipeline(transaction=False)
                for i in idx:
                    _APPEND(pipe, [calls[i][0]], calls[i][1])
                if waitaof:
                    pipe.execute_command("WAITAOF", 1, 0, self._waitaof_ms)
                got = pipe.execute()
                if waitaof:
                    check_waitaof(got.pop())
                for i, reply in zip(idx, got, strict=True):
                    replies[i] = reply
        return [[i.decode() if isinstance(i, bytes) else str(i) for i in ids] for ids in replies]

    def _pipelines(self, calls: list[Any], waitaof: bool) -> list[tuple[Any, list[int]]]:
        """Which client pipelines which of ``calls``: all in one, unless WAITAOF is due on a
        cluster. It waits for its own connection's writes only, so there each master gets a
        pipeline of its own streams' appends and its WAITAOF on one connection."""
        if not (waitaof and is_cluster(self._r)):
            return [(self._r, list(range(len(calls))))]
        by_master: dict[str, tuple[Any, list[int]]] = {}
        for i, (stream, _) in enumerate(calls):
            node = self._r.get_node_from_key(stream)
            by_master.setdefault(node.name, (node, []))[1].append(i)
        return [(self._r.get_redis_connection(n), idx) for n, idx in by_master.values()]

    def ensure_group(self, stream: str, group: str) -> None:
        if parts := self._partitioned(stream):
            parts.ensure_group(stream, group)
            return
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
        if parts := self._partitioned(stream):
            return parts.consume(stream, group, consumer, count, block_ms, own_pending)
        if own_pending:
            resp = self._r.xreadgroup(group, consumer, {stream: "0"}, count=count)
        else:
            # Redis reads BLOCK 0 as "forever"; the Bus contract reads 0 as "don't wait".
            block = block_ms if block_ms > 0 else None
            resp = self._r.xreadgroup(group, consumer, {stream: ">"}, count=count, block=block)
        if not resp:
            return []
        return self.received(stream, group, resp[0][1])

    def claim_stale(
        self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[BusMessage]:
        if parts := self._partitioned(stream):
            return parts.claim_stale(stream, group, consumer, min_idle_ms, count)
        resp = self._r.xautoclaim(stream, group, consumer, min_idle_ms, start_id="0-0", count=count)
        return self.received(stream, group, resp[1], consumer)

    def keep_claimed(self, stream: str, group: str, consumer: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        if parts := self._partitioned(stream):
            parts.keep_claimed(stream, group, consumer, ids)
        else:  # XCLAIM JUSTID resets the idle time, and skips entries no longer pending
            self._r.xclaim(stream, group, consumer, 0, list(ids), justid=True)

    def ack(self, stream: str, group: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        if parts := self._partitioned(stream):
            parts.ack(stream, group, ids)
        else:
            self._r.xack(stream, group, *ids)

    def ping(self) -> bool:
        return bool(self._r.ping())

    def pending_count(self, stream: str, group: str) -> int:
        if parts := self._partitioned(stream):
            return parts.pending_count(stream, group)
        info = self._r.xpending(stream, group)
        return int(info["pending"]) if info else 0

    def close(self) -> None:
        """Give back the partitions this process holds (nothing to do without partitions)."""
        if self._parts is not None:
            self._parts.close()
