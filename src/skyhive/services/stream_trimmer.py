"""Trimming to what every consumer group has acknowledged, and backpressure on ingest.

A stream may drop an entry only once every group on it has acknowledged it: each pass trims
every bus stream that has all its groups (``required_groups``) to ``MINID ~`` of its slowest
group's oldest unacknowledged entry (``adapters/stream_trimmer.py``). What a stream then still
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

from skyhive.domain.backpressure import Backpressure, TrimPolicy
from skyhive.ports.backpressure import BacklogControl
from skyhive.ports.clock import Clock
from skyhive.settings import Settings

log = logging.getLogger(__name__)


def bounds(s: Settings) -> tuple[int, int]:
    """(engage above, release under): the limit kept under 80% of the safety cap, so the
    cap never trims before ingest is held back; the resume mark under the limit."""
    limit = min(s.bus_backlog_limit, s.stream_maxlen * 8 // 10)
    resume = s.bus_backlog_resume if s.bus_backlog_resume < limit else limit // 2
    return limit, resume


def required_groups(s: Settings) -> dict[str, frozenset[str]]:
    """The groups each stream must have before anything of it may go: a role that has not
    started yet (its group is created when it starts, from the stream's start) must still
    find everything, so a stream missing one of its groups is not trimmed."""
    from skyhive.services.dispatcher import GROUP as DISPATCHER  # heavy; only here
    from skyhive.services.tracker import GROUP as TRACKER

    return {
        s.telemetry_stream: frozenset({s.processor_group, s.archiver_group}),
        s.urgent_stream: frozenset({s.processor_group}),
        s.events_stream: frozenset({TRACKER}),
        s.alerts_stream: frozenset({s.notifier_group}),
        s.commands_stream: frozenset({DISPATCHER}),
    }


def trim_policy(s: Settings) -> TrimPolicy:
    limit, resume = bounds(s)
    streams = (s.telemetry_stream, s.urgent_stream, s.events_stream, s.alerts_stream)
    redis_streams = (s.commands_stream,)  # always on Redis (adapters/routed_bus.py)
    on_kafka = s.bus == "kafka"
    return TrimPolicy(
        limit=limit,
        resume=resume,
        # Held back once a gateway batch more would not fit under the limit.
        room=min(s.gateway_batch_size, limit - resume),
        streams=redis_streams if on_kafka else streams + redis_streams,
        ingest_streams=(s.telemetry_stream, s.urgent_stream, s.events_stream),
        required=required_groups(s),
        period_s=s.bus_trim_s,
        elsewhere=streams if on_kafka else (),
        partitions=s.partitioned_streams(),
    )


class IngestGate:
    """Whether ingest must hold back, as seen by one process: refreshed every
    ``bus_trim_s`` (the refresh runs the trim pass when this process takes the lock), and
    at once when what this process wrote since would take the backlog over the limit, so a
    burst cannot run past the limit into the cap between two looks. Asking costs nothing
    between refreshes. Thread-safe (HTTP ingest runs on many threads)."""

    def __init__(self, control: BacklogControl, clock: Clock, retry_after_s: int) -> None:
        self._control = control
        self._policy = control.policy
        self._clock = clock
        self._lock = threading.Lock()
        self._state = Backpressure.released()
        self._next = 0.0
        self._written = 0  # entries this process wrote since the last refresh
        self.retry_after_s = retry_after_s

    def state(self, *, now: bool = False) -> Backpressure:
        t = self._clock.monotonic()
        if (t < self._next and not now) or not self._lock.acquire(blocking=False):
            return self._state
        try:
            self._next = t + self._policy.period_s
            written = self._written
            ran = self._control.run_once()
            if ran is None:  # another pass's verdict: it may predate what we wrote since
                self._state = self._control.read_state()
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
        limit = self._policy.limit
        ahead = min(ahead, self._policy.room)  # a larger batch gets in when the pass agrees
        if s.backlog + self._written + ahead > limit:
            s = self.state(now=True)
            if s.engaged:
                return s
            expected = s.backlog + self._written + ahead
            if expected > limit:  # another process's verdict, older than our writes
                return Backpressure(True, s.stream, expected, limit, s.resume)
        return None
