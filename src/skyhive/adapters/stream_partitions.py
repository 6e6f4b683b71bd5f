"""Names of a partitioned Redis stream's parts: its partition streams, their leases, its
members, and the bus ids that say which partition an entry is in.

Partition 3 of ``telemetry`` is the stream ``telemetry:{p3}``. The braces are a Redis
Cluster hash tag: the partition's lease (``telemetry:{p3}:lease:processor``) starts with the
stream's own name, so it always shares the stream's slot, and the scripts that touch both
(a fenced acknowledgement, a release) will run on a cluster as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def partition_stream(stream: str, partition: int) -> str:
    return f"{stream}:{{p{partition}}}"


def physical_streams(stream: str, partitions: int) -> list[str]:
    """The Redis streams holding ``stream``: itself when it is not partitioned."""
    if partitions <= 1:
        return [stream]
    return [partition_stream(stream, p) for p in range(partitions)]


def stream_of(streams: Sequence[str], partitions: Mapping[str, int]) -> dict[str, str]:
    """Each Redis stream holding one of ``streams`` → the stream it is a part of."""
    return {ps: s for s in streams for ps in physical_streams(s, partitions.get(s, 1))}


def stream_length(client: Any, stream: str, partitions: Mapping[str, int]) -> int:
    """Entries ``stream`` holds, in all its partitions (one round trip)."""
    pipe = client.pipeline(transaction=False)
    for s in physical_streams(stream, partitions.get(stream, 1)):
        pipe.xlen(s)
    return sum(int(n) for n in pipe.execute())


def lease_key(partition: str, group: str) -> str:
    """Who of ``group`` reads the partition stream ``partition`` (a consumer name, expiring)."""
    return f"{partition}:lease:{group}"


def members_key(stream: str, group: str) -> str:
    """The live members of ``group`` on a partitioned ``stream`` (a sorted set: consumer →
    last heartbeat, Redis's clock in ms)."""
    return f"{stream}:members:{group}"


def bus_id(partition: int, entry_id: str) -> str:
    """A bus id carrying its partition, so acknowledgements find the stream: ``3/1712-0``."""
    return f"{partition}/{entry_id}"


def split_bus_id(record_id: str) -> tuple[int, str]:
    partition, _, entry_id = record_id.partition("/")
    return int(partition), entry_id
