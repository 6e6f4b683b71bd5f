"""Backpressure on ingest: when the bus holds too much unprocessed work, and when it is
under control again (``services/stream_trimmer.py`` explains the whole mechanism)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


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


# Consumer groups that never hold a stream: the stream models' (``services/model_runner.py``).
# A model that lags or stops must not hold ingest back; trimmed past, it skips what it missed.
ADVISORY_GROUP_PREFIX = "model-"


def holds(group: str) -> bool:
    """Whether ``group`` must acknowledge an entry before it may be trimmed."""
    return not group.startswith(ADVISORY_GROUP_PREFIX)


@dataclass(frozen=True, slots=True)
class TrimPolicy:
    """What a trim pass trims and how it decides: ``streams`` are trimmed to what all their
    ``required`` groups acknowledged; ingest is held back once a batch more (``room``) would
    take an ``ingest_streams`` backlog over ``limit``, until every one is under ``resume``."""

    limit: int
    resume: int
    room: int
    streams: tuple[str, ...]
    ingest_streams: tuple[str, ...]
    required: dict[str, frozenset[str]]
    period_s: float  # how often a pass runs
    # Streams on another bus (Kafka): not trimmed here (the brokers' retention is), their
    # backlog read from that bus; ``streams`` are the Redis ones.
    elsewhere: tuple[str, ...] = ()
    # Streams split into partitions (stream → how many): each partition is trimmed on its
    # own; the stream's backlog is what its partitions hold together.
    partitions: Mapping[str, int] = field(default_factory=dict)

    def engaged(self, worst: int, before: Backpressure) -> bool:
        return worst + self.room > self.limit or (before.engaged and worst >= self.resume)
