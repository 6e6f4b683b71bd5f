"""Thinning a telemetry series into fixed time buckets, so a chart of an hour (or a day)
gets a bounded number of points whatever the reporting rate."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(slots=True)
class _Bucket:
    readings: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, reading: Mapping[str, Any], fields: Sequence[str]) -> None:
        self.readings += 1
        for name in fields:
            value = reading.get(name)
            if value is not None:
                self.sums[name] = self.sums.get(name, 0.0) + value
                self.counts[name] = self.counts.get(name, 0) + 1

    def mean(self, name: str) -> float | None:
        n = self.counts.get(name, 0)
        return self.sums[name] / n if n else None


def downsample(
    readings: Iterable[Mapping[str, Any]], bucket_s: int, fields: Sequence[str]
) -> list[dict[str, Any]]:
    """One point per ``bucket_s``-second bucket (aligned to the epoch) that has readings,
    newest first: ``ts`` (the bucket's start), ``readings`` (how many) and the mean of each of
    ``fields`` over the readings that have it (None when none has). ``readings`` need no
    order; each has a ``ts`` datetime."""
    buckets: dict[int, _Bucket] = {}
    for r in readings:
        key = int(r["ts"].timestamp()) // bucket_s
        buckets.setdefault(key, _Bucket()).add(r, fields)
    return [
        {
            "ts": datetime.fromtimestamp(key * bucket_s, tz=UTC),
            "readings": b.readings,
            **{name: b.mean(name) for name in fields},
        }
        for key, b in sorted(buckets.items(), reverse=True)
    ]
