"""The Redis Streams bus split into partitions (issue 15): per-key order, ids that route
acknowledgements, partitions split among the members of a group by leases, a dead member's
partitions and pending entries taken over within seconds, a stalled member that lost its lease
neither processing nor acknowledging further, and trimming, backlog and lag seeing the
partitions. Against the embedded Redis; the members that die or stall are processes of their
own (``tests/partition_member.py``).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from polling import wait_for
from redis_access import client_url, redis_of
from skyhive.adapters.redis_streams import LOST_KEY, RedisStreamsBus
from skyhive.adapters.stream_partitions import lease_key, partition_stream, split_bus_id
from skyhive.api.health import read_lag_section
from skyhive.bootstrap import bootstrap
from skyhive.domain.partitions import partition_of
from skyhive.settings import Settings
from skyhive.wiring import Clients

MEMBER = Path(__file__).parent.parent / "partition_member.py"
GROUP = "g"
LEASE_MS = 2000  # short, so the tests are quick; a member renews every 500 ms
BASE_MS = 1795428000000


@pytest.fixture
def stream() -> str:
    return f"parts:{uuid.uuid4().hex[:8]}"


@pytest.fixture
def new_bus(settings: Settings, stream: str) -> Iterator[Callable[[int], RedisStreamsBus]]:
    """Members in this process, each with clients of its own (as processes have)."""
    made: list[RedisStreamsBus] = []

    def make(partitions: int) -> RedisStreamsBus:
        client = redis_of(settings)
        made.append(RedisStreamsBus(client, partitions={stream: partitions}, lease_ms=LEASE_MS))
        return made[-1]

    yield make
    for bus in made:
        bus.close()


class Member:
    """``partition_member.py`` in a process of its own, its JSON lines read on a thread."""

    def __init__(self, settings: Settings, stream: str, name: str, parts: int, mode: str) -> None:
        args = [client_url(settings), stream, GROUP, name, str(parts), str(LEASE_MS), mode]
        self.proc = subprocess.Popen(
            [sys.executable, str(MEMBER), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        assert self.next() == {"ready": True}

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(orjson.loads(line))

    def next(self, timeout: float = 20.0) -> dict[str, Any]:
        return self.lines.get(timeout=timeout)

    def said_within(self, seconds: float) -> list[dict[str, Any]]:
        out = []
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                out.append(self.lines.get(timeout=left))
            except queue.Empty:
                break
        return out

    def go_on(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"\n")
        self.proc.stdin.flush()

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def end(self) -> None:
        self.proc.send_signal(signal.SIGCONT)  # should it be stopped
        self.proc.kill()
        self.proc.wait(10)
        self._reader.join(10)  # it reads up to the end of the pipe
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def members(settings: Settings, stream: str) -> Iterator[Callable[[str, int, str], Member]]:
    started: list[Member] = []

    def start(name: str, parts: int, mode: str) -> Member:
        started.append(Member(settings, stream, name, parts, mode))
        return started[-1]

    yield start
    for m in started:
        m.end()


def read_until(bus: RedisStreamsBus, stream: str, name: str, n: int, timeout: float) -> list[str]:
    """Ids ``name`` reads (new, or taken over) until ``n`` came. Those it holds may come
    again (taken over anew had its lease gone untrusted under a loaded machine): counted once."""
    got: dict[str, None] = {}
    end = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < end:
        got |= dict.fromkeys(m.id for m in bus.consume(stream, GROUP, name, 1000, 100))
    return list(got)


def holders(r: redis.Redis, stream: str, partitions: int) -> list[str | None]:
    """Who holds each partition's lease."""
    raw = [r.get(lease_key(partition_stream(stream, p), GROUP)) for p in range(partitions)]
    return [v.decode() if isinstance(v, bytes) else None for v in raw]


def test_a_keys_records_stay_in_order_in_one_partition_and_ids_route_acks(
    new_bus: Callable[[int], RedisStreamsBus], stream: str, settings: Settings
) -> None:
    bus = new_bus(4)
    bus.ensure_group(stream, GROUP)
    items = [(f"drone-{i % 20}", f"{i}".encode()) for i in range(300)]
    ids = bus.publish(stream, items[:120]) + bus.publish(stream, items[120:])
    r: Any = redis_of(settings)
    # In its key's partition, in the order published; ids name it.
    for (key, _), record_id in zip(items, ids, strict=True):
        assert split_bus_id(record_id)[0] == partition_of(key, 4)
    for p in range(4):
        entries = r.xrange(partition_stream(stream, p))
        keys = {f[b"k"].decode() for _, f in entries}
        assert all(partition_of(k, 4) == p for k in keys)
        for key in keys:
            values = [f[b"v"] for _, f in entries if f[b"k"].decode() == key]
            assert values == [v for k, v in items if k == key]
    got = []
    while batch := bus.consume(stream, GROUP, "c1", 50, 0):
        assert len(batch) <= 50
        got += batch
    assert sorted(m.id for m in got) == sorted(ids)
    for key in {k for k, _ in items}:
        assert [m.value for m in got if m.key == key] == [v for k, v in items if k == key]
    assert bus.pending_count(stream, GROUP) == 300
    bus.ack(stream, GROUP, [m.id for m in reversed(got)])  # any order, across partitions
    assert bus.pending_count(stream, GROUP) == 0
    assert all(r.xpending(partition_stream(stream, p), GROUP)["pending"] == 0 for p in range(4))
    r.close()


