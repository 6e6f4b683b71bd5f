"""What each consumer group of a Redis stream has yet to acknowledge, read cheaply.

One pipelined ``XINFO STREAM … FULL COUNT 1`` per stream gives its length, first entry, last
id, and per group the last-delivered id, the pending count and the oldest pending id (the
pending list is ordered by id). A second round trip, only for a group with nothing pending
but entries not yet delivered, reads the first undelivered id (for its age).

Redis 7 reports a group's undelivered entries exactly (``lag``); Redis 6.2 (the embedded
server) does not, and counting them would mean reading them, so there they are estimated
from the entry ids' timestamps (exact when the group is caught up or has read nothing of
what is left). Pending counts, ages and trim points are always exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from skyhive.adapters.redis_client import RedisClient
from skyhive.domain.backpressure import holds


def parse_id(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def format_id(ms_seq: tuple[int, int]) -> str:
    return f"{ms_seq[0]}-{ms_seq[1]}"


def next_id(ms_seq: tuple[int, int]) -> tuple[int, int]:
    return ms_seq[0], ms_seq[1] + 1


@dataclass(frozen=True, slots=True)
class GroupLag:
    stream: str
    group: str
    pending: int  # delivered to a consumer, not yet acknowledged (exact)
    undelivered: int  # not yet read by any consumer (exact on Redis 7, else estimated)
    oldest_unacked: tuple[int, int] | None  # the oldest entry this group has not acknowledged
    keep_from: tuple[int, int]  # every entry before this id is acknowledged by the group
    exact: bool

    @property
    def unacked(self) -> int:
        return self.pending + self.undelivered

    def age_s(self, now_ms: int) -> float:
        """How far behind the group is: the age of its oldest unacknowledged entry."""
        if self.oldest_unacked is None:
            return 0.0
        return max(0.0, (now_ms - self.oldest_unacked[0]) / 1000.0)


@dataclass(frozen=True, slots=True)
class StreamLag:
    stream: str
    length: int
    groups: list[GroupLag] = field(default_factory=list)

    def keep_from(self) -> tuple[int, int] | None:
        """The id before which every group that holds the stream (``backpressure.holds``)
        has acknowledged everything (None: no such group, so nothing may be trimmed: a group
        created later reads the stream from its start)."""
        return min((g.keep_from for g in self.groups if holds(g.group)), default=None)


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _get(d: dict[Any, Any], key: str) -> Any:
    return d.get(key.encode(), d.get(key))


def _undelivered(
    info: dict[Any, Any], group: dict[Any, Any], delivered: tuple[int, int]
) -> tuple[int, bool]:
    length = int(_get(info, "length"))
    last = parse_id(_get(info, "last-generated-id"))
    lag = _get(group, "lag")
    if lag is not None:  # Redis 7 knows (None there too when it cannot tell)
        return int(lag), True
    if delivered >= last or length == 0:
        return 0, True
    entries = _get(info, "entries") or []
    first = parse_id(entries[0][0]) if entries else last
    if delivered < first:
        return length, True
    # Somewhere inside the stream: interpolate on the ids' timestamps (Redis 6.2).
    span = last[0] - first[0]
    share = (last[0] - delivered[0]) / span if span > 0 else 0.5
    return max(1, min(length - 1, round(length * share))), False


def group_lag(stream: str, info: dict[Any, Any], g: dict[Any, Any]) -> GroupLag:
    """One group of an ``XINFO STREAM … FULL COUNT 1`` reply (``info``)."""
    delivered = parse_id(_get(g, "last-delivered-id"))
    pending = int(_get(g, "pel-count"))
    pel = _get(g, "pending") or []
    oldest_pending = parse_id(pel[0][0]) if pel else None
    undelivered, exact = _undelivered(info, g, delivered)
    # Pending entries were all delivered, so they are older than any undelivered one.
    keep_from = oldest_pending or next_id(delivered)
    return GroupLag(
        _text(stream),
        _text(_get(g, "name")),
        pending,
        undelivered,
        oldest_pending,  # completed by read_lag when only undelivered entries remain
        keep_from,
        exact,
    )


def read_lag(client: RedisClient, streams: Sequence[str]) -> list[StreamLag]:
    """Every stream's length and groups (a stream that does not exist is left out)."""
    r: Any = client
    pipe = r.pipeline(transaction=False)
    for s in streams:
        pipe.execute_command("XINFO", "STREAM", s, "FULL", "COUNT", 1)
    replies = pipe.execute(raise_on_error=False)
    out: list[StreamLag] = []
    for s, info in zip(streams, replies, strict=True):
        if isinstance(info, redis.ResponseError):
            if "no such key" in str(info).lower():
                continue
            raise info
        groups = [group_lag(s, info, g) for g in _get(info, "groups") or []]
        out.append(StreamLag(s, int(_get(info, "length")), groups))
    # The age of a group with nothing pending is that of its first undelivered entry.
    todo = [(sl, i) for sl in out for i, g in enumerate(sl.groups) if _needs_first(g)]
    if todo:
        pipe = r.pipeline(transaction=False)
        for sl, i in todo:
            pipe.xrange(sl.stream, min=format_id(sl.groups[i].keep_from), count=1)
        for (sl, i), first in zip(todo, pipe.execute(), strict=True):
            g = sl.groups[i]
            if first:
                sl.groups[i] = GroupLag(
                    g.stream, g.group, g.pending, g.undelivered, parse_id(first[0][0]),
                    g.keep_from, g.exact,
                )  # fmt: skip
    return out


def _needs_first(g: GroupLag) -> bool:
    return g.oldest_unacked is None and g.undelivered > 0


def merge_partitions(lags: Sequence[StreamLag], stream_of: Mapping[str, str]) -> list[StreamLag]:
    """The lag of each stream split into partitions as one: lengths and counts summed over
    its partitions, per group the oldest entry not acknowledged in any of them. ``stream_of``:
    a Redis stream → the stream it is a partition of (itself when it is not split)."""
    parts: dict[str, list[StreamLag]] = {}
    for sl in lags:
        parts.setdefault(stream_of.get(sl.stream, sl.stream), []).append(sl)
    return [
        sls[0] if len(sls) == 1 and sls[0].stream == stream else _merged(stream, sls)
        for stream, sls in parts.items()
    ]


def _merged(stream: str, parts: list[StreamLag]) -> StreamLag:
    groups: dict[str, list[GroupLag]] = {}
    for sl in parts:
        for g in sl.groups:
            groups.setdefault(g.group, []).append(g)
    merged = [
        GroupLag(
            stream,
            name,
            sum(g.pending for g in gls),
            sum(g.undelivered for g in gls),
            min((g.oldest_unacked for g in gls if g.oldest_unacked), default=None),
            min(g.keep_from for g in gls),  # the partitions are trimmed each on its own
            all(g.exact for g in gls),
        )
        for name, gls in groups.items()
    ]
    return StreamLag(stream, sum(sl.length for sl in parts), merged)
