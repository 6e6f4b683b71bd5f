"""One consumer's leases on the partitions of a stream, in one consumer group: which
partitions it may read, taken, renewed and given back in Redis.

A lease is a key holding the consumer's name (``SET NX PX``), renewed every quarter of its
time (``lease_ms``, the group's claim threshold) while the process lives; the lease of a dead
member expires and another takes the partition. Members announce themselves in a sorted set
with Redis's clock (no skew between hosts), and each holds its ``fair_share`` of the live
members': a new member takes free partitions, the others give their extras back between
batches once nothing of them is pending for them (``release_drained``).

Fencing, as far as it goes: a consumer trusts a lease for half its time from the moment it
asked for the renewal, and drops what it read from a partition after that (the new owner takes
it over), so a member that stalled (SIGSTOP, swapping) past its lease does not start on
entries it read before; its acknowledgement is refused when another member holds the
partition (``ACK``). A batch already being written when the stall came is written all the
same: no store here checks a fencing token.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from skyhive.adapters.redis_client import LuaScript
from skyhive.adapters.stream_partitions import lease_key, members_key, physical_streams
from skyhive.domain.partitions import fair_share, over_share

log = logging.getLogger(__name__)

RENEWALS_PER_LEASE = 4  # a lease is renewed every quarter of its time
TRUST_SHARE = 0.5  # ... and trusted for half its time after the renewal was asked for
# XAUTOCLAIM's cursor: where a scan of the pending entries starts, and what it returns once
# it has gone through them all.
SCAN_START = "0-0"

# KEYS[1]: the members' sorted set. ARGV: consumer, lease ms. Returns the live members.
_HEARTBEAT = LuaScript(
    """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[2]))
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""
)

# KEYS[1]: a lease. ARGV: consumer, lease ms. 1: renewed; 0: not ours any more.
_RENEW = LuaScript(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
)

# KEYS: a lease, its partition stream. ARGV: consumer, group, "1" to keep it while entries of
# the stream are pending for the consumer. 1: released; 0: kept; -1: not ours any more.
_RELEASE = LuaScript(
    """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if ARGV[3] == '1' and #redis.call('XPENDING', KEYS[2], ARGV[2], '-', '+', 1, ARGV[1]) > 0 then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
"""
)

# KEYS: a lease, its partition stream. ARGV: consumer, group, ids... Acknowledges unless another
# consumer holds the lease (-1): that one has taken the entries over.
_ACK = LuaScript(
    """
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return -1 end
local n = 0
for i = 3, #ARGV, 1000 do
  n = n + redis.call('XACK', KEYS[2], ARGV[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return n
"""
)


