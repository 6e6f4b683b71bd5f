"""Trimming to what every consumer group has acknowledged, and backpressure on ingest.

A stream may drop an entry only once every group on it has acknowledged it: each pass trims
every bus stream that has all its groups (``required_groups``) to ``MINID ~`` of its slowest
group's oldest unacknowledged entry (``adapters/stream_lag.py``). What a stream then still
holds is its backlog. Once a batch more would take the backlog of a stream ingest writes to
(telemetry, urgent, events) over ``bus_backlog_limit``, ingest is held back (the gateway
stops reading from the broker, which queues; HTTP ingest answers 503 with Retry-After) until
every one is under ``bus_backlog_resume``: overload is slowed at the door instead of dropped
inside. ``stream_maxlen`` stays on every write as a safety cap, above the limit.

The pass runs in whichever ingesting process asks first (``IngestGate``), one at a time (a
Redis lock), every ``bus_trim_s``; its verdict is shared in Redis (``STATE_KEY``), so every
gateway and API process holds back together. No process ingesting means nothing is added,
so nothing needs trimming. The alerts and commands streams are trimmed the same way but do
not hold back ingest (a stuck notifier must not stop telemetry); their lag is in /metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from skyhive.adapters.redis_streams import LOST_KEY
from skyhive.adapters.stream_lag import StreamLag, format_id, read_lag
from skyhive.settings import Settings

log = logging.getLogger(__name__)

LOCK = "bus:trim:lock"
STATE_KEY = "bus:backpressure"  # hash: engaged, stream, backlog, limit, resume
EPISODES_KEY = "bus:backpressure:episodes"  # hash: started, ended (counts, never expire)


def bounds(s: Settings) -> tuple[int, int]:
    """(engage above, release under): the limit kept under 80% of the safety cap, so the
    cap never trims before ingest is held back; the resume mark under the limit."""
    limit = min(s.bus_backlog_limit, s.stream_maxlen * 8 // 10)
    resume = s.bus_backlog_resume if s.bus_backlog_resume < limit else limit // 2
    return limit, resume


def required_groups(s: Settings) -> dict[str, set[str]]:
    """The groups each stream must have before anything of it may go: a role that has not
    started yet (its group is created when it starts, from the stream's start) must still
    find everything, so a stream missing one of its groups is not trimmed."""
    from skyhive.services.dispatcher import GROUP as DISPATCHER  # heavy; only here
    from skyhive.services.tracker import GROUP as TRACKER

    return {
        s.telemetry_stream: {s.processor_group, s.archiver_group},
        s.urgent_stream: {s.processor_group},
        s.events_stream: {TRACKER},
        s.alerts_stream: {s.notifier_group},
        s.commands_stream: {DISPATCHER},
    }


def trimmed_streams(s: Settings) -> list[str]:
    return [s.telemetry_stream, s.urgent_stream, s.events_stream, s.alerts_stream,
            s.commands_stream]  # fmt: skip


def ingest_streams(s: Settings) -> list[str]:
    return [s.telemetry_stream, s.urgent_stream, s.events_stream]


@dataclass(frozen=True, slots=True)
class Backpressure:
    engaged: bool
    stream: str  # the ingest stream with the largest backlog
    backlog: int
    limit: int
    resume: int

    @classmethod
    def released(cls) -> Backpressure:
        return cls(False, "", 0, 0, 0)


def _decode_state(raw: dict[Any, Any]) -> Backpressure:
    d = {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}
    if not d:
        return Backpressure.released()
    text = d.get("stream", b"")
    return Backpressure(
        d.get("engaged") in (b"1", "1"),
        text.decode() if isinstance(text, bytes) else str(text),
        int(d.get("backlog", 0)),
        int(d.get("limit", 0)),
        int(d.get("resume", 0)),
    )


def read_state(r: Any) -> Backpressure:
    return _decode_state(r.hgetall(STATE_KEY))


class StreamTrimmer:
    def __init__(self, settings: Settings, redis_bytes: Any) -> None:
        self._s = settings
        self._r = redis_bytes
        self.limit, self.resume = bounds(settings)
        # Held back once a gateway batch more would not fit under the limit.
        self.room = min(settings.gateway_batch_size, self.limit - self.resume)
        self._required = required_groups(settings)

    def trim(self) -> dict[str, int]:
        """Trim every stream to what all its groups acknowledged; returns what each
        stream still holds. A stream missing one of its groups (``required_groups``) is
        left whole: that group, created later, reads it from the start."""
        lags: list[StreamLag] = read_lag(self._r, trimmed_streams(self._s))
        held = {sl.stream: sl.length for sl in lags}
        trims = []
        for sl in lags:
            keep = sl.keep_from()
            missing = self._required.get(sl.stream, set()) - {g.group for g in sl.groups}
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
        return held

    def run_once(self) -> Backpressure | None:
        """One pass if no other process is doing it (else None): trim, then decide and
        publish whether ingest must hold back."""
        hold_ms = max(100, int(self._s.bus_trim_s * 900))
        if not self._r.set(LOCK, b"1", nx=True, px=hold_ms):
            return None
        held = self.trim()
        backlog = {s: held.get(s, 0) for s in ingest_streams(self._s)}
        stream, worst = max(backlog.items(), key=lambda kv: kv[1])
        before = read_state(self._r)
        engaged = worst + self.room > self.limit or (before.engaged and worst >= self.resume)
        state = Backpressure(engaged, stream, worst, self.limit, self.resume)
        pipe = self._r.pipeline(transaction=False)
        pipe.hset(
            STATE_KEY,
            mapping={
                "engaged": b"1" if engaged else b"0",
                "stream": stream.encode(),
                "backlog": worst,
                "limit": self.limit,
                "resume": self.resume,
            },
        )
        # Expires if no process runs the pass any more: ingest is then not held back.
        pipe.pexpire(STATE_KEY, max(5000, int(self._s.bus_trim_s * 10_000)))
        if engaged != before.engaged:
            pipe.hincrby(EPISODES_KEY, "started" if engaged else "ended", 1)
        pipe.execute()
        if engaged and not before.engaged:
            log.warning(
                "backpressure on: %s holds %d entries not yet acknowledged by every group "
                "(limit %d); ingest held back until under %d",
                stream, worst, self.limit, self.resume,
            )  # fmt: skip
        elif before.engaged and not engaged:
            log.warning("backpressure off: %s down to %d entries; ingest resumed", stream, worst)
        return state


class IngestGate:
    """Whether ingest must hold back, as seen by one process: refreshed every
    ``bus_trim_s`` (the refresh runs the trim pass when this process takes the lock), and
    at once when what this process wrote since would take the backlog over the limit, so a
    burst cannot run past the limit into the cap between two looks. Asking costs nothing
    between refreshes. Thread-safe (HTTP ingest runs on many threads)."""

    def __init__(self, settings: Settings, redis_bytes: Any) -> None:
        self._trimmer = StreamTrimmer(settings, redis_bytes)
        self._r = redis_bytes
        self._period = settings.bus_trim_s
        self._lock = threading.Lock()
        self._state = Backpressure.released()
        self._next = 0.0
        self._written = 0  # entries this process wrote since the last refresh
        self.retry_after_s = settings.ingest_retry_after_s

    def state(self, *, now: bool = False) -> Backpressure:
        t = time.monotonic()
        if (t < self._next and not now) or not self._lock.acquire(blocking=False):
            return self._state
        try:
            self._next = t + self._period
            written = self._written
            ran = self._trimmer.run_once()
            if ran is None:  # another pass's verdict: it may predate what we wrote since
                self._state = read_state(self._r)
            else:  # our pass counted what we wrote
                self._state = ran
                self._written -= written
        except Exception as exc:
            # The bus write that follows fails loudly on its own if Redis is down.
            log.warning("stream trim/backpressure check failed (%s); keeping the last verdict", exc)
        finally:
            self._lock.release()
        return self._state

    def wrote(self, n: int) -> None:
        self._written += n  # a lost update between threads only delays a refresh

    def held_back(self, ahead: int = 0) -> Backpressure | None:
        """The state while ingest must hold back, else None; ``ahead``: how many entries the
        caller is about to write (they must fit under the limit too)."""
        s = self.state()
        if s.engaged:
            return s
        limit = self._trimmer.limit
        ahead = min(ahead, self._trimmer.room)  # a larger batch gets in when the pass agrees
        if s.backlog + self._written + ahead > limit:
            s = self.state(now=True)
            if s.engaged:
                return s
            expected = s.backlog + self._written + ahead
            if expected > limit:  # another process's verdict, older than our writes
                return Backpressure(True, s.stream, expected, limit, s.resume)
        return None


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


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def bus_snapshot(settings: Settings, redis_bytes: Any) -> BusSnapshot:
    """Two or three round trips, whatever the backlog (nothing is counted by reading)."""
    streams = read_lag(redis_bytes, trimmed_streams(settings))
    pipe = redis_bytes.pipeline(transaction=False)
    pipe.hgetall(STATE_KEY)
    pipe.hgetall(EPISODES_KEY)
    pipe.hgetall(LOST_KEY)
    pipe.xlen(settings.deadletter_stream)
    pipe.time()
    state, episodes, lost, dead, (sec, usec) = pipe.execute()
    limit, resume = bounds(settings)
    lost_by: dict[tuple[str, str], int] = {}
    for k, v in lost.items():
        stream, _, group = _text(k).rpartition("|")
        lost_by[(stream, group)] = int(v)
    return BusSnapshot(
        streams,
        _decode_state(state),
        limit,
        resume,
        {_text(k): int(v) for k, v in episodes.items()},
        lost_by,
        int(dead),
        settings.deadletter_maxlen,
        int(sec) * 1000 + int(usec) // 1000,  # Redis's clock: the one that made the ids
    )
