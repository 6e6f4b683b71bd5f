"""The ``Bus`` on a Redis stream split into partitions, as Kafka splits a topic: a record goes
to the partition of its key (``domain/partitions.py``), each partition is a Redis stream of its
own (``adapters/stream_partitions.py``), and one member of a consumer group reads a partition
at a time, on a lease (``adapters/partition_leases.py``). So several processors never work on
one drone at once (its rule memory and alerts are a read then a write), and the roles need no
change: they read, claim and acknowledge as on one stream.

- ``publish``: one append per partition in one pipeline, per-key order kept; ids carry their
  partition (``3/1712-0``), so acknowledgements and re-claims find the stream.
- ``consume`` reads the partitions this member holds (one ``XREADGROUP``, at most
  ``count / partitions held`` from each, so a batch stays within ``count``). On a Redis
  Cluster the partitions are in different slots, which one command may not span: there it is
  one ``XREADGROUP`` per partition in one pipeline, and the wait for new entries a poll every
  ``CLUSTER_POLL_S``. A partition just
  taken first hands over what was pending in it for other consumers (``XAUTOCLAIM`` with no
  idle time: the lease says its reader is gone or gave it back), before anything new.
- ``claim_stale``, ``keep_claimed`` and ``own_pending`` keep their meaning, on the partitions
  held; ``ack`` is refused for a partition another member holds (it has taken the entries
  over).
- A keeper thread renews this process's leases, heartbeats, takes free partitions and marks
  extras to give back; the consuming thread gives them back between batches.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import redis

from skyhive.adapters.partition_leases import (
    RENEWALS_PER_LEASE,
    SCAN_START,
    PartitionLeases,
)
from skyhive.adapters.redis_client import is_cluster
from skyhive.adapters.stream_partitions import (
    bus_id,
    partition_stream,
    physical_streams,
    split_bus_id,
)
from skyhive.domain.partitions import partition_of
from skyhive.ports.bus import BusMessage

if TYPE_CHECKING:
    from skyhive.adapters.redis_streams import RedisStreamsBus

log = logging.getLogger(__name__)

CLUSTER_POLL_S = 0.02  # on a cluster: how often an idle reader looks for new entries


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _by_partition(ids: Sequence[str]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = defaultdict(list)
    for record_id in ids:
        p, entry_id = split_bus_id(record_id)
        out[p].append(entry_id)
    return out


def _spread(partitions: list[int], count: int, turn: int) -> tuple[list[int], int]:
    """Which partitions a read of ``count`` takes from, and how many from each: all of them
    ``count // n`` each, or, when ``count`` is smaller than their number, one from ``count``
    of them (a different few each ``turn``)."""
    if len(partitions) <= count:
        return partitions, count // len(partitions)
    start = turn % len(partitions)
    return (partitions[start:] + partitions[:start])[:count], 1


class PartitionedStreams:
    def __init__(
        self, bus: RedisStreamsBus, client: Any, partitions: Mapping[str, int], lease_ms: int
    ) -> None:
        self._bus = bus
        self._r = client
        self._partitions = dict(partitions)
        self._lease_ms = lease_ms
        self._members: dict[tuple[str, str, str], PartitionLeases] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._keeper: threading.Thread | None = None

    def __contains__(self, stream: str) -> bool:
        return stream in self._partitions

    def publish(self, stream: str, items: Sequence[tuple[str, bytes]]) -> list[str]:
        n = self._partitions[stream]
        where: dict[int, list[int]] = defaultdict(list)  # partition → indices in items
        for i, (key, _) in enumerate(items):
            where[partition_of(key, n)].append(i)
        batches = [
            (partition_stream(stream, p), [items[i] for i in idx]) for p, idx in where.items()
        ]
        ids = [""] * len(items)
        for (p, idx), got in zip(where.items(), self._bus.append(batches), strict=True):
            for i, entry_id in zip(idx, got, strict=True):
                ids[i] = bus_id(p, entry_id)
        return ids

    def ensure_group(self, stream: str, group: str) -> None:
        pipe = self._r.pipeline(transaction=False)
        for s in physical_streams(stream, self._partitions[stream]):
            pipe.xgroup_create(s, group, id="0", mkstream=True)
        for reply in pipe.execute(raise_on_error=False):
            if isinstance(reply, redis.ResponseError) and "BUSYGROUP" not in str(reply):
                raise reply

    def consume(
        self, stream: str, group: str, consumer: str, count: int, block_ms: int, own_pending: bool
    ) -> list[BusMessage]:
        leases = self._member(stream, group, consumer)
        if own_pending:  # re-read, never delivered anew: reading more than asked costs nothing
            held = leases.held()
            return self._read(leases, held, "0", count, None)[0][:count] if held else []
        leases.release_drained()
        takeovers = leases.takeovers()
        if takeovers:
            taken = self._claim(leases, takeovers, 0, count, takeover=True)
            if taken:
                log.info(
                    "%s took over %d entries pending in %s (group %s) from the partitions' "
                    "previous readers", consumer, len(taken), stream, group,
                )  # fmt: skip
                return taken
        readable = leases.readable()
        if not readable:
            if block_ms > 0:
                leases.wait_for_partition(block_ms / 1000.0)
            return []
        return self._read_new(leases, readable, count, block_ms if block_ms > 0 else None)

    def claim_stale(
        self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[BusMessage]:
        leases = self._member(stream, group, consumer)
        readable = leases.readable()
        if not readable:
            return []
        return self._claim(leases, dict.fromkeys(readable, SCAN_START), min_idle_ms, count)

    def keep_claimed(self, stream: str, group: str, consumer: str, ids: Sequence[str]) -> None:
        leases = self._members.get((stream, group, consumer))
        if leases is None:
            return
        held = set(leases.held())  # entries of a partition lost meanwhile are the new owner's
        pipe = self._r.pipeline(transaction=False)
        for p, entry_ids in _by_partition(ids).items():
            if p in held:
                pipe.xclaim(leases.streams[p], group, consumer, 0, entry_ids, justid=True)
        pipe.execute()

    def ack(self, stream: str, group: str, ids: Sequence[str]) -> None:
        """Fenced by the lease of the member of this process that reads the partition; plain
        ``XACK`` from a process that reads none of the group's partitions (a tool)."""
        mine = [m for (s, g, _), m in list(self._members.items()) if (s, g) == (stream, group)]
        pipe = self._r.pipeline(transaction=False)
        sent = []
        for p, entry_ids in _by_partition(ids).items():
            reader = next((m for m in mine if p in m.held()), mine[0] if mine else None)
            if reader is None:
                pipe.xack(partition_stream(stream, p), group, *entry_ids)
            else:
                reader.ack(pipe, p, entry_ids)
            sent.append((p, reader, len(entry_ids)))
        for (p, reader, n), acked in zip(sent, pipe.execute(), strict=True):
            if acked == -1 and reader is not None:
                log.warning(
                    "%s did not acknowledge %d entries of partition %s of %s (group %s): "
                    "another member holds it now and takes them over",
                    reader.consumer, n, p, stream, group,
                )  # fmt: skip

    def pending_count(self, stream: str, group: str) -> int:
        pipe = self._r.pipeline(transaction=False)
        for s in physical_streams(stream, self._partitions[stream]):
            pipe.xpending(s, group)
        return sum(int(info["pending"]) for info in pipe.execute() if info)

    def close(self) -> None:
        """Stop renewing and give every partition back (the others take them at once)."""
        self._stop.set()
        if self._keeper is not None:
            self._keeper.join(10)
        with self._lock:
            members, self._members = list(self._members.values()), {}
            self._keeper, self._stop = None, threading.Event()
        for m in members:
            try:
                m.leave()
            except redis.RedisError as exc:  # their leases run out instead
                log.warning("%s could not give back its partitions of %s: %s", m.consumer,
                            m.stream, exc)  # fmt: skip

    def _member(self, stream: str, group: str, consumer: str) -> PartitionLeases:
        where = (stream, group, consumer)
        leases = self._members.get(where)
        if leases is not None:
            return leases
        leases = PartitionLeases(self._r, where, self._partitions[stream], self._lease_ms)
        leases.refresh()  # the first read already has its share of what is free
        with self._lock:
            leases = self._members.setdefault(where, leases)
            if self._keeper is None:
                self._keeper = threading.Thread(
                    target=self._keep, args=(self._stop,), name="partition-leases", daemon=True
                )
                self._keeper.start()
        return leases

    def _keep(self, stop: threading.Event) -> None:
        failing = False
        while not stop.wait(self._lease_ms / RENEWALS_PER_LEASE / 1000.0):
            for leases in list(self._members.values()):
                try:
                    leases.refresh()
                except Exception as exc:  # Redis away: the leases may run out meanwhile
                    if not failing:
                        log.warning("could not renew the partition leases of %s: %s",
                                    leases.consumer, exc)  # fmt: skip
                    failing = True
                    continue
                if failing:
                    log.info("partition leases of %s renewed again", leases.consumer)
                    failing = False

    def _read_new(
        self, leases: PartitionLeases, partitions: list[int], count: int, block_ms: int | None
    ) -> list[BusMessage]:
        """New entries, ``count`` at most: a share from each partition, then (without
        waiting) more from those that gave their whole share, while the batch has room, so
        a backlog in a few partitions still makes full batches."""
        out: list[BusMessage] = []
        chosen = partitions
        while chosen and len(out) < count:
            chosen, each = _spread(chosen, count - len(out), leases.turn)
            leases.turn += 1
            got, chosen = self._read(leases, chosen, ">", each, block_ms)
            out += got
            block_ms = None
        return out

    def _read(
        self, leases: PartitionLeases, partitions: list[int], start: str, each: int,
        block_ms: int | None,
    ) -> tuple[list[BusMessage], list[int]]:  # fmt: skip
        """What ``partitions`` hold from ``start``, ``each`` at most from each; and the
        partitions that gave that many (they may hold more)."""
        streams = {leases.streams[p]: start for p in partitions}
        resp = self._xreadgroup(leases.group, leases.consumer, streams, each, block_ms)
        replies = [(_text(s), entries) for s, entries in resp]
        index = {s: p for p, s in enumerate(leases.streams)}
        full = [index[s] for s, entries in replies if len(entries) == each]
        msgs = self._delivered(leases, replies)
        readable = leases.readable()  # not one whose read was just dropped
        return msgs, [p for p in full if p in readable]

    def _xreadgroup(
        self, group: str, consumer: str, streams: dict[str, str], count: int,
        block_ms: int | None,
    ) -> list[Any]:  # fmt: skip
        """``XREADGROUP`` of ``streams``: one command on a single Redis; on a cluster one per
        stream (each its own slot), polled until something comes or ``block_ms`` is over."""
        if not is_cluster(self._r):
            return list(self._r.xreadgroup(group, consumer, streams, count=count, block=block_ms)
                        or [])  # fmt: skip
        deadline = time.monotonic() + (block_ms or 0) / 1000.0
        while True:
            pipe = self._r.pipeline(transaction=False)
            for s, start in streams.items():
                # Its node named: else redis-py asks the server for the keys of each
                # XREADGROUP (COMMAND GETKEYS, twice), at every poll.
                pipe.execute_command(
                    "XREADGROUP", "GROUP", group, consumer, "COUNT", count, "STREAMS", s, start,
                    target_nodes=self._r.get_node_from_key(s),
                )  # fmt: skip
            got = [reply[0] for reply in pipe.execute() if reply]
            left = deadline - time.monotonic()
            if got or left <= 0:
                return got
            time.sleep(min(CLUSTER_POLL_S, left))

    def _claim(
        self,
        leases: PartitionLeases,
        cursors: dict[int, str],
        min_idle_ms: int,
        count: int,
        *,
        takeover: bool = False,
    ) -> list[BusMessage]:
        """XAUTOCLAIM in each partition of ``cursors`` from its cursor; a takeover records
        where each got to (its end: done)."""
        chosen, each = _spread(sorted(cursors), count, leases.turn)
        pipe = self._r.pipeline(transaction=False)
        for p in chosen:
            pipe.xautoclaim(
                leases.streams[p], leases.group, leases.consumer, min_idle_ms,
                start_id=cursors[p], count=each,
            )  # fmt: skip
        got = []
        for p, reply in zip(chosen, pipe.execute(), strict=True):
            if takeover:
                leases.took_over(p, _text(reply[0]))
            got.append((leases.streams[p], reply[1]))
        return self._delivered(leases, got)

    def _delivered(
        self, leases: PartitionLeases, replies: list[tuple[str, Sequence[Any]]]
    ) -> list[BusMessage]:
        """The messages of what was read, but nothing from a partition no longer trusted by
        now (this process stalled past its lease): that stays pending for whoever holds it."""
        index = {s: p for p, s in enumerate(leases.streams)}
        held = set(leases.held())
        out: list[BusMessage] = []
        for stream, entries in replies:
            p = index[stream]
            if p not in held:
                if entries:
                    leases.distrust(p)
                    log.warning(
                        "%s dropped %d entries read from %s: its lease there is no longer "
                        "sure (it stalled?)", leases.consumer, len(entries), stream,
                    )  # fmt: skip
                continue
            out += self._bus.received(
                stream, leases.group, entries, leases.consumer,
                prefix=bus_id(p, ""), counted_as=leases.stream,
            )  # fmt: skip
        return out