def test_members_split_the_partitions_and_a_new_one_gets_its_share(
    new_bus: Callable[[int], RedisStreamsBus], stream: str, settings: Settings
) -> None:
    r = redis_of(settings)
    buses = {name: new_bus(8) for name in ("a", "b", "c")}
    buses["a"].ensure_group(stream, GROUP)

    def shares(names: tuple[str, ...]) -> list[int] | None:
        for name in names:  # each polls, as a role does between batches
            buses[name].consume(stream, GROUP, name, 100, 0)
        held = holders(r, stream, 8)
        counts = [held.count(n) for n in names]
        return counts if None not in held else None

    assert wait_for(lambda: shares(("a",)) == [8], "a alone holds all 8", 10, 0.1)
    started = time.monotonic()
    assert wait_for(lambda: shares(("a", "b")) == [4, 4], "a and b hold 4 each", 10, 0.1)
    print(f"b got its share in {time.monotonic() - started:.2f}s")
    started = time.monotonic()
    assert wait_for(lambda: shares(("a", "b", "c")) == [3, 3, 2], "3, 3 and 2", 10, 0.1)
    print(f"c got its share in {time.monotonic() - started:.2f}s")
    # A member that stops gives its partitions back at once: the others take them.
    buses["c"].close()
    assert wait_for(lambda: shares(("a", "b")) == [4, 4], "a and b hold 4 each again", 5, 0.1)
    r.close()


def test_a_killed_members_partitions_and_pending_entries_reach_another_within_seconds(
    new_bus: Callable[[int], RedisStreamsBus],
    members: Callable[[str, int, str], Member],
    stream: str,
    settings: Settings,
) -> None:
    survivor = new_bus(4)
    survivor.ensure_group(stream, GROUP)
    ids = survivor.publish(stream, [(f"drone-{i}", b"x") for i in range(40)])
    doomed = members("doomed", 4, "hold")  # alone: takes all four, reads all, holds them
    assert sorted(doomed.next()["read"]) == sorted(ids)
    # Alive in a long batch, it keeps its partitions: the other waits.
    assert read_until(survivor, stream, "survivor", 1, 1.5) == []
    doomed.signal(signal.SIGKILL)
    killed = time.monotonic()
    taken = read_until(survivor, stream, "survivor", 40, 15)
    took = time.monotonic() - killed
    assert sorted(taken) == sorted(ids)
    assert took < LEASE_MS / 1000 + 2.0, f"taken over {took:.2f}s after the kill"
    print(f"taken over {took:.2f}s after the kill (lease {LEASE_MS} ms)")
    survivor.ack(stream, GROUP, taken)
    assert survivor.pending_count(stream, GROUP) == 0


def test_a_member_stalled_mid_batch_past_its_lease_does_not_acknowledge_it(
    new_bus: Callable[[int], RedisStreamsBus],
    members: Callable[[str, int, str], Member],
    stream: str,
    settings: Settings,
) -> None:
    """SIGSTOP while it works on a batch, long enough for its lease to run out and another to
    take the batch over: resumed, its acknowledgement is refused (the entries stay the new
    owner's) and it reads nothing more."""
    other = new_bus(2)
    other.ensure_group(stream, GROUP)
    ids = other.publish(stream, [(f"drone-{i}", b"x") for i in range(20)])
    stalled = members("stalled", 2, "hold")
    assert sorted(stalled.next()["read"]) == sorted(ids)
    stalled.signal(signal.SIGSTOP)
    taken = read_until(other, stream, "other", 20, 15)
    assert sorted(taken) == sorted(ids)
    stalled.signal(signal.SIGCONT)
    stalled.go_on()
    assert sorted(stalled.next()["acked"]) == sorted(ids)  # it went on to acknowledge
    assert [line for line in stalled.said_within(1.5) if line.get("read")] == []
    r: Any = redis_of(settings)
    owners = {
        c["consumer"]
        for p in range(2)
        for c in r.xpending_range(partition_stream(stream, p), GROUP, "-", "+", 100)
    }
    assert owners == {b"other"}  # still pending, the new owner's: the ack was refused
    assert other.pending_count(stream, GROUP) == 20
    other.ack(stream, GROUP, taken)
    assert other.pending_count(stream, GROUP) == 0
    r.close()


