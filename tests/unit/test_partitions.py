"""Partitions of a bus stream: the key → partition function every process computes alike, the
share each member of a group takes, and the lag of a partitioned stream read as one."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

from skyhive.adapters.partitioned_streams import _spread
from skyhive.adapters.stream_lag import GroupLag, StreamLag, merge_partitions
from skyhive.adapters.stream_partitions import (
    bus_id,
    lease_key,
    partition_stream,
    split_bus_id,
    stream_of,
)
from skyhive.domain.partitions import fair_share, over_share, partition_of


def test_a_key_has_one_partition_whatever_the_process() -> None:
    """Not Python's hash(), which is salted per process: another interpreter agrees."""
    keys = [f"drone-{i}" for i in range(50)]
    here = [partition_of(k, 8) for k in keys]
    code = (
        "from skyhive.domain.partitions import partition_of; "
        f"print([partition_of(k, 8) for k in {keys!r}])"
    )
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    ).stdout  # fmt: skip
    assert str(here) == there.strip()
    assert partition_of("drone-1", 8) == partition_of("drone-1", 8)
    assert all(0 <= p < 8 for p in here)
    assert len(set(here)) == 8  # 50 drones reach every one of 8 partitions


def test_keys_spread_evenly_enough() -> None:
    counts = Counter(partition_of(f"drone-{i:05d}", 16) for i in range(16_000))
    assert min(counts.values()) > 800 and max(counts.values()) < 1200


def test_shares_add_up_to_the_partitions_and_differ_by_at_most_one() -> None:
    for partitions in (1, 2, 4, 7, 8, 64):
        for n in range(1, 12):
            members = [f"host-{i}" for i in range(n)]
            shares = [fair_share(partitions, members, m) for m in members]
            assert sum(shares) == partitions
            assert max(shares) - min(shares) <= 1


def test_every_member_computes_the_same_split() -> None:
    """The first by name take the remainder: 4 partitions among 3 members are 2, 1, 1."""
    members = ["b", "c", "a"]
    assert [fair_share(4, members, m) for m in ("a", "b", "c")] == [2, 1, 1]


def test_a_member_not_yet_listed_counts_itself() -> None:
    """Its own heartbeat may not be in the list it read: it still takes a share."""
    assert fair_share(4, [], "a") == 4
    assert fair_share(4, ["a"], "b") == 2


def test_more_members_than_partitions_leaves_some_without_any() -> None:
    members = [f"m{i}" for i in range(5)]
    assert sorted(fair_share(2, members, m) for m in members) == [0, 0, 0, 1, 1]


def test_the_highest_numbered_partitions_over_the_share_are_given_back() -> None:
    assert over_share([3, 0, 5, 1], 2) == [3, 5]
    assert over_share([0, 1], 2) == []
    assert over_share([2], 0) == [2]


def test_partition_names_share_a_hash_tag_with_their_leases() -> None:
    s = partition_stream("telemetry", 3)
    assert s == "telemetry:{p3}"
    assert lease_key(s, "processor") == "telemetry:{p3}:lease:processor"
    assert stream_of(["telemetry", "alerts"], {"telemetry": 2}) == {
        "telemetry:{p0}": "telemetry",
        "telemetry:{p1}": "telemetry",
        "alerts": "alerts",
    }


def test_bus_ids_carry_their_partition() -> None:
    assert split_bus_id(bus_id(5, "1712-3")) == (5, "1712-3")


def test_a_read_stays_within_the_batch_asked_for() -> None:
    assert _spread([0, 1, 2, 3], 100, 0) == ([0, 1, 2, 3], 25)
    assert _spread([0, 1, 2], 10, 0) == ([0, 1, 2], 3)
    # Fewer than the partitions: one from each of a few, others the next turn.
    assert _spread([0, 1, 2, 3], 2, 0) == ([0, 1], 1)
    assert _spread([0, 1, 2, 3], 2, 1) == ([1, 2], 1)


def _group(stream: str, pending: int, undelivered: int, oldest: tuple[int, int] | None) -> GroupLag:
    keep = oldest or (9999, 0)
    return GroupLag(stream, "processor", pending, undelivered, oldest, keep, True)


def test_a_partitioned_streams_lag_is_its_partitions_together() -> None:
    whole = {"t:{p0}": "t", "t:{p1}": "t", "alerts": "alerts"}
    lags = [
        StreamLag("t:{p0}", 10, [_group("t:{p0}", 2, 3, (2000, 0))]),
        StreamLag("t:{p1}", 7, [_group("t:{p1}", 1, 0, (1500, 4))]),
        StreamLag("alerts", 4, [_group("alerts", 0, 4, (1000, 0))]),
    ]
    merged = {sl.stream: sl for sl in merge_partitions(lags, whole)}
    assert merged["alerts"] is lags[2]  # not partitioned: as read
    t = merged["t"]
    assert t.length == 17
    [g] = t.groups
    assert (g.stream, g.pending, g.undelivered, g.unacked) == ("t", 3, 3, 6)
    assert g.oldest_unacked == (1500, 4)  # the oldest of any partition: how far behind
    assert g.age_s(now_ms=3500) == 2.0


def test_only_redis_streams_are_split_by_skyhive() -> None:
    from skyhive.settings import Settings

    assert Settings(bus_partitions=4).partitioned_streams() == {
        "telemetry": 4,
        "telemetry:urgent": 4,
    }
    assert Settings(bus_partitions=1).partitioned_streams() == {}
    assert Settings(bus="kafka", bus_partitions=4).partitioned_streams() == {}  # the brokers' job