class PartitionLeases:
    """The partitions ``consumer`` of ``group`` holds on ``stream``. Thread-safe: a keeper
    thread calls :meth:`refresh`, the consuming thread the rest."""

    def __init__(
        self,
        client: Any,
        where: tuple[str, str, str],
        partitions: int,
        lease_ms: int,
    ) -> None:
        self.stream, self.group, self.consumer = where
        self.streams = physical_streams(self.stream, partitions)
        self._r = client
        self._lease_ms = lease_ms
        self._trust_s = lease_ms * TRUST_SHARE / 1000.0
        self._leases = [lease_key(s, self.group) for s in self.streams]
        self._lock = threading.Lock()
        self._trusted_until: dict[int, float] = {}  # held partition → when trust ends
        self._draining: set[int] = set()  # held, to give back: not read any more
        self._fresh: dict[int, str] = {}  # held, others' entries still to take over: cursor
        self._gained = threading.Event()  # set when a partition is taken
        self.turn = 0  # reads taking from a few of many partitions start at another each turn

    def held(self) -> list[int]:
        """Partitions held and trusted (being given back included)."""
        with self._lock:
            return self._held()

    def readable(self) -> list[int]:
        """Partitions to read new entries from: held, not being given back, taken over."""
        with self._lock:
            return [p for p in self._held() if p not in self._draining and p not in self._fresh]

    def takeovers(self) -> dict[int, str]:
        """Partitions just taken whose pending entries are still to take over (cursor each)."""
        with self._lock:
            return {p: self._fresh[p] for p in self._held() if p in self._fresh}

    def took_over(self, partition: int, cursor: str) -> None:
        with self._lock:
            if cursor == SCAN_START:
                self._fresh.pop(partition, None)
            elif partition in self._fresh:
                self._fresh[partition] = cursor

    def distrust(self, partition: int) -> None:
        """What was read from ``partition`` came after its trust ended and was dropped: if it
        is still ours, its pending entries are taken over again first."""
        with self._lock:
            if partition in self._trusted_until:
                self._fresh[partition] = SCAN_START

    def _held(self) -> list[int]:
        now = time.monotonic()
        return sorted(p for p, until in self._trusted_until.items() if now < until)

    def wait_for_partition(self, timeout_s: float) -> None:
        self._gained.wait(timeout_s)
        self._gained.clear()

    def refresh(self) -> None:
        """Heartbeat, renew what is held, take free partitions up to the fair share and mark
        the ones over it to give back."""
        with self._lock:
            held = set(self._trusted_until)
            asked = time.monotonic()
            pipe = self._r.pipeline(transaction=False)
            _HEARTBEAT(
                pipe, [members_key(self.stream, self.group)], [self.consumer, self._lease_ms]
            )
            for p, key in enumerate(self._leases):
                if p in held:
                    _RENEW(pipe, [key], [self.consumer, self._lease_ms])
                else:
                    pipe.exists(key)
            members, *leases = pipe.execute()
            kept = [p for p in held if leases[p]]
            lost = sorted(held.difference(kept))
            for p in lost:
                self._forget(p)
            if lost:
                log.warning(
                    "%s lost partitions %s of %s (group %s): their leases were taken or ran "
                    "out; the new owners take their entries over",
                    self.consumer, lost, self.stream, self.group,
                )  # fmt: skip
            for p in kept:
                self._trusted_until[p] = asked + self._trust_s
            share = fair_share(len(self.streams), [_text(m) for m in members], self.consumer)
            self._draining = set(over_share(kept, share))
            free = [p for p, taken in enumerate(leases) if p not in held and not taken]
            if len(kept) < share and free:
                self._take(free[: share - len(kept)])

    def _take(self, partitions: list[int]) -> None:
        asked = time.monotonic()
        pipe = self._r.pipeline(transaction=False)
        for p in partitions:
            pipe.set(self._leases[p], self.consumer, nx=True, px=self._lease_ms)
        taken = [p for p, ok in zip(partitions, pipe.execute(), strict=True) if ok]
        for p in taken:
            self._trusted_until[p] = asked + self._trust_s
            self._fresh[p] = SCAN_START
        if taken:
            self._gained.set()
            log.info("%s took partitions %s of %s (group %s); now holds %s", self.consumer,
                     taken, self.stream, self.group, sorted(self._trusted_until))  # fmt: skip

    def release_drained(self) -> None:
        """Give back the partitions over the share that have nothing pending for us any more
        (called between batches, by the consuming thread)."""
        with self._lock:
            draining = sorted(self._draining)
            if not draining:
                return
            pipe = self._r.pipeline(transaction=False)
            for p in draining:
                self._release(pipe, p, only_if_done=True)
            replies = dict(zip(draining, pipe.execute(), strict=True))
            for p, released in replies.items():
                if released:  # 1, or -1: no longer ours anyway
                    self._forget(p)
            given = [p for p, released in replies.items() if released == 1]
            if given:
                log.info("%s gave back partitions %s of %s (group %s) to another member",
                         self.consumer, given, self.stream, self.group)  # fmt: skip

    def leave(self) -> None:
        """Give back every partition and leave the members (a process stopping): the others
        take them at their next refresh instead of after the leases ran out."""
        with self._lock:
            pipe = self._r.pipeline(transaction=False)
            for p in self._trusted_until:
                self._release(pipe, p, only_if_done=False)
            pipe.zrem(members_key(self.stream, self.group), self.consumer)
            pipe.execute()
            for p in list(self._trusted_until):
                self._forget(p)

    def ack(self, pipe: Any, partition: int, ids: list[str]) -> None:
        """Queue the acknowledgement of ``ids`` in ``partition``, refused (-1) if another
        member holds it."""
        _ACK(
            pipe,
            [self._leases[partition], self.streams[partition]],
            [self.consumer, self.group, *ids],
        )

    def _release(self, pipe: Any, partition: int, *, only_if_done: bool) -> None:
        _RELEASE(
            pipe,
            [self._leases[partition], self.streams[partition]],
            [self.consumer, self.group, "1" if only_if_done else "0"],
        )

    def _forget(self, partition: int) -> None:
        self._trusted_until.pop(partition, None)
        self._draining.discard(partition)
        self._fresh.pop(partition, None)


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