def test_what_a_stalled_member_read_after_its_lease_ran_out_is_dropped(
    new_bus: Callable[[int], RedisStreamsBus],
    members: Callable[[str, int, str], Member],
    stream: str,
    settings: Settings,
) -> None:
    """SIGSTOP while it waits in a read: Redis still hands it what is published meanwhile
    (into its pending entries); another member takes the partitions and those entries over,
    and the stalled one, resumed, drops what its read returns instead of processing it."""
    other = new_bus(2)
    other.ensure_group(stream, GROUP)
    stalled = members("stalled", 2, "ack")
    time.sleep(0.5)  # waiting in its read (it blocks a second at a time)
    stalled.signal(signal.SIGSTOP)
    ids = other.publish(stream, [(f"drone-{i}", b"x") for i in range(20)])
    taken = read_until(other, stream, "other", 20, 15)
    assert sorted(taken) == sorted(ids)
    stalled.signal(signal.SIGCONT)
    assert [line for line in stalled.said_within(1.5) if line.get("read")] == []
    other.ack(stream, GROUP, taken)
    assert other.pending_count(stream, GROUP) == 0


def reading(drone: str, seq: int) -> bytes:
    return orjson.dumps(
        {"drone_id": drone, "seq": seq, "ts": BASE_MS + seq * 1000, "battery_pct": 80.0,
         "lat": 37.80, "lon": -122.27}
    )  # fmt: skip


def test_trimming_backlog_and_lag_see_every_partition(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings(bus_partitions=4)
    c = Clients(s)
    try:
        bootstrap(c)
        bus, tel = c.bus, s.telemetry_stream
        bus.ensure_group(tel, s.archiver_group)
        bus.ensure_group(s.urgent_stream, s.processor_group)
        ids = bus.publish(tel, [(f"d{i % 20}", reading(f"d{i % 20}", i)) for i in range(1000)])
        assert len({split_bus_id(i)[0] for i in ids}) == 4
        while msgs := bus.consume(tel, s.processor_group, "p", 300, 0):
            bus.ack(tel, s.processor_group, [m.id for m in msgs])
        read = []
        while len(read) < 500:
            read += bus.consume(tel, s.archiver_group, "a", 500 - len(read), 0)

        # The archiver holds everything back: the backlog is all four partitions together.
        assert c.stream_trimmer.trim()[tel] == 1000
        lag = read_lag_section(c)
        assert lag is not None
        groups = {(g["stream"], g["group"]): g for g in lag["groups"]}  # type: ignore[attr-defined]
        assert (tel, s.archiver_group) in groups and (tel, s.processor_group) in groups
        assert not any("{p" in stream for stream, _ in groups)  # one stream, as the roles see it
        assert groups[(tel, s.archiver_group)]["pending"] == 500
        # Undelivered entries are estimated on Redis 6.2 (stream_lag.py): only "more".
        assert groups[(tel, s.archiver_group)]["unacked"] > 500
        assert groups[(tel, s.processor_group)]["unacked"] == 0

        # Acknowledged by both: each partition trimmed on its own.
        bus.ack(tel, s.archiver_group, [m.id for m in read])
        while msgs := bus.consume(tel, s.archiver_group, "a", 500, 0):
            bus.ack(tel, s.archiver_group, [m.id for m in msgs])
        assert c.stream_trimmer.trim()[tel] < 200
    finally:
        c.close()


def test_an_entry_trimmed_from_a_partition_while_pending_is_dead_lettered(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings(bus_partitions=4)
    c = Clients(s)
    try:
        bus, tel, r = c.bus, s.telemetry_stream, c.redis_bytes
        bus.ensure_group(tel, GROUP)
        ids = bus.publish(tel, [("d1", reading("d1", i)) for i in range(20)])
        p, _ = split_bus_id(ids[0])
        assert len(bus.consume(tel, GROUP, "c", 20, 0)) == 20
        r.xtrim(partition_stream(tel, p), maxlen=0)  # a manual trim, or the safety cap
        assert bus.consume(tel, GROUP, "c", 20, 0, own_pending=True) == []
        assert bus.pending_count(tel, GROUP) == 0
        assert r.hgetall(LOST_KEY) == {f"{tel}|{GROUP}".encode(): b"20"}  # as one stream
        letters = c.deadletters.list(limit=100)
        where = partition_stream(tel, p)
        assert {d["source"] for d in letters} == {f"bus:{where}:{split_bus_id(i)[1]}" for i in ids}
    finally:
        c.close()
