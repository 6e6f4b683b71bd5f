"""The trim pass and the backpressure verdict on Redis streams (``services/stream_trimmer.py``
says why): ``XTRIM MINID ~`` to each stream's slowest group, one pass at a time (a lock), the
verdict shared in a hash every process reads; and the snapshot /metrics and /readyz show."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from skyhive.adapters.redis_streams import LOST_KEY
from skyhive.adapters.stream_lag import StreamLag, format_id, merge_partitions, read_lag
from skyhive.adapters.stream_partitions import stream_of
from skyhive.domain.backpressure import Backpressure, TrimPolicy, holds

log = logging.getLogger(__name__)

LOCK = "bus:trim:lock"
STATE_KEY = "bus:backpressure"  # hash: engaged, stream, backlog, limit, resume
EPISODES_KEY = "bus:backpressure:episodes"  # hash: started, ended (counts, never expire)


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _decode_state(raw: dict[Any, Any]) -> Backpressure:
    d = {_text(k): v for k, v in raw.items()}
    if not d:
        return Backpressure.released()
    return Backpressure(
        d.get("engaged") in (b"1", "1"),
        _text(d.get("stream", b"")),
        int(d.get("backlog", 0)),
        int(d.get("limit", 0)),
        int(d.get("resume", 0)),
    )


def _summed(held: dict[str, int], whole: Mapping[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s, n in held.items():
        out[whole[s]] = out.get(whole[s], 0) + n
    return out


class LagSource(Protocol):
    """The lag of streams on another bus (``adapters/kafka_lag.py``)."""

    def read(
        self, groups: Mapping[str, frozenset[str]], *, with_age: bool = False
    ) -> list[StreamLag]: ...


@dataclass(frozen=True, slots=True)
class BusSnapshot:
    """Everything /metrics and /readyz show of the bus, read at once."""

    streams: list[StreamLag]
    state: Backpressure
    limit: int
    resume: int
    episodes: dict[str, int]  # started, ended
    lost: dict[tuple[str, str], int]  # (stream, group) → entries trimmed before processed
    deadletters: int
    deadletter_cap: int
    now_ms: int


class StreamTrimmer:
    def __init__(
        self,
        redis_bytes: Any,
        policy: TrimPolicy,
        deadletter_stream: str,
        deadletter_cap: int,
        elsewhere: LagSource | None = None,
    ) -> None:
        """``elsewhere``: the lag of ``policy.elsewhere``, the streams on another bus."""
        self._r = redis_bytes
        self._policy = policy
        self._deadletters = (deadletter_stream, deadletter_cap)
        self._elsewhere = elsewhere

    def _other_bus(self, *, with_age: bool) -> list[StreamLag]:
        p = self._policy
        if self._elsewhere is None or not p.elsewhere:
            return []
        groups = {s: p.required.get(s, frozenset()) for s in p.elsewhere}
        return self._elsewhere.read(groups, with_age=with_age)

    @property
    def policy(self) -> TrimPolicy:
        return self._policy

    def _whole(self) -> dict[str, str]:
        """The Redis streams to read (a partitioned stream's partitions) → their stream."""
        return stream_of(self._policy.streams, self._policy.partitions)

    def read_state(self) -> Backpressure:
        return _decode_state(self._r.hgetall(STATE_KEY))

    def trim(self) -> dict[str, int]:
        """Trim every stream to what all its groups acknowledged; returns what each
        stream still holds. A stream missing one of its required groups is left whole:
        that group, created later, reads it from the start. A stream split into partitions
        is trimmed partition by partition, and holds what they hold together."""
        whole = self._whole()
        lags: list[StreamLag] = read_lag(self._r, list(whole))
        held = {sl.stream: sl.length for sl in lags}
        trims = []
        for sl in lags:
            keep = sl.keep_from()
            missing = self._policy.required.get(whole[sl.stream], frozenset()) - {
                g.group for g in sl.groups
            }
            if keep is not None and not missing:
                trims.append((sl.stream, format_id(keep)))
        if trims:
            pipe = self._r.pipeline(transaction=False)
            for stream, keep_id in trims:
                # Whole nodes only (cheap); LIMIT 0 lifts "~"'s default of 10,000 a call.
                pipe.xtrim(stream, minid=keep_id, approximate=True, limit=0)
                pipe.xlen(stream)
            replies = pipe.execute()
            for i, (stream, _) in enumerate(trims):
                held[stream] = int(replies[2 * i + 1])
        held = _summed(held, whole)
        # Not trimmed by us: what the slowest group has not committed is the backlog.
        for sl in self._other_bus(with_age=False):
            held[sl.stream] = max(
                (g.unacked for g in sl.groups if holds(g.group)), default=sl.length
            )
        return held

    def run_once(self) -> Backpressure | None:
        """One pass if no other process is doing it (else None): trim, then decide and
        publish whether ingest must hold back."""
        p = self._policy
        hold_ms = max(100, int(p.period_s * 900))
        if not self._r.set(LOCK, b"1", nx=True, px=hold_ms):
            return None
        held = self.trim()
        backlog = {s: held.get(s, 0) for s in p.ingest_streams}
        stream, worst = max(backlog.items(), key=lambda kv: kv[1])
        before = self.read_state()
        engaged = p.engaged(worst, before)
        state = Backpressure(engaged, stream, worst, p.limit, p.resume)
        pipe = self._r.pipeline(transaction=False)
        pipe.hset(
            STATE_KEY,
            mapping={
                "engaged": b"1" if engaged else b"0",
                "stream": stream.encode(),
                "backlog": worst,
                "limit": p.limit,
                "resume": p.resume,
            },
        )
        # Expires if no process runs the pass any more: ingest is then not held back.
        pipe.pexpire(STATE_KEY, max(5000, int(p.period_s * 10_000)))
        if engaged != before.engaged:
            pipe.hincrby(EPISODES_KEY, "started" if engaged else "ended", 1)
        pipe.execute()
        if engaged and not before.engaged:
            log.warning(
                "backpressure on: %s holds %d entries not yet acknowledged by every group "
                "(limit %d); ingest held back until under %d",
                stream, worst, p.limit, p.resume,
            )  # fmt: skip
        elif before.engaged and not engaged:
            log.warning("backpressure off: %s down to %d entries; ingest resumed", stream, worst)
        return state

    def snapshot(self) -> BusSnapshot:
        """Two or three round trips, whatever the backlog (nothing is counted by reading)."""
        whole = self._whole()
        streams = merge_partitions(read_lag(self._r, list(whole)), whole)
        streams += self._other_bus(with_age=True)
        deadletter_stream, deadletter_cap = self._deadletters
        pipe = self._r.pipeline(transaction=False)
        pipe.hgetall(STATE_KEY)
        pipe.hgetall(EPISODES_KEY)
        pipe.hgetall(LOST_KEY)
        pipe.xlen(deadletter_stream)
        pipe.execute_command("TIME")  # raw: a cluster pipeline refuses time() by name
        state, episodes, lost, dead, (sec, usec) = pipe.execute()
        lost_by: dict[tuple[str, str], int] = {}
        for k, v in lost.items():
            stream, _, group = _text(k).rpartition("|")
            lost_by[(stream, group)] = int(v)
        return BusSnapshot(
            streams,
            _decode_state(state),
            self._policy.limit,
            self._policy.resume,
            {_text(k): int(v) for k, v in episodes.items()},
            lost_by,
            int(dead),
            deadletter_cap,
            int(sec) * 1000 + int(usec) // 1000,  # Redis's clock: the one that made the ids
        )
